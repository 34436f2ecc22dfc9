"""Cell-level variation of a synthetic city: level shifts, all-zero cells and intermittent cells.

Step 10 of the model of `forecasting.data.synthetic`, applied to the noisy users U and traffic X of the
kept cells, (T, N) each, after step 9; every stage is skipped when its knobs are at their defaults
(then the presets are unchanged). Each stage multiplies U and X by the same factor, so a cell's
users and traffic stay consistent.

10a. Level shifts. Each region and, independently, each cell steps once with probability
     p = `level_shift_prob`, at a slot tau ~ U[T/10, 9T/10), by a factor exp(z), z ~ N(0, s^2),
     s = `level_shift_sigma`: X_i(t) <- X_i(t) exp(z 1[t >= tau]) (a new building, a closed mall, a
     re-homed antenna).

10b. All-zero cells. round(f N) cells (f = `zero_cell_share`, water cells counted first) carry no
     traffic and no users at all (no antenna of this operator there); the extra cells are the
     lowest-ranked by log(mean X_i) + e_i, e_i ~ N(0, 1), so quiet cells are more likely empty.

10c. Intermittent cells. A share `intermittent_share` of the remaining cells carries traffic only in
     sporadic spells: an on/off Markov chain with mean spell length L = `intermittent_hours` (in slots,
     >= 1) and stationary on-share d = `intermittent_duty`, i.e. P(on -> off) = 1 / L and
     P(off -> on) = min(1, d / ((1 - d) L)); X and U are zero while off. At least one slot is on.
"""

from __future__ import annotations

import numpy as np

from .synthetic_config import SyntheticCityConfig

_VARIATION_FIELDS = ("level_shift_prob", "zero_cell_share", "intermittent_share")


def has_cell_variation(config: SyntheticCityConfig) -> bool:
    """Whether any stage of step 10 changes the city (a knob that switches a stage on is non-zero)."""
    return any(getattr(config, name) > 0 for name in _VARIATION_FIELDS)


def level_shift_factors(
    rng: np.random.Generator, config: SyntheticCityConfig, n_steps: int, region_of_cell: np.ndarray
) -> np.ndarray:
    """The multiplicative level-step factors of 10a: (T, N) float32 (ones where nothing steps)."""
    n_cells = region_of_cell.size
    p, s = config.level_shift_prob, config.level_shift_sigma

    def steps(n: int) -> np.ndarray:  # (T, n) log factors: z after tau, 0 before (or no step at all)
        hit = rng.random(n) < p
        tau = rng.integers(n_steps // 10, max(n_steps // 10 + 1, 9 * n_steps // 10), size=n)
        z = rng.normal(0.0, s, size=n) * hit
        return (np.arange(n_steps)[:, None] >= tau[None, :]) * z[None, :]

    log_factor = steps(config.n_regions)[:, region_of_cell] + steps(n_cells)
    return np.exp(log_factor).astype(np.float32)


def zero_cells(rng: np.random.Generator, config: SyntheticCityConfig, traffic: np.ndarray) -> np.ndarray:
    """Boolean (N,) mask of the all-zero cells of 10b (the cells already zero throughout included)."""
    n_cells = traffic.shape[1]
    empty = traffic.max(axis=0) <= 0
    n_extra = int(round(config.zero_cell_share * n_cells)) - int(empty.sum())
    score = np.log(np.maximum(traffic.mean(axis=0), 1e-12)) + rng.standard_normal(n_cells)
    if n_extra > 0:
        score[empty] = np.inf
        empty = empty.copy()
        empty[np.argsort(score)[:n_extra]] = True
    return empty


def spells(rng: np.random.Generator, n_steps: int, n_series: int, duty: float, mean_length: float) -> np.ndarray:
    """On/off Markov chains of 10c: (T, n) bool, stationary on-share `duty`, mean spell `mean_length` slots."""
    length = max(1.0, mean_length)
    p_off = 1.0 / length
    p_on = min(1.0, duty * p_off / (1.0 - duty))
    u = rng.random((n_steps, n_series))
    on = np.empty((n_steps, n_series), dtype=bool)
    on[0] = u[0] < duty
    for t in range(1, n_steps):
        on[t] = np.where(on[t - 1], u[t] >= p_off, u[t] < p_on)
    silent = np.flatnonzero(~on.any(axis=0))
    on[rng.integers(n_steps, size=silent.size), silent] = True  # at least one slot on
    return on


def apply_cell_variation(
    rng: np.random.Generator,
    config: SyntheticCityConfig,
    users: np.ndarray,
    traffic: np.ndarray,
    region_of_cell: np.ndarray,
) -> dict:
    """Apply step 10 in place to users and traffic (T, N); return what was done (for `city.meta`)."""
    T, N = traffic.shape
    if config.level_shift_prob > 0:
        factor = level_shift_factors(rng, config, T, region_of_cell)
        users *= factor
        traffic *= factor
    empty = zero_cells(rng, config, traffic) if config.zero_cell_share > 0 else traffic.max(axis=0) <= 0
    users[:, empty] = 0.0
    traffic[:, empty] = 0.0
    intermittent = np.zeros(N, dtype=bool)
    if config.intermittent_share > 0:
        candidates = np.flatnonzero(~empty)
        n = int(round(config.intermittent_share * candidates.size))
        intermittent[rng.choice(candidates, size=n, replace=False)] = True
        slot_hours = 24.0 / config.slots_per_day
        on = spells(rng, T, n, config.intermittent_duty, config.intermittent_hours / slot_hours)
        users[:, intermittent] *= on
        traffic[:, intermittent] *= on
    return {"zero_cells": np.flatnonzero(empty).tolist(), "intermittent_cells": np.flatnonzero(intermittent).tolist()}
