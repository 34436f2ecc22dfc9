"""Loader 3: long tables (CSV / Parquet / DataFrame): one row per cell and time step.

  traffic table   cell_id, timestamp, traffic [, users, other covariates] (one row per cell and time step)
                  or Nixtla's long format: unique_id, ds, y [, covariates]
  cell table      cell_id + row, col   |  cell_id + x, y (cell centres, regular spacing)
                  | a GeoDataFrame of cell polygons or points (centroids -> grid)
                  optional: region (explicit regions; row/col then local to the region), split
                  optional: static covariate columns (stat_exog=)
  POI table       cell_id, category [, count]                      (count defaults to 1 per row)
Column names are overridable: columns={"timestamp": "time", "cell_id": "cell"} maps the canonical
name to yours; Nixtla's names are detected without it (`tables._rename`). Covariates are declared by
availability: hist_exog=, futr_exog=, stat_exog= (`forecasting.data.covariates`). pandas/geopandas are imported lazily so that `import forecasting.data` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .cell_grid import _cell_layout, _poi_grid, _static_grid
from .city import City, DataError, assign_splits
from .covariates import Covariates
from .tables import (
    _as_ids,
    _check_duplicates,
    _checked_numbers,
    _column_map,
    _parse_timestamps,
    _read_table,
    _rename,
    _require_columns,
)


def load_long_table(
    traffic,
    cells=None,
    poi=None,
    *,
    region_size: tuple[int, int] | None = None,
    split: str | Sequence[str] | dict | None = None,
    name: str | None = None,
    columns: dict[str, str] | None = None,
    cell_size: float | None = None,
    crs: str | None = None,
    fill_missing: float | None = None,
    poi_categories: Sequence[str] | None = None,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    hist_exog: Sequence[str] | None = None,
    futr_exog: Sequence[str] | None = None,
    stat_exog: Sequence[str] | None = None,
) -> City:
    """Load a city from long tables: one row per (cell, timestamp) with traffic and optional covariates.

    `traffic`, `cells`, `poi` are paths (CSV or Parquet; cells also GeoJSON/GeoPackage/Shapefile) or
    DataFrames. Nixtla's long format is read as it is: `unique_id, ds, y` (see `tables._rename` for the
    rule), with positions from `cells` (whose `unique_id` names the cell too). Cell coordinates come from
    `cells` (or from row/col or x/y columns of the traffic table when `cells` is None): integer
    `row, col`; or cell-centre `x, y` on a regular grid (spacing = the smallest gap, row 0 at the largest
    y); or a GeoDataFrame (centroids, cell size from the polygons).

    Covariates (`forecasting.data.covariates`), declared by availability as in neuralforecast:
    `hist_exog` / `futr_exog` name columns of the traffic table known up to the forecast origin / for the
    horizon too (a `users` column is hist unless declared otherwise; other names become `City.exog`);
    `stat_exog` names numeric columns of the cell table read as static POI categories (beside `poi`,
    whose counts are the static covariate 'poi').

    Time: the step is the most common gap between the sorted distinct timestamps; every gap must equal
    it (irregular steps raise, showing where) and it must divide a day: slots_per_day = 1 day / step,
    day_of_week = the timestamp's weekday (Monday = 0), slot_of_day = floor(time of day / step).
    Every cell needs a row at every timestamp (or pass `fill_missing`).

    Regions (splits are by region):
      - a `region` column in the cell table: one region per value, row/col local to the region
        (from x/y: offsets from the region's top-left cell);
      - `region_size=(h, w)`: the grid cut into h x w blocks, numbered row-major; partial blocks at the
        right/bottom edge are padded with zero traffic and `cell_valid` False; empty blocks are dropped;
      - otherwise the whole grid is one region.
    Cells absent from the table (holes, padding) hold 0 and `cell_valid` False (None when all valid).
    Splits: `split` as one label, a label per region, or a dict {region index or key: label};
    else a `split` column of the cell table; else `assign_splits(R, split_fractions, seed)`.
    POI categories are pivoted into (R, C, H, W) counts, names kept in `poi_categories` (natural
    order unless `poi_categories` fixes it).
    """
    cols = _column_map(columns)
    tr, tz, utc_offset = _read_traffic(traffic, cols)
    declared = Covariates.declare(hist_exog, futr_exog, stat_exog, has_users="users" in tr.columns,
                                  has_poi=poi is not None)
    dynamic = _dynamic_columns(tr, declared)
    axis, step = _time_axis(tr["timestamp"])
    spd = _slots_per_day(step)
    layout = _cell_layout(tr, cells, cols, region_size, cell_size, crs)
    grids, valid = _grids(tr, ("traffic", *dynamic), layout, axis, fill_missing)
    R, (H, W) = len(layout.region_keys), layout.shape
    ids = np.full((R, H, W), None, dtype=object)
    ids[layout.region, layout.row, layout.col] = layout.cell_id
    poi_grid, categories = _static_covariates(poi, cols, layout, (R, H, W), poi_categories, declared)

    keep = np.flatnonzero(valid.any(axis=(1, 2)))  # regions with no data at all are dropped
    kept = set(keep.tolist())
    dropped = [k for i, k in enumerate(layout.region_keys) if i not in kept]
    keys = [layout.region_keys[i] for i in keep]
    labels = _resolve_splits(split, keys, keep, layout.region_split, split_fractions, seed)
    pick = lambda a: None if a is None else a[keep]  # noqa: E731
    local = axis + utc_offset  # calendar features in the zone's time at the first step
    dow = np.asarray(local.dayofweek, dtype=np.int64)
    seconds = (local - local.normalize()).total_seconds().to_numpy()
    slot = np.floor(seconds / step.total_seconds()).astype(np.int64)
    Rk, T, valid = keep.size, len(axis), valid[keep]
    exog = {c: grids[c][keep] for c in dynamic if c != "users"}
    return City(
        name=name or _default_name(traffic), traffic=grids["traffic"][keep], users=pick(grids.get("users")),
        poi=pick(poi_grid), day_of_week=np.broadcast_to(dow, (Rk, T)),
        slot_of_day=np.broadcast_to(slot, (Rk, T)), slots_per_day=spd, split=labels, cell_size=layout.cell_size,
        region_origin=pick(layout.region_origin), crs=layout.crs, poi_categories=categories, cell_ids=ids[keep],
        start_time=np.full(Rk, local[0].to_datetime64()), cell_valid=None if valid.all() else valid,
        exog=exog or None, covariates=declared,
        meta={"source": _describe_source(traffic), "region_keys": keys, "dropped_empty_regions": dropped,
              "time_step": str(step), "timezone": tz, "region_size": region_size},
    )


def _read_traffic(traffic, cols):
    """The traffic table with canonical names, string cell ids and naive timestamps; (table, zone, UTC offset)."""
    import pandas as pd

    tr = _rename(_read_table(traffic, "traffic table"), cols)
    _require_columns(tr, ("cell_id", "timestamp", "traffic"), "traffic table", cols)
    if tr.empty:
        where = "" if isinstance(traffic, pd.DataFrame) else f" {traffic}"
        raise DataError(f"the traffic table{where} has no rows (only a header): it needs one row per cell and timestamp")
    tr["cell_id"] = _as_ids(tr["cell_id"], "traffic table")
    tr["timestamp"], tz, utc_offset = _parse_timestamps(tr["timestamp"], "traffic table")
    tr["traffic"] = _checked_numbers(tr, "traffic", "traffic table")
    _check_duplicates(tr)
    return tr, tz, utc_offset


def _dynamic_columns(tr, declared: Covariates) -> list[str]:
    """The declared dynamic covariates (users first), checked as numbers; a missing one raises naming its key."""
    for key in ("hist_exog", "futr_exog"):
        missing = [c for c in getattr(declared, key) if c not in tr.columns]
        if missing:
            raise DataError(f"{key} names {missing}, which are not columns of the traffic table (it has "
                            f"{list(map(str, tr.columns))}): declare columns of the table, or map them with columns=")
    names = sorted(declared.dynamic, key=lambda c: c != "users")
    for c in names:
        tr[c] = _checked_numbers(tr, c, "traffic table", nonnegative=c == "users")
    return names


def _grids(tr, names, layout, axis, fill_missing) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({column: (R, T, H, W) float32 grid}, cell validity (R, H, W)) from the rows of the traffic table."""
    import pandas as pd

    known = pd.Index(layout.cell_id)
    ci = known.get_indexer(tr["cell_id"])
    if np.any(ci < 0):
        unknown = pd.unique(tr["cell_id"][ci < 0])
        raise DataError(
            f"{len(unknown)} cells appear in the traffic table but not in the cell table, e.g. "
            f"{list(unknown[:5])}: add their coordinates to the cell table"
        )
    ti = axis.get_indexer(tr["timestamp"])
    n, T = len(known), len(axis)
    has = np.zeros(n, dtype=bool)
    has[ci] = True
    series = {}
    for c in names:
        a = np.full((n, T), np.nan)
        a[ci, ti] = tr[c].to_numpy(dtype=np.float64)
        series[c] = a
    gaps = has[:, None] & np.isnan(series["traffic"])
    if gaps.any():
        if fill_missing is None:
            i, t = np.argwhere(gaps)[0]
            raise DataError(
                f"{int(gaps.sum())} (cell, timestamp) rows are missing, e.g. cell {known[i]!r} at {axis[t]}: "
                "every cell needs a row at every timestamp; add them or pass fill_missing=0"
            )
        for a in series.values():
            a[has[:, None] & np.isnan(a)] = fill_missing
    R, (H, W) = len(layout.region_keys), layout.shape
    sel = np.flatnonzero(has)
    reg, row, col = layout.region[sel], layout.row[sel], layout.col[sel]
    grids = {}
    for c, a in series.items():
        g = np.zeros((R, T, H, W), dtype=np.float32)
        g[reg[:, None], np.arange(T)[None, :], row[:, None], col[:, None]] = a[sel]
        grids[c] = g
    valid = np.zeros((R, H, W), dtype=bool)
    valid[reg, row, col] = True
    return grids, valid


def _static_covariates(poi, cols, layout, rhw, order, declared: Covariates):
    """(R, C, H, W) static covariates and their names: the POI table's categories, then stat_exog columns."""
    static = [c for c in declared.stat_exog if c != "poi"]
    grid, categories = (None, None) if poi is None else _poi_grid(poi, cols, _cell_index(layout), layout, rhw, order)
    if not static:
        return grid, categories
    extra = _static_grid(static, layout, rhw)
    if grid is None:
        return extra, static
    return np.concatenate([grid, extra], axis=1), [*categories, *static]


def _cell_index(layout):
    """The cell ids of the cell table as a pandas Index (row positions of the cells)."""
    import pandas as pd

    return pd.Index(layout.cell_id)


def _time_axis(times):
    """Sorted distinct timestamps and their step; raises where the step is irregular."""
    import pandas as pd

    axis = pd.DatetimeIndex(np.unique(times.to_numpy()))
    if len(axis) < 2:
        raise DataError("the traffic table has a single timestamp: cannot infer the time step")
    gaps = np.diff(axis.asi8)
    values, counts = np.unique(gaps, return_counts=True)
    step = int(values[np.argmax(counts)])
    bad = np.flatnonzero(gaps != step)
    if bad.size:
        i = bad[0]
        raise DataError(
            f"irregular time steps: the step is {pd.Timedelta(step)} almost everywhere, but from {axis[i]} to "
            f"{axis[i + 1]} it is {pd.Timedelta(int(gaps[i]))} ({bad.size} irregular gap(s)): resample to a "
            "regular step or add the missing timestamps"
        )
    return axis, pd.Timedelta(step)


def _slots_per_day(step) -> int:
    day = 24 * 3600 * 10**9
    if day % step.value:
        raise DataError(f"the time step {step} does not divide a day: resample to e.g. 10, 15, 30 or 60 minutes")
    spd = day // step.value
    if 24 * 60 % spd:
        raise DataError(f"the time step {step} is not a whole number of minutes")
    return int(spd)


def _resolve_splits(split, keys, kept, region_split, fractions, seed) -> np.ndarray:
    """Split label per kept region from `split`, a split column or the seeded default."""
    R = len(keys)
    if split is None:
        if region_split is not None:
            return region_split[kept]
        return assign_splits(R, fractions, seed)
    if isinstance(split, str):
        return np.full(R, split)
    if isinstance(split, dict):
        labels = []
        for i, k in zip(kept.tolist(), keys):
            for candidate in (k, i, str(k)):
                if candidate in split:
                    labels.append(split[candidate])
                    break
            else:
                raise DataError(f"split mapping has no label for region {k!r} (index {i}); give every region one")
        return np.array(labels)
    labels = np.asarray(split)
    if labels.shape != (R,):
        raise DataError(f"split must give one label per region ({R} regions: {keys}), got {labels.shape[0]} labels")
    return labels


def _default_name(source) -> str:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return "city"
    return Path(source).name.split(".")[0]


def _describe_source(source) -> str:
    import pandas as pd

    return "DataFrame" if isinstance(source, pd.DataFrame) else str(source)


