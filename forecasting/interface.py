"""The one small interface every forecaster implements (baselines and UoMo alike).

    model = SomeForecaster(...).fit(city_or_cities)      # training regions of each city
    pred = model.predict(hide(windows, mask), mask)      # forecast the hidden entries

Windows passed to `predict` are normalised to [0, 1] (the city's `Scaler`), and every hidden entry of
traffic *and* of users is NaN, so a forecaster cannot peek at what it must forecast; POI (static) and
the time features stay visible, and so do users of a forecaster that declares them known for the
horizon (`futr_exog = ("users",)`, see `forecasting.data.covariates`). Predictions are on the same normalised scale; `evaluate` turns them
into metrics and `Scaler.inverse` into raw units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .data import City, Windows, hide_unrecorded


class NotApplicable(Exception):
    """A forecaster cannot serve this task/window (e.g. seasonal naive when no full day is observed)."""


@dataclass
class Prediction:
    """Forecast of a batch: `mean` (N, T, H, W); optional `samples` (S, N, T, H, W); normalised scale."""

    mean: np.ndarray
    samples: np.ndarray | None = None

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """(len(qs), N, T, H, W) empirical quantiles of the samples (needs samples)."""
        if self.samples is None:
            raise ValueError("this forecaster returned no samples: quantiles are undefined")
        return np.quantile(self.samples, qs, axis=0)

    @property
    def median(self) -> np.ndarray:
        return self.mean if self.samples is None else np.median(self.samples, axis=0)


def hide(windows: Windows, mask: np.ndarray, futr_exog: Sequence[str] = ()) -> Windows:
    """Copy of `windows` with traffic (and users, unless 'users' is in `futr_exog`) NaN where `mask` is True.

    The day before the window (`Windows.day_before`) is past and stays visible, except at cells hidden
    throughout the window (`hide_unrecorded`: a cell with no record has no past either).

    mask (N, T, H, W). `futr_exog` names the covariates known for the horizon (a forecaster's
    `futr_exog`, or what the data declares): only those stay visible at hidden entries.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != windows.traffic.shape:
        raise ValueError(f"mask shape {mask.shape} does not match windows {windows.traffic.shape}")
    traffic = np.where(mask, np.nan, windows.traffic).astype(np.float32)
    users = windows.users
    if users is not None and "users" not in futr_exog:
        users = np.where(mask, np.nan, users).astype(np.float32)
    return replace(windows, traffic=traffic, users=users, day_before=hide_unrecorded(windows.day_before, mask))


def as_city_list(cities: City | Sequence[City]) -> list[City]:
    return [cities] if isinstance(cities, City) else list(cities)


class Forecaster(ABC):
    """Fit on training regions; predict hidden entries of normalised windows."""

    name: str = "forecaster"
    #: tasks this forecaster can serve; the benchmark skips the others
    tasks: tuple[str, ...] = ("short", "long", "generation")
    #: covariates this forecaster reads at hidden entries (known for the horizon: 'users' when declared futr)
    futr_exog: tuple[str, ...] = ()

    def fit(self, cities: City | Sequence[City]) -> "Forecaster":
        """Learn from the 'train' regions of each city (default: nothing to learn)."""
        return self

    @abstractmethod
    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        """Forecast the entries where `mask` (N, T, H, W) is True; `windows` already has them hidden."""


def merge_observed(windows: Windows, mask: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Observed entries as given, forecast elsewhere (and clipped to the [0, 1] range)."""
    out = np.where(mask, np.clip(forecast, 0.0, 1.0), np.nan_to_num(windows.traffic))
    return out.astype(np.float32)
