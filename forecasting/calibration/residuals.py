"""A forecaster's raw residuals on val regions, the entries every calibration fit reads: g(y) - g(m) in the
network's per-cell log space with the anchor's inputs, per city and task, a synthetic preset's draws joined.
The fit itself is `forecasting.calibration.fit`; the held-out scores it chooses by, `.heldout`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..anchor import ValueSpace, weight_at, with_season
from ..data import City, CityScalers, Windows, make_windows
from ..interface import Forecaster, NotApplicable, hide
from .tables import CalibrationError, CellFrame, lead_buckets, model_point_and_spread


@dataclass
class Residuals:
    """Hidden entries of fitted windows (1-D arrays alike): g(y) - g(m), sg, lead bucket, cell group, g(m),
    whether the truth is exactly zero, the anchor's pull g(x_last) - g(m) and lead, the region of the
    window each entry came from (-1 where unknown; the pooling choice holds regions out), the seasonal
    term's season g(x_day) - g(m) (NaN where there is no value one day earlier, or unknown), and the cell's
    scale s (`WindowTransform`; NaN where unknown), which turns model-space values into normalised ones."""

    numer: np.ndarray
    spread: np.ndarray
    bucket: np.ndarray
    group: np.ndarray
    point: np.ndarray
    is_zero: np.ndarray
    pull: np.ndarray
    lead: np.ndarray
    region: np.ndarray | None = None
    season: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __post_init__(self):
        if self.region is None:
            self.region = np.full(np.shape(self.numer), -1, dtype=np.int64)
        if self.season is None:
            self.season = np.full(np.shape(self.numer), np.nan)
        if self.scale is None:
            self.scale = np.full(np.shape(self.numer), np.nan)

    def value_space(self) -> ValueSpace | None:
        """The entries' normalised units for the anchor's criterion (`forecasting.anchor.ValueSpace`); None
        unless every entry's scale is known (the anchor is then fitted in model space)."""
        if self.scale.size == 0 or not np.isfinite(self.scale).all():
            return None
        return ValueSpace(self.point, self.scale)

    def take(self, keep: np.ndarray) -> "Residuals":
        """The entries where the boolean `keep` holds."""
        return Residuals(*(getattr(self, k)[keep] for k in self.__dataclass_fields__))

    def shift(self, weights: np.ndarray | None, seasonal: float = 0.0) -> np.ndarray:
        """g(c) - g(m): the persistence step w_l (g(x_last) - g(m)), then the seasonal one v (g(x_day) - g(c))."""
        return with_season(weight_at(weights, self.lead) * self.pull, self.season, seasonal)

    def anchored(self, weights: np.ndarray | None, seasonal: float = 0.0) -> "Residuals":
        """The residuals around the centre c (`shift`): g(y) - g(c), and g(c) as the point (the pull and the
        season stay relative to m)."""
        shift = self.shift(weights, seasonal)
        return dataclasses.replace(self, numer=self.numer - shift, point=self.point + shift)

    @classmethod
    def concat(cls, parts: Sequence["Residuals"]) -> "Residuals":
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__))


def residuals(forecaster: Forecaster, windows: Windows, masks: np.ndarray, task: str, chunk: int = 128) -> Residuals:
    """The residuals of the forecaster's raw predictions over the hidden entries of `windows`."""
    parts = []
    for lo in range(0, len(windows), chunk):
        part, mask = windows.take(slice(lo, lo + chunk)), masks[lo:lo + chunk]
        pred = forecaster.predict(hide(part, mask, futr_exog=forecaster.futr_exog), mask)
        frame = CellFrame.of(part, mask)
        gm, sg = model_point_and_spread(pred, frame)
        b = np.broadcast_to(np.stack([lead_buckets(mk, task) for mk in mask])[:, :, None, None], mask.shape)
        g = np.broadcast_to(frame.group, mask.shape)
        region = np.broadcast_to(np.asarray(part.region, dtype=np.int64)[:, None, None, None], mask.shape)
        scale = np.broadcast_to(frame.transform.scale.numpy().astype(np.float64), mask.shape)
        parts.append(Residuals((frame.to_model(part.traffic) - gm)[mask], sg[mask], b[mask], g[mask], gm[mask],
                               (part.traffic == 0)[mask], frame.pull(gm)[mask], frame.lead[mask], region[mask],
                               (frame.g_day - gm)[mask], scale[mask]))
    return Residuals.concat(parts)


def calibration_windows(city: City, split: str, stride: int, scalers: CityScalers | None = None) -> Windows:
    """Windows of `city`'s `split` regions every `stride` steps, on the city's benchmark scale."""
    regions = city.regions(split)
    if regions.size == 0:
        raise CalibrationError(f"{city.name} has no {split!r} regions to calibrate on")
    return make_windows(city, regions=regions, stride=stride, scalers=scalers or CityScalers.fit(city))


def city_residuals(forecaster: Forecaster, city: City, tasks: Sequence[str] = ("short", "long", "generation"),
                   split: str = "val", stride: int = 8, seed: int = 0) -> dict[tuple[str, str], Residuals]:
    """{(city, task): residuals} of the forecaster's raw predictions on `city`'s `split` regions, for the
    tasks it serves there (a calibrated forecaster is read uncalibrated)."""
    from ..evaluate import window_masks

    if getattr(forecaster, "calibration", None) is not None:  # fit on the raw distribution, never on a calibrated one
        forecaster = copy.copy(forecaster)
        forecaster.calibration = None
    win = calibration_windows(city, split, stride)
    fitted = {}
    for task in tasks:
        if task not in forecaster.tasks:
            continue
        try:
            fitted[(city.name, task)] = residuals(forecaster, win, window_masks(win, task, seed), task)
        except NotApplicable:
            continue
    return fitted


#: region ids of a synthetic draw's regions in a calibration fit: DRAW_REGION_OFFSET * (seed + 1) + region
DRAW_REGION_OFFSET = 1000


def refuse_own_draw(name: str, seeds: Sequence[int]) -> None:
    """CalibrationError when `seeds` holds the seed of the synthetic preset `name` itself: its test regions
    score the calibration, so they may not join its fit (nothing for a city that is not a preset)."""
    from ..data.synthetic import SYNTHETIC_PRESETS

    own = SYNTHETIC_PRESETS[name].seed if name in SYNTHETIC_PRESETS else None
    if own is not None and own in seeds:
        raise CalibrationError(f"calibration draws: seed {own} is {name}'s own draw, whose test regions "
                               "score the calibration; choose other seeds")


def draw_residuals(forecaster: Forecaster | Callable[[City], Forecaster], city: City, seeds: Sequence[int],
                   tasks: Sequence[str], stride: int, seed: int = 0) -> dict[tuple[str, str], list[Residuals]]:
    """{(city, task): [residuals]} on the val and test regions of other draws of the synthetic preset `city`
    (the same generator with the given `seeds`: cities no model here was trained on), each draw's regions
    numbered DRAW_REGION_OFFSET * (seed + 1) + region so that leave-one-region-out holds them out one by
    one, and the same area of the preset at another granularity (the same seed) together.
    `forecaster` is one model for every draw (a pre-trained network), or a function of the draw that
    builds it (a baseline fitted on that draw's training regions, as on the preset itself).
    A city that is not a synthetic preset gets none; a seed equal to the city's own is refused (its test
    regions are the ones the calibration is scored on)."""
    from ..data.synthetic import SYNTHETIC_PRESETS, city_from_name

    if city.name not in SYNTHETIC_PRESETS or city.meta.get("generator") != "forecasting.data.synthetic":
        return {}
    refuse_own_draw(city.name, seeds)
    out: dict[tuple[str, str], list[Residuals]] = {}
    for s in sorted(set(int(x) for x in seeds)):
        draw = city_from_name(city.name, seed=s)
        model = forecaster if isinstance(forecaster, Forecaster) else forecaster(draw)
        for split in ("val", "test"):
            for key, r in city_residuals(model, draw, tasks, split, stride, seed).items():
                out.setdefault(key, []).append(dataclasses.replace(r, region=r.region + DRAW_REGION_OFFSET * (s + 1)))
    return out


def with_draws(own: dict[tuple[str, str], Residuals], forecaster: Forecaster | Callable[[City], Forecaster],
               city: City, seeds: Sequence[int], tasks: Sequence[str], stride: int, seed: int = 0,
               cache: dict | None = None) -> dict[tuple[str, str], Residuals]:
    """`own` ({(city, task): residuals} of `city`) with each task's residuals on the draws `seeds` of the
    synthetic preset `city` appended (`draw_residuals`, seed by seed in order); unchanged without seeds or
    for a city that is not a preset. `cache` keeps each draw's residuals under '<city> draw <seed>', so a
    forecaster calibrated on several cities of one preset (the planning bench's seeded draws) computes them once."""
    if not seeds:
        return own
    refuse_own_draw(city.name, seeds)  # before any draw is computed
    extra: dict[tuple[str, str], list[Residuals]] = {}
    for s in sorted({int(x) for x in seeds}):
        key = f"{city.name} draw {s}"
        part = cache[key] if cache is not None and key in cache else draw_residuals(forecaster, city, [s], tasks,
                                                                                     stride, seed)
        if cache is not None:
            cache[key] = part
        for task_key, parts in part.items():
            extra.setdefault(task_key, []).extend(parts)
    return {key: Residuals.concat([r, *extra.get(key, [])]) for key, r in own.items()}


def fitted_residuals(forecaster: Forecaster, cities: Sequence[City],
                     tasks: Sequence[str] = ("short", "long", "generation"), split: str = "val",
                     stride: int = 8, seed: int = 0, draws: Sequence[int] = ()) -> dict[tuple[str, str], Residuals]:
    """{(city, task): residuals} that `fit_calibration` fits on: each city's `split` regions, a synthetic
    preset's joined by its `draws` (`with_draws`); CalibrationError when the forecaster serves none."""
    fitted: dict[tuple[str, str], Residuals] = {}
    for city in cities:
        own = city_residuals(forecaster, city, tasks, split, stride, seed)
        fitted.update(with_draws(own, forecaster, city, draws, tasks, stride, seed))
    if not fitted:
        raise CalibrationError(f"{forecaster.name} served none of the tasks {list(tasks)} on the {split} regions")
    return fitted
