"""Where each cell of a cell table lies: regions, row/col inside a region, origins, POI grids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .tables import _as_ids, _checked_numbers, _read_table, _rename, _require_columns


@dataclass
class _Layout:
    """Where each cell of the cell table lies: region index and row/col inside the region."""

    cell_id: np.ndarray  # (n,) str
    region: np.ndarray  # (n,) int
    row: np.ndarray  # (n,) int, local to the region
    col: np.ndarray  # (n,) int
    shape: tuple[int, int]  # (H, W) of every region
    region_keys: list  # (R,) region value / (block row, block col) / 0
    region_origin: np.ndarray | None  # (R, 2) top-left corners
    cell_size: float
    crs: str | None
    region_split: np.ndarray | None  # (R,) labels from a 'split' column
    table: object = None  # the cell table (a DataFrame, canonical names): static covariate columns


def _grid_index(v: np.ndarray, spacing: float | None, axis: str) -> tuple[np.ndarray, float | None]:
    """Integer grid index of coordinates `v` = (v - min) / spacing; spacing = smallest gap if None."""
    v = np.asarray(v, dtype=np.float64)
    u = np.unique(np.round(v, 9))
    if spacing is None:
        if u.size < 2:
            return np.zeros(v.size, dtype=np.int64), None
        spacing = float(np.min(np.diff(u)))
    f = (v - u[0]) / spacing
    idx = np.rint(f)
    off = np.abs(f - idx) > 1e-3
    if off.any():
        raise DataError(
            f"cell {axis} coordinates are not on a regular grid of spacing {spacing:g}: "
            f"{axis}={v[off][0]:g} is not a whole number of cells from {u[0]:g}"
        )
    return idx.astype(np.int64), spacing


def _int_column(ct, c: str) -> np.ndarray:
    v = np.asarray(ct[c], dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(np.mod(v, 1) != 0) or np.any(v < 0):
        raise DataError(f"cell table: {c} must hold whole numbers >= 0 (grid indices)")
    return v.astype(np.int64)


def _cell_layout(tr, cells, cols, region_size, cell_size, crs) -> _Layout:
    """Grid position of every cell (row/col, x/y or geometry), then its region (see load_long_table)."""
    ct, geo, crs = _cell_table(tr, cells, cols, crs)
    grow, gcol, left, top, cs = _cell_positions(ct, geo, cell_size)
    if "region" in ct.columns:
        if region_size is not None:
            raise DataError("the cell table has a 'region' column: drop it or region_size=, not both")
        region, row, col, keys, origin, region_split = _explicit_regions(ct, grow, gcol, left, top, cs)
        H, W = int(row.max()) + 1, int(col.max()) + 1
    else:
        region_split = None
        gx, gy = _grid_origin(left, top, grow, gcol, cs)
        if region_size is not None:  # h x w blocks of the grid, numbered row-major
            H, W = _region_size(region_size)
            blocks = list(zip((grow // H).tolist(), (gcol // W).tolist()))
            keys = sorted(set(blocks))
            index = {k: i for i, k in enumerate(keys)}
            region = np.array([index[k] for k in blocks], dtype=np.int64)
            row, col = grow % H, gcol % W
            kb = np.array(keys, dtype=np.float64).reshape(-1, 2)
            origin = np.stack([gx + kb[:, 1] * W * cs, gy - kb[:, 0] * H * cs], axis=1)
        else:  # the whole grid is one region
            keys, region, row, col = [0], np.zeros(len(ct), dtype=np.int64), grow, gcol
            H, W = int(row.max()) + 1, int(col.max()) + 1
            origin = np.array([[gx, gy]])
    pos = region * (H * W) + row * W + col
    _, first, counts = np.unique(pos, return_index=True, return_counts=True)
    if np.any(counts > 1):
        p = pos[first[np.argmax(counts > 1)]]
        clash = ct["cell_id"].to_numpy()[pos == p][:3].tolist()
        raise DataError(f"cells {clash} lie on the same grid position: each cell needs its own row/col")
    return _Layout(
        cell_id=ct["cell_id"].to_numpy().astype(str),
        region=region,
        row=row,
        col=col,
        shape=(H, W),
        region_keys=keys,
        region_origin=origin,
        cell_size=float(cs),
        crs=crs,
        region_split=region_split,
        table=ct,
    )


def _cell_table(tr, cells, cols, crs):
    """One row per cell: the given cell table, or the coordinate columns of the traffic table."""
    geo = None
    if cells is None:
        present = [c for c in ("row", "col", "x", "y", "region", "split") if c in tr.columns]
        ct = tr[["cell_id", *present]].drop_duplicates()
        dup = ct["cell_id"].duplicated(keep=False)
        if dup.any():
            raise DataError(
                f"cell {ct['cell_id'][dup].iloc[0]!r} has several coordinate/region values in the traffic "
                "table: a cell's position must not change over time"
            )
    else:
        ct = _rename(_read_table(cells, "cell table"), cols, table="cells")
        _require_columns(ct, ("cell_id",), "cell table", cols)
        ct["cell_id"] = _as_ids(ct["cell_id"], "cell table")
        dup = ct["cell_id"].duplicated(keep=False)
        if dup.any():
            raise DataError(f"cell table lists cell {ct['cell_id'][dup].iloc[0]!r} more than once")
        if hasattr(ct, "geometry") and "geometry" in ct.columns:
            geo = ct.geometry
            if crs is None and getattr(ct, "crs", None) is not None:
                crs = ct.crs.to_string()
    for a, b in (("row", "col"), ("x", "y")):
        if (a in ct.columns) != (b in ct.columns):
            have, lack = (a, b) if a in ct.columns else (b, a)
            raise DataError(f"cell table has {have!r} but not {lack!r}: give both (or map them with columns=)")
    if "row" not in ct.columns and "x" not in ct.columns and geo is None:
        raise DataError(
            "no cell coordinates: give a cell table (cells=...) with cell_id and row, col (grid indices) or "
            "x, y (cell centres), or a GeoDataFrame of cell polygons; or put row, col / x, y columns in the "
            "traffic table (or map your names with columns=)"
        )
    return ct, geo, crs


def _cell_positions(ct, geo, cell_size):
    """Global grid row/col of each cell, its top-left corner (left, top; None if unknown), cell size.

    row/col columns are used as given; otherwise x/y (or polygon centroids) are snapped to the grid:
    col = (x - min x) / s, row = (max y - y) / s, with s = cell_size, the polygons' width, or the
    smallest coordinate gap.
    """
    geo_size = None
    if geo is not None:
        b = geo.bounds
        widths = (b["maxx"] - b["minx"]).to_numpy()
        if np.all(widths > 0):
            geo_size = float(np.median(widths))
    if "row" in ct.columns:
        grow, gcol = _int_column(ct, "row"), _int_column(ct, "col")
        cs, left, top = cell_size or geo_size, None, None
        if geo_size is not None:
            left, top = geo.bounds["minx"].to_numpy(), geo.bounds["maxy"].to_numpy()
        elif "x" in ct.columns:
            x, y = np.asarray(ct["x"], dtype=float), np.asarray(ct["y"], dtype=float)
            cs = cs or _grid_index(x, None, "x")[1] or _grid_index(-y, None, "y")[1]
            if cs is not None:
                left, top = x - cs / 2, y + cs / 2
        return grow, gcol, left, top, cs or 500.0
    if "x" in ct.columns:
        x, y = np.asarray(ct["x"], dtype=float), np.asarray(ct["y"], dtype=float)
    else:
        c = geo.centroid
        x, y = c.x.to_numpy(), c.y.to_numpy()
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("cell table: x/y coordinates must be finite numbers")
    spacing = cell_size or geo_size
    gcol, dx = _grid_index(x, spacing, "x")
    grow, dy = _grid_index(-y, spacing, "y")  # row 0 = northernmost (largest y)
    if dx is not None and dy is not None and not np.isclose(dx, dy, rtol=1e-6):
        raise DataError(
            f"cells are not square: x spacing {dx:g} differs from y spacing {dy:g} "
            "(pass cell_size= if some rows/columns are missing)"
        )
    cs = dx or dy or 500.0
    return grow, gcol, x - cs / 2, y + cs / 2, cs


def _explicit_regions(ct, grow, gcol, left, top, cs):
    """Regions from a 'region' column: index, local row/col, keys, origins and split labels.

    Given row/col are local to the region; rows/cols from x/y become offsets from the region's
    top-left cell. Origin = median over the region's cells of (left - col*s, top + row*s).
    """
    raw = ct["region"].to_numpy().tolist()
    try:
        keys = sorted(set(raw))
    except TypeError:
        keys = sorted(set(raw), key=str)
    index = {k: i for i, k in enumerate(keys)}
    region = np.array([index[k] for k in raw], dtype=np.int64)
    row, col = grow.copy(), gcol.copy()
    origin = None if left is None else np.zeros((len(keys), 2))
    labels = np.empty(len(keys), dtype="<U5") if "split" in ct.columns else None
    for i, k in enumerate(keys):
        m = region == i
        if "row" not in ct.columns:
            row[m] -= row[m].min()
            col[m] -= col[m].min()
        if origin is not None:
            origin[i] = np.median(left[m] - col[m] * cs), np.median(top[m] + row[m] * cs)
        if labels is not None:
            found = set(map(str, ct["split"].to_numpy()[m]))
            if len(found) != 1:
                raise DataError(f"cells of region {k!r} carry several split labels {sorted(found)}")
            labels[i] = found.pop()
    return region, row, col, keys, origin, labels


def _grid_origin(left, top, grow, gcol, cs) -> tuple[float, float]:
    """Top-left corner of grid cell (0, 0); without coordinates (0, H * cs) so that y stays >= 0."""
    if left is None:
        return 0.0, float((grow.max() + 1) * cs)
    return float(np.median(left - gcol * cs)), float(np.median(top + grow * cs))


def _region_size(region_size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in region_size)
    except (TypeError, ValueError):
        raise DataError(f"region_size must be (rows, cols) of positive integers, got {region_size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"region_size must be (rows, cols) of positive integers, got {region_size!r}")
    return h, w


def _static_grid(names, layout: _Layout, rhw: tuple[int, int, int]):
    """(R, C, H, W) static covariates from columns `names` of the cell table (stat_exog, e.g. POI counts)."""
    ct = layout.table
    missing = [n for n in names if n not in ct.columns]
    if missing:
        raise DataError(f"stat_exog names {missing}, which are not columns of the cell table (it has "
                        f"{list(map(str, ct.columns))}): static covariates are columns of the cell table")
    R, H, W = rhw
    grid = np.zeros((R, len(names), H, W), dtype=np.float32)
    for c, name in enumerate(names):
        grid[layout.region, c, layout.row, layout.col] = _checked_numbers(ct, name, "cell table").to_numpy()
    return grid


def _poi_grid(poi, cols, known, layout: _Layout, rhw: tuple[int, int, int], order):
    """(R, C, H, W) POI counts pivoted from a cell_id, category, count table; and category names."""
    import re

    pt = _rename(_read_table(poi, "POI table"), cols, table="poi")
    _require_columns(pt, ("cell_id", "category"), "POI table", cols)
    if "count" not in pt.columns:
        pt["count"] = 1.0
    pt["count"] = _checked_numbers(pt, "count", "POI table")
    pt["cell_id"] = _as_ids(pt["cell_id"], "POI table")
    pi = known.get_indexer(pt["cell_id"])
    if np.any(pi < 0):
        unknown = sorted(set(pt["cell_id"][pi < 0]))
        raise DataError(
            f"POI grid mismatch: the POI table has rows for {len(unknown)} cells that are not in the traffic "
            f"grid, e.g. {unknown[:5]}: use the same cell ids as the traffic/cell tables"
        )
    cats = pt["category"].astype(str)
    present = set(cats)
    if order is not None:
        categories = [str(c) for c in order]
        extra = sorted(present - set(categories))
        if extra:
            raise DataError(f"POI table has categories {extra} missing from poi_categories={categories}")
    else:
        natural = lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]  # noqa: E731
        categories = sorted(present, key=natural)
    cat_index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(known), len(categories)))
    np.add.at(counts, (pi, cats.map(cat_index).to_numpy()), pt["count"].to_numpy())
    R, H, W = rhw
    grid = np.zeros((R, len(categories), H, W), dtype=np.float32)
    grid[layout.region, :, layout.row, layout.col] = counts
    return grid, categories


