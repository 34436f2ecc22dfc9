"""Generation baselines (cells with no history of their own): the mean of the observed neighbours, and a
POI x time regression fitted on the training regions."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data import City, Windows
from ..interface import Forecaster, Prediction, as_city_list
from .common import GENERATION_TASKS, check_inputs, require, training_series


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
        values, observed = check_inputs(windows, mask)
        nb_sum, nb_count = neighbour_sums(values, observed)
        all_sum = values.sum(axis=(2, 3), keepdims=True)
        all_count = observed.sum(axis=(2, 3), keepdims=True)
        require(
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
            series, _ = training_series(city)
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
        check_inputs(windows, mask)
        require(
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

