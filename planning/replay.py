"""Score plans on the *real* demand they were not planned from; closed forms only, no solver import.

Deployment (x BSs per cell, capacity C0 x_i, real demand R (cells, slots)):
    served ratio   sum_it min(C0 x_i, R_it) / sum_it R_it
    deficit        share of cell-slots with demand (R_it > 0) whose demand exceeds capacity (R_it > C0 x_i)
    idle           share of the installed capacity-slots left unused: sum (C0 x_i - R_it)^+ / sum C0 x_i
    cost           sum_i c_i (x_i - e_i) (new BSs only); cost ratio = cost / (mean c * (M - sum e)),
                   the share of the BS allowance a plan spends
    objective      J(x; R) = (1 + beta) sum min(C0 x, R) - beta sum R - alpha T sum c (x - e)
    regret         (J(x*_R; R) - J(x; R)) / ((1 + beta) sum R), x*_R the plan solved on R itself: the
                   objective lost, as a share of the value of serving all demand (J* itself can be ~0)
Served demand is per cell (no sharing with neighbours), the same whether or not the plan used it.

Sleep control (x active RRUs per cell and slot, real load L):
    qos            mean over cell-slots of the relative shortfall (L - c0 x)^+ / L (0 where L = 0)
    switching      RRU switches sum_t |x_t - x_{t-1}| (from the initial state), per cell per day
    energy ratio   E(x) / E(always on), E = sum_t alpha min(L, c0 x) + beta x
    objective      sum over cells of J_m = w_q qos_m + w_s switches_m / T + w_e E_m / E_m(on)
    regret         (J(x) - J(x*_L)) / J(x*_L) against the plan solved on the real load
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError
from .params import DeployParams, SleepParams

if TYPE_CHECKING:  # the plan classes live next to the models; replay only reads their arrays
    from .demand import Demand


def _truth(real: "Demand", allow_any_source: bool) -> np.ndarray:
    if real.source != "real" and not allow_any_source:
        raise InputError(
            f"replay scores plans on real demand, got a {real.source!r} cube; pass real_demand(...) "
            "(or allow_any_source=True for what-if studies)"
        )
    return real.values


def _plan_array(plan, attr: str, real: "Demand") -> np.ndarray:
    """The decision array of `plan` (a plan object or an array), checked against the real cells."""
    ids = getattr(plan, "cell_ids", None)
    if ids is not None and not np.array_equal(np.asarray(ids).astype(str), real.cell_ids):
        raise InputError("the plan's cells differ from the real demand's cells (order or ids): align them first")
    return np.asarray(getattr(plan, attr) if hasattr(plan, attr) else plan)


# ----------------------------------------------------------------------------------------------------
# Deployment
# ----------------------------------------------------------------------------------------------------


def served_matrix(x: np.ndarray, demand: np.ndarray, capacity: float) -> np.ndarray:
    """min(C0 x_i, U_it): the demand each cell's own BSs can serve. (cells, slots)"""
    return np.minimum(capacity * np.asarray(x, dtype=np.float64)[:, None], demand)


def deploy_objective(x: np.ndarray, demand: np.ndarray, params: DeployParams) -> float:
    """J(x; U) = (1 + beta) sum min(C0 x, U) - beta sum U - alpha T sum_i c_i (x_i - e_i)."""
    U = np.asarray(demand, dtype=np.float64)
    arr = params.resolve(U.shape[0])
    x = np.asarray(x, dtype=np.float64)
    served = served_matrix(x, U, params.capacity).sum()
    return float(
        (1 + params.beta) * served - params.beta * U.sum()
        - params.alpha * U.shape[1] * float(arr.cost @ (x - arr.existing))
    )


@dataclass
class DeployScore:
    """Replay of a deployment on real demand (ratios in [0, 1]; see the module docstring)."""

    served_ratio: float
    deficit: float
    idle: float
    cost: float
    cost_ratio: float
    n_bs: int
    objective: float
    regret: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def replay_deployment(
    plan,
    real: "Demand",
    params: DeployParams,
    oracle=None,
    allow_any_source: bool = False,
) -> DeployScore:
    """Score `plan` (a DeployPlan or an (cells,) array of BS counts) on the real demand `real`.

    `oracle`: the plan (or x) solved on `real` itself, for the regret; omit it to leave regret None.
    """
    R = _truth(real, allow_any_source)
    x = _plan_array(plan, "x", real).astype(np.int64)
    if x.shape != (R.shape[0],):
        raise InputError(f"plan has {x.shape} BS counts for {R.shape[0]} cells")
    arr = params.resolve(R.shape[0])
    cap = params.capacity * x.astype(np.float64)
    served = served_matrix(x, R, params.capacity)
    total = R.sum()
    loaded = R > 0
    installed = cap.sum() * R.shape[1]
    cost = float(arr.cost @ (x - arr.existing))
    allowance = float(arr.cost.mean()) * max(params.max_bs - int(arr.existing.sum()), 0)
    J = deploy_objective(x, R, params)
    regret = None
    if oracle is not None:
        J_star = deploy_objective(_plan_array(oracle, "x", real), R, params)
        value = (1 + params.beta) * total
        regret = (J_star - J) / value if value > 0 else 0.0
    return DeployScore(
        served_ratio=float(served.sum() / total) if total > 0 else 1.0,
        deficit=float((R[loaded] > np.broadcast_to(cap[:, None], R.shape)[loaded]).mean()) if loaded.any() else 0.0,
        idle=float(np.clip(cap[:, None] - R, 0, None).sum() / installed) if installed > 0 else 0.0,
        cost=cost,
        cost_ratio=cost / allowance if allowance > 0 else 0.0,
        n_bs=int(x.sum()),
        objective=J,
        regret=regret,
    )


# ----------------------------------------------------------------------------------------------------
# Sleep control
# ----------------------------------------------------------------------------------------------------


@dataclass
class SleepTerms:
    """Per-cell raw terms of a sleep schedule on a load: (cells,) arrays."""

    qos: np.ndarray  # sum_t (L - c0 x)^+ / L   (relative shortfall, summed over slots)
    shortfall: np.ndarray  # sum_t (L - c0 x)^+   (volume)
    switches: np.ndarray  # sum_t |x_t - x_{t-1}|
    energy: np.ndarray  # sum_t alpha min(L, c0 x) + beta x
    energy_on: np.ndarray  # the same for x = K always
    n_slots: int

    def objective(self, params: SleepParams) -> np.ndarray:
        """J_m = w_q qos_m / T + w_s switches_m / T + w_e energy_m / energy_on_m, per cell."""
        T = self.n_slots
        return (params.w_qos * self.qos / T + params.w_switch * self.switches / T
                + params.w_energy * self.energy / self.energy_on)


def sleep_terms(x: np.ndarray, load: np.ndarray, params: SleepParams) -> SleepTerms:
    """The QoS, switching and energy terms of schedule `x` (cells, T) under `load` (cells, T)."""
    L = np.asarray(load, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.shape != L.shape:
        raise InputError(f"schedule shape {x.shape} does not match load {L.shape}")
    a = params.resolve(L.shape[0])
    if np.any(x < 0) or np.any(x > a.n_rru[:, None]):
        raise InputError("schedule activates a negative number of RRUs or more than n_rru")
    cap = a.c0[:, None] * x
    short = np.clip(L - cap, 0, None)
    rel = np.divide(short, L, out=np.zeros_like(L), where=L > 0)
    prev = np.concatenate([a.x0[:, None].astype(np.float64), x[:, :-1]], axis=1)
    served = np.minimum(L, cap)
    energy = (a.alpha[:, None] * served + a.beta * x).sum(axis=1)
    energy_on = (a.alpha[:, None] * np.minimum(L, a.c0[:, None] * a.n_rru[:, None]) + a.beta * a.n_rru[:, None]).sum(axis=1)
    return SleepTerms(rel.sum(axis=1), short.sum(axis=1), np.abs(x - prev).sum(axis=1), energy, energy_on, L.shape[1])


def sleep_objective(x: np.ndarray, load: np.ndarray, params: SleepParams) -> float:
    """Sum over cells of J_m (the normalised objective the sleep MILP and DP minimise)."""
    return float(sleep_terms(x, load, params).objective(params).sum())


@dataclass
class SleepScore:
    """Replay of a sleep schedule on the real load (see the module docstring)."""

    qos: float
    shortfall_ratio: float
    switching: float  # switches per cell per day
    switches: int
    energy: float
    energy_ratio: float
    objective: float
    regret: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def replay_sleep(plan, real: "Demand", params: SleepParams, oracle=None, allow_any_source: bool = False) -> SleepScore:
    """Score a schedule (a SleepPlan or (cells, T) array of active RRUs) on the real load `real`."""
    L = _truth(real, allow_any_source)
    x = _plan_array(plan, "x", real)
    t = sleep_terms(x, L, params)
    N, T = L.shape
    J = float(t.objective(params).sum())
    regret = None
    if oracle is not None:
        J_star = sleep_objective(_plan_array(oracle, "x", real), L, params)
        regret = (J - J_star) / J_star if J_star > 0 else None
    return SleepScore(
        qos=float(t.qos.sum() / (N * T)),
        shortfall_ratio=float(t.shortfall.sum() / L.sum()) if L.sum() > 0 else 0.0,
        switching=float(t.switches.sum() / (N * real.days)),
        switches=int(round(t.switches.sum())),
        energy=float(t.energy.sum()),
        energy_ratio=float(t.energy.sum() / t.energy_on.sum()),
        objective=J,
        regret=regret,
    )
