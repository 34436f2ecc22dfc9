"""Scenario schema: validation messages, overrides, relative paths, horizons, sizing rules, running."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from planning.errors import InputError
from planning.pipeline import crop_steps, horizon_steps, run_scenario, size_rru_capacity
from planning.scenario.docs import schema_fields
from planning.scenario.loading import (
    apply_overrides,
    load_scenario,
    parse_override,
    scenario_from_dict,
    with_overrides,
)
from planning.scenario.schema import Horizon, ScenarioError

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


def small(**changes) -> dict:
    """A tiny two-problem scenario on the small synthetic city (1 test region of 4 x 4 cells, hourly, 7 days)."""
    data = {
        "name": "tiny",
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": 7},
        "forecaster": {"model": "poi_regression"},
        "deployment": {"horizon": {"days": 2}, "capacity": 20, "max_bs": 20, "alpha": 1.0},
        "sleep": {"forecaster": "daily_profile", "horizon": {"days": 1}, "n_rru": 3},
    }
    return apply_overrides(data, changes)


def problems_of(exc: ScenarioError) -> dict[str, str]:
    return dict(exc.problems)


# ---------------------------------------------------------------------------------------------------
# Shipped scenarios and documentation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", "nanchang_deploy", "nanchang_sleep"])
def test_shipped_scenarios_validate_and_resolve_paths_from_their_folder(name):
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert sc.name == name
    assert sc.output.dir == (REPO / "out" / name).resolve()  # '../out/<name>' read from scenarios/
    assert sc.base_dir == SCENARIOS


def test_demo_defines_both_problems_and_nanchang_reads_the_shared_data():
    assert load_scenario(SCENARIOS / "demo.yaml").problems == ["deployment", "sleep"]
    assert load_scenario(SCENARIOS / "nanchang_deploy.yaml").problems == ["deployment"]
    sleep = load_scenario(SCENARIOS / "nanchang_sleep.yaml")
    assert sleep.problems == ["sleep"] and sleep.city.source == "real" and sleep.city.name == "nanchang"


def test_readme_documents_every_field():
    readme = (SCENARIOS / "README.md").read_text()
    missing = [path for path, *_ in schema_fields() if f"`{path}`" not in readme]
    assert not missing, f"scenarios/README.md lacks {missing}: regenerate its tables with schema_markdown()"


# ---------------------------------------------------------------------------------------------------
# Validation messages name the field path and the fix
# ---------------------------------------------------------------------------------------------------


def test_unknown_key_names_the_path_and_suggests_the_right_one():
    data = small()
    data["deployment"]["capacty"] = 5
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(data)
    msg = problems_of(err.value)["deployment.capacty"]
    assert "unknown key 'capacty'" in msg and "did you mean 'capacity'" in msg


def test_unknown_top_level_and_city_keys():
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(solvr={"name": "cbc"}, **{"city.rowz": 3}))
    probs = problems_of(err.value)
    assert "did you mean 'solver'" in probs["solvr"]
    assert "did you mean 'rows'" in probs["city.rowz [source: synthetic]"]


def test_wrong_type_and_bounds_name_the_field_and_its_meaning():
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(**{"deployment.max_bs": "many", "deployment.capacity": -1}))
    probs = problems_of(err.value)
    assert "integer" in probs["deployment.max_bs"] and "'many'" in probs["deployment.max_bs"]
    assert "greater than 0" in probs["deployment.capacity"] and "C0" in probs["deployment.capacity"]
    assert str(err.value).count("\n  - ") == 2


def test_per_cell_fields_give_one_clear_error():
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(**{"deployment.site_cost": [1.0, -2.0]}))
    assert "must be > 0" in problems_of(err.value)["deployment.site_cost"]
    sc = scenario_from_dict(small(**{"deployment.site_cost": [1, 2.5], "sleep.n_rru": [2, 3]}))
    assert sc.deployment.site_cost == [1.0, 2.5] and sc.sleep.n_rru == [2, 3]


def test_missing_required_field_and_missing_problem():
    data = small()
    del data["deployment"]["capacity"]
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(data)
    assert "required field missing" in problems_of(err.value)["deployment.capacity"]
    data = small()
    del data["deployment"], data["sleep"]
    with pytest.raises(ScenarioError, match="no problem"):
        scenario_from_dict(data)


def test_bad_city_source_and_synthetic_settings():
    with pytest.raises(ScenarioError, match="source"):
        scenario_from_dict(small(**{"city.source": "csv"}))
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(**{"city.slots_per_day": 7}))
    assert "1440" in problems_of(err.value)["city [source: synthetic]"]


def test_baseline_must_serve_the_task():
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(**{"sleep.forecaster": None}))
    msg = str(err.value)
    assert "poi_regression" in msg and "'long'" in msg and "daily_profile" in msg and "sleep.forecaster" in msg
    with pytest.raises(ScenarioError, match="neighbour_mean"):
        scenario_from_dict(small(**{"deployment.forecaster": "daily_profile"}))


def test_relative_paths_are_read_from_the_scenario_folder(tmp_path):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "c.npz", traffic=np.zeros((1, 1, 1, 1)))
    sub = tmp_path / "scen"
    sub.mkdir()
    spec = small(city={"source": "npz", "path": "../data/c.npz"}, output={"dir": "out"})
    (sub / "s.yaml").write_text(yaml.safe_dump(spec))
    sc = load_scenario(sub / "s.yaml")
    assert sc.city.path == (tmp_path / "data" / "c.npz").resolve()
    assert sc.output.dir == (sub / "out").resolve()
    spec["city"]["path"] = "c.npz"  # not in scen/
    (sub / "s.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ScenarioError) as err:
        load_scenario(sub / "s.yaml")
    msg = problems_of(err.value)["city.path [source: npz]"]
    assert "does not exist" in msg and str(sub) in msg


def test_checkpoint_paths_resolve_and_must_exist(tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        scenario_from_dict(small(**{"forecaster.model": "ckpt/nothing.pt"}), base_dir=tmp_path)
    (tmp_path / "m.pt").write_bytes(b"x")
    sc = scenario_from_dict(small(**{"forecaster.model": "m.pt", "sleep.forecaster": None}), base_dir=tmp_path)
    assert sc.forecaster.model == str(tmp_path / "m.pt")


def test_malformed_yaml_reports_line_and_column(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("city:\n  source: synthetic\n deployment: [1, 2\n")
    with pytest.raises(ScenarioError, match=r"malformed YAML at line \d+, column \d+"):
        load_scenario(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="top level must be a mapping"):
        load_scenario(p)


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ScenarioError, match="malformed YAML"):
        load_scenario(p)


# ---------------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------------


def test_parse_override_reads_values_as_yaml():
    assert parse_override("deployment.max_bs=80") == (["deployment", "max_bs"], 80)
    assert parse_override("solver.time_limit=null") == (["solver", "time_limit"], None)
    assert parse_override("deployment.site_cost=[1, 2.5]") == (["deployment", "site_cost"], [1, 2.5])
    assert parse_override("forecaster.model=a=b") == (["forecaster", "model"], "a=b")
    with pytest.raises(ScenarioError, match="key.path=value"):
        parse_override("deployment.max_bs")
    with pytest.raises(ScenarioError, match="empty key"):
        parse_override("deployment..max_bs=3")


def test_overrides_create_sections_and_refuse_to_descend_into_values():
    data = apply_overrides({"a": {"b": 1}}, ["a.c.d=2", "e=x"])
    assert data == {"a": {"b": 1, "c": {"d": 2}}, "e": "x"}
    with pytest.raises(ScenarioError, match="a.b is a value"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=2"])


def test_with_overrides_revalidates_a_copy():
    sc = scenario_from_dict(small())
    other = with_overrides(sc, {"deployment.max_bs": 7})
    assert other.deployment.max_bs == 7 and sc.deployment.max_bs == 20
    with pytest.raises(ScenarioError, match="deployment.max_bs"):
        with_overrides(sc, {"deployment.max_bs": -1})


# ---------------------------------------------------------------------------------------------------
# Horizon, cropping and RRU sizing (hand-checked)
# ---------------------------------------------------------------------------------------------------


def test_horizon_steps_by_hand():
    from forecasting.data.synthetic import make_city

    city = make_city(rows=4, cols=4, days=7, slots_per_day=24)  # 168 steps
    assert horizon_steps(city, Horizon(), "generation") == (0, 168)
    assert horizon_steps(city, Horizon(), "long") == (16, 168)  # 16 observed steps first
    assert horizon_steps(city, Horizon(days=2), "long") == (120, 168)  # end-aligned
    assert horizon_steps(city, Horizon(days=1.5, start_day=1), "generation") == (24, 60)
    with pytest.raises(InputError, match="needs 16 observed steps"):
        horizon_steps(city, Horizon(start_day=0.5), "long")
    with pytest.raises(InputError, match="runs past the series"):
        horizon_steps(city, Horizon(days=3, start_day=5), "generation")


def test_crop_steps_keeps_calendar_and_start_time():
    from forecasting.data.synthetic import make_city

    city = make_city(rows=4, cols=4, days=3, slots_per_day=24)
    part = crop_steps(city, 30, 60)
    assert part.n_steps == 30
    np.testing.assert_array_equal(part.slot_of_day, city.slot_of_day[:, 30:60])
    np.testing.assert_array_equal(part.traffic, city.traffic[:, 30:60])
    assert part.start_time[0] == city.start_time[0] + np.timedelta64(30 * 60, "m")


def test_size_rru_capacity_by_hand():
    history = np.array([[2.0, 8.0, 4.0], [0.0, 0.0, 0.0], [3.0, 3.0, 6.0]])
    # peaks 8, 0, 6; K = 2 RRUs; headroom 1.5 -> 6, (median of 6 and 4.5) = 5.25, 4.5
    np.testing.assert_allclose(size_rru_capacity(history, 2, 1.0, 1.5), [6.0, 5.25, 4.5])
    # the median load (quantile 0.5) of cell 0 is 4 -> 4 / 2
    assert size_rru_capacity(history, 2, 0.5)[0] == pytest.approx(2.0)
    with pytest.raises(InputError, match="no load"):
        size_rru_capacity(np.zeros((2, 3)), 2)


# ---------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------


def test_run_scenario_compares_strategies_on_the_same_real_demand():
    r = run_scenario(scenario_from_dict(small()))
    assert r.status == "optimal" and r.warnings == []
    dep, slp = r.problems["deployment"], r.problems["sleep"]
    assert [s.name for s in dep.strategies] == ["forecast", "poi", "residents", "oracle"]
    assert [s.name for s in slp.strategies] == ["forecast", "always_on", "threshold", "oracle"]
    assert dep.real.n_cells == 16 and dep.real.n_slots == 48 and dep.real.source == "real"
    assert slp.real.n_slots == 24 and slp.real.unit == "traffic"
    # the oracle is planned on the real demand: no regret, and no strategy beats it on the replay
    oracle = dep.strategy("oracle").score
    assert oracle.regret == pytest.approx(0.0)
    assert all(s.score.objective <= oracle.objective + 1e-6 for s in dep.strategies)
    assert all(s.score.objective >= slp.strategy("oracle").score.objective - 1e-9 for s in slp.strategies)
    assert dep.forecast.model == "poi_regression" and slp.forecast.model == "daily_profile"
    assert dep.forecast.quantiles == {}  # baselines draw no samples
    np.testing.assert_array_equal(dep.forecast.mean.cell_ids, dep.real.cell_ids)


def test_area_cells_and_aggregation():
    sc = scenario_from_dict(small(**{
        "deployment.horizon": {"days": 2, "slots_per_day": 4, "aggregate": "max"},
        "area.cells": ["r3_0_0", "r3_1_2"], "seed": 1, "sleep": None,
    }))
    dep = run_scenario(sc).problems["deployment"]
    assert dep.real.cell_ids.tolist() == ["r3_0_0", "r3_1_2"]
    assert dep.real.n_slots == 8 and dep.real.slots_per_day == 4
    with pytest.raises(InputError, match="area.cells"):
        run_scenario(with_overrides(sc, {"area.cells": ["nowhere"]}))


def test_problem_selection_and_missing_sections():
    sc = scenario_from_dict(small(sleep=None))
    assert list(run_scenario(sc, problems=["deployment"]).problems) == ["deployment"]
    with pytest.raises(ScenarioError, match="no `sleep:` section"):
        run_scenario(sc, problems=["sleep"])


FALLBACK = {"generation": "neighbour_mean", "long": "daily_profile"}


def test_a_missing_checkpoint_is_an_error_even_with_a_fallback():
    from forecasting.checkpoint import CheckpointError

    sc = scenario_from_dict(small(**{"forecaster": {"model": "uomo-synthtic-cpu", "fallback": FALLBACK},
                                     "sleep.forecaster": None}))
    with pytest.raises(CheckpointError, match="unknown checkpoint 'uomo-synthtic-cpu'.*did you mean 'uomo-synthetic-cpu'"):
        run_scenario(sc)


def test_fallback_stands_in_only_for_a_forecaster_that_does_not_serve_the_task(monkeypatch):
    import forecasting.forecast

    short_only = SimpleNamespace(name="short-only", tasks=("short",), calibration=None, futr_exog=())
    monkeypatch.setattr(forecasting.forecast, "load_forecaster", lambda *a, **k: short_only)
    sc = scenario_from_dict(small(**{"forecaster": {"model": "short-only", "fallback": FALLBACK},
                                     "sleep.forecaster": None}))
    r = run_scenario(sc)
    dep, sleep = r.problems["deployment"], r.problems["sleep"]
    assert dep.forecast.model == "neighbour_mean" and dep.forecast.requested == "short-only"
    assert sleep.forecast.model == "daily_profile"
    assert any("does not serve the 'generation' task" in n and "neighbour_mean" in n for n in dep.notes)
    without = scenario_from_dict(small(**{"forecaster": {"model": "short-only"}, "sleep": None}))
    with pytest.raises(InputError, match=r"short-only cannot forecast the 'generation' task.*forecaster\.fallback\.generation"):
        run_scenario(without)


def test_per_problem_checkpoint_paths_are_read_from_the_scenario_folder(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.pt").write_bytes(b"x")
    data = small(**{"deployment.forecaster": "models/m.pt", "sleep.forecaster": "models/m.pt"})
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path.parent)  # not the scenario's folder
    sc = load_scenario(path)
    assert sc.deployment.forecaster == sc.sleep.forecaster == str(tmp_path / "models" / "m.pt")
    data["sleep"]["forecaster"] = "models/none.pt"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match=r"sleep: forecaster: checkpoint file .*models/none\.pt does not exist"):
        load_scenario(path)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from forecasting.data.synthetic import make_city
    from forecasting.train import TrainConfig, train

    out = tmp_path_factory.mktemp("ckpt")
    city = make_city(rows=8, cols=8, days=7, slots_per_day=24)
    summary = train(TrainConfig(preset="tiny", steps=2, batch_size=4, val_every=2, val_max_windows=4,
                                val_samples=2, val_steps=2, diffusion_steps=10, out=str(out)),
                    cities=[city], progress=False)
    return Path(summary["best"])


def test_uomo_checkpoint_forecast_has_ordered_quantile_bands(tiny_checkpoint):
    sc = scenario_from_dict(small(**{
        "forecaster.model": str(tiny_checkpoint), "forecaster.sampling": {"steps": 2, "n_samples": 3},
        "forecaster.quantiles": [0.1, 0.5, 0.9], "sleep.forecaster": None, "deployment.strategies": ["forecast"],
        "sleep.strategies": ["forecast"],
    }))
    r = run_scenario(sc)
    for p in r.problems.values():
        fc = p.forecast
        assert fc.model == tiny_checkpoint.name and sorted(fc.quantiles) == [0.1, 0.5, 0.9]
        lo, mid, hi = (fc.quantiles[q].values for q in (0.1, 0.5, 0.9))
        assert lo.shape == p.real.values.shape
        assert np.all(lo <= mid + 1e-9) and np.all(mid <= hi + 1e-9) and np.any(hi > lo)


def test_calibrate_on_recalibrates_a_checkpoint_on_other_cities_val_regions(tiny_checkpoint):
    """`forecaster.calibrate_on`: the UoMo checkpoint's calibration is fitted on the named cities' val regions
    when the run starts (the notes say so); a city that cannot be loaded is an input error naming the key, an
    empty list a schema error."""
    base = {"forecaster.model": str(tiny_checkpoint), "forecaster.sampling": {"steps": 2, "n_samples": 3},
            "sleep.forecaster": None, "deployment.strategies": ["forecast"], "sleep.strategies": ["forecast"]}
    r = run_scenario(scenario_from_dict(small(**base, **{"forecaster.calibrate_on": ["synthetic@120min"]})))
    notes = [n for p in r.problems.values() for n in p.forecast.notes + p.notes]
    assert any("recalibrated on the val regions of synthetic@120min" in n for n in notes), notes
    assert not any("has no calibration file" in n for n in notes)
    with pytest.raises(InputError, match=r"forecaster.calibrate_on \['no-such-city'\]"):
        run_scenario(scenario_from_dict(small(**base, **{"forecaster.calibrate_on": ["no-such-city"]})))
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(small(**base, **{"forecaster.calibrate_on": []}))
    assert "name at least one city" in problems_of(err.value)["forecaster"]


# ---------------------------------------------------------------------------------------------------
# Every city source
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city():
    from forecasting.data.synthetic import make_city

    return make_city(rows=8, cols=8, days=7, slots_per_day=24, seed=1)


def test_npz_and_release_json_sources_load_the_same_series(tmp_path, city):
    from forecasting.data import save_release_json
    from planning.pipeline import load_scenario_city

    np.savez(tmp_path / "c.npz", traffic=city.traffic, users=city.users, poi=city.poi, split=city.split,
             day_of_week=city.day_of_week, slot_of_day=city.slot_of_day, slots_per_day=24)
    save_release_json(city, tmp_path / "release", "TrafficXX")
    for spec in ({"source": "npz", "path": "c.npz"}, {"source": "release_json", "dir": "release"}):
        loaded = load_scenario_city(scenario_from_dict(small(city=spec), base_dir=tmp_path))
        for split in ("train", "val", "test"):  # the release lists regions split by split
            np.testing.assert_allclose(loaded.traffic[loaded.split == split], city.traffic[city.split == split],
                                       rtol=1e-6)
        assert loaded.region_origin is not None  # laid out for maps when the source has no geometry


def test_long_table_with_geojson_cells_and_poi_plans_with_its_own_cell_ids(tmp_path, city):
    from forecasting.data import to_long_table

    tables = to_long_table(city)
    tables.traffic.to_csv(tmp_path / "traffic.csv", index=False)
    (tmp_path / "cells.geojson").write_text(tables.cells.to_json())
    tables.poi.to_csv(tmp_path / "poi.csv", index=False)
    spec = {"source": "long_table", "traffic": "traffic.csv", "cells": "cells.geojson", "poi": "poi.csv",
            "crs": "EPSG:32650"}
    r = run_scenario(scenario_from_dict(small(city=spec, sleep=None, **{"deployment.strategies": ["forecast", "poi"]}),
                                        base_dir=tmp_path))
    dep = r.problems["deployment"]
    test_region = int(np.flatnonzero(city.split == "test")[0])
    assert dep.real.cell_ids[0] == f"{test_region}/0/0"  # the table's own ids
    np.testing.assert_allclose(dep.real.values[0], city.users[test_region, -48:, 0, 0], rtol=1e-5)
    assert [s.name for s in dep.strategies] == ["forecast", "poi", "oracle"]


def test_risk_settings_and_rolling_reach_the_plans():
    """A baseline planned on its (val-calibrated) scenarios and quantiles, beside its point plan; rolling control."""
    sc = scenario_from_dict(small(**{
        "deployment.risk": {"plan_on": "scenarios"},
        "sleep.risk": {"plan_on": "quantile", "q": 0.9},
        "sleep.horizon": {"days": 1},
        "sleep.strategies": ["forecast", "rolling", "threshold"],
        "sleep.rolling": {"every": 2},
        "sleep.forecaster": "last_value",
    }))
    r = run_scenario(sc)
    dep, slp = r.problems["deployment"], r.problems["sleep"]
    assert [s.name for s in dep.strategies][:2] == ["forecast_point", "forecast"]
    assert dep.strategy("forecast").label == "forecast (poi_regression, scenarios)"
    assert dep.forecast.mean.n_scenarios >= 2 and set(dep.forecast.quantiles) == {0.1, 0.5, 0.9}
    assert [s.name for s in slp.strategies] == ["forecast_point", "forecast", "rolling", "threshold", "oracle"]
    assert slp.strategy("rolling").label == "rolling (last_value, R 2, q0.9)"
    assert slp.strategy("rolling").plan.x.shape == slp.real.values.shape
    # planning on the 90% quantile keeps at least as many RRUs on as the point plan, slot by slot on average
    assert slp.strategy("forecast").plan.x.mean() >= slp.strategy("forecast_point").plan.x.mean()
    assert any("split-conformal calibration" in n for n in dep.notes + slp.notes)


def test_risk_settings_read_from_yaml_text(tmp_path):
    """The key is `plan_on` (YAML 1.1 reads a bare `on` as true)."""
    text = yaml.safe_dump(small()) + ""
    data = yaml.safe_load(text)
    data["sleep"]["risk"] = yaml.safe_load("{plan_on: quantile, q: 0.8}")
    sc = scenario_from_dict(data)
    assert sc.sleep.risk.plan_on == "quantile" and sc.sleep.risk.q == 0.8 and sc.sleep.risk.label == "q0.8"
