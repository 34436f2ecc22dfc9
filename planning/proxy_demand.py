"""Demand from static proxies, the non-forecast strategies: POI and residents. Each cell's score is a
least-squares fit of the training regions' demand on the proxy (POI categories, or resident counts),
times a daily profile of the slot of day, both calibrated in the requested unit.

    poi_demand(city, steps, unit="users", split="test")       # score = POI categories @ weights
    resident_demand(city, steps, unit="users", split="test")  # score = residents * weight
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from forecasting.data import City

from .demand import Demand, Unit, _pick_regions, _series, _steps, real_demand
from .errors import InputError, check_matrix


@dataclass(frozen=True)
class StaticModel:
    """demand[i, t] = profile[slot_of_day(t)] * score[i],  score = features[i] @ weights.

    `weights` (C,) >= 0 turn static features (POI counts per category, residents) into a score in
    demand units (per-cell mean demand); `profile` (slots_per_day,) is the least-squares factor per
    slot of day, so the static map inherits the city's daily rhythm but no cell-specific dynamics.
    """

    weights: np.ndarray
    profile: np.ndarray
    slots_per_day: int
    unit: str

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weights

    def predict(self, features: np.ndarray, slot_of_day: np.ndarray) -> np.ndarray:
        """(N, T) demand of cells with `features` (N, C) at slots `slot_of_day` (T,)."""
        return self.score(features)[:, None] * self.profile[np.asarray(slot_of_day)][None, :]


def fit_static_model(
    features: np.ndarray,
    demand: np.ndarray,
    slot_of_day: np.ndarray,
    slots_per_day: int,
    unit: str,
    weights: Literal["nnls", "sum"] = "nnls",
) -> StaticModel:
    """Calibrate a `StaticModel` on training cells: features (N, C), demand (N, T), slots (T,).

    1. weights: non-negative least squares of the per-cell mean demand on the features ('nnls'), or one
       common coefficient on the feature total ('sum': demand proportional to the POI count);
    2. profile[s] = sum_{i, t: s(t)=s} score_i d_it / sum_{i, t: s(t)=s} score_i^2  (LS through 0).
    """
    from scipy.optimize import nnls

    X = check_matrix(features, "static features")
    D = check_matrix(demand, "training demand")
    if X.shape[0] != D.shape[0]:
        raise InputError(f"features cover {X.shape[0]} cells but demand {D.shape[0]}")
    if not np.any(X > 0):
        raise InputError("the static features of the training cells are all zero: nothing to calibrate on")
    mean = D.mean(axis=1)
    if weights == "nnls":
        w, _ = nnls(X, mean)
        if not np.any(w > 0):
            raise InputError("NNLS found no positive POI weight; use weights='sum'")
    elif weights == "sum":
        total = X.sum(axis=1)
        w = np.full(X.shape[1], float(total @ mean / (total @ total)))
    else:
        raise InputError(f"weights must be 'nnls' or 'sum', got {weights!r}")
    score = X @ w
    sod = np.asarray(slot_of_day)
    num = np.bincount(sod, (score[:, None] * D).sum(axis=0), slots_per_day)
    den = np.bincount(sod, np.full(sod.size, (score**2).sum()), slots_per_day)
    profile = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return StaticModel(w, profile, slots_per_day, unit)


def _cell_features(layer: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(R, C, H, W) layer -> (cells, C) features, cells ordered region, row, col."""
    sub = np.asarray(layer, dtype=np.float64)[regions]  # (R, C, H, W)
    return np.moveaxis(sub, 1, -1).reshape(-1, sub.shape[1])


def _static_demand(
    city: City, layer: np.ndarray, split, unit: str, regions, steps, weights: str, source: str,
    train_split: str | Sequence[str] = "train",
) -> Demand:
    target = _pick_regions(city, split, regions)
    train = city.regions(train_split)
    if train.size == 0:
        raise InputError(f"{city.name}: no {train_split!r} regions to calibrate {source} demand on")
    truth = _series(city, unit)
    X_train = _cell_features(layer, train)
    D_train = np.moveaxis(truth[train].astype(np.float64), 1, -1).reshape(X_train.shape[0], -1)
    # each training region has its own series, but one time axis per region; stack regions' slots
    sod_train = np.repeat(city.slot_of_day[train][:, None, :], np.prod(city.grid), axis=1).reshape(X_train.shape[0], -1)
    if np.all(sod_train == sod_train[0]):
        model = fit_static_model(X_train, D_train, sod_train[0], city.slots_per_day, unit, weights)
    else:  # regions on different clocks: calibrate each cell-slot pair on its own slot of day
        model = _fit_static_flat(X_train, D_train, sod_train, city.slots_per_day, unit, weights)
    t = _steps(city, steps)
    values = model.predict(_cell_features(layer, target), city.slot_of_day[target[0], t])
    frame = real_demand(city, None, unit, regions=target, steps=steps)
    return frame.with_values(values, source=source)


def _fit_static_flat(X, D, sod, spd, unit, weights) -> StaticModel:
    """Calibration when training cells have different slot-of-day axes (rare; regions on other clocks)."""
    base = fit_static_model(X, D, sod[0], spd, unit, weights)
    score = X @ base.weights
    num = np.bincount(sod.ravel(), (score[:, None] * D).ravel(), spd)
    den = np.bincount(sod.ravel(), np.repeat(score**2, D.shape[1]), spd)
    profile = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return StaticModel(base.weights, profile, spd, unit)


def poi_demand(
    city: City,
    split: str | Sequence[str] | None = "test",
    unit: Unit = "users",
    regions: Sequence[int] | None = None,
    steps: slice | None = None,
    weights: Literal["nnls", "sum"] = "nnls",
) -> Demand:
    """Demand proportional to a POI score, calibrated on the training regions (see `fit_static_model`)."""
    if city.poi is None:
        raise InputError(f"{city.name} has no POI layer: POI-based demand needs city.poi")
    return _static_demand(city, city.poi, split, unit, regions, steps, weights, "poi")


def resident_demand(
    city: City,
    split: str | Sequence[str] | None = "test",
    unit: Unit = "users",
    regions: Sequence[int] | None = None,
    steps: slice | None = None,
    residents: np.ndarray | None = None,
) -> Demand:
    """Demand proportional to the resident population, calibrated on the training regions.

    `residents` (R, H, W) for every region of the city (the synthetic city's own layer by default, or a
    layer the user provides, e.g. census counts rasterised onto the grid).
    """
    layer = residents if residents is not None else city.residents
    if layer is None:
        raise InputError(
            f"{city.name} has no residents layer: pass residents=(regions, H, W) counts (e.g. a census raster)"
        )
    layer = np.asarray(layer, dtype=np.float64)
    expected = (city.n_regions, *city.grid)
    if layer.shape != expected:
        raise InputError(f"residents must be {expected} (regions, H, W), got {layer.shape}")
    check_matrix(layer.reshape(layer.shape[0], -1), "residents")
    return _static_demand(city, layer[:, None], split, unit, regions, steps, "sum", "residents")
