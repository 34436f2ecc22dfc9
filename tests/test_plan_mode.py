"""Plan mode (planning.plan_mode, planning.plan_output): forecast past the end of the data, plan it, write
the decisions with timestamps, and never replay; keys that make no sense there are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml

from planning.cli import main
from planning.errors import EXIT_BAD_INPUT, EXIT_OK, InputError
from planning.pipeline import run_scenario
from planning.plan_mode import run_plan
from planning.scenario.loading import load_scenario
from planning.scenario.schema import ScenarioError

DAYS, SPD = 7, 24  # the synthetic-small preset: 8 x 8 cells, hourly slots
LAST_OBSERVED = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=DAYS * SPD - 1)


def scenario(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "plan-test", "mode": "plan", "seed": 1,
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": DAYS},
        "area": {"split": "test"},
        "forecaster": {"model": "uomo-synthetic-cpu", "sampling": {"steps": 3, "n_samples": 4}},
        "deployment": {"horizon": {"days": 2}, "capacity": 20, "max_bs": 20, "alpha": 1.0,
                       "risk": {"plan_on": "quantile", "q": 0.7}},
        "sleep": {"horizon": {"days": 3}, "n_rru": 3, "risk": {"plan_on": "scenarios"}},
        "output": {"dir": "plans/here"},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[key] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_plan_mode_writes_timestamped_schedules_and_no_replay(tmp_path, capsys):
    code = main([str(scenario(tmp_path)), "--problem", "all", "--no-progress"])
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    plans = tmp_path / "plans" / "here"
    files = {str(p.relative_to(plans)) for p in plans.rglob("*") if p.is_file()}
    assert files == {"summary.json", "scenario.yaml", "deployment/bs_plan.csv", "deployment/plan.geojson",
                     "deployment/forecast.csv", "sleep/rru_schedule.csv", "sleep/plan.geojson", "sleep/forecast.csv"}
    summary = (plans / "summary.json").read_text()
    for word in ("regret", "oracle", "replay", "kpi"):
        assert word not in summary
    assert json.loads(summary)["mode"] == "plan"

    schedule = pd.read_csv(plans / "sleep" / "rru_schedule.csv", parse_dates=["timestamp"])
    cells = schedule["cell_id"].nunique()
    assert len(schedule) == cells * 3 * SPD  # 3 days past the end (two rolled long-term windows)
    assert (schedule["timestamp"] > LAST_OBSERVED).all()
    assert schedule["timestamp"].min() == LAST_OBSERVED + pd.Timedelta(hours=1)
    assert schedule["active_rru"].between(0, schedule["n_rru"]).all()
    bands = pd.read_csv(plans / "sleep" / "forecast.csv", parse_dates=["timestamp"])
    assert {"forecast", "q0.1", "q0.5", "q0.9"} <= set(bands.columns) and (bands["timestamp"] > LAST_OBSERVED).all()

    bs = pd.read_csv(plans / "deployment" / "bs_plan.csv")
    assert {"cell_id", "x", "y", "bs_total", "bs_new"} <= set(bs.columns) and bs["bs_total"].sum() <= 20
    geo = gpd.read_file(plans / "deployment" / "plan.geojson")
    assert len(geo) == len(bs) and (geo["bs_total"].to_numpy() == bs["bs_total"].to_numpy()).all()
    assert f"{bs['bs_total'].sum()} BSs" in out.out and str(plans / "sleep" / "rru_schedule.csv") in out.out


def test_run_plan_forecasts_the_future_and_plans_on_it(tmp_path):
    sc = load_scenario(scenario(tmp_path, sleep=None))
    result = run_plan(sc)
    p = result.problems["deployment"]
    assert set(result.problems) == {"deployment"} and p.horizon["first_step"] == DAYS * SPD
    assert p.forecast.mean.n_slots == 2 * SPD and p.forecast.mean.n_scenarios == 4
    assert np.all(p.forecast.mean.timestamps > np.datetime64(LAST_OBSERVED))
    np.testing.assert_allclose(p.planned.values, p.forecast.mean.values)  # deployment plans the quantile itself
    with pytest.raises(InputError, match="mode: plan"):
        run_scenario(sc)
    with pytest.raises(ScenarioError, match="mode: backtest"):
        run_plan(load_scenario(scenario(tmp_path, mode="backtest", sleep=None,
                                        forecaster={"model": "daily_profile"},
                                        deployment={"task": "long", "capacity": 20, "max_bs": 20})))


@pytest.mark.parametrize("changes, key", [
    (dict(mode="plann"), "mode"),
    (dict(sleep__strategies=["forecast", "rolling"]), "sleep.strategies"),
    (dict(sleep__strategies=["threshold"]), "sleep.strategies"),
    (dict(deployment__strategies=["forecast", "poi"]), "deployment.strategies"),
    (dict(deployment__horizon={"days": 2, "start_day": 3}), "deployment.horizon.start_day"),
    (dict(deployment__task="generation"), "deployment.task"),
])
def test_keys_plan_mode_cannot_honour_are_refused_by_name(tmp_path, capsys, changes, key):
    code = main([str(scenario(tmp_path, **changes)), "--problem", "all", "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert key in err, err
    assert not (tmp_path / "plans").exists()  # nothing written
