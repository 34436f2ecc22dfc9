"""Per-cell baselines of the horizon tasks: historical average, last value, seasonal naive, scaled daily
profile. Each reads only the cell's own observed steps (the daily profile also the city's training regions)."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..data import City, CityScalers, Windows, value_day_earlier
from ..interface import Forecaster, Prediction, as_city_list
from .common import HORIZON_TASKS, check_inputs, require, training_series


class HistoricalAverage(Forecaster):
    """Per cell, the mean of its observed steps:  x_hat(t, c) = sum_obs x(., c) / n_obs(c)."""

    name = "historical_average"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = check_inputs(windows, mask)
        counts = observed.sum(axis=1)  # (N, H, W)
        needed = mask.any(axis=1)
        require(not np.any(needed & (counts == 0)), "historical average needs observed steps in every hidden cell")
        level = values.sum(axis=1) / np.maximum(counts, 1)  # (N, H, W)
        mean = np.broadcast_to(level[:, None], values.shape)
        return Prediction(mean=mean.astype(np.float32))


class LastValue(Forecaster):
    """Per cell, the latest observed value before each hidden step (the earliest after it if none)."""

    name = "last_value"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = check_inputs(windows, mask)
        T = values.shape[1]
        t = np.arange(T)[None, :, None, None]
        before = np.maximum.accumulate(np.where(observed, t, -1), axis=1)  # latest observed index <= t
        after = np.flip(np.minimum.accumulate(np.flip(np.where(observed, t, T), axis=1), axis=1), axis=1)
        source = np.where(before >= 0, before, after)
        require(not np.any(mask & (source >= T)), "last value needs observed steps in every hidden cell")
        source = np.minimum(source, T - 1)
        mean = np.take_along_axis(values, source, axis=1)
        return Prediction(mean=mean.astype(np.float32))


class SeasonalNaive(Forecaster):
    """Value one day earlier:  x_hat(t, c) = x(t - k * slots_per_day, c) for the smallest observed k >= 1.

    The day before is read inside the window (k = 1, 2, ...) and, for steps less than a day after the
    window's start, from the record before the window (`Windows.day_before`, k = 1) when the windows
    carry it. Raises `NotApplicable` unless every hidden entry has such an observed step.
    """

    name = "seasonal_naive"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = check_inputs(windows, mask)
        mean, filled = value_day_earlier(values, observed, windows.day_before, windows.slots_per_day)
        day = windows.slots_per_day
        missing = mask & ~filled
        require(
            not missing.any(),
            f"seasonal naive needs the cell observed {day} steps (one day) before each hidden step, inside the "
            f"window or in the record before it; {int(missing.sum())} hidden entries have no such observation",
        )
        return Prediction(mean=mean.astype(np.float32))


def daily_profile(city: City, scalers: CityScalers | None = None) -> np.ndarray:
    """p(s) = mean normalised (clipped) traffic over all training regions, cells and days at slot s.

    Returns (slots_per_day,). Slots that never occur in training are filled by periodic linear
    interpolation between the slots that do.
    """
    series, _ = training_series(city, scalers)
    slots = city.slot_of_day[city.regions("train")]  # (R, T)
    per_step = series.mean(axis=(2, 3))  # (R, T): cells weigh equally
    sums = np.bincount(slots.ravel(), weights=per_step.ravel(), minlength=city.slots_per_day)
    counts = np.bincount(slots.ravel(), minlength=city.slots_per_day)
    profile = np.full(city.slots_per_day, np.nan)
    seen = counts > 0
    profile[seen] = sums[seen] / counts[seen]
    if not seen.all():
        s = np.arange(city.slots_per_day)
        profile = np.interp(s, s[seen], profile[seen], period=city.slots_per_day)
    return profile


def resample_profile(profile: np.ndarray, slots_per_day: int) -> np.ndarray:
    """A daily profile at another granularity: periodic linear interpolation at the slot centres."""
    n = profile.size
    if n == slots_per_day:
        return profile.copy()
    src = (np.arange(n) + 0.5) / n
    dst = (np.arange(slots_per_day) + 0.5) / slots_per_day
    return np.interp(dst, src, profile, period=1.0)


class DailyProfile(Forecaster):
    """Scaled daily profile:  x_hat(t, c) = p(s_t) * sum_obs x(., c) / sum_obs p(s_.)

    (= p(s_t) mean(observed) / mean(p(observed slots)), per cell). One profile per fitted city; for a
    city that was not fitted, a warning is issued and the average of the fitted profiles (each scaled
    to mean 1 and resampled to the city's slots per day) is used: the forecast only depends on the
    profile's shape, so cities of other magnitudes can be averaged.
    """

    name = "daily_profile"
    tasks = HORIZON_TASKS

    def __init__(self) -> None:
        self.profiles: dict[str, np.ndarray] = {}

    def fit(self, cities: City | Sequence[City]) -> "DailyProfile":
        for city in as_city_list(cities):
            self.profiles[city.name] = daily_profile(city)
        return self

    def profile_for(self, city: str, slots_per_day: int) -> np.ndarray:
        """The fitted profile of `city`, or the fallback described in the class docstring."""
        if city in self.profiles and self.profiles[city].size == slots_per_day:
            return self.profiles[city]
        if not self.profiles:
            raise ValueError("DailyProfile is not fitted: call fit(city) on the training city first")
        warnings.warn(
            f"daily_profile: city {city!r} was not fitted (fitted: {sorted(self.profiles)}); using the "
            "average shape of the fitted profiles",
            stacklevel=2,
        )
        shapes = [resample_profile(p / max(p.mean(), 1e-12), slots_per_day) for p in self.profiles.values()]
        return np.mean(shapes, axis=0)

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = check_inputs(windows, mask)
        profile = self.profile_for(windows.city, windows.slots_per_day)
        p = profile[windows.slot_of_day][:, :, None, None] * np.ones(values.shape[2:])  # (N, T, H, W)
        x_sum = values.sum(axis=1)  # (N, H, W)
        p_sum = np.where(observed, p, 0.0).sum(axis=1)
        counts = observed.sum(axis=1)
        require(not np.any(mask.any(axis=1) & (counts == 0)), "daily profile needs observed steps in every hidden cell")
        # a profile that is zero on all observed slots cannot be scaled: use the observed mean level
        flat = p_sum <= 0
        scale = np.where(flat, 0.0, x_sum / np.where(flat, 1.0, p_sum))
        mean = p * scale[:, None] + np.where(flat, x_sum / np.maximum(counts, 1), 0.0)[:, None]
        return Prediction(mean=mean.astype(np.float32))

