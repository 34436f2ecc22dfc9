"""Persistence anchor: a forecaster's point pulled toward each cell's last observation, by lead, fitted on val.

At the first hidden steps after an observation the last observed value is hard to beat (a diffusion
model samples the next step from a distribution over whole 64-step windows; persistence just copies).
A rolling planner commits exactly those steps. The anchor is a per-lead convex combination of the two,
in the per-cell log space g of `forecasting.calibration`, for a hidden entry of a cell whose last
observation before it (in the same window) is x_last, at lead l = t - (that step) - 1 >= 0:

    g(c) = g(m) + w_l (g(x_last) - g(m)),        w_l = w0 exp(-l / tau) in [0, 1]

with (w0, tau) chosen per (city, task) on the val entries from a grid by the mean absolute error
|g(y) - g(c)| (w = 0, the forecaster itself, unless persistence strictly helps), where every cell weighs
alike. Optionally (`ValueSpace`: the entries' points and cell scales s) by the error the benchmark reports,
|y - c| in normalised units, c = s expm1(SPREAD g(c) + SHIFT) clipped to [0, 1] and y clipped at 1, where a
busy cell weighs more: measured on val (`bench/results/anchor_criterion.md`) it fits the busy cells of the
regions it is fitted on and carries less well to other regions, so the calibration keeps the model-space
error by default. Entries without an earlier observation (generated cells) keep g(m). The recalibration
then fits its residual quantiles around c instead of m, so the whole calibrated distribution moves with the
centre. For a persistence forecaster g(x_last) = g(m) and the anchor changes nothing; for every other
forecaster it is the same val-fitted step, so baselines get the same chance.

    g_last, lead = anchor_inputs(traffic, mask, to_model)       # per entry, model space
    d = toward(g_last, lead, gm)
    w = fit_weights(numer, d, lead)                              # (MAX_LEAD,) from val entries
    #   fit_weights(numer, d, lead, value=ValueSpace(gm, scale))  # by |y - c| in normalised units
    centre = gm + weight_at(w, lead) * d

Seasonal term. A day's traffic repeats the day before's shape, and a network that reads only the window's
own steps (or weighs the day-lag channel little) under-uses it. The centre then moves toward each hidden
entry's value one day earlier x_day (`forecasting.data.value_day_earlier`: inside the window, or the record
before it), where there is one:

    g(c') = g(c) + v (g(x_day) - g(c)),        v in [0, 1]

with v chosen per (city, task) on the same val entries, after the persistence weights, by the same mean
absolute error (v = 0 unless it strictly helps). For the seasonal naive forecaster g(x_day) = g(m) and v
changes nothing (up to the persistence step); every other forecaster gets the same val-fitted step.

    g_day = season_inputs(traffic, mask, day_before, slots_per_day, to_model)   # NaN: no value a day earlier
    v = fit_seasonal(numer, weight_at(w, lead) * d, g_day - gm)
    centre = with_season(gm + weight_at(w, lead) * d, g_day, v)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .data import hide_unrecorded, value_day_earlier
from .encoding import SHIFT, SPREAD, carry_forward, last_known_before

#: candidate weights of the last observation at lead 0, and decay lengths (in steps) of the weight
WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 6)
TAUS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, np.inf)
#: leads with a weight of their own (the long task's horizon); later leads keep the forecaster's point
MAX_LEAD = 48
#: with fewer val entries that have a lead, the fallback weights (the pooled table's, else none)
MIN_ENTRIES = 50
#: candidate weights v of the value one day earlier (the seasonal term)
SEASONAL_WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 6)


def anchor_inputs(traffic: np.ndarray, mask: np.ndarray,
                  to_model: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(g_last, lead), both (N, T, H, W): g(x_last) and the lead l of each hidden entry.

    `traffic` (N, T, H, W) is read only where `mask` is False (observed); lead = -1 (and g_last
    meaningless) where the entry is observed or its cell has no observation before it.
    """
    hidden = np.asarray(mask, dtype=bool)
    known = torch.from_numpy(~hidden)
    values = torch.from_numpy(np.nan_to_num(np.asarray(traffic, dtype=np.float64)))
    carry, has = carry_forward(values, known)
    steps = np.arange(hidden.shape[1])[None, :, None, None]
    lead = np.where(has.numpy() & hidden, steps - last_known_before(known).numpy() - 1, -1)
    return to_model(carry.numpy()), lead


def toward(g_last: np.ndarray, lead: np.ndarray, gm: np.ndarray) -> np.ndarray:
    """g(x_last) - g(m) where the entry has a lead, else 0."""
    return np.where(lead >= 0, g_last - gm, 0.0)


def weight_at(weights: np.ndarray | None, lead: np.ndarray) -> np.ndarray:
    """w_l for each entry's lead (0 where lead < 0, past MAX_LEAD, or without weights)."""
    lead = np.asarray(lead)
    if weights is None:
        return np.zeros(lead.shape)
    ok = (lead >= 0) & (lead < weights.size)
    return np.where(ok, weights[np.clip(lead, 0, weights.size - 1)], 0.0)


def decaying(w0: float, tau: float) -> np.ndarray:
    """(MAX_LEAD,) weights w_l = w0 exp(-l / tau) (tau = inf: constant w0)."""
    return w0 * np.exp(-np.arange(MAX_LEAD) / tau)


@dataclass(frozen=True)
class ValueSpace:
    """The entries' normalised values, to score a centre by the benchmark's error |y - c| (1-D arrays alike).

    point = g(m) and scale = the cell's s (`forecasting.encoding.WindowTransform`); the truth is
    y = min(s expm1(SPREAD (g(m) + numer) + SHIFT), 1), the centre c = s expm1(SPREAD (g(m) + shift) + SHIFT)
    clipped to [0, 1] (as `Calibration.point` clips it).
    """

    point: np.ndarray
    scale: np.ndarray

    def take(self, keep: np.ndarray) -> "ValueSpace":
        return ValueSpace(np.asarray(self.point)[keep], np.asarray(self.scale)[keep])

    def value(self, g: np.ndarray) -> np.ndarray:
        """x = s expm1(SPREAD g + SHIFT) in [0, 1] of model-space offsets g from the point (g(x) - g(m))."""
        return np.clip(self.scale * np.expm1(SPREAD * (self.point + g) + SHIFT), 0.0, 1.0)

    def error(self, numer: np.ndarray, shift: np.ndarray) -> float:
        """mean |y - c| of the centre g(c) = g(m) + shift, y the truth g(y) = g(m) + numer."""
        return float(np.abs(self.value(numer) - self.value(shift)).mean())


#: the least gain in the criterion that moves the anchor away from the forecaster (not float noise): in model
#: space, and in normalised units (where errors are ~s times smaller, s ~ 1e-2)
MIN_GAIN = {"model": 1e-6, "value": 1e-8}


def criterion(numer: np.ndarray, value: ValueSpace | None) -> tuple[Callable[[np.ndarray], float], float]:
    """(error, least gain) of the anchor's fit over entries with truth g(y) = g(m) + numer: error(shift) is the
    mean |y - c| of the centre g(c) = g(m) + shift in normalised units (`value`), else mean |g(y) - g(c)|; the
    truth's normalised values are computed once for the whole grid."""
    if value is None:
        return (lambda shift: float(np.abs(numer - shift).mean())), MIN_GAIN["model"]
    truth = value.value(numer)
    return (lambda shift: float(np.abs(truth - value.value(shift)).mean())), MIN_GAIN["value"]


def fit_weights(numer: np.ndarray, pull: np.ndarray, lead: np.ndarray,
                fallback: np.ndarray | None = None, value: ValueSpace | None = None) -> np.ndarray:
    """(MAX_LEAD,) weights w_l = w0 exp(-l / tau) minimising the mean error of the centre g(m) + w_l pull.

    numer = g(y) - g(m) and pull = g(x_last) - g(m) of val entries (1-D arrays alike, lead -1 where
    there is no earlier observation); the error is |y - c| in normalised units with `value` (the
    entries' points and scales), else |numer - w_l pull|. Two parameters, w0 from `WEIGHTS` and tau from
    `TAUS`, rather than one weight per lead: persistence's edge fades with the lead, and 48 free weights
    would fit the val entries' noise. Fewer than MIN_ENTRIES entries with a lead: `fallback` (or no
    anchor, zeros).
    """
    at = (np.asarray(lead) >= 0) & (np.asarray(lead) < MAX_LEAD)
    if at.sum() < MIN_ENTRIES:
        return np.zeros(MAX_LEAD) if fallback is None else np.asarray(fallback, dtype=np.float64).copy()
    r, d, ell = np.asarray(numer)[at], np.asarray(pull)[at], np.asarray(lead)[at]
    error, gain = criterion(r, None if value is None else value.take(at))
    best, best_err = np.zeros(MAX_LEAD), error(np.zeros_like(r))
    for tau in TAUS:
        for w0 in WEIGHTS[1:]:
            w = decaying(w0, tau)
            err = error(w[ell] * d)
            if err < best_err - gain:
                best, best_err = w, err
    return best


def season_inputs(traffic: np.ndarray, mask: np.ndarray, day_before: np.ndarray | None, slots_per_day: int,
                  to_model: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """g(x_day) (N, T, H, W): each entry's value one day earlier in model space, NaN where there is none.

    `traffic` is read only where `mask` is False; `day_before` (the record before the window) is hidden at
    cells the mask hides throughout (`hide_unrecorded`: a cell without a record has no past either).
    """
    hidden = np.asarray(mask, dtype=bool)
    observed = np.nan_to_num(np.asarray(traffic, dtype=np.float64)) * ~hidden
    lag, has = value_day_earlier(observed, ~hidden, hide_unrecorded(day_before, hidden), slots_per_day)
    return np.where(has, to_model(lag), np.nan)


def with_season(gc: np.ndarray, g_day: np.ndarray | None, v: float) -> np.ndarray:
    """g(c) + v (g(x_day) - g(c)) where x_day exists (g_day finite), else g(c)."""
    if not v or g_day is None:
        return gc
    return np.where(np.isfinite(g_day), gc + v * (np.nan_to_num(g_day) - gc), gc)


def fit_seasonal(numer: np.ndarray, shift: np.ndarray, season: np.ndarray, fallback: float = 0.0,
                 value: ValueSpace | None = None) -> float:
    """The seasonal weight v of `SEASONAL_WEIGHTS` minimising the mean error of the centre
    g(m) + shift + v (season - shift) over the entries with a value one day earlier.

    numer = g(y) - g(m), shift = g(c) - g(m) (the persistence step), season = g(x_day) - g(m) (NaN: none), 1-D
    arrays alike; the error is |y - c| in normalised units with `value`, else in model space (as
    `fit_weights`). Fewer than MIN_ENTRIES entries with a value a day earlier: `fallback`.
    """
    at = np.isfinite(season)
    if at.sum() < MIN_ENTRIES:
        return float(fallback)
    r = np.asarray(numer, dtype=np.float64)[at]
    s = np.asarray(shift, dtype=np.float64)[at]
    d = np.asarray(season, dtype=np.float64)[at] - s
    error, gain = criterion(r, None if value is None else value.take(at))
    best, best_err = 0.0, error(s)
    for v in SEASONAL_WEIGHTS[1:]:
        err = error(s + v * d)
        if err < best_err - gain:
            best, best_err = float(v), err
    return best
