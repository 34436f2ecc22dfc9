"""Geometry: cells as a GeoDataFrame, and a city back to long tables (and from a GeoDataFrame)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .city import City, DataError
from .long_table import load_long_table
from .tables import REFERENCE_MONDAY


class LongTables(NamedTuple):
    """A city as long tables: traffic rows, a GeoDataFrame of cells and POI rows (None without POI)."""

    traffic: "pd.DataFrame"  # noqa: F821
    cells: "gpd.GeoDataFrame"  # noqa: F821
    poi: "pd.DataFrame | None"  # noqa: F821


def region_origins(city: City) -> np.ndarray:
    """(R, 2) top-left corners: `city.region_origin`, or regions side by side when it is None.

    Without origins, regions are laid out gap-free on a near-square board, ceil(sqrt(R)) regions per
    board row, region i at board position (i // n_cols, i % n_cols), all y >= 0.
    """
    if city.region_origin is not None:
        return np.asarray(city.region_origin, dtype=np.float64)
    R, (H, W), cs = city.n_regions, city.grid, city.cell_size
    n_cols = int(np.ceil(np.sqrt(R)))
    n_rows = int(np.ceil(R / n_cols))
    i = np.arange(R)
    return np.stack([(i % n_cols) * W * cs, (n_rows - i // n_cols) * H * cs], axis=1).astype(np.float64)


def cell_id_grid(city: City) -> np.ndarray:
    """(R, H, W) str cell ids: `city.cell_ids` where set, else '<region>/<row>/<col>'."""
    R, (H, W) = city.n_regions, city.grid
    r, h, w = np.indices((R, H, W))
    ids = np.char.add(np.char.add(np.char.add(r.astype(str), "/"), np.char.add(h.astype(str), "/")), w.astype(str))
    ids = ids.astype(object)
    if city.cell_ids is not None:
        given = np.asarray(city.cell_ids, dtype=object)
        ids = np.where(np.vectorize(lambda v: v is not None and v == v)(given), given, ids)
    return ids.astype(str)


def to_geodataframe(city: City, values: dict[str, np.ndarray] | None = None):
    """A GeoDataFrame with one square polygon per region x cell, for maps and spatial joins.

    Columns: region, row, col, cell_id, split, valid, one column per entry of `values` (arrays of shape
    (R, H, W), or (H, W) shared by all regions), geometry. Cell (r, c) of a region with top-left corner
    (x0, y0) covers [x0 + c*s, x0 + (c+1)*s] x [y0 - (r+1)*s, y0 - r*s], s = `city.cell_size`.
    """
    import geopandas as gpd
    import shapely

    R, (H, W), cs = city.n_regions, city.grid, city.cell_size
    reg, row, col = (a.ravel() for a in np.indices((R, H, W)))
    origin = region_origins(city)
    x0 = origin[reg, 0] + col * cs
    y1 = origin[reg, 1] - row * cs
    data = {
        "region": reg,
        "row": row,
        "col": col,
        "cell_id": cell_id_grid(city).ravel(),
        "split": city.split[reg],
        "valid": np.ones(reg.size, bool) if city.cell_valid is None else city.cell_valid.ravel(),
    }
    for key, v in (values or {}).items():
        v = np.asarray(v)
        if v.shape == (H, W):
            v = np.broadcast_to(v, (R, H, W))
        if v.shape != (R, H, W):
            raise DataError(f"values[{key!r}] must be (R, H, W) = {(R, H, W)} or (H, W), got {v.shape}")
        data[key] = v.ravel()
    return gpd.GeoDataFrame(data, geometry=shapely.box(x0, y1 - cs, x0 + cs, y1), crs=city.crs)


def to_long_table(city: City, nixtla: bool = False) -> LongTables:
    """The city as long tables that `load_long_table(t.traffic, t.cells, t.poi)` reads back.

    Traffic rows hold cell_id, timestamp, traffic, users and every `City.exog` covariate; with `nixtla`
    they are named unique_id, ds, y (and the cells' cell_id unique_id), Nixtla's long format. Read them
    back with the city's declaration (`hist_exog=`, `futr_exog=` of `city.covariates`) to keep it.

    Timestamps: `city.start_time` per region when known, else a reference week starting Monday
    2024-01-01 shifted to the region's first day_of_week/slot_of_day. Cells with `cell_valid` False get
    no traffic rows. POI rows are the non-zero counts; unnamed categories are called poi_0, poi_1, ...
    (`load_long_table` sorts them naturally, or pass poi_categories= to fix the order). Regions with
    different start times give a table that must be read back region by region.
    """
    import pandas as pd

    R, T, H, W = city.traffic.shape
    ids = cell_id_grid(city)
    valid = np.ones((R, H, W), bool) if city.cell_valid is None else city.cell_valid
    step = np.timedelta64(int(round(city.minutes_per_slot * 60)), "s")
    if city.start_time is not None:
        start = np.asarray(city.start_time).astype("datetime64[s]")
    else:
        first = city.day_of_week[:, 0] * 86400 + city.slot_of_day[:, 0] * int(step.astype(int))
        start = REFERENCE_MONDAY.astype("datetime64[s]") + first.astype("timedelta64[s]")
    times = (start[:, None] + np.arange(T)[None, :] * step).astype("datetime64[ns]")  # (R, T)
    r, h, w = np.nonzero(valid)
    rows = {
        "cell_id": np.repeat(ids[r, h, w], T),
        "timestamp": times[r].ravel(),
        "traffic": city.traffic[r, :, h, w].ravel(),
    }
    if city.users is not None:
        rows["users"] = city.users[r, :, h, w].ravel()
    for name, values in (city.exog or {}).items():
        rows[name] = values[r, :, h, w].ravel()
    poi_df = None
    if city.poi is not None:
        names = city.poi_categories or [f"poi_{c}" for c in range(city.poi.shape[1])]
        pr, pc, ph, pw = np.nonzero(city.poi)
        poi_df = pd.DataFrame(
            {"cell_id": ids[pr, ph, pw], "category": np.asarray(names)[pc], "count": city.poi[pr, pc, ph, pw]}
        )
    traffic, cells = pd.DataFrame(rows), to_geodataframe(city)
    if nixtla:
        names = {"cell_id": "unique_id", "timestamp": "ds", "traffic": "y"}
        traffic, cells = traffic.rename(columns=names), cells.rename(columns={"cell_id": "unique_id"})
        poi_df = None if poi_df is None else poi_df.rename(columns={"cell_id": "unique_id"})
    return LongTables(traffic, cells, poi_df)


def from_geodataframe(cells, traffic, poi=None, **kwargs) -> City:
    """A city from a GeoDataFrame of cells (e.g. from `to_geodataframe`) and a long traffic table.

    Shorthand for `load_long_table(traffic, cells=cells, poi=poi, **kwargs)`: a `region` column gives
    the regions (row/col local to each), a `split` column their labels, the polygons the cell size and
    region origins.
    """
    return load_long_table(traffic, cells=cells, poi=poi, **kwargs)
