"""The "plan my city" example (scenarios/my_city): it runs end to end, its data is what its script writes,
`--check` loads and checks the data, a one-region city is planned whole, and planning the regions a
strategy was fitted on warns (planning.scenario_city)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planning.cli import main
from planning.errors import EXIT_BAD_INPUT, EXIT_OK, InputError
from planning.scenario.loading import load_scenario, scenario_from_dict
from planning.scenario_city import in_scenario_terms, load_scenario_city, overlap_warnings, planned_regions

EXAMPLE = Path(__file__).resolve().parents[1] / "scenarios" / "my_city"
FAST = ["--set", "forecaster.sampling.n_samples=2", "--set", "forecaster.sampling.steps=2",
        "--set", "deployment.horizon.days=2", "--no-figures", "--no-progress"]


def run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def example(tmp_path) -> Path:
    """A copy of the example folder (its YAML, CSVs and GeoJSON) that a test may break."""
    shutil.copytree(EXAMPLE, tmp_path / "my_city")
    return tmp_path / "my_city"


def test_the_example_plans_my_city_end_to_end(tmp_path, capsys):
    code, out, err = run([EXAMPLE / "plan.yaml", "--problem", "all", "--out", tmp_path / "plan", *FAST], capsys)
    assert code == EXIT_OK, err
    schedule = pd.read_csv(tmp_path / "plan" / "sleep" / "rru_schedule.csv")
    assert schedule["cell_id"].nunique() == 36 and len(schedule) == 36 * 24
    bs = pd.read_csv(tmp_path / "plan" / "deployment" / "bs_plan.csv")
    assert len(bs) == 36 and "cell_05" in set(bs["cell_id"])
    assert "planned my_city" in out and "'train' regions" in err  # planned whole, with the in-sample warning


def test_the_example_data_is_what_its_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.write(tmp_path):
        assert path.read_bytes() == (EXAMPLE / path.name).read_bytes(), path.name
    assert sum((EXAMPLE / p.name).stat().st_size for p in tmp_path.iterdir()) < 1_000_000


def test_check_loads_the_data_and_names_the_broken_file_and_column(example, capsys):
    code, out, err = run([example / "plan.yaml", "--check"], capsys)
    assert code == EXIT_OK and "6 x 6 cells, 240 steps of 60 min; planned regions [0]" in out and "valid" in out
    traffic = pd.read_csv(example / "traffic.csv")
    traffic.astype({"y": object}).assign(y=lambda t: t["y"].where(t.index != 5, "lost")).to_csv(
        example / "traffic.csv", index=False)
    code, _, err = run([example / "plan.yaml", "--check"], capsys)
    assert code == EXIT_BAD_INPUT
    assert "city.traffic: traffic.csv" in err and "column 'y'" in err and "non-numeric" in err
    traffic.drop(columns="users").to_csv(example / "traffic.csv", index=False)
    code, _, err = run([example / "plan.yaml", "--check"], capsys)
    assert code == EXIT_BAD_INPUT and "city.hist_exog names ['users']" in err


def test_table_errors_name_scenario_keys_not_python_arguments(example):
    spec = load_scenario(example / "plan.yaml").city
    text = in_scenario_terms("traffic table lacks the column(s) ['traffic']: rename them or pass columns={'traffic': "
                             "'<your column>'}; add them or pass fill_missing=0", spec)
    assert "set city.columns: {'traffic'" in text and "set city.fill_missing: 0" in text
    assert "traffic table (city.traffic: traffic.csv)" in text and "columns=" not in text


def test_a_one_region_city_is_planned_whole_unless_a_split_is_set(example):
    scenario = load_scenario(example / "plan.yaml")
    city = load_scenario_city(scenario)
    assert city.n_regions == 1 and planned_regions(scenario, city).tolist() == [0]
    split = load_scenario(example / "plan.yaml", overrides=["area.split=test"])
    with pytest.raises(InputError, match="area.split"):
        planned_regions(split, city)


def test_planning_the_regions_a_strategy_was_fitted_on_warns(tmp_path):
    base = {"city": {"source": "synthetic", "preset": "synthetic-small", "days": 7}, "forecaster": {"model": "daily_profile"},
            "deployment": {"task": "long", "capacity": 20, "max_bs": 20, "strategies": ["forecast", "poi"]}}
    train = scenario_from_dict({**base, "area": {"split": "train"}}, base_dir=tmp_path)
    city = load_scenario_city(train)
    [warning] = overlap_warnings(train, city, planned_regions(train, city))
    for fitted in ("unit conversion", "poi weights", "baseline daily_profile"):
        assert fitted in warning
    test = scenario_from_dict({**base, "area": {"split": "test"}}, base_dir=tmp_path)
    assert overlap_warnings(test, city, planned_regions(test, city)) == []
    mixed = np.concatenate([city.regions("test"), city.regions("train")[:1]])
    assert "are 'train' regions" in overlap_warnings(test, city, mixed)[0]
