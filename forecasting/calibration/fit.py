"""Fitting the calibration on val regions: residuals of a forecaster's raw predictions, the persistence
anchor's weights, the residual tables per city and task (own or pooled over cities, chosen by
leave-one-region-out coverage) and the dead zone. The method is described in `forecasting.calibration`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from ..anchor import ValueSpace, fit_seasonal, fit_weights, weight_at, with_season
from ..data import City, CityScalers, Windows, make_windows
from ..interface import Forecaster, NotApplicable, hide
from .tables import (
    GROUPS, MAP_LEVELS, MIN_WIDTH_REGIONS, POOL_WEIGHTS, POOLED, WIDTHS, ZERO_SHARES, Calibration, CalibrationError,
    CellFrame, ResidualTable, lead_buckets, model_point_and_spread, zero_level,
)


# ----------------------------------------------------------------------------------------------------
# Fitting on val regions
# ----------------------------------------------------------------------------------------------------


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


def _quantile_chunks(res: Residuals, table: ResidualTable, levels: np.ndarray, chunk: int = 20_000):
    """(slice, Q, idle atom) per chunk of `res`'s entries: the calibrated model-space quantiles Q (L, E) at
    `levels` and whether each is the idle cells' atom at 0."""
    for lo in range(0, res.numer.size, chunk):
        sl = slice(lo, lo + chunk)
        y = table.model_quantile(levels[:, None], res.bucket[None, sl], res.group[None, sl],
                                 res.point[None, sl], res.spread[None, sl])
        yield sl, y, table.idle_atom(levels[:, None], res.bucket[None, sl], res.group[None, sl])


def zero_brier(res: Residuals, table: ResidualTable, shares: Sequence[float], n_levels: int = 32) -> np.ndarray:
    """(len(GROUPS), len(shares)) summed Brier scores of P(y = 0) over `res`'s entries of each cell group for
    each dead-zone share: P(y = 0) is the share of the calibrated quantiles at levels (k + 1/2) / n_levels
    that fall in the dead zone."""
    out = np.zeros((len(GROUPS), len(shares)))
    for sl, y, atom in _quantile_chunks(res, table, (np.arange(n_levels) + 0.5) / n_levels):
        for k, share in enumerate(shares):
            p_zero = ((y <= zero_level(share)) | atom).mean(axis=0)
            out[:, k] += np.bincount(res.group[sl], weights=(p_zero - res.is_zero[sl]) ** 2, minlength=len(GROUPS))
    return out


def heldout_pit(res: Residuals, table: ResidualTable, zero_share: float | np.ndarray = 0.0, n_levels: int = 200,
                seed: int = 0) -> np.ndarray:
    """Randomised PIT of `res`'s truths under `table`'s calibrated distribution with the dead zone
    `zero_share`, for entries whose residuals are taken around the table's centre (`Residuals.anchored`
    with the table's weights).

    With Q(a) the calibrated model-space quantiles at levels a_k = (k + 1/2) / n_levels and A(a) whether
    level a is the atom at 0 (Q(a) in the dead zone, or the idle atom): u = mean_k [Q(a_k) <= g(y) or A(a_k)] for
    a positive truth, u = V mean_k A(a_k) with V ~ U(0, 1) for a zero truth (spread over the atom).
    """
    u = np.empty(res.numer.size)
    rng = np.random.default_rng(seed)
    for sl, y, idle in _quantile_chunks(res, table, (np.arange(n_levels) + 0.5) / n_levels):
        atom = (y <= zero_level(zero_share, res.group[None, sl])) | idle
        below = ((y <= (res.point + res.numer)[None, sl]) | atom).mean(axis=0)
        u[sl] = np.where(res.is_zero[sl], rng.uniform(size=below.size) * atom.mean(axis=0), below)
    return u


def pit_coverage(u: np.ndarray, nominal: float) -> float:
    """Share of PIT values u inside the central `nominal` band: the coverage of a predictive distribution
    with atoms (an idle cell's exact zeros), where a closed interval [0, 0] would count every zero truth as
    covered at any nominal level."""
    return float((np.abs(np.asarray(u) - 0.5) <= nominal / 2).mean())


def coverage_error(u: np.ndarray, nominal: Sequence[float] = (0.5, 0.8, 0.9)) -> float:
    """Mean over the `nominal` levels of |share of PIT values u in the central interval - nominal|."""
    return float(np.mean([abs(pit_coverage(u, c) - c) for c in nominal]))


def pooling_errors(own: Residuals, others: Sequence[Residuals], task: str, anchor: np.ndarray | None,
                   floor: float, zero_share: float | np.ndarray = 0.0, same_area: Sequence[bool] | None = None,
                   widths: Sequence[float] = (1.0,), flat: bool = False) -> np.ndarray | None:
    """Leave-one-region-out coverage errors (2, len(widths)) of a city's table fitted on its own val entries
    (row 0) and on every fitted city's (row 1), each with the band-width factors `widths` (columns): the
    mean over its held-out val regions of `coverage_error`; None with fewer than 2 regions.

    Each held-out region's entries are scored under (a) the table of the city's other val regions (thin
    rows borrowing from the pooled table of those and the other cities) and (b) the table of those and
    the other cities' entries pooled, both around the city's centre and with the city's floor, with the
    dead zone `zero_share`. Other cities flagged in `same_area` cover the same areas region by region (the
    same geography on another time axis): their entries of the held-out region are held out too, or the
    pooled table would have seen the region it is scored on. `flat`: tables standardised by 1.
    """
    return band_errors(list(held_out_tables(own, others, task, anchor, floor, same_area, flat)), zero_share, widths)


def band_errors(folds: list, zero_share: float | np.ndarray, widths: Sequence[float]) -> np.ndarray | None:
    """`pooling_errors` from the folds of `held_out_tables` (None without folds)."""
    errors = np.zeros((2, len(widths)))
    for held, alone, pooled in folds:
        for row, table in enumerate((alone, pooled)):
            for col, width in enumerate(widths):
                errors[row, col] += coverage_error(heldout_pit(held, table.widened(width), zero_share))
    return errors / len(folds) if folds else None


def held_out_tables(own: Residuals, others: Sequence[Residuals], task: str, anchor: np.ndarray | None,
                    floor: float | None, same_area: Sequence[bool] | None = None, flat: bool = False,
                    pool_weights: str = "entries"):
    """(held-out entries, own table, pooled table) for each of `own`'s val regions held out in turn (none
    with fewer than 2 regions): the tables of `pooling_errors`, fitted without the held-out region (the
    pooled one weighted by `pooled_weights`)."""
    regions = np.unique(own.region[own.region >= 0])
    if regions.size < 2:
        return
    for region in regions:
        held, rest = own.take(own.region == region), own.take(own.region != region)
        shared = same_area or [False] * len(others)
        kept = [o.take(o.region != region) if same else o for o, same in zip(others, shared)]
        pooled = pooled_table([rest, *kept], task, anchor, floor, flat, pool_weights)
        alone = ResidualTable.fit(rest.numer, rest.spread, rest.bucket, rest.group, task, shared=pooled,
                                  is_zero=rest.is_zero, anchor=anchor, floor=floor, flat=flat)
        yield held, alone, pooled


def quantile_score(res: Residuals, table: ResidualTable, zero_share: float | np.ndarray = 0.0,
                   n_levels: int = 19) -> float:
    """Mean pinball loss of the calibrated model-space quantiles at levels k / (n_levels + 1) against g(y),
    over `res`'s entries: a proper score (lower is better) that rewards sharp bands as well as calibrated ones.

    A quantile in the dead zone or the idle atom is the forecast 0, i.e. g(0) = G0, as is a zero truth:
    rho_a(d) = max(a d, (a - 1) d), d = g(y) - Q(a).
    """
    levels = (np.arange(n_levels) + 1) / (n_levels + 1)
    g0 = zero_level(0.0)
    total = 0.0
    for sl, y, idle in _quantile_chunks(res, table, levels):
        q = np.where((y <= zero_level(zero_share, res.group[None, sl])) | idle, g0, np.maximum(y, g0))
        truth = np.where(res.is_zero[sl], g0, res.point[sl] + res.numer[sl])
        d = truth[None] - q
        total += float(np.maximum(levels[:, None] * d, (levels[:, None] - 1) * d).sum())
    return total / max(res.numer.size * n_levels, 1)


def fold_scores(folds: Sequence[list], zero_share: float | np.ndarray) -> tuple[float, ...] | None:
    """Leave-one-region-out mean `quantile_score` of each variant's own tables over its `held_out_tables`
    folds (e.g. tables standardised by the forecaster's spread and by 1, `flat`), at width 1; None without
    folds (fewer than 2 regions)."""
    if not folds[0]:
        return None
    return tuple(float(np.mean([quantile_score(held, alone, zero_share) for held, alone, _ in f])) for f in folds)


def other_cities(around: dict[tuple[str, str], Residuals], key: tuple[str, str],
                 geographies: dict[str, str]) -> tuple[list[Residuals], list[bool]]:
    """The residuals of every other city fitted for `key`'s task, and whether each covers the same areas as
    `key`'s city (`geographies`, a city's own name where absent): the `others` and `same_area` of
    `held_out_choice`."""
    keys = [k for k in around if k[1] == key[1] and k != key]
    same = [geographies.get(k[0], k[0]) == geographies.get(key[0], key[0]) for k in keys]
    return [around[k] for k in keys], same


def fold_pits(folds: Sequence, row: int, width: float, zero_share: float | np.ndarray) -> list[np.ndarray]:
    """PIT values of each held-out region of `held_out_tables`'s folds under the fold's own (`row` 0) or
    pooled (1) table widened by `width`: the held-out regions as the chosen bands see them."""
    return [heldout_pit(held, (alone, pooled)[row].widened(width), zero_share) for held, alone, pooled in folds]


def level_map(u: np.ndarray) -> np.ndarray:
    """(len(MAP_LEVELS),) the level map L that makes PIT values `u` uniform: L(a) = the a-quantile of u
    (L(0) = 0, L(1) = 1, non-decreasing). A table whose quantile at nominal level a is taken at level L(a)
    has the PIT L^-1(u) (`through_map`), uniform on the entries u came from."""
    out = np.quantile(np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0), MAP_LEVELS)
    out[0], out[-1] = 0.0, 1.0
    return np.maximum.accumulate(out)


def through_map(u: np.ndarray, level_map_: np.ndarray) -> np.ndarray:
    """PIT values under the same table with the level map L: L^-1(u), the inverse of L's linear interpolation
    (flat stretches of L, levels no truth fell between, are split evenly)."""
    rising = np.asarray(level_map_, dtype=np.float64) + 1e-9 * np.arange(MAP_LEVELS.size)
    return np.interp(np.asarray(u, dtype=np.float64), rising / rising[-1], MAP_LEVELS)


def map_errors(pits: Sequence[np.ndarray]) -> tuple[float, float]:
    """(without, with the level map): mean `coverage_error` over the held-out regions' PIT values `pits` (one
    array per region) as they are, and through the level map fitted on the other regions' PIT values (so
    the map is scored on a region it did not see, as the band width is)."""
    plain = [coverage_error(u) for u in pits]
    mapped = [coverage_error(through_map(u, level_map(np.concatenate([v for j, v in enumerate(pits) if j != i]))))
              for i, u in enumerate(pits)]
    return float(np.mean(plain)), float(np.mean(mapped))


def best_bands(errors: np.ndarray, widths: Sequence[float]) -> tuple[int, int]:
    """(row, column) of the lowest error in `pooling_errors`'s table; ties go to the own table and to the
    width nearest 1 (the residuals as they are)."""
    order = sorted(np.ndindex(errors.shape), key=lambda rc: (abs(widths[rc[1]] - 1.0), rc[0]))
    best = order[0]
    for rc in order[1:]:
        if errors[rc] < errors[best] - 1e-12:
            best = rc
    return best


def check_pool_weights(pool_weights: str) -> str:
    """`pool_weights` if it is one of POOL_WEIGHTS, else a CalibrationError naming them."""
    if pool_weights not in POOL_WEIGHTS:
        raise CalibrationError(f"pool_weights must be one of {', '.join(POOL_WEIGHTS)}, not {pool_weights!r}")
    return pool_weights


#: the anchor's criteria (`calibration_from_residuals`)
ANCHOR_ERRORS = ("model", "value")


def check_anchor_error(anchor_error: str, fitted: dict[tuple[str, str], Residuals] | None = None) -> str:
    """`anchor_error` if it is one of ANCHOR_ERRORS (and, for "value", every fitted entry has its cell scale),
    else CalibrationError naming the choices."""
    if anchor_error not in ANCHOR_ERRORS:
        raise CalibrationError(f"anchor_error must be one of {', '.join(ANCHOR_ERRORS)}, not {anchor_error!r}")
    if anchor_error == "value":
        lacking = sorted(f"{c}/{t}" for (c, t), r in (fitted or {}).items() if r.value_space() is None)
        if lacking:
            raise CalibrationError(f"anchor_error 'value' needs each entry's cell scale, missing for "
                                   f"{', '.join(lacking)}: compute the residuals again (`fitted_residuals`)")
    return anchor_error


def pooled_weights(parts: Sequence[Residuals], pool_weights: str = "entries") -> np.ndarray | None:
    """Weights of the concatenated `parts`' entries in a pooled table: None ("entries": every entry counts
    once, so the city with the most val entries dominates) or ("cities") 1 / n_p for each of part p's n_p
    entries, so that every city (a part: one city's entries of the task, its draws included) counts as one."""
    if check_pool_weights(pool_weights) == "entries":
        return None
    return np.concatenate([np.full(p.numer.size, 1.0 / max(p.numer.size, 1)) for p in parts])


def pooled_table(parts: Sequence[Residuals], task: str, anchor: np.ndarray | None, floor: float | None,
                 flat: bool = False, pool_weights: str = "entries") -> ResidualTable:
    """A city's table fitted on the residuals of every part pooled (its own first), around the city's centre
    (`anchor`) and with its `floor` (`flat`: standardised by 1, not by the forecaster's spread), the parts
    weighted by `pooled_weights`."""
    pool = Residuals.concat(parts)
    return ResidualTable.fit(pool.numer, pool.spread, pool.bucket, pool.group, task, is_zero=pool.is_zero,
                             anchor=anchor, floor=floor, flat=flat, weight=pooled_weights(parts, pool_weights))


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


def fit_calibration(
    forecaster: Forecaster,
    cities: Sequence[City],
    tasks: Sequence[str] = ("short", "long", "generation"),
    split: str = "val",
    stride: int = 8,
    seed: int = 0,
    anchor: bool = True,
    draws: Sequence[int] = (),
    pool_weights: str = "entries",
    level_maps: bool = False,
) -> Calibration:
    """Residual tables per (city, task) and pooled over cities, from `forecaster` on the `split` regions,
    and the dead zone with the lowest Brier score of P(y = 0) over all of those entries (`anchor`: fit
    the persistence anchor too).

    `draws`: seeds of other draws of the synthetic presets among `cities`, whose val and test regions join
    the preset's own val entries as more regions (`draw_residuals`). A preset has few val regions (the
    synthetic city 2 of 16), which may be busier or quieter than its test regions; the draws come from the
    same generator, so their regions stand for the preset's unseen ones, and with them the band width is
    chosen too (MIN_WIDTH_REGIONS). `pool_weights`: how the tables pooled over cities weigh them;
    `level_maps`: whether a table may take a level map (both `calibration_from_residuals`)."""
    check_pool_weights(pool_weights)
    seeds = sorted({int(x) for x in draws})
    fitted = fitted_residuals(forecaster, cities, tasks, split, stride, seed, seeds)
    meta = {"forecaster": forecaster.name, "split": split, "stride": stride, "seed": seed}
    if seeds:
        meta["draws"] = seeds
    return calibration_from_residuals(fitted, meta, anchor=anchor, geographies={c.name: c.geography for c in cities},
                                      pool_weights=pool_weights, level_maps=level_maps)


def fit_pooled_calibration(forecaster_for: Callable[[City], Forecaster], city: City, pool: Sequence[City] = (),
                           tasks: Sequence[str] = ("short", "long", "generation"), split: str = "val",
                           stride: int = 8, cache: dict | None = None, draws: Sequence[int] = (),
                           pool_weights: str = "entries", level_maps: bool = False) -> Calibration:
    """`city`'s calibration fitted on its `split` regions and those of the `pool` cities, the forecaster
    built for each city by `forecaster_for` (a baseline fitted on that city's training regions): the same
    choice between own and pooled tables a checkpoint's calibration fitted on several cities has, for a
    forecaster that is fitted per city. `cache` ({city name: residuals}) spares re-fitting pool cities (and
    draws, `with_draws`). `draws`: as in `fit_calibration`, the val and test regions of other draws of a
    synthetic preset `city` join its val regions (the forecaster built on each draw); the pool cities'
    residuals stay their own. `pool_weights`, `level_maps`: as in `fit_calibration`.
    """
    check_pool_weights(pool_weights)
    seeds = sorted({int(x) for x in draws})
    fitted = city_residuals(forecaster_for(city), city, tasks, split, stride)
    if not fitted:
        raise CalibrationError(f"the forecaster served none of the tasks {list(tasks)} "
                               f"on {city.name}'s {split} regions")
    cache = {} if cache is None else cache
    fitted = with_draws(fitted, forecaster_for, city, seeds, tasks, stride, cache=cache)
    for other in pool:
        if other.name == city.name:
            continue
        if other.name not in cache:
            try:
                cache[other.name] = city_residuals(forecaster_for(other), other, tasks, split, stride)
            except CalibrationError:  # no such regions there: the pool goes without that city
                cache[other.name] = {}
        fitted.update(cache[other.name])
    meta = {"split": split, "stride": stride, "pool": [c.name for c in pool if c.name != city.name]}
    if seeds:
        meta["draws"] = seeds
    return calibration_from_residuals(fitted, meta, geographies={c.name: c.geography for c in [city, *pool]},
                                      pool_weights=pool_weights, level_maps=level_maps)


def calibration_cities(calibration: Calibration) -> list[str]:
    """The cities a calibration was fitted on (from its meta), in name order."""
    return sorted({key.split("/")[0] for key in calibration.meta.get("entries", {})})


def calibration_from_residuals(fitted: dict[tuple[str, str], Residuals], meta: dict | None = None,
                               anchor: bool = True, pool_cities: bool = True,
                               geographies: dict[str, str] | None = None,
                               pool_weights: str = "entries", level_maps: bool = False,
                               anchor_error: str = "model") -> Calibration:
    """Tables per (city, task) and pooled over cities per task, and the dead zone `zero_share`: per cell group,
    the share of `ZERO_SHARES` with the lowest Brier score of P(y = 0) over that group's fitted entries (ties:
    the smaller), so that cells with traffic in the window (which may never touch exact zero) do not get
    the dead zone idle cells need.

    With `anchor`, each table first gets its persistence weights (`forecasting.anchor.fit_weights`; a
    city's thin leads take the pooled weights) and its seasonal weight (`fit_seasonal`, after the
    persistence step; a city with few entries a day after an observation takes the pooled one), both chosen
    by the mean absolute error `anchor_error` (`ANCHOR_ERRORS`): "model", in the network's per-cell log space
    (every cell alike; the default), or "value", in the benchmark's normalised units (busy cells weigh more;
    needs every entry's cell scale, recorded as meta["anchor_error"]). Measured on val
    (`bench/results/anchor_criterion.md`): "value" is 0.7% better held out within a city's val regions but
    1-5% worse when the weights move to another city's regions (zero-shot), and was worse on every test cell.
    Its residuals are then taken around the moved centre.

    With `pool_cities`, a city whose val entries come from two or more regions then keeps its own table
    or takes one fitted on every city's entries of the task (around each city's own centre, with its own
    floor), and scales its bands by a width factor c of `WIDTHS` (`ResidualTable.quantile`), whichever
    pair covers its held-out val regions best (`pooling_errors`): a city with few val regions that
    disagree with each other (the synthetic city's two) borrows the others' strength, one whose regions
    agree keeps its own bands; a city whose new regions stray further from the point than its val regions
    do between themselves widens them. The width is chosen only with MIN_WIDTH_REGIONS val regions or
    more: with two, the held-out score is one pair's disagreement (a quiet region under the bands of a
    busy one and the reverse), and widening to cover the narrower one's misses always looks right,
    since the other's coverage cannot rise above 1 (measured on the synthetic city: c = 1.5, the grid's
    edge, for short and long). Before these, a sampling forecaster's tables are standardised by its own
    spread sg or by 1 (`flat`: the spread left out), whichever gives the held-out val regions the lower
    quantile score (`fold_scores`; a proper score, so a spread that only adds noise to the bands loses).
    Last, with `level_maps` and MIN_WIDTH_REGIONS val regions or more, the table may take a level map (`level_map`: its
    quantile at nominal level a is read at the level L(a) where the held-out val regions' PIT values reach a),
    which reshapes the bands where a width cannot (a central band too narrow under right outer ones); it is
    kept when it lowers the held-out coverage error of regions its map was not fitted on (`map_errors`).
    The errors, scores and choices are stored in meta["pooling"].
    `geographies` ({city: `City.geography`}) tells cities that cover the same areas (held out together).
    `pool_weights` ("entries" or "cities", `pooled_weights`): how every table pooled over cities, and the
    dead zone's Brier score, weigh the cities (every entry once, or every (city, task) as one); the pooled
    persistence and seasonal weights (only a fallback) weigh every entry once.
    """
    geography = geographies or {}
    check_pool_weights(pool_weights)  # before any fit
    check_anchor_error(anchor_error, fitted if anchor else {})
    tables, around = {}, {}
    for task in sorted({t for _, t in fitted}):
        parts = [r for (_, t), r in fitted.items() if t == task]
        r = Residuals.concat(parts)
        value = r.value_space() if anchor_error == "value" else None
        w = fit_weights(r.numer, r.pull, r.lead, value=value) if anchor else None
        v = fit_seasonal(r.numer, r.shift(w), r.season, value=value) if anchor else 0.0
        r = r if w is None else r.anchored(w, v)
        tables[(POOLED, task)] = ResidualTable.fit(r.numer, r.spread, r.bucket, r.group, task, is_zero=r.is_zero,
                                                   anchor=w, seasonal=v, weight=pooled_weights(parts, pool_weights))
    for key, r in fitted.items():  # a city's thin (group, bucket) rows borrow the pooled row of the same group
        pooled = tables[(POOLED, key[1])]
        value = r.value_space() if anchor_error == "value" else None
        w = fit_weights(r.numer, r.pull, r.lead, fallback=pooled.anchor, value=value) if anchor else None
        v = fit_seasonal(r.numer, r.shift(w), r.season, fallback=pooled.seasonal, value=value) if anchor else 0.0
        around[key] = r if w is None else r.anchored(w, v)
        r = around[key]
        tables[key] = ResidualTable.fit(r.numer, r.spread, r.bucket, r.group, key[1], shared=pooled,
                                        is_zero=r.is_zero, anchor=w, seasonal=v)
    zero_share = dead_zones(zero_briers(around, tables, pool_weights))
    choices = {}
    if pool_cities:
        for key, r in around.items():  # the spread, own table or every city's, and the width, held out on val
            others, same = other_cities(around, key, geography)
            table, record = held_out_choice(r, others, key[1], tables[key], zero_share, same, pool_weights, level_maps)
            if record is not None:
                tables[key], choices[f"{key[0]}/{key[1]}"] = table, record
    brier = zero_briers(around, tables, pool_weights)
    n = sum(r.numer.size for r in fitted.values()) if pool_weights == "entries" else len(fitted)
    meta = dict(meta or {})
    meta.update(pooling=choices, entries={f"{c}/{t}": int(r.numer.size) for (c, t), r in fitted.items()},
                zero_brier={group: {f"{s:g}": round(float(b) / n, 6) for s, b in zip(ZERO_SHARES, row)}
                            for group, row in zip(GROUPS, brier)})
    if anchor and anchor_error != "model":  # the default is left out of the meta (files before it stay equal)
        meta["anchor_error"] = anchor_error
    if pool_weights != "entries":
        meta["pool_weights"] = pool_weights
    if level_maps:
        meta["level_maps"] = True
    return Calibration(tables, meta, dead_zones(brier))


def held_out_choice(own: Residuals, others: Sequence[Residuals], task: str, table: ResidualTable,
                    zero_share: float | np.ndarray, same_area: Sequence[bool], pool_weights: str = "entries",
                    level_maps: bool = False) -> tuple[ResidualTable, dict | None]:
    """A city's table for `task` after the val choices of `calibration_from_residuals` (its own `table`
    fitted on `own`, the other cities' residuals `others`, pooled tables weighted by `pool_weights`), and
    their record; (`table`, None) with fewer than 2 val regions. The held-out folds are fitted once per
    variant and serve both choices."""
    anchor = table.anchor
    folds = {False: list(held_out_tables(own, others, task, anchor, table.floor, same_area,
                                         pool_weights=pool_weights))}
    scores = None  # a sampling forecaster: does its own spread sharpen the held-out regions' bands?
    if not np.allclose(own.spread, 1.0):
        folds[True] = list(held_out_tables(own, others, task, anchor, None, same_area, flat=True,
                                           pool_weights=pool_weights))
        scores = fold_scores([folds[False], folds[True]], zero_share)
    flat = scores is not None and scores[1] < scores[0]
    if flat:
        shared = pooled_table([own, *others], task, anchor, None, flat=True, pool_weights=pool_weights)
        table = ResidualTable.fit(own.numer, own.spread, own.bucket, own.group, task, shared=shared,
                                  is_zero=own.is_zero, anchor=anchor, flat=True, seasonal=table.seasonal)
    n_regions = np.unique(own.region[own.region >= 0]).size
    widths = WIDTHS if n_regions >= MIN_WIDTH_REGIONS else (1.0,)
    errors = band_errors(folds[flat], zero_share, widths)
    if errors is None:
        return table, None
    row, col = best_bands(errors, widths)
    one = widths.index(1.0)
    record = {"own": round(float(errors[0, one]), 4), "pooled": round(float(errors[1, one]), 4),
              "chosen": ("own", "pooled")[row], "width": widths[col], "error": round(float(errors[row, col]), 4)}
    if scores is not None:
        record.update(spread="flat" if flat else "model", score_model=round(scores[0], 5),
                      score_flat=round(scores[1], 5))
    if row == 1:
        table = replace(pooled_table([own, *others], task, anchor, table.floor, flat, pool_weights),
                        seasonal=table.seasonal)
    table = table.widened(widths[col])
    if level_maps and n_regions >= MIN_WIDTH_REGIONS:  # the level map: chosen, as the width is, on unseen regions
        pits = fold_pits(folds[flat], row, widths[col], zero_share)
        plain, mapped = map_errors(pits)
        record.update(error_mapped=round(mapped, 4), level_map=bool(mapped < plain - 1e-12))
        if record["level_map"]:
            table = replace(table, level_map=level_map(np.concatenate(pits)))
    return table, record


def dead_zones(brier: np.ndarray) -> np.ndarray:
    """(len(GROUPS),) the share of `ZERO_SHARES` with the lowest Brier score per cell group (ties: the smaller;
    a group without entries gets 0)."""
    return np.asarray([ZERO_SHARES[int(np.argmin(row))] for row in brier], dtype=np.float64)


def zero_briers(around: dict[tuple[str, str], Residuals], tables: dict[tuple[str, str], ResidualTable],
                pool_weights: str = "entries") -> np.ndarray:
    """(len(GROUPS), len(ZERO_SHARES)) Brier scores of P(y = 0) per cell group and dead zone, summed over
    every table's entries ("entries"), or each table's mean Brier score summed over the tables ("cities":
    every (city, task) counts as one, `pooled_weights`)."""
    per = [zero_brier(r, tables[key], ZERO_SHARES) / (1 if pool_weights == "entries" else max(r.numer.size, 1))
           for key, r in around.items()]
    return sum(per)


