"""Rolling-horizon (model-predictive) RRU sleep control: the fair rival of the reactive threshold policy.

Every R slots (`every`), at slot tau, the forecaster sees the real load up to tau (the short-term task:
up to 48 observed steps -> the following steps hidden) and forecasts the next `lookahead` slots; the
schedule for them is planned by the exact DP (on the point forecast, a quantile of the forecast, or the
expected cost over its samples with an optional chance constraint) starting from the RRUs active at tau - 1,
and only its first R slots are committed. Switching is counted across re-plans, since replay scores the
concatenated schedule. The forecasts do not depend on the decisions, so all of them are drawn in one batch
up front (`rolling_forecast`), then the re-plans run in order (`rolling_sleep`).

    fc = rolling_forecast(model, city, regions, first=16, stop=city.n_steps, every=4)
    plan = rolling_sleep(fc, truth, params, on="scenarios", epsilon=0.1)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from forecasting.data import WINDOW, City, make_windows
from forecasting.exog import known_for_horizon
from forecasting.interface import Forecaster, hide

from .demand import Demand, require_demand
from .errors import InputError
from .params import SleepParams
from .milp.sleep import SleepPlan, _plan, dp_over_costs, scenario_costs, slot_costs

LOOKAHEAD = 16  # the short-term task's horizon
MAX_OBSERVED = WINDOW - LOOKAHEAD  # 48 observed steps before each forecast


@dataclass
class RollingForecast:
    """Forecasts made at re-plan slots `starts`: raw traffic of the next slots, cells ordered like Demand."""

    starts: np.ndarray  # (P,) absolute steps tau at which a plan is made
    point: np.ndarray  # (P, N, lookahead) point forecast of slots tau .. tau + lookahead - 1 (NaN past stop)
    samples: np.ndarray | None  # (K, P, N, lookahead) or None for a point forecaster
    every: int
    first: int
    stop: int
    source: str

    def every_kth(self, every: int) -> RollingForecast:
        """These re-plans (drawn every `self.every` slots) kept every `every` slots (a multiple of it)."""
        k = every // self.every
        samples = None if self.samples is None else self.samples[:, ::k]
        return replace(self, starts=self.starts[::k], point=self.point[::k], samples=samples, every=every)


def replan_windows(n_steps: int, first: int, stop: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-plan slots tau = first, first + every, ... < stop and each one's 64-step window start.

    The window ends 16 slots after tau where the series allows (48 observed steps), starts at 0 early on
    (fewer observed steps) and at n_steps - 64 at the end (a shorter hidden tail).
    """
    if every < 1:
        raise InputError(f"the re-plan interval R must be >= 1 slot, got {every}")
    if n_steps < WINDOW:
        raise InputError(f"series of {n_steps} steps are shorter than one {WINDOW}-step window")
    if not 1 <= first < stop <= n_steps:
        raise InputError(f"the planned slots [{first}, {stop}) must lie in [1, {n_steps}] with at least one observed slot")
    taus = np.arange(first, stop, every)
    starts = np.clip(taus - MAX_OBSERVED, 0, n_steps - WINDOW)
    return taus, starts


def rolling_forecast(forecaster: Forecaster, city: City, regions: np.ndarray, first: int, stop: int | None = None,
                     every: int = 4, lookahead: int = LOOKAHEAD) -> RollingForecast:
    """Short-term forecasts of `regions` at every re-plan slot, each conditioned on the real load before it."""
    regions = np.asarray(regions, dtype=int)
    stop = city.n_steps if stop is None else stop
    taus, starts = replan_windows(city.n_steps, first, stop, every)
    if not 1 <= lookahead <= WINDOW:
        raise InputError(f"lookahead must lie in 1..{WINDOW}, got {lookahead}")
    H, W = city.grid
    n_starts = city.n_steps - WINDOW + 1
    win = make_windows(city, regions=regions, stride=1)
    pick = (np.arange(regions.size)[:, None] * n_starts + starts[None, :]).ravel()  # region-major
    win = win.take(pick)
    offset = np.tile(taus - starts, regions.size)  # first hidden step inside each window
    mask = np.arange(WINDOW)[None, :] >= offset[:, None]  # (n, 64): everything from tau on is hidden
    mask = np.broadcast_to(mask[:, :, None, None], win.traffic.shape).copy()
    pred = forecaster.predict(hide(win, mask, futr_exog=known_for_horizon(forecaster, city)), mask)
    scale = win.scalers.traffic

    def cut(x: np.ndarray) -> np.ndarray:
        """(n, 64, H, W) normalised -> (P, N, lookahead) raw, slots tau .. tau + lookahead - 1."""
        raw = np.clip(scale.inverse(np.asarray(x, dtype=np.float64)), 0.0, None)
        out = np.full((regions.size * taus.size, lookahead, H, W), np.nan)
        for k, o in enumerate(offset):
            n = min(lookahead, WINDOW - o)
            out[k, :n] = raw[k, o:o + n]
        out = out.reshape(regions.size, taus.size, lookahead, H, W)
        return np.moveaxis(out, 2, -1).transpose(1, 0, 2, 3, 4).reshape(taus.size, -1, lookahead)

    point = cut(pred.mean)
    samples = None
    if pred.samples is not None and pred.samples.shape[0] >= 2:
        samples = np.stack([cut(s) for s in pred.samples])
    # slots past `stop` (or past the window) are not planned
    beyond = taus[:, None] + np.arange(lookahead)[None, :] >= stop
    point[np.broadcast_to(beyond[:, None, :], point.shape)] = np.nan
    return RollingForecast(taus, point, samples, every, first, stop, f"rolling:{forecaster.name}")


def rolling_sleep(
    forecast: RollingForecast,
    truth: Demand,
    params: SleepParams,
    on: Literal["point", "quantile", "scenarios"] = "point",
    q: float | None = None,
    epsilon: float | None = None,
) -> SleepPlan:
    """The committed schedule of model-predictive control over `truth`'s slots [forecast.first, forecast.stop).

    `truth` supplies only the cells and slots (its load is never read: each plan sees its forecast, whose
    conditioning already used the real load observed before the plan); the plan's objective is taken on the
    committed slots' point forecasts. Each re-plan is the exact DP over the
    forecast's next slots from the current state; `on` picks what it plans on ('quantile' needs `q`,
    'scenarios' the forecaster's samples, optionally with the chance constraint `epsilon`).
    """
    require_demand(truth, params.unit, "truth", "RRU capacity c0", "plan rolling sleep control in traffic")
    if params.unit != "traffic":
        raise InputError("rolling-horizon sleep control forecasts traffic: set the sleep unit to 'traffic'")
    P, N, look = forecast.point.shape
    if N != truth.n_cells or truth.n_slots != forecast.stop - forecast.first:
        raise InputError(f"the rolling forecast covers {N} cells x {forecast.stop - forecast.first} slots, "
                         f"the truth {truth.n_cells} x {truth.n_slots}")
    if on not in ("point", "quantile", "scenarios"):
        raise InputError(f"on must be 'point', 'quantile' or 'scenarios', got {on!r}")
    if on == "quantile" and (q is None or not 0 < q < 1):
        raise InputError(f"planning on a quantile needs q in (0, 1), got {q}")
    if on != "point" and forecast.samples is None:
        raise InputError(f"{forecast.source} draws no samples: plan on='point' (or calibrate it for samples)")
    if epsilon is not None and on != "scenarios":
        raise InputError("a chance constraint (epsilon) needs on='scenarios'")
    a = params.resolve(N)
    x = np.zeros((N, truth.n_slots), dtype=np.int64)
    believed = np.zeros((N, truth.n_slots))  # the point forecasts of the committed slots
    state = a.x0.copy()
    for p, tau in enumerate(forecast.starts):
        n = int(np.sum(np.isfinite(forecast.point[p, 0])))
        ap = replace(a, x0=state)
        if on == "point":
            cost = slot_costs(forecast.point[p, :, :n], params, ap)
        elif on == "quantile":
            cost = slot_costs(np.quantile(forecast.samples[:, p, :, :n], q, axis=0), params, ap)
        else:
            cost = scenario_costs(forecast.samples[:, p, :, :n], params, ap, epsilon)
        xp, _ = dp_over_costs(cost, params, ap)
        lo = int(tau - forecast.first)
        commit = min(forecast.every, n, truth.n_slots - lo)
        x[:, lo:lo + commit] = xp[:, :commit]
        believed[:, lo:lo + commit] = forecast.point[p, :, :commit]
        state = xp[:, commit - 1]
    label = f"q{q:g}" if on == "quantile" else on
    load = truth.with_values(believed, source=f"{forecast.source}:{label}:R{forecast.every}")
    return _plan(x, load, params, "rolling")
