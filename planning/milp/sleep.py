"""RRU sleep control (paper Eq. 13): how many RRUs each cell keeps active in each slot.

The paper minimises Q + W + E with QoS Q = sum max(L - c0 x, 0) / L, switching (depreciation)
W = sum |x_t - x_{t-1}| and energy E = sum P[min(L, c0 x)] with P[L] = alpha L + beta L / c0.
Taken literally the energy does not depend on the active RRUs beyond the served load, so every RRU
stays on: switching off only loses QoS. We solve a defensible form, per cell m with load L_t, RRU
capacity c0, K RRUs, initial state x_0, over T slots:

    min  w_q / T  sum_t q_t / L_t                      QoS: mean relative shortfall (L_t > 0 only)
       + w_s / T  sum_t |x_t - x_{t-1}|                switching per slot
       + w_e / E_on  sum_t (alpha served_t + beta x_t)  energy relative to the always-on plan
    with served_t = min(L_t, c0 x_t),  q_t = L_t - served_t = (L_t - c0 x_t)^+,
         x_t integer in [min_active, K],  E_on = sum_t alpha min(L_t, c0 K) + beta K.

Deviations from Eq. 13 (and why):
1. Energy charges beta per *active* RRU (static power) plus alpha per unit of served load, so sleeping
   saves energy; the paper's beta L / c0 would charge the load, not the hardware.
2. The three terms are normalised so weights are comparable across cells and horizons: energy against
   the always-on plan of the same cell (the issue's "normalised against the always-on plan"), QoS and
   switching as per-slot averages. Break-even reading (static power dominating): switching an RRU off
   and on again pays when it sleeps more than ~2 K w_s / w_e slots; a relative shortfall f in a slot is
   accepted when f < 1 / (K w_q / w_e) roughly.
3. served = min(L, c0 x) is linearised exactly. Substituting served = L - q, the coefficient of q_t is
   w_q / (T L_t) - w_e alpha / E_on. Where it is >= 0, q_t >= L_t - c0 x_t, q_t >= 0 are tight at the
   optimum (no binary needed); where the weights make it negative, a binary z_t pins
   q_t = max(L_t - c0 x_t, 0) (qos-cap / qos-off constraints with big-M c0 K and L_t).
4. |x_t - x_{t-1}| is linearised with a_t >= +-(x_t - x_{t-1}) (exact: a_t is minimised), x_0 given.

Cells are independent (a BS's objective is the sum over its cells), so each cell (or BS) is its own
small MILP, and an exact dynamic program over the K + 1 states per slot (`dp_schedule`, O(T K^2) per
cell) is the oracle cross-check. Baselines: `always_on` and a reactive `threshold_policy`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import pulp

from ..demand import Demand, require_demand
from ..errors import InputError
from ..params import SleepArrays, SleepParams
from ..replay import sleep_objective
from .solve import SolverOptions, add_var, solve


@dataclass
class SleepPlan:
    """A schedule of active RRUs (cells, slots), written back as plain arrays."""

    x: np.ndarray  # (N, T) int
    objective: float  # on the load it was planned from
    status: str
    gap: float | None
    method: str  # 'milp' | 'dp' | 'always_on' | 'threshold'
    solver: str | None
    build_s: float
    solve_s: float
    cell_ids: np.ndarray
    load_source: str
    params: SleepParams
    n_models: int = 0
    n_binaries: int = 0
    notes: list[str] = field(default_factory=list)


def _check(load: Demand, params: SleepParams) -> SleepArrays:
    require_demand(load, params.unit, "load", "RRU capacity c0", "convert the load or set SleepParams.unit")
    return params.resolve(load.n_cells)


def _plan(x, load, params, method, **kw) -> SleepPlan:
    defaults = dict(status="optimal", gap=0.0, solver=None, build_s=0.0, solve_s=0.0)
    defaults.update(kw)
    return SleepPlan(x=x.astype(np.int64), objective=sleep_objective(x, load.values, params), method=method,
                     cell_ids=load.cell_ids.copy(), load_source=load.source, params=params, **defaults)


# ----------------------------------------------------------------------------------------------------
# Per-slot costs (shared by the DP and the MILP coefficients)
# ----------------------------------------------------------------------------------------------------


def energy_always_on(load: np.ndarray, a: SleepArrays) -> np.ndarray:
    """E_on per cell: sum_t alpha min(L_t, c0 K) + beta K. (N,)"""
    cap = (a.c0 * a.n_rru)[:, None]
    return (a.alpha[:, None] * np.minimum(load, cap) + a.beta * a.n_rru[:, None]).sum(axis=1)


def slot_costs(load: np.ndarray, params: SleepParams, a: SleepArrays) -> np.ndarray:
    """(N, T, S) cost of having s = 0..S-1 RRUs on in each slot (inf outside [min_active, K])."""
    L = np.asarray(load, dtype=np.float64)
    N, T = L.shape
    S = int(a.n_rru.max()) + 1
    s = np.arange(S, dtype=np.float64)[None, None, :]
    cap = a.c0[:, None, None] * s
    short = np.clip(L[:, :, None] - cap, 0, None)
    rel = np.divide(short, L[:, :, None], out=np.zeros_like(short), where=L[:, :, None] > 0)
    E_on = energy_always_on(L, a)[:, None, None]
    energy = a.alpha[:, None, None] * np.minimum(L[:, :, None], cap) + a.beta * s
    cost = params.w_qos / T * rel + params.w_energy * energy / E_on
    bad = (s < a.min_active) | (s > a.n_rru[:, None, None])
    return np.where(np.broadcast_to(bad, cost.shape), np.inf, cost)


# ----------------------------------------------------------------------------------------------------
# Exact dynamic program (oracle cross-check and fast path)
# ----------------------------------------------------------------------------------------------------


def scenario_costs(scenarios: np.ndarray, params: SleepParams, a: SleepArrays,
                   epsilon: float | None = None) -> np.ndarray:
    """(N, T, S) expected slot cost over equally likely load scenarios (K, N, T): the SAA of Eq. 13.

    The objective is separable in the slots given the schedule, so its expectation is the mean of each
    scenario's slot costs (each scenario normalised by its own always-on energy). With `epsilon`, a state
    s < K whose shortfall probability P_k(L_k > c0 s) exceeds epsilon is excluded (a chance constraint per
    cell-slot); K itself always stays allowed.
    """
    L = np.asarray(scenarios, dtype=np.float64)
    if L.ndim != 3 or L.shape[0] < 1:
        raise InputError(f"scenarios must be (K, cells, slots), got shape {L.shape}")
    cost = sum(slot_costs(L[k], params, a) for k in range(L.shape[0])) / L.shape[0]
    if epsilon is not None:
        cost = np.where(chance_infeasible(L, a, epsilon), np.inf, cost)
    return cost


def chance_infeasible(scenarios: np.ndarray, a: SleepArrays, epsilon: float) -> np.ndarray:
    """(N, T, S) True where s RRUs fall short in more than a share epsilon of the scenarios (s < K only)."""
    if not 0 <= epsilon <= 1:
        raise InputError(f"epsilon must lie in [0, 1], got {epsilon}")
    S = int(a.n_rru.max()) + 1
    s = np.arange(S, dtype=np.float64)
    short = (scenarios[..., None] > a.c0[None, :, None, None] * s * (1 + 1e-12)).mean(axis=0)  # (N, T, S)
    return (short > epsilon + 1e-12) & (s[None, None, :] < a.n_rru[:, None, None])


def min_active_for(scenarios: np.ndarray, a: SleepArrays, epsilon: float) -> np.ndarray:
    """(N, T) smallest RRU count meeting the chance constraint (the MILP's lower bound on x)."""
    bad = chance_infeasible(scenarios, a, epsilon)
    return np.maximum(bad.sum(axis=2), a.min_active).astype(np.int64)  # infeasible states are a prefix


def dp_over_costs(cost: np.ndarray, params: SleepParams, a: SleepArrays) -> tuple[np.ndarray, np.ndarray]:
    """Optimal schedules for a slot-cost cube (N, T, S); returns (x (N, T), J (N,)).

    V_1(s) = c_1(s) + w_s/T |s - x_0|;  V_t(s) = c_t(s) + min_s' V_{t-1}(s') + w_s/T |s - s'|;
    J = min_s V_T(s), the schedule by backtracking the argmins.
    """
    N, T, S = cost.shape
    states = np.arange(S)
    trans = params.w_switch / T * np.abs(states[:, None] - states[None, :]).astype(np.float64)  # (from, to)
    V = cost[:, 0] + params.w_switch / T * np.abs(states[None, :] - a.x0[:, None])
    back = np.zeros((T, N, S), dtype=np.int16)
    for t in range(1, T):
        total = V[:, :, None] + trans[None]  # (N, from, to)
        back[t] = np.argmin(total, axis=1)
        V = np.take_along_axis(total, back[t][:, None, :].astype(np.int64), axis=1)[:, 0] + cost[:, t]
    x = np.zeros((N, T), dtype=np.int64)
    x[:, -1] = np.argmin(V, axis=1)
    for t in range(T - 1, 0, -1):
        x[:, t - 1] = back[t][np.arange(N), x[:, t]]
    return x, V.min(axis=1)


def dp_schedule(load: np.ndarray, params: SleepParams, scenarios: np.ndarray | None = None,
                epsilon: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Optimal schedules of all cells at once by dynamic programming; returns (x (N, T), J (N,)).

    On the load (N, T), or, given `scenarios` (K, N, T), on the expected cost over them (with the chance
    constraint `epsilon`, see `scenario_costs`).
    """
    L = np.asarray(load, dtype=np.float64)
    a = params.resolve(L.shape[0])
    if scenarios is None:
        if epsilon is not None:
            raise InputError("a chance constraint (epsilon) needs load scenarios")
        return dp_over_costs(slot_costs(L, params, a), params, a)
    return dp_over_costs(scenario_costs(scenarios, params, a, epsilon), params, a)


# ----------------------------------------------------------------------------------------------------
# MILP: a recipe of add_* steps over a group of cells
# ----------------------------------------------------------------------------------------------------


@dataclass
class SleepModel:
    """The PuLP problem for a group of cells, variables indexed like the data.

    `loads` (K, n, T) holds the K equally likely load scenarios planned for (K = 1: one load); shortfall
    variables are per scenario, the schedule x and the switches a are shared by all of them.
    """

    prob: pulp.LpProblem
    loads: np.ndarray  # (K, n, T) of the group
    cells: np.ndarray  # indices into the full load
    ids: np.ndarray
    params: SleepParams
    arrays: SleepArrays  # of the group
    x_low: np.ndarray | None = None  # (n, T) lower bounds on x (chance constraint), None = min_active
    x: dict = field(default_factory=dict)  # (m, t) -> LpVariable (m local)
    q: dict = field(default_factory=dict)  # (k, m, t) -> LpVariable
    a: dict = field(default_factory=dict)
    z: dict = field(default_factory=dict)  # (k, m, t) -> LpVariable
    q_coef: np.ndarray | None = None  # (K, n, T)
    e_on: np.ndarray | None = None  # (K, n)

    def _tag(self, k: int) -> str:
        return "" if self.loads.shape[0] == 1 else f"-s{k}"


def add_rru_variables(m: SleepModel) -> None:
    """x_mt integer in [min_active (or the chance-constraint bound), K_m]: active RRUs."""
    _, n, T = m.loads.shape
    for i in range(n):
        hi = int(m.arrays.n_rru[i])
        for t in range(T):
            lo = m.arrays.min_active if m.x_low is None else int(min(m.x_low[i, t], hi))
            m.x[(i, t)] = add_var(m.prob, f"x_{i}_{t}", lo, hi, pulp.LpInteger)


def add_shortfall(m: SleepModel) -> None:
    """q_kmt in [0, L_kmt] and qos-{cell}-{t}[-s{k}]: q_kmt + c0 x_mt >= L_kmt (where L_kmt > 0)."""
    c0 = m.arrays.c0
    for k, i, t in zip(*np.nonzero(m.loads > 0)):
        k, i, t = int(k), int(i), int(t)
        L = float(m.loads[k, i, t])
        q = m.q[(k, i, t)] = add_var(m.prob, f"q_{i}_{t}" + m._tag(k).replace("-", "_"), 0, L)
        expr = pulp.LpAffineExpression([(q, 1.0), (m.x[(i, t)], float(c0[i]))])
        m.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"qos-{m.ids[i]}-{t}{m._tag(k)}", L))


def add_exact_served(m: SleepModel) -> None:
    """Binary z_kmt where the q coefficient is negative: q = max(L - c0 x, 0) exactly.

    qos-cap-{cell}-{t}: q + c0 x + c0 K z <= L + c0 K   (z = 1: q <= L - c0 x)
    qos-off-{cell}-{t}: q - L z <= 0                     (z = 0: q = 0)
    """
    c0, K = m.arrays.c0, m.arrays.n_rru
    for (k, i, t), q in m.q.items():
        if m.q_coef[k, i, t] >= 0:
            continue
        L, big, tag = float(m.loads[k, i, t]), float(c0[i] * K[i]), m._tag(k)
        z = m.z[(k, i, t)] = add_var(m.prob, f"z_{i}_{t}" + tag.replace("-", "_"), 0, 1, pulp.LpBinary)
        cap = pulp.LpAffineExpression([(q, 1.0), (m.x[(i, t)], float(c0[i])), (z, big)])
        m.prob.addConstraint(pulp.LpConstraint(cap, pulp.LpConstraintLE, f"qos-cap-{m.ids[i]}-{t}{tag}", L + big))
        off = pulp.LpAffineExpression([(q, 1.0), (z, -L)])
        m.prob.addConstraint(pulp.LpConstraint(off, pulp.LpConstraintLE, f"qos-off-{m.ids[i]}-{t}{tag}", 0.0))


def add_switching(m: SleepModel) -> None:
    """a_mt >= |x_mt - x_m,t-1| with x_m0 = x0: switch-up-{cell}-{t} and switch-down-{cell}-{t}."""
    _, n, T = m.loads.shape
    for i in range(n):
        x0 = float(m.arrays.x0[i])
        for t in range(T):
            a = m.a[(i, t)] = add_var(m.prob, f"a_{i}_{t}", 0)
            x = m.x[(i, t)]
            if t == 0:
                up, down = [(a, 1.0), (x, -1.0)], [(a, 1.0), (x, 1.0)]
                rhs_up, rhs_down = -x0, x0
            else:
                prev = m.x[(i, t - 1)]
                up, down = [(a, 1.0), (x, -1.0), (prev, 1.0)], [(a, 1.0), (x, 1.0), (prev, -1.0)]
                rhs_up = rhs_down = 0.0
            m.prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(up), pulp.LpConstraintGE,
                                                   f"switch-up-{m.ids[i]}-{t}", rhs_up))
            m.prob.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression(down), pulp.LpConstraintGE,
                                                   f"switch-down-{m.ids[i]}-{t}", rhs_down))


def add_objective(m: SleepModel) -> None:
    """1/K sum_k sum_m [ sum_t q_coef q + w_e beta / E_on x + w_e alpha sum L / E_on ] + w_s / T sum a."""
    p, arr = m.params, m.arrays
    K, _, T = m.loads.shape
    terms = [(v, float(m.q_coef[k, i, t]) / K) for (k, i, t), v in m.q.items()]
    inv_e_on = (1.0 / m.e_on).mean(axis=0)  # (n,) mean over scenarios of 1 / E_on
    terms += [(v, p.w_energy * arr.beta * float(inv_e_on[i])) for (i, t), v in m.x.items()]
    terms += [(v, p.w_switch / T) for v in m.a.values()]
    constant = float((p.w_energy * arr.alpha[None] * m.loads.sum(axis=2) / m.e_on).sum() / K)
    m.prob.setObjective(pulp.LpAffineExpression(terms, constant=constant))


RECIPE = (add_rru_variables, add_shortfall, add_exact_served, add_switching, add_objective)


def build_sleep_model(load: Demand, params: SleepParams, cells: Sequence[int] | None = None,
                      name: str = "rru-sleep", scenarios: np.ndarray | None = None,
                      epsilon: float | None = None) -> SleepModel:
    """The sleep MILP for `cells` of `load` (default: all), built step by step.

    With `scenarios` (K, N, T) it minimises the expected objective over them (a shared schedule,
    per-scenario shortfalls), with the chance constraint `epsilon` as lower bounds on x.
    """
    full = _check(load, params)
    idx = np.arange(load.n_cells) if cells is None else np.asarray(cells, dtype=int)
    loads = (load.values if scenarios is None else np.asarray(scenarios, dtype=np.float64))
    loads = loads[None, idx] if loads.ndim == 2 else loads[:, idx]
    arr = SleepArrays(full.c0[idx], full.n_rru[idx], full.x0[idx], full.alpha[idx], full.beta, full.min_active)
    x_low = None
    if epsilon is not None:
        if scenarios is None:
            raise InputError("a chance constraint (epsilon) needs load scenarios")
        x_low = min_active_for(loads, arr, epsilon)
    m = SleepModel(pulp.LpProblem(name, pulp.LpMinimize), loads, idx, load.cell_ids[idx], params, arr, x_low)
    m.e_on = np.stack([energy_always_on(Lk, arr) for Lk in loads])  # (K, n)
    T = loads.shape[2]
    with np.errstate(divide="ignore"):
        m.q_coef = np.where(loads > 0, params.w_qos / (T * np.where(loads > 0, loads, 1.0)), 0.0) \
            - params.w_energy * arr.alpha[None, :, None] / m.e_on[:, :, None]
    for step in RECIPE:
        step(m)
    return m


def solve_sleep(
    load: Demand,
    params: SleepParams,
    options: SolverOptions | None = None,
    *,
    groups: Literal["cell", "all"] | np.ndarray = "cell",
    on: Literal["point", "scenarios"] = "point",
    epsilon: float | None = None,
    **solver_options,
) -> SleepPlan:
    """Optimal schedule for `load` (cells x slots, in params.unit) by the DP or by MILPs.

    How to solve: `options` (a `SolverOptions`), or its fields as keywords (`method=` 'dp' (default)
    or 'milp', `solver=`, `time_limit=`, `gap_rel=`, `threads=`), which override it.

    `on='point'` plans on `load.values`; `on='scenarios'` minimises the expected objective over the
    load's scenarios (`Demand.scenarios`, K >= 2, equally likely), optionally with the chance constraint
    P(shortfall in a cell-slot) <= `epsilon` (see `scenario_costs`). The DP and the MILP agree on both.
    MILP `groups`: one model per cell ('cell'), one for everything ('all'), or per BS (an (N,) array of
    BS ids; a BS's cells share one model). `time_limit` applies to each model.
    """
    options = SolverOptions.of(options, **solver_options)
    method = options.method or "dp"
    arr = _check(load, params)
    scenarios = _scenarios_for(load, on, epsilon)
    if method == "dp":
        t0 = time.perf_counter()
        x, _ = dp_schedule(load.values, params, scenarios, epsilon)
        return _plan(x, load, params, "dp", solve_s=time.perf_counter() - t0, n_models=0)
    if method != "milp":
        raise InputError(f"method must be 'dp' or 'milp', got {method!r}")
    N = load.n_cells
    if isinstance(groups, str):
        if groups not in ("cell", "all"):
            raise InputError(f"groups must be 'cell', 'all' or an array of BS ids, got {groups!r}")
        labels = np.arange(N) if groups == "cell" else np.zeros(N, dtype=int)
    else:
        labels = np.asarray(groups)
        if labels.shape != (N,):
            raise InputError(f"groups must give one BS id per cell ({N},), got {labels.shape}")
    x = np.zeros(load.values.shape, dtype=np.int64)
    build_s = solve_s = 0.0
    status, gaps, notes, n_bin = "optimal", [], [], 0
    for g in np.unique(labels):
        cells = np.flatnonzero(labels == g)
        t0 = time.perf_counter()
        model = build_sleep_model(load, params, cells, name=f"rru-sleep-{g}", scenarios=scenarios, epsilon=epsilon)
        build_s += time.perf_counter() - t0
        info = solve(model.prob, options)
        solve_s += info.solve_s
        n_bin += len(model.z)
        if info.status != "optimal":
            status = info.status
            notes.append(info.message)
        gaps.append(info.gap)
        for (i, t), v in model.x.items():
            x[cells[i], t] = int(round(v.value() or 0))
    gap = None if any(g is None for g in gaps) else float(max(gaps))
    plan = _plan(x, load, params, "milp", status=status, gap=gap, solver=options.solver, build_s=build_s,
                 solve_s=solve_s, n_models=int(np.unique(labels).size), n_binaries=n_bin, notes=notes)
    del arr
    return plan


def _scenarios_for(load: Demand, on: str, epsilon: float | None) -> np.ndarray | None:
    """The (K, N, T) scenarios to plan on, or None for the point load (checked against `on`/`epsilon`)."""
    if on not in ("point", "scenarios"):
        raise InputError(f"on must be 'point' or 'scenarios', got {on!r}")
    if on == "point":
        if epsilon is not None:
            raise InputError("a chance constraint (epsilon) needs on='scenarios'")
        return None
    if load.scenarios is None or load.scenarios.shape[0] < 2:
        raise InputError(f"planning on scenarios needs a load with >= 2 scenarios ({load.source or 'this load'} "
                         "has none: use a sampling forecaster, or plan on='point')")
    if epsilon is not None and not 0 <= epsilon <= 1:
        raise InputError(f"epsilon must lie in [0, 1], got {epsilon}")
    return load.scenarios


# ----------------------------------------------------------------------------------------------------
# Baseline policies
# ----------------------------------------------------------------------------------------------------


def always_on(load: Demand, params: SleepParams) -> SleepPlan:
    """Every RRU on in every slot (no QoS loss if c0 K covers the peak; maximum energy)."""
    a = _check(load, params)
    x = np.broadcast_to(a.n_rru[:, None], load.values.shape).copy()
    return _plan(x, load, params, "always_on")


def threshold_policy(
    load: Demand,
    params: SleepParams,
    threshold: float = 0.8,
    lag: int = 1,
    history: np.ndarray | None = None,
) -> SleepPlan:
    """Reactive rule: x_t = clip(ceil(L_{t-lag} / (threshold c0)), min_active, K).

    Keeps utilisation of the active RRUs below `threshold` given the load observed `lag` slots ago
    (what an operator sees without a forecast). `load` is the series the rule observes (the real load
    when replayed online); `history` (N, lag) holds the loads before the first slot (default: start
    from x0 until `lag` slots have been observed).
    """
    a = _check(load, params)
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must lie in (0, 1], got {threshold}")
    if lag < 1:
        raise InputError(f"lag must be >= 1 slot (the rule reacts to observed load), got {lag}")
    L = load.values
    N, T = L.shape
    need = np.ceil(L / (threshold * a.c0[:, None]) - 1e-12)
    x = np.empty((N, T))
    x[:, lag:] = need[:, : T - lag]
    if history is not None:
        h = np.asarray(history, dtype=np.float64)
        if h.shape != (N, lag):
            raise InputError(f"history must be (cells, lag) = {(N, lag)}, got {h.shape}")
        x[:, :lag] = np.ceil(h / (threshold * a.c0[:, None]) - 1e-12)
    else:
        x[:, :lag] = a.x0[:, None]
    x = np.clip(x, a.min_active, a.n_rru[:, None])
    return _plan(x, load, params, "threshold")
