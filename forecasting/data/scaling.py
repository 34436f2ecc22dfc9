"""Normalisation (paper: clip at the 99.99th percentile of the training windows, divide by it).

`Scaler` per city with an exact inverse; `CityScalers` one per city.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .city import WINDOW, City, DataError


def window_multiplicity(n_steps: int, length: int = WINDOW) -> np.ndarray:
    """How many stride-1 windows of `length` contain each step t of a series of `n_steps`.

    count(t) = min(t + 1, length, n_steps - t, n_steps - length + 1), zero if the series is too short.
    """
    n_windows = n_steps - length + 1
    if n_windows <= 0:
        return np.zeros(n_steps, dtype=np.int64)
    t = np.arange(n_steps)
    return np.minimum.reduce([t + 1, np.full(n_steps, length), n_steps - t, np.full(n_steps, n_windows)])


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Percentile `q` (0..100) of `values` each repeated `weights` times, with numpy's 'linear' rule.

    Equals `np.percentile(np.repeat(values, weights), q)` without materialising the repetition.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.int64).ravel()
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        raise DataError("no values to take a percentile of (series shorter than one window?)")
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    ends = np.cumsum(weights)  # repeated index of the last copy of each value is ends - 1
    pos = q / 100.0 * (ends[-1] - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    v_lo = values[np.searchsorted(ends, lo, side="right")]
    v_hi = values[np.searchsorted(ends, hi, side="right")]
    return float(v_lo + (v_hi - v_lo) * (pos - lo))


@dataclass(frozen=True)
class Scaler:
    """Per-city scaling x -> clip(x / scale, 0, 1) and its inverse back to raw units."""

    scale: float

    @classmethod
    def fit(
        cls,
        series: np.ndarray,
        length: int = WINDOW,
        q: float = 99.99,
        valid: np.ndarray | None = None,
    ) -> "Scaler":
        """Fit on (R, T, H, W) training series: `q`-th percentile of all stride-1 window values.

        Each value x[r, t, h, w] counts once per stride-1 window holding step t (its multiplicity),
        so the result equals `np.percentile` over the materialised windows. `valid` (R, H, W) bool
        leaves padding cells (False) out of the percentile.
        """
        series = np.asarray(series)
        R, T = series.shape[:2]
        weights = np.broadcast_to(window_multiplicity(T, length)[None, :, None, None], series.shape)
        if valid is not None:
            weights = weights * np.asarray(valid, dtype=np.int64)[:, None, :, :]
        if T < length:
            raise DataError(f"training series of {T} steps are shorter than one {length}-step window")
        scale = weighted_percentile(series, weights, q)
        if not scale > 0:
            raise DataError("the training series are all zero: cannot fit a scale")
        return cls(scale)

    def transform(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        """x -> x / scale, clipped to [0, 1] unless `clip=False`. float32."""
        y = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
        return np.clip(y, 0.0, 1.0) if clip else y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """y -> y * scale in raw units (float64); exact inverse of `transform` below the scale."""
        return np.asarray(y, dtype=np.float64) * self.scale


@dataclass(frozen=True)
class CityScalers:
    """Scalers of one city: traffic always, users when the city has them."""

    traffic: Scaler
    users: Scaler | None = None

    @classmethod
    def fit(cls, city: City, length: int = WINDOW) -> "CityScalers":
        """Fit on the city's 'train' regions (padding cells of `cell_valid` left out)."""
        train = city.regions("train")
        if train.size == 0:
            raise DataError(f"{city.name}: no 'train' regions to fit the scaler on")
        valid = None if city.cell_valid is None else city.cell_valid[train]
        users = None if city.users is None else Scaler.fit(city.users[train], length, valid=valid)
        return cls(Scaler.fit(city.traffic[train], length, valid=valid), users)
