"""Held-out scores of calibration tables on val regions: PIT coverage, quantile and Brier scores of regions a
table was not fitted on, the pooled tables and the band choices the fit (`forecasting.calibration.fit`) makes
with them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .residuals import Residuals
from .tables import (
    GROUPS, MAP_LEVELS, POOL_WEIGHTS, CalibrationError, ResidualTable, zero_level,
)


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


#: most held-out entries an outer-width fold is scored on (a seeded subsample above it): 64 width pairs a fold
OUTER_FOLD_ENTRIES = 30_000


def width_pairs(widths: Sequence[float]) -> list[tuple[float, float]]:
    """Every (inner width c, outer width c_out) pair of `widths`."""
    return [(c, c_out) for c in widths for c_out in widths]


def outer_errors(folds: Sequence, row: int, zero_share: float | np.ndarray, widths: Sequence[float],
                 cap: int = OUTER_FOLD_ENTRIES) -> np.ndarray:
    """(n_folds, len(widths)^2) `coverage_error` of each held-out region of `held_out_tables`'s folds under the
    fold's own (`row` 0) or pooled (1) table at every (width, outer width) pair of `width_pairs`; a region
    with more than `cap` entries is scored on a seeded subsample of them."""
    pairs = width_pairs(widths)
    out = np.zeros((len(folds), len(pairs)))
    for i, (held, alone, pooled) in enumerate(folds):
        if held.numer.size > cap:
            held = held.take(np.sort(np.random.default_rng(i).permutation(held.numer.size)[:cap]))
        table = (alone, pooled)[row]
        for j, (c, c_out) in enumerate(pairs):
            out[i, j] = coverage_error(heldout_pit(held, table.widened(c, c_out), zero_share))
    return out


def nested_errors(errors: np.ndarray, widths: Sequence[float]) -> tuple[float, float]:
    """(one width, two widths): the mean over held-out regions of each region's `outer_errors` at the pair
    chosen on the *other* regions (the lowest mean error there), among the pairs with c_out = c (one width)
    or among all pairs: each choice scored on a region it was not made on."""
    pairs = width_pairs(widths)
    single = [j for j, (c, c_out) in enumerate(pairs) if c == c_out]
    one, two = [], []
    for i in range(errors.shape[0]):
        rest = np.delete(errors, i, axis=0).mean(axis=0)
        one.append(errors[i, single[int(np.argmin(rest[single]))]])
        two.append(errors[i, int(np.argmin(rest))])
    return float(np.mean(one)), float(np.mean(two))


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
