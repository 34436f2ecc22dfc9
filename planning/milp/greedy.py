"""BS deployment without a solver: checks, feasibility pre-checks and the exact greedy (separable model).

Symbols as in `planning.milp.deploy`: cells i = 1..N, slots t = 1..T, U_it demand, C0 users per BS per
slot, M BSs in total, e_i existing BSs, x_max_i site limit, c_i relative site cost, alpha, beta, B the
budget, r_i the service obligation.

Pre-checks (`precheck`). The per-cell lower bounds on x_i are the existing sites and, without neighbour
coverage, the smallest k_i with sum_t min(C0 k_i, U_it) >= r_i sum_t U_it (`min_bs_for_service`;
`lower_bounds`). An instance is infeasible on its face, and `InfeasibleError` names the requirement,
when those bounds need more than M BSs or more than x_max_i in a cell, when exactly M BSs do not fit the
sites, or when the budget cannot pay for the obligations (or, with exact_count, for the cheapest M BSs).

Exact fast path (`greedy_deploy`). Without neighbour coverage, and with a budget only when all site
costs are equal, the problem is separable: V_i(x) = (1 + beta) sum_t min(C0 x, U_it) - alpha T c_i x is
concave in the integer x (a sum of concave minima minus a linear term), and the only coupling is
sum_i x_i <= K (the budget becomes a count). Maximising a sum of concave functions under one count
constraint is solved exactly by taking the K largest positive marginal gains V_i(k) - V_i(k - 1)
(the classic result for separable concave resource allocation; see Ibaraki & Katoh, "Resource
Allocation Problems", 1988): `greedy_deploy` does that in O(sum_i x_i T) and is checked against the
MILP in the tests. Service obligations become lower bounds on x_i.

Increments (`increments`): every BS that could be added above the lower bounds, with its marginal gain
(see `Increments`). The greedy takes the best of them; the compact MILP of `planning.milp.deploy` chooses
among the same items, which stays exact when a budget with unequal site costs makes it a knapsack.

No solver here: this module imports neither PuLP nor `planning.milp.solve`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..demand import Demand, require_demand
from ..errors import InfeasibleError, InputError
from ..params import DeployArrays, DeployParams
from ..replay import deploy_objective, served_matrix
from .deploy_plan import DeployPlan

# ----------------------------------------------------------------------------------------------------
# Checks, feasibility pre-checks and the exact greedy
# ----------------------------------------------------------------------------------------------------


def _check(demand: Demand, params: DeployParams) -> None:
    require_demand(demand, params.unit, "demand", "BS capacity",
                   "convert the demand (Demand.convert with a UnitConversion) or set DeployParams.unit")


def min_bs_for_service(demand: np.ndarray, capacity: float, rho: np.ndarray, x_max: np.ndarray) -> np.ndarray:
    """Smallest k_i with sum_t min(C0 k, U_it) >= rho_i sum_t U_it (x_max_i + 1 where none suffices)."""
    U = np.asarray(demand, dtype=np.float64)
    need = rho * U.sum(axis=1) * (1 - 1e-12)
    k = np.zeros(U.shape[0], dtype=np.int64)
    todo = need > 0
    while np.any(todo):
        k[todo] += 1
        got = np.minimum(capacity * k[todo, None], U[todo]).sum(axis=1)
        done = (got >= need[todo]) | (k[todo] > x_max[todo])
        idx = np.flatnonzero(todo)
        todo[idx[done]] = False
    return k


def lower_bounds(demand: Demand, params: DeployParams, a: DeployArrays) -> np.ndarray:
    """Per-cell minimum x_i: existing sites and, without neighbour coverage, service obligations."""
    low = a.existing.copy()
    if a.min_served is not None and not params.covers_neighbours:
        k = min_bs_for_service(demand.values, params.capacity, a.min_served, a.x_max)
        bad = np.flatnonzero(k > a.x_max)
        if bad.size:
            i = bad[0]
            limit = f"max_bs M = {params.max_bs}" if a.unbounded else f"its x_max = {a.x_max[i]}"
            raise InfeasibleError(
                f"service-{demand.cell_ids[i]}: serving {a.min_served[i]:.0%} of cell {demand.cell_ids[i]}'s "
                f"demand needs more BSs than {limit} ({bad.size} cells in this situation)"
            )
        low = np.maximum(low, k)
    return low


def precheck(demand: Demand, params: DeployParams) -> np.ndarray:
    """Raise `InfeasibleError` naming the requirement when the instance is infeasible on its face.

    Returns the per-cell lower bounds on x. Exact for the separable model; with neighbour coverage only
    the count/site checks apply and the solver decides the rest.
    """
    a = params.resolve(demand.n_cells)
    low = lower_bounds(demand, params, a)
    M = params.max_bs
    if low.sum() > M:
        what = "existing sites" if np.array_equal(low, a.existing) else "existing sites and service obligations"
        raise InfeasibleError(f"bs-count: {what} require {int(low.sum())} BSs but max_bs M = {M}")
    if params.exact_count and a.x_max.sum() < M:
        raise InfeasibleError(
            f"bs-count: exactly M = {M} BSs are required but the sites allow only {int(a.x_max.sum())}"
        )
    if params.budget is not None:
        spend = float(a.cost @ (low - a.existing))
        if spend > params.budget * (1 + 1e-12):
            raise InfeasibleError(f"budget: service obligations cost {spend:.4g} but the budget is {params.budget:.4g}")
        if params.exact_count:
            # cheapest way to reach M BSs
            room = a.x_max - low
            order = np.argsort(a.cost, kind="stable")
            need, spend_m = M - int(low.sum()), spend
            for i in order:
                take = min(int(room[i]), need)
                spend_m += take * float(a.cost[i])
                need -= take
            if spend_m > params.budget * (1 + 1e-12):
                raise InfeasibleError(f"budget: M = {M} BSs cost at least {spend_m:.4g} > budget {params.budget:.4g}")
    return low


def greedy_applies(params: DeployParams, n_cells: int) -> tuple[bool, str]:
    """Whether the exact greedy fast path is valid for `params` (and why not)."""
    if params.covers_neighbours:
        return False, "neighbour coverage couples cells"
    if params.budget is not None:
        cost = params.resolve(n_cells).cost
        if not np.allclose(cost, cost[0]):
            return False, "a budget with unequal site costs is a knapsack"
    return True, ""


@dataclass
class Increments:
    """Every BS that could be added above the lower bounds, with its marginal gain.

    Head items (one BS each) are the k-th BSs of a cell below saturation, gain
    V_i(k) - V_i(k - 1) = (1 + beta) (F_i(k) - F_i(k - 1)) - alpha T c_i, with F_i(k) = sum_t min(C0 k, U_it),
    listed cell by cell in increasing k (so non-increasing gain). Tail items stand for the `mult` BSs a
    cell can take past saturation (x_max minus the head), each worth -alpha T c_i.
    """

    gain: np.ndarray  # (n,)
    cell: np.ndarray  # (n,)
    mult: np.ndarray  # (n,) 1 for head items
    tail: np.ndarray  # (n,) bool
    low: np.ndarray  # (N,) lower bounds the increments start from


def increments(demand: Demand, params: DeployParams, low: np.ndarray, with_tail: bool) -> Increments:
    """The marginal gains of all addable BSs (vectorised over cells, one pass per BS rank)."""
    U = demand.values
    N, T = U.shape
    a = params.resolve(N)
    C0, gain = params.capacity, 1.0 + params.beta
    unit_cost = params.alpha * T * a.cost  # cost of one more BS in cell i over the horizon
    # saturation: beyond sat_i BSs a cell's demand is fully served and a BS only costs
    sat = np.ceil(U.max(axis=1) / C0 - 1e-12).astype(np.int64)
    head_top = np.minimum(np.maximum(sat, low), a.x_max)
    values, cells, ranks = [], [], []
    prev = np.minimum(C0 * low[:, None], U).sum(axis=1)  # F_i(k - 1)
    k = low.copy()
    active = np.flatnonzero(k < head_top)
    while active.size:
        k[active] += 1
        cur = np.minimum(C0 * k[active, None], U[active]).sum(axis=1)
        values.append(gain * (cur - prev[active]) - unit_cost[active])
        cells.append(active)
        ranks.append(k[active].copy())
        prev[active] = cur
        active = active[k[active] < head_top[active]]
    v = np.concatenate(values) if values else np.zeros(0)
    c = np.concatenate(cells) if cells else np.zeros(0, dtype=np.int64)
    r = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    order = np.lexsort((r, c))  # cell by cell, increasing rank
    v, c = v[order], c[order]
    mult, tail_flag = np.ones(v.size, dtype=np.int64), np.zeros(v.size, dtype=bool)
    tail = a.x_max - head_top
    if with_tail and np.any(tail > 0):
        has = np.flatnonzero(tail > 0)
        v, c = np.concatenate([v, -unit_cost[has]]), np.concatenate([c, has])
        mult, tail_flag = np.concatenate([mult, tail[has]]), np.concatenate([tail_flag, np.ones(has.size, bool)])
    return Increments(v, c, mult, tail_flag, low)


def greedy_deploy(demand: Demand, params: DeployParams) -> DeployPlan:
    """Exact deployment of the separable model by the largest marginal gains (see the module docstring)."""
    _check(demand, params)
    ok, why = greedy_applies(params, demand.n_cells)
    if not ok:
        raise InputError(f"the greedy fast path is not exact here ({why}); use method='milp'")
    t0 = time.perf_counter()
    U = demand.values
    a = params.resolve(demand.n_cells)
    low = precheck(demand, params)
    K = params.max_bs - int(low.sum())
    if params.budget is not None:
        c = float(a.cost[0])
        left = params.budget - float(a.cost @ (low - a.existing))
        K = min(K, int(math.floor(left / c + 1e-9)))
    inc = increments(demand, params, low, with_tail=params.exact_count)
    x = low.copy()
    if inc.gain.size and K > 0:
        v, c, mlt = inc.gain, inc.cell, inc.mult
        if not params.exact_count:
            keep = v > 0  # a BS with zero or negative marginal gain is not worth deploying
            v, c, mlt = v[keep], c[keep], mlt[keep]
        order = np.argsort(-v, kind="stable")
        c, mlt = c[order], mlt[order]
        before = np.concatenate([[0], np.cumsum(mlt)[:-1]])
        take = np.clip(K - before, 0, mlt)
        np.add.at(x, c, take)
    if params.exact_count and x.sum() != params.max_bs:
        raise InfeasibleError(f"bs-count: only {int(x.sum())} of the required M = {params.max_bs} BSs fit the sites/budget")
    solve_s = time.perf_counter() - t0
    objective = deploy_objective(x, U, params)
    return DeployPlan(
        x=x, served=served_matrix(x, U, params.capacity), objective=objective, status="optimal", gap=0.0,
        bound=objective, method="greedy", solver=None, build_s=0.0, solve_s=solve_s,
        cell_ids=demand.cell_ids.copy(), demand_source=demand.source, params=params,
    )
