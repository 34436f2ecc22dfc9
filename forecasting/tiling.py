"""Any grid through a network trained on 4 x 4 regions: overlapping tiles, one forecast each, blended.

The network accepts any grid (its tokeniser pads to the patch), but it was trained on 4 x 4 regions: a
5 x 5 grid sent whole is padded to 6 x 6 and loses skill (issue 13: short-term MAE 0.062 on a real 5 x 5
city against 0.023 on its 4 x 4 crop; `bench/results/grid.md`: 0.92-1.15 x the crops' MAE). Instead each window is cut into
overlapping `tile`-sized pieces that cover every cell, every piece is forecast as an ordinary window (the
pieces of a batch are independent windows, so they are sampled as one larger batch), and the pieces are
blended back onto the grid.

Positions (per axis, grid n cells, tile t <= n, stride s; `tile_starts`):

    0, s, 2s, ... (< n - t), then n - t       the last tile flush with the far edge

so every cell is covered, neighbouring tiles overlap by at least t - s cells, and a grid of exactly one
tile (4 x 4) is one tile: `TilePlan.single`, which the sampler sends down the untiled path unchanged. A
grid smaller than the tile along an axis (e.g. 3 x 6) gets tiles of the grid's extent there (3 x 4),
which the network pads as before. The default stride is half the tile (2 for 4 x 4): 5 x 5 -> 2 x 2 tiles
at 0, 1; 6 x 5 -> rows 0, 2 x cols 0, 1; 8 x 8 -> 3 x 3 tiles at 0, 2, 4.

Blending (`blend_weights`, `blend_tiles`): each cell is the weighted mean of the tiles that cover it.
"mean" (default) weighs every tile alike; "centre" weighs a tile's cell by 1 + its distance (in cells) to
the nearest edge of the tile that cuts through the grid, multiplied over the two axes (a tile edge on the
grid's own border is no cut: those cells lack no neighbour the grid has). "centre" favours the tile in
which a cell sits further inside; "mean" averages more tiles evenly, which lowers the variance of the
blend. Chosen on the Nanchang val patches (`bench/results/grid_val/grid.md`): "mean" / "centre" MAE
ratios to the crops 0.81-0.91 / 0.83-0.95 at 5x5, 6x5, 6x6, 8x8; on the synthetic city the two are
within 2% either way (`bench/results/grid.md`). Weights are small integers and sums are taken in float64,
so a blend of identical tile values returns them exactly (observed entries stay exactly as given).

Samples are blended sample by sample: grid sample j is the blend of sample j of every tile, and all tiles
of a window start sample j from the same initial noise at the same grid cell (the sampler cuts each
tile's noise out of one noise draw over the whole grid). With the deterministic DDIM sampler (eta = 0)
the tiles' sample j are then correlated draws of the same future seen through different
neighbourhoods rather than independent ones (measured on a synthetic 5 x 5 city with uomo-synthetic-cpu:
two overlapping tiles' sample j differ at shared hidden cells by 0.018 on average, independent draws by
0.029, short task; 0.031 vs 0.043 long), so blending shrinks the spread of the samples at overlapped
cells less than averaging independent draws would.
With eta > 0 or DDPM the later noise steps are drawn per tile.

Tiles are cut inside one window of one region: a tile never mixes regions, so regions stay the unit of
the city's train/val/test splits and of every output. Each tile is rescaled by its own observed entries
(`encoding.WindowTransform`), exactly as a 4 x 4 crop of the grid would be. A tile whose cells are all
hidden (generation of a whole 4 x 4 block) has no observed level to start from, as a crop would not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .data import Windows
from .interface import hide

#: The region size the shipped networks were trained on (the real data's 4 x 4 patches).
TILE = (4, 4)
BLENDS = ("mean", "centre")
Blend = Literal["mean", "centre"]


def tile_starts(n: int, size: int, stride: int | None = None) -> np.ndarray:
    """Start positions of tiles of `size` along an axis of `n` cells: 0, s, 2s, ... and n - size.

    `size` is capped at n (a grid narrower than the tile is one tile wide); stride defaults to half
    the tile (rounded up). Every cell lies in at least one tile; the last tile ends at the edge.
    """
    if n < 1 or size < 1:
        raise ValueError(f"grid and tile extents must be >= 1, got n={n}, size={size}")
    size = min(size, n)
    stride = max(1, (size + 1) // 2) if stride is None else int(stride)
    if not 1 <= stride <= size:
        raise ValueError(f"tile stride must lie in 1..{size} so that tiles cover the grid, got {stride}")
    starts = list(range(0, n - size, stride)) + [n - size]
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one grid lie: tile k has its top-left cell at `origins[k]` (row-major order)."""

    grid: tuple[int, int]  # (H, W) of the grid
    tile: tuple[int, int]  # (h, w) of every tile, h <= H, w <= W
    rows: tuple[int, ...]  # start rows
    cols: tuple[int, ...]  # start columns

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def origins(self) -> np.ndarray:
        """(K, 2) top-left (row, col) of each tile, row-major."""
        return np.array([(r, c) for r in self.rows for c in self.cols], dtype=np.int64).reshape(-1, 2)

    @property
    def single(self) -> bool:
        """True when the grid is one tile (nothing to cut or blend)."""
        return self.n_tiles == 1 and self.tile == self.grid

    def coverage(self) -> np.ndarray:
        """(H, W) number of tiles covering each cell (>= 1 everywhere)."""
        count = np.zeros(self.grid, dtype=np.int64)
        h, w = self.tile
        for r, c in self.origins:
            count[r : r + h, c : c + w] += 1
        return count


def plan_tiles(grid: tuple[int, int], tile: tuple[int, int] = TILE, stride: int | None = None) -> TilePlan:
    """The tiles that cover an H x W `grid` (see `tile_starts`; `stride` applies to both axes)."""
    H, W = (int(v) for v in grid)
    h, w = min(int(tile[0]), H), min(int(tile[1]), W)
    rows = tile_starts(H, h, None if stride is None else min(stride, h))
    cols = tile_starts(W, w, None if stride is None else min(stride, w))
    return TilePlan((H, W), (h, w), tuple(rows.tolist()), tuple(cols.tolist()))


def cut_tiles(a: np.ndarray, plan: TilePlan) -> np.ndarray:
    """(N, *mid, H, W) -> (N * K, *mid, h, w): the tiles of each of N items, item-major (n * K + k)."""
    h, w = plan.tile
    tiles = [a[..., r : r + h, c : c + w] for r, c in plan.origins]  # K x (N, *mid, h, w)
    out = np.stack(tiles, axis=1)  # (N, K, *mid, h, w)
    return out.reshape(-1, *out.shape[2:])


def tile_windows(windows: Windows, plan: TilePlan) -> Windows:
    """The K tiles of every window as N * K windows (window-major); calendar, region and start repeated."""
    K = plan.n_tiles
    cut = lambda a: None if a is None else cut_tiles(a, plan)  # noqa: E731
    rep = lambda a: np.repeat(a, K, axis=0)  # noqa: E731
    return replace(
        windows,
        traffic=cut(windows.traffic),  # (N * K, L, h, w)
        users=cut(windows.users),
        poi=cut(windows.poi),  # (N * K, C, h, w)
        valid=cut(windows.valid),  # (N * K, h, w)
        day_before=cut(windows.day_before),  # (N * K, L, h, w)
        residents=cut(windows.residents),  # (N * K, h, w)
        day_of_week=rep(windows.day_of_week),
        slot_of_day=rep(windows.slot_of_day),
        region=rep(windows.region),
        start=rep(windows.start),
    )


def _axis_weights(start: int, size: int, n: int) -> np.ndarray:
    """(size,) 1 + distance of each position to the nearest tile edge that cuts the axis (not a border)."""
    i = np.arange(size)
    if start == 0 and start + size == n:  # the tile spans the axis: no cut, all alike
        return np.ones(size, dtype=np.int64)
    to_low = i if start > 0 else np.full(size, size)  # the low edge is a cut unless on the grid border
    to_high = size - 1 - i if start + size < n else np.full(size, size)
    return 1 + np.minimum(to_low, to_high)


def blend_weights(plan: TilePlan, blend: Blend = "mean") -> np.ndarray:
    """(K, h, w) integer weights of each tile's cells (see the module docstring)."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}: use one of {BLENDS}")
    (H, W), (h, w) = plan.grid, plan.tile
    if blend == "mean":
        return np.ones((plan.n_tiles, h, w), dtype=np.int64)
    return np.stack([np.outer(_axis_weights(r, h, H), _axis_weights(c, w, W)) for r, c in plan.origins])


def blend_tiles(x: np.ndarray, plan: TilePlan, blend: Blend = "mean", axis: int = 0) -> np.ndarray:
    """Blend tile values back onto the grid: (..., N * K [at `axis`], *mid, h, w) -> (..., N, *mid, H, W).

    Each cell is the weighted mean over the tiles covering it (`blend_weights`), accumulated in float64
    and returned in the dtype of `x`.
    """
    K, (h, w), (H, W) = plan.n_tiles, plan.tile, plan.grid
    x = np.moveaxis(x, axis, 0)  # (N * K, *lead, *mid, h, w)
    if x.shape[0] % K:
        raise ValueError(f"{x.shape[0]} tiles along axis {axis} are not a multiple of the plan's {K} tiles")
    x = x.reshape(-1, K, *x.shape[1:])  # (N, K, *rest, h, w)
    weights = blend_weights(plan, blend).astype(np.float64)  # (K, h, w)
    total = np.zeros((x.shape[0], *x.shape[2:-2], H, W), dtype=np.float64)  # (N, *rest, H, W)
    norm = np.zeros((H, W), dtype=np.float64)
    for k, (r, c) in enumerate(plan.origins):
        total[..., r : r + h, c : c + w] += x[:, k].astype(np.float64) * weights[k]
        norm[r : r + h, c : c + w] += weights[k]
    return np.moveaxis((total / norm).astype(x.dtype), 0, axis)


# ----------------------------------------------------------------------------------------------------
# Checking a grid's forecast against the forecasts of its crops (tests, bench/grid_bench.py)
# ----------------------------------------------------------------------------------------------------


def all_crops(grid: tuple[int, int], tile: tuple[int, int] = TILE) -> TilePlan:
    """Every tile-sized crop of the grid (stride 1): the reference a tiled forecast is held to."""
    return plan_tiles(grid, tile, stride=1)


def mae_on_crops(point: np.ndarray, windows: Windows, mask: np.ndarray, crops: TilePlan) -> float:
    """MAE of a grid forecast `point` (N, T, H, W) on the hidden entries of every crop.

    A cell counts once per crop it lies in, so the score weighs cells as `crop_forecast_mae` does.
    """
    hidden = cut_tiles(np.asarray(mask, dtype=bool), crops)  # (N * K, T, h, w)
    err = np.abs(cut_tiles(point, crops) - cut_tiles(windows.traffic, crops))
    return float(err[hidden].mean())


def crop_forecast_mae(forecaster, windows: Windows, mask: np.ndarray, crops: TilePlan) -> float:
    """MAE of `forecaster` when every crop is forecast as a window of its own (same hidden entries)."""
    crop_windows, crop_mask = tile_windows(windows, crops), cut_tiles(np.asarray(mask, dtype=bool), crops)
    futr = tuple(getattr(forecaster, "futr_exog", ()))
    point = forecaster.predict(hide(crop_windows, crop_mask, futr_exog=futr), crop_mask).mean
    return float(np.abs(point - crop_windows.traffic)[crop_mask].mean())
