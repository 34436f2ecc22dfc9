"""Reports from hand-built plan results: tables, GeoJSON geometry, summary, figures, atomic folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planning.demand import Demand
from planning.errors import OutputError
from planning.milp.deploy import greedy_deploy
from planning.params import DeployParams, SleepParams
from planning.replay import replay_deployment, replay_sleep
from planning.output import atomic_output, output_lock
from planning.figures import plot_deployment_map, plot_forecast_bands, plot_forecast_frame, plot_sleep_capacity, sample_cells
from planning.geo import plan_geodataframe
from planning.report import kpi_markdown, kpi_table, summary_dict, summary_table, write_report
from planning.milp.sleep import always_on, solve_sleep
from planning.results import ForecastRun, ProblemRun, ScenarioResult, StrategyRun
from planning.scenario.loading import scenario_from_dict


def cube(values, source="real", unit="users") -> Demand:
    """2 cells of 100 m side, centres (50, -50) and (150, -50) (one region, row 0), 4 hourly slots."""
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    return Demand(values, unit, [f"c{i}" for i in range(N)], np.arange(T) % 24, np.zeros(T, int), 24,
                  coords=np.array([[50.0, -50.0], [150.0, -50.0]])[:N],
                  grid_index=np.array([[0, 0, 0], [0, 0, 1]])[:N], cell_size=100.0, source=source)


@pytest.fixture
def deployment() -> ProblemRun:
    # real demand: cell 0 needs 2 BSs of 10 users at its peak, cell 1 one; M = 3, no BS cost
    real = cube([[15, 5, 20, 10], [8, 0, 2, 4]])
    forecast = cube([[5, 5, 5, 5], [30, 20, 10, 0]], source="forecast:toy")  # wrong: puts BSs in cell 1
    params = DeployParams(capacity=10, max_bs=3)
    oracle, planned = greedy_deploy(real, params), greedy_deploy(forecast, params)
    assert oracle.x.tolist() == [2, 1] and planned.x.tolist() == [1, 2]
    runs = [
        StrategyRun("forecast", "forecast (toy)", planned, replay_deployment(planned, real, params, oracle), forecast, 0.1),
        StrategyRun("oracle", "oracle (real demand)", oracle, replay_deployment(oracle, real, params, oracle), real, 0.1),
    ]
    quantiles = {0.1: forecast.with_values(forecast.values * 0.5), 0.9: forecast.with_values(forecast.values * 1.5)}
    fc = ForecastRun("toy", "toy", "generation", forecast, quantiles, 0.2)
    return ProblemRun("deployment", real, params, runs, fc, {"days": 4 / 24, "slots_per_day": 24})


@pytest.fixture
def sleep() -> ProblemRun:
    real = cube([[3.0, 9.0, 1.0, 0.0], [4.0, 4.0, 4.0, 4.0]], unit="traffic")
    params = SleepParams(c0=5.0, n_rru=2, unit="traffic")
    oracle, on = solve_sleep(real, params), always_on(real, params)
    runs = [
        StrategyRun("always_on", "always on", on, replay_sleep(on, real, params, oracle), None, 0.0),
        StrategyRun("oracle", "oracle (real load)", oracle, replay_sleep(oracle, real, params, oracle), real, 0.0),
    ]
    return ProblemRun("sleep", real, params, runs, None, {"days": 4 / 24, "slots_per_day": 24})


def result_of(*problems) -> ScenarioResult:
    sc = scenario_from_dict({"name": "toy", "city": {"source": "synthetic"},
                             "deployment": {"capacity": 10, "max_bs": 3}, "sleep": {}})
    return ScenarioResult(sc, "toy", "EPSG:32650", {p.problem: p for p in problems}, {"load": 0.01}, [],
                          {"regions": [0]})


def test_kpi_table_holds_the_replay_scores(deployment):
    t = kpi_table(deployment)
    assert t["strategy"].tolist() == ["forecast", "oracle"]
    # forecast plan x = (1, 2): served min(10, R0) = 10+5+10+10 = 35, cell 1 all 14 -> 49 of 64
    assert t.loc[0, "served_ratio"] == pytest.approx(49 / 64)
    assert t.loc[1, "served_ratio"] == pytest.approx((15 + 5 + 20 + 10 + 8 + 0 + 2 + 4) / 64)
    assert t.loc[1, "regret"] == pytest.approx(0.0) and t.loc[0, "regret"] > 0
    assert set(t.columns) >= {"label", "n_bs", "deficit", "idle", "method", "status", "gap", "seconds"}


def test_markdown_and_terminal_tables_are_formatted(deployment, sleep):
    md = kpi_markdown(deployment)
    assert md.splitlines()[0].startswith("| strategy | BSs | served |")
    assert "| forecast (toy) | 3 | 76.6% |" in md and "greedy, optimal" in md
    text = summary_table(result_of(deployment, sleep))
    assert "deployment (2 cells x 4 slots" in text and "always on" in text and "100.0%" in text


def test_geojson_cells_are_squares_around_the_centres(deployment):
    gdf = plan_geodataframe(deployment, "EPSG:32650")
    assert gdf.crs.to_string() == "EPSG:32650"
    np.testing.assert_allclose(gdf.geometry.iloc[0].bounds, (0.0, -100.0, 100.0, 0.0))
    np.testing.assert_allclose(gdf.geometry.area, [10000.0, 10000.0])
    assert gdf["bs_forecast"].tolist() == [1, 2] and gdf["bs_oracle"].tolist() == [2, 1]
    np.testing.assert_allclose(gdf["served_forecast"], [35 / 50, 1.0])
    np.testing.assert_allclose(gdf["demand_peak"], [20, 8])
    doc = json.loads(gdf.to_json(drop_id=True))
    assert len(doc["features"]) == 2 and doc["features"][0]["properties"]["cell_id"] == "c0"


def test_sleep_geojson_has_per_cell_energy_and_qos(sleep):
    gdf = plan_geodataframe(sleep)
    np.testing.assert_allclose(gdf["energy_always_on"], [1.0, 1.0])
    np.testing.assert_allclose(gdf["qos_always_on"], [0.0, 0.0])  # 2 RRUs x 5 covers every slot
    assert gdf["active_mean_always_on"].tolist() == [2.0, 2.0]
    # cell 1 carries 4 every slot: one RRU of 5 is enough; alpha = 0.5 beta / c0 = 0.1 per unit served,
    # energy per slot 0.1 * 4 + 1 * x: oracle 4 * 1.4 = 5.6, always on 4 * 2.4 = 9.6
    assert gdf["energy_oracle"].iloc[1] == pytest.approx(5.6 / 9.6)
    assert gdf["energy_oracle"].iloc[0] <= 1.0


def test_summary_is_json_and_complete(deployment, sleep):
    s = summary_dict(result_of(deployment, sleep))
    text = json.dumps(s)  # no numpy scalars, no NaN
    assert "NaN" not in text
    dep = s["problems"]["deployment"]
    assert dep["params"]["capacity"] == 10 and dep["forecast"]["quantiles"] == [0.1, 0.9]
    assert [x["name"] for x in dep["strategies"]] == ["forecast", "oracle"]
    assert dep["strategies"][0]["kpi"]["n_bs"] == 3 and s["problems"]["sleep"]["forecast"] is None


def titled(fig) -> list:
    """The panels of a figure (axes with a title; colour bars have none)."""
    return [a for a in fig.axes if a.get_title() or a.get_title(loc="left")]


def test_figures_have_a_panel_per_strategy_or_cell(deployment, sleep):
    assert len(titled(plot_deployment_map(deployment))) == 2
    fig = plot_forecast_bands(deployment.real, deployment.forecast.mean, deployment.forecast.quantiles, [0, 1])
    axes = titled(fig)
    assert len(axes) == 2 and len(axes[0].collections) == 1  # the q0.1-q0.9 band
    assert [a.get_title(loc="left") for a in axes] == ["cell c0", "cell c1"]
    assert len(titled(plot_sleep_capacity(sleep, k=2))) == 2


def test_sample_cells_spreads_over_the_ranking():
    d = cube(np.array([[1.0] * 4, [5.0] * 4]))
    assert sample_cells(d, 1) == [1] and sorted(sample_cells(d, 4)) == [0, 1]


def test_forecast_frame_plot_reads_tidy_frames():
    frame = pd.DataFrame({
        "region": 0, "row": 0, "col": [0] * 6, "step": [0, 1, 2, 10, 11, 12],
        "truth": np.arange(6.0), "mean": np.arange(6.0) + 0.5, "q0.1": np.arange(6.0), "q0.9": np.arange(6.0) + 1,
    })
    fig = plot_forecast_frame(frame, k=1)
    ax = titled(fig)[0]
    assert len(ax.lines) == 4 and len(ax.collections) == 2  # two windows, not joined


def test_write_report_writes_files_atomically(tmp_path, deployment, sleep):
    paths = write_report(result_of(deployment, sleep), tmp_path / "out")
    names = {str(p.relative_to(tmp_path / "out")) for p in paths.values()}
    assert {"deployment/map.png", "sleep/capacity.png", "summary.json", "deployment/plan.geojson"} <= names
    assert "sleep/forecast.png" not in names  # no forecast strategy in this sleep result
    assert all(p.exists() for p in paths.values())
    md = (tmp_path / "out" / "report.md").read_text()
    assert "![deployment map](deployment/map.png)" in md


def test_atomic_output_keeps_the_old_folder_on_failure(tmp_path):
    out = tmp_path / "rep"
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("crash mid-report")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    with atomic_output(out) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"--out .*f exists and is not a directory"):
        with atomic_output(tmp_path / "f"):
            pass


REPO = Path(__file__).resolve().parents[1]

# A child process that re-writes `out` and is killed (os._exit, no clean-up of any kind) right after the
# first rename that moves the current report away from `out`: the moment a two-rename swap leaves `out`
# missing. `exchange` False forces the portable fallback swap.
KILLED_MID_SWAP = """
import os, sys
from pathlib import Path
import planning.output as output

out, exchange = Path(sys.argv[1]).resolve(), sys.argv[2] == "1"
if not exchange:
    output._exchange = lambda a, b: False
for name in ("rename", "replace"):
    real = getattr(os, name)
    def killing(src, dst, *a, _real=real, **k):
        _real(src, dst, *a, **k)
        if Path(src).resolve() == out:
            os._exit(9)
    setattr(os, name, killing)
with output.atomic_output(out) as tmp:
    (tmp / "a.txt").write_text("second")
"""


def _kill_mid_swap(out: Path, exchange: bool) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", KILLED_MID_SWAP, str(out), "1" if exchange else "0"],
                          env=env, timeout=120).returncode


def test_a_run_killed_during_the_swap_leaves_the_old_or_the_new_report(tmp_path):
    out = tmp_path / "rep"
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("first")
    rc = _kill_mid_swap(out, exchange=True)
    assert rc == 0  # the exchange never moves the report away: no rename left `out` empty
    assert (out / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_the_fallback_swap_killed_between_its_renames_is_repaired_by_the_next_run(tmp_path):
    out = tmp_path / "rep"
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("first")
    assert _kill_mid_swap(out, exchange=False) == 9
    assert not out.exists()  # the documented window of the fallback, hit on purpose
    assert any(p.name.startswith(".rep.old-") for p in tmp_path.iterdir())
    with output_lock(out):  # the next run on `out` puts the old report back and clears the rest
        assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_stale_temporary_folders_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "rep"
    for stale in (".rep.tmp-dead1", ".rep.old-dead2"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "half.txt").write_text("x")
    (tmp_path / ".other.tmp-keep").mkdir()  # another output's folder is not ours to remove
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-keep", "rep"]


HOLD_LOCK = """
import sys, time
from planning.output import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_on_the_same_folder_is_refused_at_once(tmp_path):
    out = tmp_path / "rep"
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("first")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=rf"--out .*rep is being written by another run \(pid {holder.pid} "):
            with atomic_output(out) as tmp:
                (tmp / "a.txt").write_text("second")
        assert (out / "a.txt").read_text() == "first"
    finally:
        holder.kill()  # SIGKILL: the lock file stays, but the kernel has released the lock
        holder.wait()
    assert (tmp_path / ".rep.lock").exists()
    with atomic_output(out) as tmp:
        (tmp / "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # the lock file goes with its run


def test_output_lock_is_reentrant_in_a_thread_but_not_across_threads(tmp_path):
    import threading

    out = tmp_path / "rep"
    errors = []
    with output_lock(out):
        with atomic_output(out) as tmp:  # write_report inside the CLI's lock
            (tmp / "a.txt").write_text("x")
        t = threading.Thread(target=lambda: errors.append(pytest.raises(OutputError, output_lock(out).__enter__)))
        t.start()
        t.join()
    assert errors and (out / "a.txt").exists()


def test_output_problems_name_the_key(tmp_path, monkeypatch):
    import errno

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"^output\.dir .*file/rep: .*file is a file, not a folder"):
        with output_lock(tmp_path / "file" / "rep", "output.dir"):
            pass
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if str(path).endswith(".lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OutputError, match=r"^--out .*/rep: cannot write the report there \(Read-only file system\)"):
        with output_lock(tmp_path / "rep"):
            pass
    assert not (tmp_path / "rep").exists()


def test_report_module_never_touches_solver_models():
    import planning.report as report

    source = open(report.__file__).read()
    assert "pulp" not in source and "planning.milp" not in source and "from .milp" not in source


def test_forecast_calibration_is_counted_on_the_real_series(deployment, tmp_path):
    from planning.figures import band_coverage, forecast_reliability, plot_forecast_calibration

    # band [0.5 f, 1.5 f]: cell 0 holds only its 5 (in [2.5, 7.5]), cell 1 nothing -> 1 of 8 cell-slots
    assert band_coverage(deployment) == (0.1, 0.9, 1 / 8)
    levels, observed = forecast_reliability(deployment)  # no samples: the stored quantiles
    assert levels.tolist() == [0.1, 0.9] and observed.tolist() == [3 / 8, 4 / 8]
    # with samples, the reliability is read at 19 levels off the samples
    real = deployment.real.values
    deployment.forecast.mean.scenarios = np.stack([real * 0.0, real * 2.0 + 1])  # real sits between them
    levels, observed = forecast_reliability(deployment)
    assert levels.size == 19 and np.all(observed[levels < 0.25] == np.mean(real == 0))
    plot_forecast_calibration(deployment).savefig(tmp_path / "c.png")
    files = write_report(result_of(deployment), tmp_path / "r")
    assert "deployment/calibration" in files
    assert "covers 12.5% of the real cell-slots" in (tmp_path / "r" / "report.md").read_text()
