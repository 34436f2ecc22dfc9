"""Baseline forecasters behind the common `Forecaster` interface: the yardsticks UoMo is scored against.

All work on normalised windows (values in [0, 1]) whose hidden entries are NaN, read only the observed
entries (`~mask`), and return forecasts on the same scale.

    name                 tasks            forecast of a hidden entry (window n, step t, cell c)
    historical_average   short, long      mean of the cell's observed steps
    last_value           short, long      the cell's latest observed value before t (earliest after t
                                          if none precedes it)
    seasonal_naive       short, long      the cell's value at t - k * slots_per_day for the smallest
                                          k >= 1 where it is observed; NotApplicable if none exists
                                          (the window must hold a day of observations before t)
    daily_profile        short, long      p(s_t) * sum_obs x / sum_obs p(s): a city-wide daily profile
                                          scaled to the cell's observed level
    arima                short, long      statsforecast AutoARIMA on the cell's observed history
    neighbour_mean       generation       mean of the observed 8-neighbours at t (all observed cells at t
                                          if no neighbour is observed)
    poi_regression       generation       bilinear least-squares model of POI x time of day / weekday
    patchtst (optional)  short, long      neuralforecast PatchTST trained on the training cells

The generation baselines need simultaneous observations of other cells, which the horizon tasks never
have, and the horizon baselines need a cell's own history, which generation never has; hence `tasks`.
(The daily profile could be scaled with the neighbours' level for generation, but then it is the
neighbour mean with a profile's shape: we keep the two ideas separate.)
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from .data import City, CityScalers, DataError, Windows
from .interface import Forecaster, NotApplicable, Prediction, as_city_list

HORIZON_TASKS = ("short", "long")
GENERATION_TASKS = ("generation",)


# ----------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------


def _check_inputs(windows: Windows, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed values with hidden entries set to 0, observed bool) as float64 / bool (N, T, H, W)."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"mask must be boolean (True = hidden), got dtype {mask.dtype}")
    if mask.shape != windows.traffic.shape:
        raise ValueError(f"mask shape {mask.shape} does not match windows {windows.traffic.shape}")
    observed = ~mask
    values = np.where(observed, windows.traffic, 0.0).astype(np.float64)
    return values, observed


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise NotApplicable(message)


def _training_series(city: City, scalers: CityScalers | None = None) -> tuple[np.ndarray, CityScalers]:
    """Clipped normalised traffic of the city's 'train' regions (R_train, T, H, W) and its scalers."""
    scalers = scalers or CityScalers.fit(city)
    train = city.regions("train")
    if train.size == 0:
        raise DataError(f"{city.name}: no 'train' regions to fit on")
    return scalers.traffic.transform(city.traffic[train]).astype(np.float64), scalers


# ----------------------------------------------------------------------------------------------------
# Per-cell baselines (short/long horizon)
# ----------------------------------------------------------------------------------------------------


class HistoricalAverage(Forecaster):
    """Per cell, the mean of its observed steps:  x_hat(t, c) = sum_obs x(., c) / n_obs(c)."""

    name = "historical_average"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        counts = observed.sum(axis=1)  # (N, H, W)
        needed = mask.any(axis=1)
        _require(not np.any(needed & (counts == 0)), "historical average needs observed steps in every hidden cell")
        level = values.sum(axis=1) / np.maximum(counts, 1)  # (N, H, W)
        mean = np.broadcast_to(level[:, None], values.shape)
        return Prediction(mean=mean.astype(np.float32))


class LastValue(Forecaster):
    """Per cell, the latest observed value before each hidden step (the earliest after it if none)."""

    name = "last_value"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        T = values.shape[1]
        t = np.arange(T)[None, :, None, None]
        before = np.maximum.accumulate(np.where(observed, t, -1), axis=1)  # latest observed index <= t
        after = np.flip(np.minimum.accumulate(np.flip(np.where(observed, t, T), axis=1), axis=1), axis=1)
        source = np.where(before >= 0, before, after)
        _require(not np.any(mask & (source >= T)), "last value needs observed steps in every hidden cell")
        source = np.minimum(source, T - 1)
        mean = np.take_along_axis(values, source, axis=1)
        return Prediction(mean=mean.astype(np.float32))


class SeasonalNaive(Forecaster):
    """Value one day earlier:  x_hat(t, c) = x(t - k * slots_per_day, c) for the smallest observed k >= 1.

    Raises `NotApplicable` unless every hidden entry has such an observed step in the window, i.e. the
    window holds (at least) the day of observations before its horizon.
    """

    name = "seasonal_naive"
    tasks = HORIZON_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        T, day = values.shape[1], windows.slots_per_day
        _require(
            day < T,
            f"seasonal naive needs windows longer than a day ({day} slots); these have {T} steps",
        )
        mean = np.full(values.shape, np.nan)
        filled = np.zeros(values.shape, dtype=bool)
        for k in range(1, (T - 1) // day + 1):
            lag = k * day
            take = np.zeros(values.shape, dtype=bool)
            take[:, lag:] = ~filled[:, lag:] & observed[:, :-lag]
            mean[:, lag:] = np.where(take[:, lag:], values[:, :-lag], mean[:, lag:])
            filled |= take
        missing = mask & ~filled
        _require(
            not missing.any(),
            f"seasonal naive needs the cell observed {day} steps (one day) before each hidden step; "
            f"{int(missing.sum())} hidden entries have no such observation",
        )
        return Prediction(mean=np.nan_to_num(mean).astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# Scaled daily profile
# ----------------------------------------------------------------------------------------------------


def daily_profile(city: City, scalers: CityScalers | None = None) -> np.ndarray:
    """p(s) = mean normalised (clipped) traffic over all training regions, cells and days at slot s.

    Returns (slots_per_day,). Slots that never occur in training are filled by periodic linear
    interpolation between the slots that do.
    """
    series, _ = _training_series(city, scalers)
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
        values, observed = _check_inputs(windows, mask)
        profile = self.profile_for(windows.city, windows.slots_per_day)
        p = profile[windows.slot_of_day][:, :, None, None] * np.ones(values.shape[2:])  # (N, T, H, W)
        x_sum = values.sum(axis=1)  # (N, H, W)
        p_sum = np.where(observed, p, 0.0).sum(axis=1)
        counts = observed.sum(axis=1)
        _require(not np.any(mask.any(axis=1) & (counts == 0)), "daily profile needs observed steps in every hidden cell")
        # a profile that is zero on all observed slots cannot be scaled: use the observed mean level
        flat = p_sum <= 0
        scale = np.where(flat, 0.0, x_sum / np.where(flat, 1.0, p_sum))
        mean = p * scale[:, None] + np.where(flat, x_sum / np.maximum(counts, 1), 0.0)[:, None]
        return Prediction(mean=mean.astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# AutoARIMA (statsforecast)
# ----------------------------------------------------------------------------------------------------


class AutoARIMABaseline(Forecaster):
    """statsforecast AutoARIMA on each hidden cell's observed history, in one batched call per history length.

    For every (window, cell) with hidden entries, the history is the cell's observed steps before its
    first hidden step t0 (its observed prefix); AutoARIMA forecasts steps t0..T-1 with season length
    `slots_per_day` when the history holds at least two days, else without seasonality. A series whose
    fit fails, or whose forecast is non-finite or leaves [-diverge, 1 + diverge] (the data lie in
    [0, 1]), falls back to the history's mean (historical average); `n_fallbacks` / `n_series` count
    them. Forecasts are clipped to [0, 1].
    """

    name = "arima"
    tasks = HORIZON_TASKS

    def __init__(self, diverge: float = 1.0, min_history: int = 4, **arima_kwargs) -> None:
        self.diverge = float(diverge)
        self.min_history = int(min_history)
        self.arima_kwargs = arima_kwargs
        self.n_series = 0
        self.n_fallbacks = 0

    def _forecast_batch(self, histories: np.ndarray, horizon: int, season: int) -> np.ndarray:
        """(S, horizon) AutoARIMA forecasts of the (S, L) histories; NaN rows where a fit failed."""
        import pandas as pd
        from statsforecast import StatsForecast
        from statsforecast.models import AutoARIMA

        S, L = histories.shape

        def run(rows: np.ndarray) -> np.ndarray:
            frame = pd.DataFrame(
                {
                    "unique_id": np.repeat(rows, L),
                    "ds": np.tile(np.arange(L), rows.size),
                    "y": histories[rows].ravel(),
                }
            )
            model = AutoARIMA(season_length=season, **self.arima_kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter; bad fits are caught below
                out = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=horizon)
            out = out.sort_values(["unique_id", "ds"])
            return out["AutoARIMA"].to_numpy(dtype=np.float64).reshape(rows.size, horizon)

        try:
            return run(np.arange(S))
        except Exception:  # noqa: BLE001 - one bad series must not sink the batch: retry one by one
            result = np.full((S, horizon), np.nan)
            for i in range(S):
                try:
                    result[i] = run(np.array([i]))[0]
                except Exception:  # noqa: BLE001 - counted as a fallback by the caller
                    pass
            return result

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        N, T, H, W = values.shape
        series = values.transpose(0, 2, 3, 1).reshape(-1, T)  # (N*H*W, T)
        hidden = mask.transpose(0, 2, 3, 1).reshape(-1, T)
        first_hidden = np.where(hidden.any(axis=1), hidden.argmax(axis=1), T)  # T = nothing to forecast
        _require(not np.any(first_hidden == 0), "ARIMA needs an observed history before the first hidden step")
        forecast = series.copy()
        for t0 in np.unique(first_hidden[first_hidden < T]):
            rows = np.flatnonzero(first_hidden == t0)
            histories = series[rows, :t0]
            level = histories.mean(axis=1, keepdims=True)
            if t0 >= self.min_history:
                season = windows.slots_per_day if t0 >= 2 * windows.slots_per_day else 1
                fc = self._forecast_batch(histories, T - t0, season)
            else:  # too short to fit anything: the historical average
                fc = np.full((rows.size, T - t0), np.nan)
            bad = ~np.all(np.isfinite(fc) & (fc >= -self.diverge) & (fc <= 1 + self.diverge), axis=1)
            fc[bad] = np.broadcast_to(level, fc.shape)[bad]
            self.n_series += rows.size
            self.n_fallbacks += int(bad.sum())
            forecast[rows, t0:] = np.clip(fc, 0.0, 1.0)
        mean = forecast.reshape(N, H, W, T).transpose(0, 3, 1, 2)
        return Prediction(mean=mean.astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# Generation baselines (cells with no history)
# ----------------------------------------------------------------------------------------------------


def neighbour_sums(values: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the observed 8-neighbours of every cell: two (N, T, H, W) arrays."""
    H, W = values.shape[2:]
    pad = ((0, 0), (0, 0), (1, 1), (1, 1))
    v = np.pad(np.where(observed, values, 0.0), pad)
    o = np.pad(observed.astype(np.float64), pad)
    total = np.zeros(values.shape)
    count = np.zeros(values.shape)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            total += v[:, :, 1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
            count += o[:, :, 1 + dr : 1 + dr + H, 1 + dc : 1 + dc + W]
    return total, count


class NeighbourMean(Forecaster):
    """x_hat(t, c) = mean of the observed 8-neighbours of c at step t; all observed cells at t if none."""

    name = "neighbour_mean"
    tasks = GENERATION_TASKS

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        nb_sum, nb_count = neighbour_sums(values, observed)
        all_sum = values.sum(axis=(2, 3), keepdims=True)
        all_count = observed.sum(axis=(2, 3), keepdims=True)
        _require(
            not np.any(mask & (nb_count == 0) & (all_count == 0)),
            "neighbour mean needs other cells observed at every hidden step (a generation task)",
        )
        mean = np.where(
            nb_count > 0,
            nb_sum / np.maximum(nb_count, 1),
            np.broadcast_to(all_sum / np.maximum(all_count, 1), values.shape),
        )
        return Prediction(mean=mean.astype(np.float32))


def seasonal_regressors(day_of_week: np.ndarray, slot_of_day: np.ndarray, slots_per_day: int, harmonics: int = 3) -> np.ndarray:
    """f(t) = [1, cos 2 pi k tau, sin 2 pi k tau (k = 1..K), w, w cos 2 pi tau, w sin 2 pi tau], (..., 2K + 4).

    tau = slot / slots_per_day is the time of day in [0, 1), w = 1 on Saturday/Sunday (day 5, 6).
    """
    tau = slot_of_day / float(slots_per_day)
    weekend = (day_of_week >= 5).astype(np.float64)
    feats = [np.ones_like(tau)]
    for k in range(1, harmonics + 1):
        feats += [np.cos(2 * np.pi * k * tau), np.sin(2 * np.pi * k * tau)]
    feats += [weekend, weekend * np.cos(2 * np.pi * tau), weekend * np.sin(2 * np.pi * tau)]
    return np.stack(feats, axis=-1)


def poi_features(poi: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """z(c) = [1, log1p(POI counts of c)]: (N, H, W, 1 + C); just [1] without POI. shape = (N, H, W)."""
    ones = np.ones((*shape, 1))
    if poi is None:
        return ones
    return np.concatenate([ones, np.log1p(np.moveaxis(np.asarray(poi, dtype=np.float64), 1, -1))], axis=-1)


class POIRegression(Forecaster):
    """Bilinear POI x time regression fitted on the training regions of each city (least squares).

    Model (per city, since POI categories differ between cities):

        x_hat(t, c) = z(c)^T B f(t),   z(c) = [1, log1p(poi_1(c)), ..., log1p(poi_C(c))],
        f(t) = [1, cos/sin of K = 3 harmonics of the time of day, weekend, weekend x first harmonic]

    i.e. every POI feature gets its own daily curve (and weekend shift). B ((1 + C) x (2K + 4)) solves
    the ridge least-squares problem over all training cells and steps,

        min_B  sum_{r, c, t} (x_rct - z_c^T B f_t)^2 + lambda ||B||^2,

    whose normal equations separate:  G = sum_r (Z_r^T Z_r) kron (F_r^T F_r),  b = sum_r vec(Z_r^T X_r F_r),
    (G + lambda I) vec(B) = b, with lambda = `ridge` * trace(G) / dim(G), solved by `numpy.linalg.lstsq`.
    Cities without POI get the time-only model (z = [1]). Predictions are clipped to [0, 1].
    """

    name = "poi_regression"
    tasks = GENERATION_TASKS

    def __init__(self, harmonics: int = 3, ridge: float = 1e-6) -> None:
        self.harmonics = int(harmonics)
        self.ridge = float(ridge)
        self.coefficients: dict[str, np.ndarray] = {}

    def fit(self, cities: City | Sequence[City]) -> "POIRegression":
        for city in as_city_list(cities):
            series, _ = _training_series(city)
            train = city.regions("train")
            n_z = 1 + (0 if city.poi is None else city.poi.shape[1])
            n_f = 2 * self.harmonics + 4
            gram = np.zeros((n_z * n_f, n_z * n_f))
            rhs = np.zeros(n_z * n_f)
            for k, r in enumerate(train):
                Z = poi_features(None if city.poi is None else city.poi[r : r + 1], (1, *city.grid)).reshape(-1, n_z)
                F = seasonal_regressors(city.day_of_week[r], city.slot_of_day[r], city.slots_per_day, self.harmonics)
                X = series[k].reshape(series.shape[1], -1).T  # (cells, T)
                gram += np.kron(Z.T @ Z, F.T @ F)
                rhs += (Z.T @ X @ F).ravel()
            lam = self.ridge * np.trace(gram) / gram.shape[0]
            beta = np.linalg.lstsq(gram + lam * np.eye(gram.shape[0]), rhs, rcond=None)[0]
            self.coefficients[city.name] = beta.reshape(n_z, n_f)
        return self

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        _check_inputs(windows, mask)
        _require(
            windows.city in self.coefficients,
            f"poi_regression was not fitted on city {windows.city!r} (fitted: {sorted(self.coefficients)}); "
            "POI categories differ between cities, so fit it on that city's training regions",
        )
        B = self.coefficients[windows.city]
        N, T, H, W = windows.traffic.shape
        Z = poi_features(windows.poi, (N, H, W))
        if Z.shape[-1] != B.shape[0]:
            raise ValueError(
                f"poi_regression for {windows.city!r} was fitted with {B.shape[0] - 1} POI categories, "
                f"the windows have {Z.shape[-1] - 1}"
            )
        F = seasonal_regressors(windows.day_of_week, windows.slot_of_day, windows.slots_per_day, self.harmonics)
        mean = np.einsum("nhwi,ij,ntj->nthw", Z, B, F)
        return Prediction(mean=np.clip(mean, 0.0, 1.0).astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# PatchTST (optional: needs the neuralforecast package)
# ----------------------------------------------------------------------------------------------------


def neuralforecast_available() -> bool:
    """True when the optional `neuralforecast` package (PatchTST) can be imported."""
    import importlib.util

    return importlib.util.find_spec("neuralforecast") is not None


class PatchTSTBaseline(Forecaster):
    """PatchTST (neuralforecast), one global model per city and horizon shape, trained on every training cell.

    `fit` trains, for each (observed, horizon) pair in `shapes` (default: the short 48 -> 16 and long
    16 -> 48 tasks of a 64-step window), a channel-independent PatchTST (patches of `patch_len` steps,
    RevIN instance normalisation) on all cells of the city's training regions, normalised like the
    windows. `predict` feeds each hidden cell's observed prefix; a window whose shape was not trained
    raises `NotApplicable`. Forecasts are clipped to [0, 1]. Optional: install `neuralforecast`.
    """

    name = "patchtst"
    tasks = HORIZON_TASKS

    def __init__(
        self,
        shapes: Sequence[tuple[int, int]] = ((48, 16), (16, 48)),
        max_steps: int = 300,
        hidden_size: int = 64,
        n_heads: int = 4,
        encoder_layers: int = 2,
        patch_len: int = 8,
        stride: int = 4,
        batch_size: int = 64,
        windows_batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if not neuralforecast_available():
            raise ImportError("PatchTST needs the optional package neuralforecast (pip install neuralforecast)")
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.config = dict(
            max_steps=max_steps, hidden_size=hidden_size, n_heads=n_heads, encoder_layers=encoder_layers,
            patch_len=patch_len, stride=stride, batch_size=batch_size, windows_batch_size=windows_batch_size,
            learning_rate=learning_rate, random_seed=seed,
        )  # fmt: skip
        self.models: dict[tuple[str, int, int], object] = {}

    @staticmethod
    def _frame(series: np.ndarray):
        """Long frame (unique_id, ds, y) of (S, L) series."""
        import pandas as pd

        S, L = series.shape
        return pd.DataFrame({"unique_id": np.repeat(np.arange(S), L), "ds": np.tile(np.arange(L), S), "y": series.ravel()})

    def fit(self, cities: City | Sequence[City]) -> "PatchTSTBaseline":
        import logging

        from neuralforecast import NeuralForecast
        from neuralforecast.models import PatchTST

        for name in ("pytorch_lightning", "lightning", "lightning_fabric", "neuralforecast"):
            logging.getLogger(name).setLevel(logging.ERROR)
        for city in as_city_list(cities):
            series, _ = _training_series(city)
            R, T = series.shape[:2]
            cells = series.transpose(0, 2, 3, 1).reshape(-1, T)  # (R * H * W, T)
            frame = self._frame(cells)
            for n_obs, horizon in self.shapes:
                model = PatchTST(
                    h=horizon, input_size=n_obs, scaler_type="identity", alias="PatchTST",
                    enable_progress_bar=False, enable_model_summary=False, logger=False,
                    enable_checkpointing=False, accelerator="auto", devices=1, **self.config,
                )  # fmt: skip
                forecaster = NeuralForecast(models=[model], freq=1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    forecaster.fit(df=frame)
                self.models[(city.name, n_obs, horizon)] = forecaster
        return self

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        values, observed = _check_inputs(windows, mask)
        N, T, H, W = values.shape
        series = values.transpose(0, 2, 3, 1).reshape(-1, T)
        hidden = mask.transpose(0, 2, 3, 1).reshape(-1, T)
        first_hidden = np.where(hidden.any(axis=1), hidden.argmax(axis=1), T)
        forecast = series.copy()
        for t0 in np.unique(first_hidden[first_hidden < T]):
            key = (windows.city, int(t0), int(T - t0))
            _require(
                key in self.models,
                f"patchtst has no model for city {windows.city!r} with {t0} observed -> {T - t0} forecast steps "
                f"(trained: {sorted(self.models)})",
            )
            rows = np.flatnonzero(first_hidden == t0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.models[key].predict(df=self._frame(series[rows, :t0]))
            out = out.sort_values(["unique_id", "ds"])
            fc = out["PatchTST"].to_numpy(dtype=np.float64).reshape(rows.size, T - t0)
            level = np.broadcast_to(series[rows, :t0].mean(axis=1, keepdims=True), fc.shape)
            fc = np.where(np.isfinite(fc), fc, level)  # a non-finite output: the historical average
            forecast[rows, t0:] = np.clip(fc, 0.0, 1.0)
        mean = forecast.reshape(N, H, W, T).transpose(0, 3, 1, 2)
        return Prediction(mean=mean.astype(np.float32))


#: extras outside the standard registry; `forecasting.evaluate` accepts them by name when installed
OPTIONAL_BASELINES: dict[str, type[Forecaster]] = {"patchtst": PatchTSTBaseline}

BASELINES: dict[str, type[Forecaster]] = {
    "historical_average": HistoricalAverage,
    "last_value": LastValue,
    "seasonal_naive": SeasonalNaive,
    "daily_profile": DailyProfile,
    "arima": AutoARIMABaseline,
    "neighbour_mean": NeighbourMean,
    "poi_regression": POIRegression,
}
