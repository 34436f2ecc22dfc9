"""The bad-input table: each case gives its clear message, its exit code, and leaves no partial output.

Every case runs the real command line (`planning.cli.main`) on a scenario written to a temporary
folder; the output directory must not exist afterwards (and no temporary folder may be left beside
it), except for the solver time-out, whose documented outcome is a complete report with exit code 5.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from planning.cli import main
from planning.errors import EXIT_BAD_INPUT, EXIT_CHECKPOINT, EXIT_PLAN_FAILED, EXIT_TIME_LIMIT


def base(**changes) -> dict:
    """A tiny valid scenario: one 4 x 4 test region of the small synthetic city, hourly, 7 days."""
    data = {
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": 7},
        "forecaster": {"model": "poi_regression"},
        "deployment": {"horizon": {"days": 2}, "capacity": 20, "max_bs": 20, "alpha": 1.0,
                       "strategies": ["forecast"]},
        "sleep": {"forecaster": "daily_profile", "horizon": {"days": 1}, "n_rru": 3, "strategies": ["forecast"]},
    }
    data.update(changes)
    return data


def city_arrays(**mutate) -> dict:
    from forecasting.data.synthetic import make_city

    c = make_city(rows=8, cols=8, days=7, slots_per_day=24)
    arrays = {"traffic": c.traffic, "users": c.users, "poi": c.poi, "day_of_week": c.day_of_week,
              "slot_of_day": c.slot_of_day, "split": c.split, "slots_per_day": np.int16(24)}
    arrays.update(mutate)
    return arrays


# --- case builders: each writes what it needs into `d` and returns the scenario mapping or raw text ---


def malformed_yaml(d):
    return "city:\n  source: synthetic\ndeployment: {capacity: 20, max_bs: [1, 2\n"


def unknown_key(d):
    data = base()
    data["deployment"]["capacty"] = 20
    return data


def wrong_type(d):
    data = base()
    data["deployment"]["max_bs"] = "twenty"
    return data


def missing_data_file(d):
    return base(city={"source": "npz", "path": "data/nowhere.npz"})


def missing_real_data(d):
    (d / "empty").mkdir()
    return base(city={"source": "real", "name": "nanchang", "data_dir": "empty"})


def data_with_nans(d):
    arrays = city_arrays()
    arrays["traffic"] = arrays["traffic"].copy()
    arrays["traffic"][1, 5, 2, 3] = np.nan
    np.savez(d / "nan.npz", **arrays)
    return base(city={"source": "npz", "path": "nan.npz"})


def table_with_nans(d):
    import pandas as pd

    from forecasting.data import to_long_table
    from forecasting.data.synthetic import make_city

    tables = to_long_table(make_city(rows=8, cols=8, days=7, slots_per_day=24))
    traffic = tables.traffic.copy()
    traffic.loc[17, "traffic"] = np.nan
    traffic.to_csv(d / "traffic.csv", index=False)
    cells = pd.DataFrame(tables.cells.drop(columns="geometry"))
    cells.to_csv(d / "cells.csv", index=False)
    return base(city={"source": "long_table", "traffic": "traffic.csv", "cells": "cells.csv"})


def header_only_table(d):
    table_with_nans(d)
    import pandas as pd

    pd.read_csv(d / "traffic.csv").iloc[:0].to_csv(d / "traffic.csv", index=False)
    return base(city={"source": "long_table", "traffic": "traffic.csv", "cells": "cells.csv"})


def sleep_field(**fields):
    def build(d):
        data = base()
        data["sleep"].update(fields)
        return data
    return build


def deployment_field(**fields):
    def build(d):
        data = base()
        data["deployment"].update(fields)
        return data
    return build


def poi_grid_mismatch(d):
    arrays = city_arrays()
    arrays["poi"] = arrays["poi"][:, :, :3, :3]  # 3 x 3 POI grid vs 4 x 4 traffic grid
    np.savez(d / "mismatch.npz", **arrays)
    return base(city={"source": "npz", "path": "mismatch.npz"})


def per_cell_list_of_wrong_length(d):
    data = base()
    data["deployment"]["site_cost"] = [1.0, 2.0, 3.0]  # 16 cells are planned
    return data


def horizon_past_the_series(d):
    data = base()
    data["deployment"]["horizon"] = {"days": 3, "start_day": 5}
    return data


def baseline_without_enough_history(d):
    data = base(deployment=None)
    data["sleep"]["forecaster"] = "seasonal_naive"  # needs a day observed before each step: 16 are not
    return data


def infeasible_service(d):
    data = base()
    data["deployment"].update(min_served=1.0, max_bs=1)
    return data


def infeasible_exact_count(d):
    data = base()
    data["deployment"].update(exact_count=True, max_bs_per_cell=0, max_bs=5)
    return data


def corrupt_checkpoint(d):
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not a zip archive at all" * 10)
    return base(forecaster={"model": "corrupt.pt"})


def foreign_checkpoint(d):
    import torch

    torch.save({"state_dict": {"weight": torch.zeros(3)}}, d / "foreign.pt")
    return base(forecaster={"model": "foreign.pt"})


def mismatched_weights(d):
    from forecasting.checkpoint import save_checkpoint
    from forecasting.model import preset

    import torch

    config = {"model": preset("tiny").to_dict(), "diffusion": {"schedule": "cosine", "steps": 10}}
    save_checkpoint(d / "wrong.pt", {"ema": {"not.a.layer": torch.zeros(2)}}, config)
    return base(forecaster={"model": "wrong.pt"})


class _Payload:
    """Unpickling this would create a folder: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.makedirs, (str(self.marker),))


def malicious_checkpoint(d):
    import torch

    torch.save({"format": "uomo-checkpoint", "payload": _Payload(d / "EXECUTED")}, d / "evil.pt")
    with open(d / "evil.pkl.pt", "wb") as f:  # a plain (non-zip) pickle too
        pickle.dump({"payload": _Payload(d / "EXECUTED")}, f)
    return base(forecaster={"model": "evil.pt"})


def unknown_shipped_checkpoint(d):
    return base(forecaster={"model": "uomo-no-such-model"}, sleep=None)


def risk(problem: str, **fields):
    def build(d):
        data = base()
        data[problem]["risk"] = fields
        return data
    return build


def bool_number(key: str):
    def build(d):
        data = base()
        data["deployment"][key] = True
        return data
    return build


def rolling_every_zero(d):
    data = base()
    data["sleep"].update(strategies=["rolling"], rolling={"every": 0})
    return data


def single_sample_scenarios(d):
    return base(forecaster={"model": "uomo-synthetic-cpu", "sampling": {"n_samples": 1}},
                deployment={**base()["deployment"], "risk": {"plan_on": "scenarios"}})


def npz_with_objects(d):
    arrays = city_arrays(poi=np.array([{"cafe": 3}, _Payload(d / "EXECUTED")], dtype=object))
    np.savez(d / "objects.npz", **arrays)
    return base(city={"source": "npz", "path": "objects.npz"})


def misspelled_model_with_fallback(d):
    return base(forecaster={"model": "uomo-synthtic-cpu", "fallback": {"generation": "poi_regression",
                                                                       "long": "daily_profile"}})


def missing_problem_checkpoint(d):
    data = base()
    data["sleep"]["forecaster"] = "models/sleep.pt"  # relative to the scenario's folder, where it is not
    return data


_RELEASE: list = []  # undo actions of case builders (locks they hold), run before the assertions


def output_under_a_file(d):
    (d / "file").write_text("not a folder")
    return base(), d / "file" / "report"


def output_busy(d):
    """Another run holds the output folder's lock (taken here the way a run takes it: flock on .report.lock)."""
    import fcntl
    import os

    lock = d / ".report.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242")
    _RELEASE.append(lambda: (os.close(fd), lock.unlink()))
    return base()


BAD_INPUTS = [
    # id, builder, exit code, message (regex)
    ("malformed-yaml", malformed_yaml, EXIT_BAD_INPUT, r"malformed YAML at line \d+, column \d+"),
    ("unknown-key", unknown_key, EXIT_BAD_INPUT, r"deployment\.capacty: unknown key 'capacty'; did you mean 'capacity'"),
    ("wrong-type", wrong_type, EXIT_BAD_INPUT, r"deployment\.max_bs: Input should be a valid integer.*'twenty'"),
    ("missing-data-file", missing_data_file, EXIT_BAD_INPUT, r"city\.path \[source: npz\]: .*nowhere\.npz does not exist"),
    ("missing-real-data", missing_real_data, EXIT_BAD_INPUT, r"real city 'nanchang' needs .*empty/nanchang\.npz"),
    ("data-with-nans", data_with_nans, EXIT_BAD_INPUT, r"traffic has 1 NaN/inf values"),
    ("table-with-nans", table_with_nans, EXIT_BAD_INPUT, r"traffic.*(NaN|missing)"),
    ("poi-grid-mismatch", poi_grid_mismatch, EXIT_BAD_INPUT, r"POI grid does not match the traffic grid"),
    ("per-cell-length", per_cell_list_of_wrong_length, EXIT_BAD_INPUT, r"deployment: site_cost must be a scalar or one value per cell \(16,\).*one per cell in that order"),
    ("horizon-too-long", horizon_past_the_series, EXIT_BAD_INPUT, r"runs past the series"),
    ("baseline-not-applicable", baseline_without_enough_history, EXIT_BAD_INPUT, r"seasonal naive needs the cell observed"),
    ("infeasible-service", infeasible_service, EXIT_PLAN_FAILED, r"service-r\d+_\d+_\d+: serving 100% .*max_bs M = 1"),
    ("infeasible-count", infeasible_exact_count, EXIT_PLAN_FAILED, r"bs-count: exactly M = 5 BSs .* allow only 0"),
    ("corrupt-checkpoint", corrupt_checkpoint, EXIT_CHECKPOINT, r"corrupt\.pt is not a loadable UoMo checkpoint"),
    ("foreign-checkpoint", foreign_checkpoint, EXIT_CHECKPOINT, r"foreign\.pt is not a UoMo checkpoint"),
    ("mismatched-weights", mismatched_weights, EXIT_CHECKPOINT, r"weights do not match the declared network"),
    ("malicious-checkpoint", malicious_checkpoint, EXIT_CHECKPOINT, r"evil\.pt is not a loadable UoMo checkpoint"),
    ("unknown-shipped-model", unknown_shipped_checkpoint, EXIT_CHECKPOINT, r"unknown checkpoint 'uomo-no-such-model'"),
    ("risk-quantile-above-1", risk("deployment", plan_on="quantile", q=1.2), EXIT_BAD_INPUT, r"deployment\.risk\.q: .*less than 1"),
    ("risk-quantile-missing", risk("sleep", plan_on="quantile"), EXIT_BAD_INPUT, r"sleep\.risk: .*plan_on: quantile needs q"),
    ("risk-q-without-quantile", risk("sleep", plan_on="scenarios", q=0.5), EXIT_BAD_INPUT, r"q is used only with plan_on: quantile"),
    ("risk-epsilon-above-1", risk("sleep", plan_on="scenarios", epsilon=2), EXIT_BAD_INPUT, r"sleep\.risk\.epsilon: .*less than or equal to 1"),
    ("risk-epsilon-point", risk("sleep", epsilon=0.1), EXIT_BAD_INPUT, r"epsilon \(a chance constraint\) needs plan_on: scenarios"),
    ("risk-epsilon-deployment", risk("deployment", plan_on="scenarios", epsilon=0.1), EXIT_BAD_INPUT, r"risk\.epsilon is a sleep-control chance constraint"),
    ("risk-one-sample", single_sample_scenarios, EXIT_BAD_INPUT, r"deployment\.risk\.plan_on: scenarios .*n_samples >= 2"),
    ("rolling-every-zero", rolling_every_zero, EXIT_BAD_INPUT, r"sleep\.rolling\.every: .*greater than or equal to 1"),
    ("capacity-true", bool_number("capacity"), EXIT_BAD_INPUT, r"capacity: got the yes/no value True; give a number"),
    ("max-bs-true", bool_number("max_bs"), EXIT_BAD_INPUT, r"max_bs: got the yes/no value True; give a number"),
    ("npz-with-objects", npz_with_objects, EXIT_BAD_INPUT, r"objects\.npz: array 'poi' holds pickled Python objects .*refused"),
    ("misspelled-model-with-fallback", misspelled_model_with_fallback, EXIT_CHECKPOINT, r"unknown checkpoint 'uomo-synthtic-cpu'.*did you mean 'uomo-synthetic-cpu'"),
    ("missing-problem-checkpoint", missing_problem_checkpoint, EXIT_BAD_INPUT, r"sleep: forecaster: checkpoint file .*/models/sleep\.pt does not exist"),
    ("header-only-table", header_only_table, EXIT_BAD_INPUT, r"traffic table \(city\.traffic: traffic\.csv\) has no rows \(only a header\)"),
    ("sleep-c0-text", sleep_field(c0="big"), EXIT_BAD_INPUT, r"sleep\.c0: must be a number > 0 or a list of them \(one per cell\), got 'big' \(.*or a rule"),
    ("sleep-c0-infinite", sleep_field(c0=float("inf")), EXIT_BAD_INPUT, r"sleep\.c0: must be a finite number > 0, got infinity \(\.inf\)"),
    ("capacity-infinite", deployment_field(capacity=float("inf")), EXIT_BAD_INPUT, r"deployment\.capacity: Input should be a finite number, got infinity \(\.inf\)"),
    ("site-cost-nan", deployment_field(site_cost=float("nan")), EXIT_BAD_INPUT, r"deployment\.site_cost: must be a finite number > 0, got not a number \(\.nan\)"),
    ("out-under-a-file", output_under_a_file, EXIT_BAD_INPUT, r"--out .*/file/report: .*/file is a file, not a folder"),
    ("out-busy", output_busy, EXIT_BAD_INPUT, r"--out .*/report is being written by another run \(pid 4242 holds \.report\.lock\)"),
]


def write_scenario(d: Path, spec) -> Path:
    path = d / "scenario.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return path


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


@pytest.mark.parametrize("case, build, code, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_its_message_and_code_and_no_output(tmp_path, capsys, case, build, code, message):
    spec, out = build(tmp_path), tmp_path / "report"
    if isinstance(spec, tuple):  # (scenario, output folder) for the output-location cases
        spec, out = spec
    path = write_scenario(tmp_path, spec)
    try:
        rc = main([str(path), "--out", str(out), "--problem", "all", "--no-progress", "--no-figures"])
    finally:
        while _RELEASE:
            _RELEASE.pop()()
    err = capsys.readouterr().err
    assert rc == code, err
    assert err.startswith("error (") and f"exit {code})" in err
    import re

    assert re.search(message, err), err
    assert not re.search(r"safe_globals|allowlist|weights_only|Traceback", err), err  # no advice to load unsafely
    assert not re.search(r"function-(before|after|wrap)|union\[|single timestamp", err), err  # no pydantic internals
    assert not out.exists() and leftovers(out) == []
    assert not (tmp_path / "EXECUTED").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickles_never_run(tmp_path):
    from forecasting.checkpoint import CheckpointError, load_checkpoint

    import torch

    malicious_checkpoint(tmp_path)
    torch.save({"format": "uomo-checkpoint", "where": Path("/somewhere")}, tmp_path / "object.pt")
    with pytest.raises(CheckpointError, match=r"holds the Python object pathlib\.\w*Path, which safe loading never"):
        load_checkpoint(tmp_path / "object.pt")  # torch would suggest allow-listing it: we do not pass that on
    for name in ("evil.pt", "evil.pkl.pt"):
        with pytest.raises(CheckpointError, match="The file is refused") as caught:
            load_checkpoint(tmp_path / name)
        assert "os.makedirs" in str(caught.value) or name == "evil.pkl.pt"  # says what it refused
        assert not any(w in str(caught.value) for w in ("safe_globals", "allowlist", "weights_only", "trust"))
    assert not (tmp_path / "EXECUTED").exists()


def test_a_failed_rerun_keeps_the_previous_report(tmp_path, capsys):
    out = tmp_path / "report"
    good = write_scenario(tmp_path, base(sleep=None))
    assert main([str(good), "--out", str(out), "--no-progress", "--no-figures"]) == 0
    before = (out / "summary.json").read_text()
    bad = write_scenario(tmp_path, infeasible_service(tmp_path))
    assert main([str(bad), "--out", str(out), "--no-progress", "--no-figures"]) == EXIT_PLAN_FAILED
    assert (out / "summary.json").read_text() == before and leftovers(out) == []
    capsys.readouterr()


def test_solver_time_out_reports_the_incumbent_with_its_gap(tmp_path, capsys):
    """Neighbour coverage + a budget over unequal site costs: a MILP CBC cannot close in 1 s.

    Documented outcome: exit 5, a complete report whose plans have status 'time_limit' and a gap.
    """
    data = base(sleep=None, solver={"name": "cbc", "time_limit": 1})
    data["deployment"].update(
        capacity=7.3, max_bs=40, alpha=0.6, beta=0.4, budget=17.7, neighbour_share=0.35, max_bs_per_cell=6,
        site_cost=[1.3, 2.1, 1.7, 2.9, 1.1, 2.4, 1.9, 2.2, 1.5, 2.7, 1.2, 2.0, 1.8, 2.6, 1.4, 2.3],
    )
    out = tmp_path / "report"
    rc = main([str(write_scenario(tmp_path, data)), "--out", str(out), "--no-progress", "--no-figures"])
    captured = capsys.readouterr()
    assert rc == EXIT_TIME_LIMIT, captured.err
    assert "stopped at its time limit" in captured.err and "gap" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "time_limit" and summary["warnings"]
    limited = [s for s in summary["problems"]["deployment"]["strategies"] if s["status"] == "time_limit"]
    # CBC's own incumbent with its gap, or (on a slow or busy machine) the lowest feasible plan, gap unknown
    lowest = lambda s: any("lowest feasible plan" in n for n in s["notes"])  # noqa: E731
    assert limited and all((s["gap"] is not None and s["gap"] > 0) or lowest(s) for s in limited)
    assert "time_limit (gap" in (out / "deployment" / "kpi.md").read_text()
    assert {p.name for p in (out / "deployment").iterdir()} == {"kpi.csv", "kpi.md", "plan.geojson"}
    assert leftovers(out) == []


def test_a_solve_stopped_before_any_incumbent_returns_the_lowest_feasible_plan(monkeypatch):
    """Fault injection: the solver hits its time limit with no incumbent; the zero-new-BS plan stands in."""
    import warnings

    import planning.milp.deploy as deploy
    from planning.demand import Demand
    from planning.errors import NoIncumbentError, PlanningWarning
    from planning.params import DeployParams

    def no_incumbent(*args, **kwargs):
        raise NoIncumbentError("bs-deployment: cbc stopped without a feasible solution within the time limit of 1 s")

    monkeypatch.setattr(deploy, "solve", no_incumbent)
    d = Demand(np.array([[10.0, 30.0], [5.0, 0.0]]), "users", ["a", "b"], np.arange(2), np.zeros(2, int), 24,
               grid_index=np.array([[0, 0, 0], [0, 0, 1]]), source="real")
    params = DeployParams(capacity=10, max_bs=4, alpha=1.0, existing=np.array([1, 0]), neighbour_share=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = deploy.solve_deployment(d, params, method="milp", time_limit=1)
    assert plan.status == "time_limit" and plan.gap is None and plan.x.tolist() == [1, 0]
    assert any(issubclass(w.category, PlanningWarning) and "lowest feasible plan" in str(w.message) for w in caught)
    with pytest.raises(NoIncumbentError):  # exactly M BSs: the lower bounds are no plan at all
        deploy.solve_deployment(d, DeployParams(capacity=10, max_bs=4, exact_count=True, neighbour_share=0.5),
                                method="milp", time_limit=1)
