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

Modules: `common` (task groups, input checks), `per_cell` (horizon baselines from the cell's own history),
`spatial` (generation baselines from other cells and POI), `library` (AutoARIMA, PatchTST).
"""

from __future__ import annotations

from ..interface import Forecaster
from .common import GENERATION_TASKS, HORIZON_TASKS
from .library import AutoARIMABaseline, PatchTSTBaseline, neuralforecast_available
from .per_cell import DailyProfile, HistoricalAverage, LastValue, SeasonalNaive, daily_profile, resample_profile
from .spatial import NeighbourMean, POIRegression, neighbour_sums, poi_features, seasonal_regressors

__all__ = [
    "AutoARIMABaseline", "BASELINES", "DailyProfile", "GENERATION_TASKS", "HORIZON_TASKS", "HistoricalAverage",
    "LastValue", "NeighbourMean", "OPTIONAL_BASELINES", "POIRegression", "PatchTSTBaseline", "SeasonalNaive",
    "daily_profile", "neighbour_sums", "neuralforecast_available", "poi_features", "resample_profile",
    "seasonal_regressors",
]

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
