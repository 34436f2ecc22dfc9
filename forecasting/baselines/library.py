"""Baselines that wrap a forecasting library: statsforecast's AutoARIMA and (optional, needs the
neuralforecast package) PatchTST. The libraries are imported when a model is first used."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..data import City, Windows
from ..interface import Forecaster, Prediction, as_city_list
from .common import HORIZON_TASKS, check_inputs, require, training_series


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
        values, observed = check_inputs(windows, mask)
        N, T, H, W = values.shape
        series = values.transpose(0, 2, 3, 1).reshape(-1, T)  # (N*H*W, T)
        hidden = mask.transpose(0, 2, 3, 1).reshape(-1, T)
        first_hidden = np.where(hidden.any(axis=1), hidden.argmax(axis=1), T)  # T = nothing to forecast
        require(not np.any(first_hidden == 0), "ARIMA needs an observed history before the first hidden step")
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
            series, _ = training_series(city)
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
        values, observed = check_inputs(windows, mask)
        N, T, H, W = values.shape
        series = values.transpose(0, 2, 3, 1).reshape(-1, T)
        hidden = mask.transpose(0, 2, 3, 1).reshape(-1, T)
        first_hidden = np.where(hidden.any(axis=1), hidden.argmax(axis=1), T)
        forecast = series.copy()
        for t0 in np.unique(first_hidden[first_hidden < T]):
            key = (windows.city, int(t0), int(T - t0))
            require(
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

