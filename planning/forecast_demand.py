"""Demand cubes from a forecaster: generation for areas without history, long-term prediction otherwise.

`forecast_demand` tiles 64-step windows over the planned period and returns a `planning.demand.Demand`
whose values are the point forecast and whose scenarios are the forecaster's samples (when it draws them),
in users (converted with `UnitConversion`) or traffic.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, Sequence

import numpy as np

from forecasting.data import WINDOW, City, make_windows
from forecasting.exog import known_for_horizon
from forecasting.interface import Forecaster, hide
from forecasting.masks import LONG_OBSERVED

from .demand import Demand, Unit, UnitConversion, _frame, _pick_regions
from .errors import InputError


def rotation_groups(H: int, W: int) -> list[np.ndarray]:
    """Cell groups hidden in turn for generation: cells of equal (row % 2, col % 2).

    Four groups of ~25% of the cells (the paper's generation fraction); every neighbour (edge or corner)
    of a hidden cell is in another group, so each cell is generated from observed surroundings.
    """
    groups = []
    for pr in (0, 1):
        for pc in (0, 1):
            g = np.zeros((H, W), dtype=bool)
            g[pr::2, pc::2] = True
            if g.any() and not g.all():
                groups.append(g)
    if not groups:  # a 1 x 1 grid: nothing can be observed around the cell
        raise InputError("generation needs at least two cells per region (a 1 x 1 grid has no surroundings)")
    return groups


def window_plan(n_steps: int, first: int, n_observed: int, length: int = WINDOW) -> np.ndarray:
    """Starts of `length`-step windows whose hidden parts [s + n_observed, s + length) cover [first, n_steps).

    Windows advance by their hidden length; the last one is aligned to the end of the series.
    """
    hidden = length - n_observed
    if n_steps < length:
        raise InputError(f"series of {n_steps} steps are shorter than one {length}-step window")
    if first < n_observed:
        raise InputError(f"the first forecast step must leave {n_observed} observed steps before it, got {first}")
    starts = list(range(first - n_observed, n_steps - length + 1, hidden))
    if not starts or starts[-1] + length < n_steps:
        starts.append(n_steps - length)
    return np.array(sorted(set(starts)), dtype=np.int64)


def forecast_series(
    forecaster: Forecaster,
    city: City,
    regions: np.ndarray,
    task: Literal["generation", "long"] = "generation",
    first: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Forecast raw traffic of `regions` by tiling 64-step windows.

    Returns (values (R, T', H, W), steps (T',), samples (S, R, T', H, W) or None): the point forecast, the
    forecast steps, and the forecaster's samples tiled the same way (None when it draws fewer than two).

    - 'generation': windows tile the whole series; in each, one rotation group of cells is hidden for
      all 64 steps and generated from the other cells and the context; every group takes its turn.
    - 'long': 16 observed -> 48 forecast steps, windows rolled so the forecasts cover [first, T)
      (default first = 16).
    """
    H, W = city.grid
    T = city.n_steps
    if task == "generation":
        first = 0 if first is None else first
        starts = window_plan(T, first, 0)
        cell_masks = [np.broadcast_to(g[None], (WINDOW, H, W)) for g in rotation_groups(H, W)]
    elif task == "long":
        first = LONG_OBSERVED if first is None else first
        starts = window_plan(T, first, LONG_OBSERVED)
        m = np.zeros((WINDOW, H, W), dtype=bool)
        m[LONG_OBSERVED:] = True
        cell_masks = [m]
    else:
        raise InputError(f"task must be 'generation' or 'long', got {task!r}")
    win = make_windows(city, regions=regions, stride=1)
    n_starts = T - WINDOW + 1
    pick = (np.arange(regions.size)[:, None] * n_starts + starts[None, :]).ravel()  # region-major order
    win = win.take(pick)
    out = np.full((regions.size, T, H, W), np.nan)
    tiles = [(r, s_) for r, s_ in zip(np.repeat(np.arange(regions.size), starts.size), np.tile(starts, regions.size))]
    samples_out = None
    for m in cell_masks:
        mask = np.broadcast_to(m[None], win.traffic.shape).copy()
        pred = forecaster.predict(hide(win, mask, futr_exog=known_for_horizon(forecaster, city)), mask)
        mean = np.asarray(pred.mean, dtype=np.float64)
        if mean.shape != win.traffic.shape:
            raise InputError(f"{forecaster.name} returned shape {mean.shape}, expected {win.traffic.shape}")
        raw = np.clip(win.scalers.traffic.inverse(mean), 0.0, None)
        raw_samples = None
        if pred.samples is not None and pred.samples.shape[0] >= 2:
            raw_samples = np.clip(win.scalers.traffic.inverse(np.asarray(pred.samples, dtype=np.float64)), 0.0, None)
            if samples_out is None:
                samples_out = np.full((raw_samples.shape[0], *out.shape), np.nan)
        for k, (r, s_) in enumerate(tiles):
            block = out[r, s_:s_ + WINDOW]  # view; fill hidden entries not filled by an earlier window
            fill = m & np.isnan(block)
            block[fill] = raw[k][fill]
            if raw_samples is not None and samples_out is not None and raw_samples.shape[0] == samples_out.shape[0]:
                samples_out[:, r, s_:s_ + WINDOW][:, fill] = raw_samples[:, k][:, fill]
    steps = np.arange(first, T)
    values = out[:, first:]
    if np.isnan(values).any():
        raise InputError(f"{forecaster.name}: forecast left {int(np.isnan(values).sum())} entries uncovered")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{forecaster.name} returned non-finite forecasts")
    samples = None if samples_out is None else samples_out[:, :, first:]
    if samples is not None and not np.all(np.isfinite(samples)):
        samples = None  # some call drew no samples: the point forecast alone is consistent
    return values, steps, samples


def forecast_demand(
    forecaster: Forecaster,
    city: City,
    task: Literal["generation", "long"] = "generation",
    split: str | Sequence[str] | None = "test",
    unit: Unit = "users",
    regions: Sequence[int] | None = None,
    first: int | None = None,
    conversion: UnitConversion | None = None,
    name: str | None = None,
) -> Demand:
    """Demand forecast by a (fitted) forecaster for the chosen regions, in `unit`.

    The forecaster predicts traffic; for `unit='users'` it is converted with `conversion` (default:
    `UnitConversion.fit(city)` on the training regions). Slots are those of `forecast_series`; the
    forecaster's samples, when it draws them, become the demand's scenarios.
    """
    idx = _pick_regions(city, split, regions)
    values, steps, samples = forecast_series(forecaster, city, idx, task, first)
    frame = _frame(city, idx, steps, values, "traffic", f"forecast:{name or forecaster.name}")
    if samples is not None:
        K = samples.shape[0]
        frame = replace(frame, scenarios=np.moveaxis(samples, 2, -1).reshape(K, frame.n_cells, steps.size))
    if unit == "traffic":
        return frame
    conversion = conversion or UnitConversion.fit(city)
    return frame.convert(unit, conversion)
