"""BS deployment (paper Eq. 12): how many base stations to put in each grid cell, as a PuLP MILP.

The paper writes

    max sum_t sum_i ( y_i^t - beta (U_i^t - y_i^t)^+ - alpha sum_i^M x_i )
    s.t. sum_i x_i = M,  0 <= y_i^t <= min{x_i C0, F_i^t}.                             (Eq. 12)

Taken literally it cannot be what was solved: `alpha sum x` sits inside the sums over t and i and is
the constant alpha T N M under sum x = M; y <= U makes (U - y)^+ = U - y; C vs C0 and F vs U are
undefined. We solve the defensible model below; every deviation is listed.

Symbols: cells i = 1..N, slots t = 1..T, U_it >= 0 demand (users), C0 users per BS per slot,
M BSs in total, e_i existing BSs, x_max_i site limit, c_i relative cost of a new BS in cell i,
alpha cost of a BS per slot (in served users), beta penalty per unserved user-slot.

    max  (1 + beta) sum_it served_it - beta sum_it U_it - alpha T sum_i c_i (x_i - e_i)      [objective]
    s.t. served_it = y_it + sum_{j in N(i)} z_jit                   (own BSs + neighbours' BSs)
         y_it + sum_{j in N(i)} z_ijt <= C0 x_i                     capacity-{cell}-{t}
         sum_{j in N(i)} z_ijt <= rho C0 x_i                        share-{cell}-{t}    (rho < 1)
         served_it <= U_it                                          demand-{cell}-{t}   (a bound w/o neighbours)
         sum_i x_i <= M   (== M with exact_count)                   bs-count
         sum_i c_i (x_i - e_i) <= B                                 budget
         sum_t served_it >= r_i sum_t U_it                          service-{cell}
         x_i integer, e_i <= x_i <= x_max_i;  y, z >= 0

Deviations from Eq. 12 (and why):
1. The BS cost is alpha T sum_i c_i (x_i - e_i), outside the sum over cells (alpha is a per-slot cost, as
   in the paper's placement inside sum_t), and `sum x <= M` replaces `= M` (`exact_count=True` restores
   it): with `= M` the cost term is a constant and "deploy fewer BSs in grids with fewer users" cannot
   happen.
2. The shortfall is not a separate variable: with served <= U, s >= U - served and s >= 0 are tight at
   the optimum, so s_it = U_it - served_it is substituted. The objective is then
   (1 + beta) sum served - const: beta only rescales the BS cost (what matters is alpha / (1 + beta),
   the average users a BS must serve per slot to pay for itself); it is kept so that the objective
   value reads as the paper's (served - beta * shortfall - cost).
3. C and C0 are one capacity C0; F is U (the demand estimate), the upper bound of served users.
4. Extensions, off by default: site limits x_max, existing sites (cost only for new ones), a budget on
   new-site cost, per-cell service obligations, and coverage of adjacent cells, where a BS may give up
   to a share rho of its capacity to neighbouring cells (variables z_ijt: users of cell j served by
   BSs of cell i).

Exact fast path (`greedy_deploy`, with the feasibility pre-checks, in `planning.milp.greedy`, whose
docstring holds the maths): without neighbour coverage, and with a budget only when all site costs are
equal, the problem is separable (V_i(x) = (1 + beta) sum_t min(C0 x, U_it) - alpha T c_i x, concave in
the integer x) and taking the largest positive marginal gains V_i(k) - V_i(k - 1) is exact. Service
obligations become lower bounds on x_i.

Compact MILP (`build_compact_model`, method 'milp-compact'). The separable model, budgets with unequal
site costs included (a knapsack, where the greedy is not exact), as a MILP over the addable BSs and
their marginal gains: no per-slot variables, so its size does not grow with T.

Layout (PyPSA-like), in pipeline order:

    deploy_plan.py  `DeployPlan`, the plain arrays every method writes back
    greedy.py       checks, feasibility pre-checks, marginal gains (`Increments`), the exact greedy
    deploy.py       this module: the full MILP (`build_deploy_model`, a recipe of `add_*` steps), the
                    compact MILP, and `solve_deployment`, which builds, solves (planning.milp.solve) and
                    writes the solution back into a `DeployPlan`

Replay and statistics read only the plan. The names of greedy.py and deploy_plan.py are importable
from this module too.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pulp

from ..demand import Demand
from ..errors import InputError, NoIncumbentError, PlanningWarning
from ..params import DeployArrays, DeployParams
from ..replay import deploy_objective, served_matrix
from .deploy_plan import DeployPlan
from .greedy import (  # noqa: F401  (min_bs_for_service: re-exported)
    Increments,
    _check,
    greedy_applies,
    greedy_deploy,
    increments,
    lower_bounds,
    min_bs_for_service,
    precheck,
)
from .solve import SolveInfo, SolverOptions, add_var, solve


# ----------------------------------------------------------------------------------------------------
# Model building: a recipe of add_* steps
# ----------------------------------------------------------------------------------------------------


@dataclass
class DeployModel:
    """The PuLP problem and its variables indexed like the data (x by cell, y by (cell, slot))."""

    prob: pulp.LpProblem
    demand: Demand
    params: DeployParams
    arrays: DeployArrays
    x: list = field(default_factory=list)  # (N,) LpVariable
    y: dict = field(default_factory=dict)  # (i, t) -> LpVariable, only where U_it > 0
    z: dict = field(default_factory=dict)  # (i, j, t) -> LpVariable: users of j served by BSs of i
    pairs: np.ndarray | None = None  # directed neighbour pairs (i, j)

    def served_terms(self) -> dict:
        """(i, t) -> list of (variable, 1.0) whose sum is served_it."""
        terms: dict = {key: [(v, 1.0)] for key, v in self.y.items()}
        for (i, j, t), v in self.z.items():
            terms.setdefault((j, t), []).append((v, 1.0))
        return terms


def add_bs_variables(m: DeployModel) -> None:
    """x_i integer in [e_i, x_max_i]: BSs in cell i."""
    a = m.arrays
    m.x = [
        add_var(m.prob, f"x_{i}", int(a.existing[i]), int(a.x_max[i]), pulp.LpInteger)
        for i in range(m.demand.n_cells)
    ]


def add_served_variables(m: DeployModel) -> None:
    """y_it in [0, U_it] (users of cell i served by its own BSs), only where U_it > 0."""
    U = m.demand.values
    for i, t in zip(*np.nonzero(U > 0)):
        m.y[(int(i), int(t))] = add_var(m.prob, f"y_{i}_{t}", 0, float(U[i, t]))


def add_neighbour_variables(m: DeployModel) -> None:
    """z_ijt >= 0: users of cell j served by the BSs of adjacent cell i (only with neighbour coverage)."""
    if not m.params.covers_neighbours:
        return
    pairs = m.params.neighbours if m.params.neighbours is not None else m.demand.neighbours("rook")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    N = m.demand.n_cells
    if pairs.size and (pairs.min() < 0 or pairs.max() >= N or np.any(pairs[:, 0] == pairs[:, 1])):
        raise InputError(f"neighbour pairs must index two different cells in 0..{N - 1}")
    m.pairs = np.unique(np.vstack([pairs, pairs[:, ::-1]]), axis=0)  # both directions
    U = m.demand.values
    for i, j in m.pairs:
        for t in np.flatnonzero(U[j] > 0):
            m.z[(int(i), int(j), int(t))] = add_var(m.prob, f"z_{i}_{j}_{t}", 0, float(U[j, t]))


def add_capacity(m: DeployModel) -> None:
    """capacity-{cell}-{t}: y_it + sum_j z_ijt <= C0 x_i."""
    C0, ids = m.params.capacity, m.demand.cell_ids
    use: dict = {key: [(v, 1.0)] for key, v in m.y.items()}
    for (i, j, t), v in m.z.items():
        use.setdefault((i, t), []).append((v, 1.0))
    for (i, t), terms in use.items():
        expr = pulp.LpAffineExpression(terms + [(m.x[i], -C0)])
        m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"capacity-{ids[i]}-{t}", 0.0))


def add_neighbour_share(m: DeployModel) -> None:
    """share-{cell}-{t}: sum_j z_ijt <= rho C0 x_i (only when rho < 1)."""
    rho = m.params.neighbour_share
    if not m.z or rho >= 1:
        return
    give: dict = {}
    for (i, j, t), v in m.z.items():
        give.setdefault((i, t), []).append((v, 1.0))
    ids = m.demand.cell_ids
    for (i, t), terms in give.items():
        expr = pulp.LpAffineExpression(terms + [(m.x[i], -rho * m.params.capacity)])
        m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"share-{ids[i]}-{t}", 0.0))


def add_demand_limits(m: DeployModel) -> None:
    """demand-{cell}-{t}: served_it <= U_it (a variable bound already when nobody else serves the cell)."""
    if not m.z:
        return
    U, ids = m.demand.values, m.demand.cell_ids
    for (i, t), terms in m.served_terms().items():
        if len(terms) > 1:
            m.prob.addConstraint(
                pulp.LpConstraint(pulp.LpAffineExpression(terms), pulp.LpConstraintLE, f"demand-{ids[i]}-{t}",
                                  float(U[i, t]))
            )


def add_bs_count(m: DeployModel) -> None:
    """bs-count: sum_i x_i <= M (== M with exact_count)."""
    sense = pulp.LpConstraintEQ if m.params.exact_count else pulp.LpConstraintLE
    expr = pulp.LpAffineExpression([(v, 1.0) for v in m.x])
    m.prob.addConstraint(pulp.LpConstraint(expr, sense, "bs-count", float(m.params.max_bs)))


def add_budget(m: DeployModel) -> None:
    """budget: sum_i c_i (x_i - e_i) <= B."""
    if m.params.budget is None:
        return
    a = m.arrays
    expr = pulp.LpAffineExpression([(v, float(c)) for v, c in zip(m.x, a.cost)])
    m.prob.addConstraint(
        pulp.LpConstraint(expr, pulp.LpConstraintLE, "budget", float(m.params.budget + a.cost @ a.existing))
    )


def add_service(m: DeployModel) -> None:
    """service-{cell}: sum_t served_it >= r_i sum_t U_it."""
    rho = m.arrays.min_served
    if rho is None:
        return
    U, ids = m.demand.values, m.demand.cell_ids
    per_cell: dict = {}
    for (i, t), terms in m.served_terms().items():
        per_cell.setdefault(i, []).extend(terms)
    for i in np.flatnonzero(rho > 0):
        need = float(rho[i] * U[i].sum())
        if need <= 0:
            continue
        expr = pulp.LpAffineExpression(per_cell.get(int(i), []))
        m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"service-{ids[i]}", need))


def add_objective(m: DeployModel) -> None:
    """(1 + beta) sum served - beta sum U - alpha T sum c_i (x_i - e_i)."""
    p, a, U = m.params, m.arrays, m.demand.values
    T = U.shape[1]
    gain = 1.0 + p.beta
    terms = [(v, gain) for v in m.y.values()] + [(v, gain) for v in m.z.values()]
    terms += [(v, -p.alpha * T * float(c)) for v, c in zip(m.x, a.cost)]
    constant = -p.beta * float(U.sum()) + p.alpha * T * float(a.cost @ a.existing)
    m.prob.setObjective(pulp.LpAffineExpression(terms, constant=constant))


RECIPE = (
    add_bs_variables,
    add_served_variables,
    add_neighbour_variables,
    add_capacity,
    add_neighbour_share,
    add_demand_limits,
    add_bs_count,
    add_budget,
    add_service,
    add_objective,
)


def build_deploy_model(demand: Demand, params: DeployParams, name: str = "bs-deployment") -> DeployModel:
    """The deployment MILP for `demand` (cells x slots, in params.unit), built step by step."""
    _check(demand, params)
    m = DeployModel(pulp.LpProblem(name, pulp.LpMaximize), demand, params, params.resolve(demand.n_cells))
    for step in RECIPE:
        step(m)
    return m


def write_back(m: DeployModel, info: SolveInfo, build_s: float) -> DeployPlan:
    """Read the solution into plain arrays (the only place that touches solved variables)."""
    N, T = m.demand.values.shape
    x = np.array([int(round(v.value() or 0)) for v in m.x], dtype=np.int64)
    served = np.zeros((N, T))
    for (i, t), terms in m.served_terms().items():
        served[i, t] = sum(v.value() or 0.0 for v, _ in terms)
    served = np.clip(served, 0.0, m.demand.values)
    return DeployPlan(
        x=x, served=served, objective=info.objective, status=info.status, gap=info.gap, bound=info.bound,
        method="milp", solver=info.solver, build_s=build_s, solve_s=info.solve_s,
        cell_ids=m.demand.cell_ids.copy(), demand_source=m.demand.source, params=m.params,
        notes=[info.message] if info.status != "optimal" else [],
    )


# ----------------------------------------------------------------------------------------------------
# Compact MILP of the separable model (knapsack budgets included)
# ----------------------------------------------------------------------------------------------------


@dataclass
class CompactModel:
    """The separable deployment as a MILP over BS increments (no per-slot variables)."""

    prob: pulp.LpProblem
    demand: Demand
    params: DeployParams
    inc: Increments
    delta: list = field(default_factory=list)  # one variable per increment item


def build_compact_model(demand: Demand, params: DeployParams, name: str = "bs-deployment-compact") -> CompactModel:
    """Exact reformulation of the separable model (no neighbour coverage) over BS increments.

        max  V(low) + sum_items g_j d_j
        s.t. sum_j mult_j d_j <= M - sum low  (== with exact_count)            bs-count
             sum_j c_cell(j) d_j <= B - sum c (low - e)                         budget
             d_(i,k+1) <= d_(i,k)      (the k-th BS of a cell before the (k+1)-th)  order-{cell}-{k}
             d_j binary for single BSs, integer in [0, mult_j] for a cell's tail past saturation

    V(low) is the objective at the lower bounds (existing sites, service obligations). The per-slot
    served variables are gone (summed into the gains), so T no longer sets the model size; unlike
    the greedy it stays exact for a budget with unequal site costs (a knapsack).
    """
    _check(demand, params)
    if params.covers_neighbours:
        raise InputError("the compact model needs a separable problem: neighbour coverage couples cells")
    low = precheck(demand, params)
    inc = increments(demand, params, low, with_tail=True)
    a = params.resolve(demand.n_cells)
    m = CompactModel(pulp.LpProblem(name, pulp.LpMaximize), demand, params, inc)
    ids = demand.cell_ids
    rank = np.zeros(inc.gain.size, dtype=np.int64)
    for j in range(1, inc.gain.size):
        rank[j] = rank[j - 1] + 1 if inc.cell[j] == inc.cell[j - 1] else 0
    for j, (c, mult, is_tail) in enumerate(zip(inc.cell, inc.mult, inc.tail)):
        cat = pulp.LpInteger if is_tail else pulp.LpBinary
        m.delta.append(add_var(m.prob, f"d_{j}", 0, int(mult), cat))
    # order: within a cell, item j+1 only after item j (tail items follow the cell's last head item)
    last = {}
    for j, c in enumerate(inc.cell):
        if not inc.tail[j] and c in last:
            expr = pulp.LpAffineExpression([(m.delta[j], 1.0), (m.delta[last[c]], -1.0)])
            m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"order-{ids[c]}-{rank[j]}", 0.0))
        if not inc.tail[j]:
            last[c] = j
    for j in np.flatnonzero(inc.tail):
        c = inc.cell[j]
        if c in last:  # tail BSs only once the head is full
            expr = pulp.LpAffineExpression([(m.delta[j], 1.0), (m.delta[last[c]], -float(inc.mult[j]))])
            m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"order-{ids[c]}-tail", 0.0))
    sense = pulp.LpConstraintEQ if params.exact_count else pulp.LpConstraintLE
    count = pulp.LpAffineExpression([(d, 1.0) for d in m.delta])
    m.prob.addConstraint(pulp.LpConstraint(count, sense, "bs-count", float(params.max_bs - low.sum())))
    if params.budget is not None:
        spend = pulp.LpAffineExpression([(d, float(a.cost[c])) for d, c in zip(m.delta, inc.cell)])
        m.prob.addConstraint(pulp.LpConstraint(spend, pulp.LpConstraintLE, "budget",
                                               float(params.budget - a.cost @ (low - a.existing))))
    base = deploy_objective(low, demand.values, params)
    m.prob.setObjective(pulp.LpAffineExpression([(d, float(g)) for d, g in zip(m.delta, inc.gain)], constant=base))
    return m


def write_back_compact(m: CompactModel, info: SolveInfo, build_s: float) -> DeployPlan:
    """x = lower bounds + the chosen increments; served users follow from x."""
    x = m.inc.low.copy()
    take = np.array([int(round(d.value() or 0)) for d in m.delta], dtype=np.int64)
    np.add.at(x, m.inc.cell, take)
    U = m.demand.values
    return DeployPlan(
        x=x, served=served_matrix(x, U, m.params.capacity), objective=info.objective, status=info.status,
        gap=info.gap, bound=info.bound, method="milp-compact", solver=info.solver, build_s=build_s,
        solve_s=info.solve_s, cell_ids=m.demand.cell_ids.copy(), demand_source=m.demand.source, params=m.params,
        notes=[info.message] if info.status != "optimal" else [],
    )


# ----------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------


def solve_deployment(
    demand: Demand,
    params: DeployParams,
    options: SolverOptions | None = None,
    *,
    check_first: bool = True,
    warm_start: bool = False,
    on: Literal["point", "quantile", "scenarios"] = "point",
    q: float | None = None,
    **solver_options,
) -> DeployPlan:
    """Plan BSs for `demand` by one of the methods below; 'auto' picks the fastest exact one.

    How to solve: `options` (a `SolverOptions`), or its fields as keywords (`method=`, `solver=`,
    `time_limit=`, `gap_rel=`, `threads=`), which override it. `method` (default 'auto') is one of:

    What is planned on (`on`): the demand's values ('point'), the q-quantile of its scenarios
    ('quantile'), or all its scenarios ('scenarios': the sample average approximation, maximising the mean
    objective over equally likely scenarios). The SAA is solved exactly by every method, as the
    deterministic model on the scenarios placed side by side (`Demand.stacked_scenarios`): the objective
    sums over slots, so the stacked total is K times the scenario mean (the greedy stays exact: a mean of
    concave functions is concave); service obligations then hold on the scenario average. The plan's
    objective and served users are reported per scenario (their mean).

    Methods:
    - 'greedy': exact fast path of the separable model (no neighbour coverage; a budget only with equal
      site costs);
    - 'milp-compact': MILP over BS increments, exact for any separable model (knapsack budgets too);
    - 'milp': the full per-slot MILP (the only one for neighbour coverage);
    - 'auto': greedy where it is exact, else milp-compact where separable, else milp.

    Raises `InfeasibleError` (with the requirement that cannot be met), `SolverError`, `InputError`.
    A time-limited MILP returns its incumbent with status 'time_limit', its gap and a warning.
    `check_first=False` skips the pre-checks and lets the solver find infeasibility itself.
    `warm_start=True` starts the MILP from the greedy plan where the greedy applies (the MILP then
    certifies it or improves on it: useful on large instances where a cold solver finds no incumbent).
    """
    options = SolverOptions.of(options, **solver_options)
    method = options.method or "auto"
    if on == "scenarios":
        plan = solve_deployment(demand.stacked_scenarios(), params, options, check_first=check_first,
                                warm_start=warm_start)
        return per_scenario(plan, demand.n_scenarios)
    if on == "quantile":
        if q is None:
            raise InputError("planning on a quantile needs q in (0, 1)")
        demand = demand.quantile(q)
    elif on != "point":
        raise InputError(f"on must be 'point', 'quantile' or 'scenarios', got {on!r}")
    methods = ("auto", "milp", "milp-compact", "greedy")
    if method not in methods:
        raise InputError(f"method must be one of {methods}, got {method!r}")
    _check(demand, params)
    if method == "greedy" or (method == "auto" and greedy_applies(params, demand.n_cells)[0]):
        return greedy_deploy(demand, params)
    if method == "milp-compact" or (method == "auto" and not params.covers_neighbours):
        t0 = time.perf_counter()
        cm = build_compact_model(demand, params)
        build_s = time.perf_counter() - t0
        try:
            return write_back_compact(cm, solve(cm.prob, options), build_s)
        except NoIncumbentError as exc:
            return lowest_plan(demand, params, exc, "milp-compact", options.solver)
    if check_first:
        precheck(demand, params)
    t0 = time.perf_counter()
    model = build_deploy_model(demand, params)
    build_s = time.perf_counter() - t0
    if warm_start:
        set_start(model, greedy_deploy(demand, params) if greedy_applies(params, demand.n_cells)[0] else None)
    try:
        info = solve(model.prob, options, warm_start=warm_start)
    except NoIncumbentError as exc:
        return lowest_plan(demand, params, exc, "milp", options.solver)
    return write_back(model, info, build_s)


def lowest_plan(demand: Demand, params: DeployParams, cause: NoIncumbentError, method: str,
                solver: str | None) -> DeployPlan:
    """The plan at the lower bounds (existing sites, service minimums), as the incumbent of a solve that hit its
    time limit before finding one: feasible whenever those bounds are (not with exact_count above them, nor with
    service obligations met through neighbours), else the solver's error stands."""
    a = params.resolve(demand.n_cells)
    low = lower_bounds(demand, params, a)
    if (params.exact_count and int(low.sum()) != params.max_bs) or int(low.sum()) > params.max_bs \
            or (a.min_served is not None and params.covers_neighbours):
        raise cause
    U = demand.values
    message = (f"{solver} stopped at its time limit with no incumbent ({cause}); returned the lowest feasible "
               f"plan instead (existing sites and service minimums, {int(low.sum())} BSs), gap unknown; raise "
               "the time limit for a better one")
    warnings.warn(message, PlanningWarning, stacklevel=3)
    return DeployPlan(
        x=low, served=served_matrix(low, U, params.capacity), objective=deploy_objective(low, U, params),
        status="time_limit", gap=None, bound=None, method=method, solver=solver, build_s=0.0, solve_s=0.0,
        cell_ids=demand.cell_ids.copy(), demand_source=demand.source, params=params, notes=[message],
    )


def per_scenario(plan: DeployPlan, n_scenarios: int) -> DeployPlan:
    """A plan made on K stacked scenarios, with its objective, bound and served users as scenario means."""
    N, KT = plan.served.shape
    K = int(n_scenarios)
    return replace(
        plan, served=plan.served.reshape(N, K, KT // K).mean(axis=1), objective=plan.objective / K,
        bound=None if plan.bound is None else plan.bound / K,
    )


def set_start(m: DeployModel, plan: DeployPlan | None) -> None:
    """Initial values for a warm start: `plan`'s x and served users, or x at its lower bounds and y = 0."""
    x = plan.x if plan is not None else m.arrays.existing
    for v, xi in zip(m.x, x):
        v.setInitialValue(int(xi))
    served = plan.served if plan is not None else np.zeros(m.demand.values.shape)
    for (i, t), v in m.y.items():
        v.setInitialValue(float(served[i, t]))
    for v in m.z.values():
        v.setInitialValue(0.0)
