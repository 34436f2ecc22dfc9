"""What every baseline shares: the task groups and the checks of a window batch and a mask."""

from __future__ import annotations

import numpy as np

from ..data import City, CityScalers, DataError, Windows
from ..interface import NotApplicable

HORIZON_TASKS = ("short", "long")
GENERATION_TASKS = ("generation",)


def check_inputs(windows: Windows, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed values with hidden entries set to 0, observed bool) as float64 / bool (N, T, H, W)."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"mask must be boolean (True = hidden), got dtype {mask.dtype}")
    if mask.shape != windows.traffic.shape:
        raise ValueError(f"mask shape {mask.shape} does not match windows {windows.traffic.shape}")
    observed = ~mask
    values = np.where(observed, windows.traffic, 0.0).astype(np.float64)
    return values, observed


def require(condition: bool, message: str) -> None:
    """Raise `NotApplicable(message)` unless `condition`: the baseline cannot forecast this batch."""
    if not condition:
        raise NotApplicable(message)


def training_series(city: City, scalers: CityScalers | None = None) -> tuple[np.ndarray, CityScalers]:
    """Clipped normalised traffic of the city's 'train' regions (R_train, T, H, W) and its scalers."""
    scalers = scalers or CityScalers.fit(city)
    train = city.regions("train")
    if train.size == 0:
        raise DataError(f"{city.name}: no 'train' regions to fit on")
    return scalers.traffic.transform(city.traffic[train]).astype(np.float64), scalers

