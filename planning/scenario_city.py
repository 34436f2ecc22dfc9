"""A scenario's city: loaded, checked against the data (`--check`), its planned regions, and overlap warnings.

    city = load_scenario_city(scenario)          # forecasting.data.City, geometry filled in
    regions = planned_regions(scenario, city)    # a one-region city is planned whole by default
    sink.extend(overlap_warnings(scenario, city, regions))

Errors raised while reading a long table name the scenario's keys (`city.columns`, `city.fill_missing`,
`city.traffic: <file>`), not the loader's Python arguments.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .scenario.schema import NpzCity, RealCity, ReleaseCity, Scenario, SyntheticCity, TableCity

if TYPE_CHECKING:
    from forecasting.data import City

#: the long-table loader's arguments, as the scenario's keys under `city:`
TABLE_KEYS = ("columns", "fill_missing", "region_size", "cell_size", "split", "poi_categories", "crs")


def load_scenario_city(scenario: Scenario) -> "City":
    """The scenario's city (a `forecasting.data.City`) with cell geometry filled in.

    A synthetic city is generated from its (possibly overridden) preset; `npz` and `long_table` name
    their format, so their loader is called directly; a real city's name and a release folder are
    resolved by `forecasting.data.load_city`, the one resolver of a city from a name or a path.
    """
    from forecasting.data import load_city, load_npz, region_origins
    from forecasting.data.synthetic import make_city

    spec = scenario.city
    if isinstance(spec, SyntheticCity):
        city = make_city(spec.config(scenario.seed))
    elif isinstance(spec, NpzCity):
        city = load_npz(spec.path, name=spec.name)
    elif isinstance(spec, RealCity):
        city = load_city(spec.name, data_dir=spec.data_dir, name=spec.name)
    elif isinstance(spec, ReleaseCity):
        kw = {k: v for k, v in {"slots_per_day": spec.slots_per_day, "stride": spec.stride}.items() if v is not None}
        city = load_city(spec.dir, city=spec.city, **kw)
    else:
        city = _table_city(spec, scenario.seed)
    if city.region_origin is None:  # regions laid side by side so maps and GeoJSON still work
        city = replace(city, region_origin=region_origins(city))
    return city


def _table_city(spec: TableCity, seed: int) -> "City":
    """`load_long_table` on the scenario's files; a DataError is re-raised in the scenario's words."""
    from forecasting.data import DataError, load_long_table

    try:
        return load_long_table(
            spec.traffic, cells=spec.cells, poi=spec.poi, region_size=spec.region_size, split=spec.split,
            name=spec.name, columns=spec.columns, cell_size=spec.cell_size, crs=spec.crs,
            fill_missing=spec.fill_missing, split_fractions=spec.split_fractions, seed=seed,
            hist_exog=spec.hist_exog, futr_exog=spec.futr_exog, stat_exog=spec.stat_exog,
        )
    except DataError as exc:
        raise DataError(in_scenario_terms(str(exc), spec)) from None


def in_scenario_terms(message: str, spec: TableCity) -> str:
    """A long-table error with the loader's arguments as scenario keys and each table named by its file.

    'pass columns={...}' -> 'set city.columns: {...}'; 'traffic table' -> 'traffic table (city.traffic:
    traffic.csv)'; 'hist_exog' -> 'city.hist_exog'.
    """
    keys = "|".join(TABLE_KEYS)
    text = re.sub(rf"\b(?:pass |or )?({keys})=", lambda m: ("or " if m.group(0).startswith("or") else "set ")
                  + f"city.{m.group(1)}: ", message)
    text = re.sub(r"(?<!city\.)\b(hist_exog|futr_exog|stat_exog)\b", r"city.\1", text)
    text = text.replace("cells=...", "city.cells")
    for key, what in (("traffic", "traffic table"), ("cells", "cell table"), ("poi", "POI table")):
        path = getattr(spec, key)
        if path is not None:
            text = re.sub(rf"\b{what}\b( {re.escape(str(path))})?", f"{what} (city.{key}: {path.name})", text, count=1)
    return text


def planned_regions(scenario: Scenario, city: "City") -> np.ndarray:
    """The regions to plan: `area.regions`, else `area.split`'s; a city that is one region is planned whole
    unless `area.split` is set."""
    from .errors import InputError

    area = scenario.area
    if area.regions is not None:
        idx = np.asarray(area.regions, dtype=int)
        bad = idx[(idx < 0) | (idx >= city.n_regions)]
        if bad.size:
            raise InputError(f"area.regions: {bad.tolist()} are not regions of {city.name} (0..{city.n_regions - 1})")
        return idx
    if city.n_regions == 1 and "split" not in area.model_fields_set:
        return np.array([0])
    idx = city.regions(area.split)
    if idx.size == 0:
        raise InputError(f"area.split: {city.name} has no {area.split!r} regions; pick another split or list area.regions")
    return idx


def overlap_warnings(scenario: Scenario, city: "City", regions: np.ndarray) -> list[str]:
    """Warnings when the planned regions are regions a strategy was fitted on (its results are then in-sample).

    Fitted on the city's 'train' regions: the users/traffic unit conversion, POI and resident weights and
    the baseline forecasters; a UoMo checkpoint on the 'train' regions of the cities it was trained on.
    """
    planned = sorted(set(regions.tolist()) & set(city.regions("train").tolist()))
    if not planned:
        return []
    uses = _fitted_on_train(scenario, city)
    if not uses:
        return []
    fix = ("a city that is one region is planned whole: give it several regions (city.region_size) to plan "
           "some the calibration never saw" if city.n_regions == 1 else
           "plan regions of another split (area.split, area.regions) for an out-of-sample plan")
    return [f"the planned regions {planned} of {city.name} are 'train' regions, the ones {', '.join(uses)} "
            f"fitted on: the plan is calibrated on the very area it plans (in-sample); {fix}"]


def _fitted_on_train(scenario: Scenario, city: "City") -> list[str]:
    """What this scenario fits on the city's 'train' regions (or was trained on them)."""
    from forecasting.registry import is_baseline

    uses = []
    specs = [getattr(scenario, p) for p in scenario.problems]
    if any(s.unit == "users" for s in specs):
        uses.append("the users-per-traffic unit conversion")
    dep = scenario.deployment
    if dep is not None and scenario.mode == "backtest":
        uses += [f"the {s} weights" for s in ("poi", "residents") if s in dep.strategies]
    names = {s.forecaster or scenario.forecaster.model for s in specs}
    for name in sorted(names):
        if is_baseline(name):
            uses.append(f"the baseline {name}")
        elif city.name in _trained_cities(name):
            uses.append(f"the forecaster {name} (trained on {city.name})")
    return uses


def _trained_cities(name: str) -> list[str]:
    """The cities a UoMo checkpoint was trained on (from its config), [] when it cannot be read."""
    from forecasting.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint

    try:
        config = load_checkpoint(resolve_checkpoint(name))[1]
    except (CheckpointError, OSError):
        return []
    return [str(c) for c in config.get("train", {}).get("cities", [])] + list(config.get("scalers", {}))


def check_data(scenario: Scenario) -> list[str]:
    """Load and check the scenario's data (what `--check` does beyond the schema): lines describing it.

    Raises as a run would (`DataError` naming the file/column and the scenario key, `InputError` for an
    area that does not fit the city); the returned lines end with the overlap warnings, prefixed 'warning:'.
    """
    city = load_scenario_city(scenario)
    regions = planned_regions(scenario, city)
    (H, W), declared = city.grid, city.covariates
    lines = [f"data: {city.name}: {city.n_regions} region(s) of {H} x {W} cells, {city.n_steps} steps of "
             f"{city.minutes_per_slot:g} min; planned regions {regions.tolist()}"]
    if declared is not None:
        lines.append("covariates: " + ", ".join(f"{k} {list(v)}" for k, v in declared.to_dict().items() if v))
    return lines + [f"warning: {w}" for w in overlap_warnings(scenario, city, regions)]


def future_users(scenario: Scenario, city: "City", regions: np.ndarray, steps: np.ndarray,
                 times: np.ndarray | None) -> np.ndarray | None:
    """(R, h, H, W) users of the planned steps from `city.futr` (plan mode), None without such a file."""
    spec = scenario.city
    if not isinstance(spec, TableCity) or spec.futr is None:
        return None
    from forecasting.data import DataError
    from forecasting.data.tables import _read_table
    from forecasting.exog import futr_values

    try:
        return futr_values(city, regions, steps, times, _read_table(spec.futr, "future frame"))
    except DataError as exc:
        raise DataError(f"city.futr ({spec.futr.name}): {exc}") from None
