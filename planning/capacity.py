"""RRU capacity c0 of the sleep problem: as given, or sized per cell from the load before the planned period."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .scenario.schema import CapacityRule, SleepSpec

if TYPE_CHECKING:
    from forecasting.data import City


def size_rru_capacity(history: np.ndarray, n_rru, quantile: float = 1.0, headroom: float = 1.0) -> np.ndarray:
    """c0_m = headroom * Q_quantile(history load of cell m) / K_m, per cell. history (cells, slots).

    An operator sizes a cell's RRUs to its past load: K RRUs of capacity c0 carry the chosen quantile
    (1 = the peak) with the given headroom. Cells with no past load get the median c0 of the others.
    """
    from .errors import InputError

    h = np.asarray(history, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] == 0:
        raise InputError("sizing c0 from history needs at least one slot before the planned period")
    K = np.broadcast_to(np.asarray(n_rru, dtype=np.float64), (h.shape[0],))
    c0 = headroom * np.quantile(h, quantile, axis=1) / K
    positive = c0 > 0
    if not positive.any():
        raise InputError("the history before the planned period has no load at all: give sleep.c0 as a number")
    c0[~positive] = float(np.median(c0[positive]))
    return c0


def sleep_capacity(spec: SleepSpec, city: "City", regions: np.ndarray, start: int, shape, notes: list[str]):
    """sleep.c0 as given, or sized per cell from the load of steps [0, start) by the history_peak rule."""
    from .demand import real_demand
    from .errors import InputError

    if not isinstance(spec.c0, CapacityRule):
        return spec.c0
    if start == 0:
        raise InputError("sleep.c0 rule history_peak needs history before the planned period: set "
                         "sleep.horizon.start_day > 0 (or shorten horizon.days), or give sleep.c0 as a number")
    try:
        hist = shape(real_demand(city, None, spec.unit, regions=regions, steps=slice(0, start)))
    except InputError as exc:
        raise InputError(f"sleep.c0 history_peak: the history before the planned period is unusable ({exc}); "
                         "give sleep.c0 as a number or start the horizon later") from None
    c0 = size_rru_capacity(hist.values, spec.n_rru, spec.c0.quantile, spec.c0.headroom)
    notes.append(f"c0 sized per cell from {hist.n_slots} past slots: {spec.c0.headroom:g} x q{spec.c0.quantile:g} "
                 f"load / n_rru (median {np.median(c0):.4g} {spec.unit} per RRU per slot)")
    return c0
