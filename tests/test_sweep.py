"""Sweeps: grids, the local process executor, any Executor, failed jobs as rows, optional extras."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import pytest

from planning.scenario.loading import scenario_from_dict
from planning.scenario.schema import ScenarioError
from planning.sweep import Grid, Job, make_executor, run_sweep


def base():
    return scenario_from_dict({
        "name": "sweep-base",
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": 7},
        "forecaster": {"model": "neighbour_mean"},
        "deployment": {"horizon": {"days": 1}, "capacity": 20, "max_bs": 20, "alpha": 1.0,
                       "strategies": ["forecast", "poi"]},
    })


def test_grid_is_the_product_validated_before_anything_runs():
    jobs = Grid(base(), {"deployment.max_bs": [2, 4], "deployment.alpha": [0.0, 1.0]}).jobs()
    assert [j.name for j in jobs] == ["max_bs=2,alpha=0.0", "max_bs=2,alpha=1.0", "max_bs=4,alpha=0.0",
                                      "max_bs=4,alpha=1.0"]
    assert [j.scenario.deployment.max_bs for j in jobs] == [2, 2, 4, 4]
    assert jobs[1].setting == {"deployment.max_bs": 2, "deployment.alpha": 1.0}
    with pytest.raises(ScenarioError, match="deployment.max_bs"):
        Grid(base(), {"deployment.max_bs": [2, -1]}).jobs()
    with pytest.raises(ValueError, match="non-empty list"):
        Grid(base(), {"deployment.max_bs": 3}).jobs()


def test_small_sweep_with_the_local_process_executor(tmp_path):
    grid = Grid(base(), {"deployment.max_bs": [2, 6]})
    table = run_sweep(grid, out_dir=tmp_path, max_workers=2)  # default: spawned local processes
    assert table["job"].unique().tolist() == ["max_bs=2", "max_bs=6"]
    assert table["strategy"].tolist() == ["forecast", "poi", "oracle"] * 2
    assert (table["status"] == "optimal").all()
    by_job = table.groupby("job")["n_bs"].max()
    assert by_job["max_bs=2"] <= 2 < by_job["max_bs=6"] <= 6
    assert table["deployment.max_bs"].tolist() == [2] * 3 + [6] * 3
    assert (tmp_path / "sweep.csv").exists()
    for job in ("max_bs=2", "max_bs=6"):
        assert (tmp_path / job / "summary.json").exists()
        assert (tmp_path / job / "deployment" / "kpi.csv").exists()


def test_any_executor_and_failed_jobs_become_rows():
    ok = Job("ok", base())
    bad = Job("infeasible", scenario_from_dict({**base().model_dump(mode="json"),
                                                "deployment": {"capacity": 20, "max_bs": 1, "min_served": 1.0}}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        table = run_sweep([ok, bad], executor=pool)
        assert not pool._shutdown  # an Executor we pass in is ours to close
    failed = table[table["job"] == "infeasible"]
    assert len(failed) == 1 and failed["status"].item() == "failed" and failed["exit_code"].item() == 3
    assert "service-" in failed["error"].item()
    assert table[table["job"] == "ok"]["strategy"].tolist() == ["forecast", "poi", "oracle"]


def test_duplicate_scenarios_get_distinct_names():
    table = run_sweep([base(), base()], executor="thread", max_workers=1)
    assert table["job"].unique().tolist() == ["sweep-base-1", "sweep-base-2"]


@pytest.mark.parametrize("kind, module", [("dask", "distributed"), ("ray", "ray")])
def test_optional_cluster_executors_explain_how_to_install_them(kind, module):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    with pytest.raises(ImportError, match=rf"uomo-planning\[{kind}\]"):
        make_executor(kind)


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="unknown executor"):
        run_sweep([base()], executor="mpi")
