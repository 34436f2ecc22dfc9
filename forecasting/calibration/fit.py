"""Fitting the calibration on val regions: the persistence anchor's weights, the residual tables per city and
task (own or pooled over cities, chosen by leave-one-region-out coverage, `.heldout`) and the dead zone, from
a forecaster's val residuals (`.residuals`). The method is described in `forecasting.calibration`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from ..anchor import fit_seasonal, fit_weights
from ..data import City
from ..interface import Forecaster
from .heldout import (
    band_errors, best_bands, check_pool_weights, fold_pits, fold_scores, held_out_tables, level_map, map_errors,
    nested_errors, other_cities, outer_errors, pooled_table, pooled_weights, width_pairs, zero_brier,
)
from .residuals import Residuals, city_residuals, fitted_residuals, with_draws
from .tables import GROUPS, MIN_WIDTH_REGIONS, POOLED, WIDTHS, ZERO_SHARES, Calibration, CalibrationError, ResidualTable


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
    outer_widths: bool = False,
) -> Calibration:
    """Residual tables per (city, task) and pooled over cities, from `forecaster` on the `split` regions,
    and the dead zone with the lowest Brier score of P(y = 0) over all of those entries (`anchor`: fit
    the persistence anchor too).

    `draws`: seeds of other draws of the synthetic presets among `cities`, whose val and test regions join
    the preset's own val entries as more regions (`draw_residuals`). A preset has few val regions (the
    synthetic city 2 of 16), which may be busier or quieter than its test regions; the draws come from the
    same generator, so their regions stand for the preset's unseen ones, and with them the band width is
    chosen too (MIN_WIDTH_REGIONS). `pool_weights`: how the tables pooled over cities weigh them;
    `level_maps`: whether a table may take a level map; `outer_widths`: whether it may take an outer width (all
    `calibration_from_residuals`)."""
    check_pool_weights(pool_weights)
    seeds = sorted({int(x) for x in draws})
    fitted = fitted_residuals(forecaster, cities, tasks, split, stride, seed, seeds)
    return calibration_from_residuals(fitted, fit_meta(forecaster.name, split, stride, seed, seeds), anchor=anchor, geographies={c.name: c.geography for c in cities},
                                      pool_weights=pool_weights, level_maps=level_maps, outer_widths=outer_widths)


def fit_meta(forecaster: str, split: str, stride: int, seed: int, draws: Sequence[int] = ()) -> dict:
    """The meta of a calibration fitted on `forecaster`'s residuals (`fitted_residuals` with these settings)."""
    meta = {"forecaster": forecaster, "split": split, "stride": stride, "seed": seed}
    if draws:
        meta["draws"] = sorted({int(x) for x in draws})
    return meta


def fit_pooled_calibration(forecaster_for: Callable[[City], Forecaster], city: City, pool: Sequence[City] = (),
                           tasks: Sequence[str] = ("short", "long", "generation"), split: str = "val",
                           stride: int = 8, cache: dict | None = None, draws: Sequence[int] = (),
                           pool_weights: str = "entries", level_maps: bool = False,
                           outer_widths: bool = False) -> Calibration:
    """`city`'s calibration fitted on its `split` regions and those of the `pool` cities, the forecaster
    built for each city by `forecaster_for` (a baseline fitted on that city's training regions): the same
    choice between own and pooled tables a checkpoint's calibration fitted on several cities has, for a
    forecaster that is fitted per city. `cache` ({city name: residuals}) spares re-fitting pool cities (and
    draws, `with_draws`). `draws`: as in `fit_calibration`, the val and test regions of other draws of a
    synthetic preset `city` join its val regions (the forecaster built on each draw); the pool cities'
    residuals stay their own. `pool_weights`, `level_maps`, `outer_widths`: as in `fit_calibration`.
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
                                      pool_weights=pool_weights, level_maps=level_maps, outer_widths=outer_widths)


def calibration_cities(calibration: Calibration) -> list[str]:
    """The cities a calibration was fitted on (from its meta), in name order."""
    return sorted({key.split("/")[0] for key in calibration.meta.get("entries", {})})


def calibration_from_residuals(fitted: dict[tuple[str, str], Residuals], meta: dict | None = None,
                               anchor: bool = True, pool_cities: bool = True,
                               geographies: dict[str, str] | None = None,
                               pool_weights: str = "entries", level_maps: bool = False,
                               anchor_error: str = "model", outer_widths: bool = False) -> Calibration:
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
    With `outer_widths` instead (the two exclude each other), such a table may scale the steps of its
    quantiles beyond the central 50% band by an outer width c_out of `WIDTHS` and the band itself by c
    (`ResidualTable.quantile`): the pair with the lowest held-out error, kept when the pair chosen on the
    other regions beats the single width chosen there on each region in turn (`nested_errors`). Measured on
    val (`bench/results/calibration_levers.md`): generation's central band too narrow under right outer ones.
    The errors, scores and choices are stored in meta["pooling"].
    `geographies` ({city: `City.geography`}) tells cities that cover the same areas (held out together).
    `pool_weights` ("entries" or "cities", `pooled_weights`): how every table pooled over cities, and the
    dead zone's Brier score, weigh the cities (every entry once, or every (city, task) as one); the pooled
    persistence and seasonal weights (only a fallback) weigh every entry once.
    """
    geography = geographies or {}
    check_pool_weights(pool_weights)  # before any fit
    if level_maps and outer_widths:
        raise CalibrationError("level_maps and outer_widths both reshape the bands beyond one width: choose one")
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
            table, record = held_out_choice(r, others, key[1], tables[key], zero_share, same, pool_weights, level_maps,
                                            outer_widths)
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
    if outer_widths:
        meta["outer_widths"] = True
    return Calibration(tables, meta, dead_zones(brier))


def held_out_choice(own: Residuals, others: Sequence[Residuals], task: str, table: ResidualTable,
                    zero_share: float | np.ndarray, same_area: Sequence[bool], pool_weights: str = "entries",
                    level_maps: bool = False, outer_widths: bool = False) -> tuple[ResidualTable, dict | None]:
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
    if outer_widths and n_regions >= MIN_WIDTH_REGIONS:  # the outer width: kept only if it wins on unseen regions
        pair_errors = outer_errors(folds[flat], row, zero_share, widths)
        single, paired = nested_errors(pair_errors, widths)
        c, c_out = width_pairs(widths)[int(np.argmin(pair_errors.mean(axis=0)))]
        kept = paired < single - 1e-12
        record.update(nested_one=round(single, 4), nested_two=round(paired, 4), outer_width=c_out if kept else None)
        if kept:
            record.update(width=c, error_outer=round(float(pair_errors.mean(axis=0).min()), 4))
            table = table.widened(c, c_out)
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
