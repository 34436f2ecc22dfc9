"""BS deployment: hand-worked toys, MILP == exact greedy on random instances, infeasible and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from planning.demand import Demand
from planning.errors import InfeasibleError, InputError
from planning.milp.deploy import build_deploy_model, greedy_applies, greedy_deploy, solve_deployment
from planning.milp.solve import constraints_of
from planning.params import DeployParams
from planning.replay import deploy_objective


def cube(values, ids=None, unit="users") -> Demand:
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    return Demand(values, unit, ids or [f"c{i}" for i in range(N)], np.arange(T) % 24, np.zeros(T, int), 24,
                  grid_index=np.column_stack([np.zeros(N, int), np.zeros(N, int), np.arange(N)]), source="real")


# Toy 1 (worked by hand). Two cells A, B, two slots, C0 = 10, alpha = 1 per BS per slot (so a BS costs
# alpha * T = 2 over the horizon), beta = 0, U_A = (15, 5), U_B = (8, 8).
#   F_A(k) = sum_t min(10 k, U_At): F_A(1) = 10 + 5 = 15, F_A(2) = 15 + 5 = 20 -> gains 15-2 = 13, 5-2 = 3
#   F_B(1) = 8 + 8 = 16, F_B(2) = 16                                              -> gains 16-2 = 14, -2
#   M = 2: take 14 (B) and 13 (A): x = (1, 1), J = 15 + 16 - 4 = 27
#   M = 3: add 3 (A's second):      x = (2, 1), J = 20 + 16 - 6 = 30
#   M = 5: the 4th gain is -2 < 0, so still x = (2, 1), J = 30 (sum x <= M, unused BSs allowed)
#   exact_count M = 4 (paper's sum x = M): forced to take a -2 too (A's 3rd or B's 2nd BS, a tie):
#                                    x = (3, 1) or (2, 2), J = 36 - 8 = 28
#   beta = 1: J = 2 served - sum U - cost = 2 * 31 - 36 - 4 = 22 for M = 2 (same plan)
TOY = [[15.0, 5.0], [8.0, 8.0]]


@pytest.mark.parametrize(
    "kwargs, x, J",
    [
        (dict(max_bs=2), [1, 1], 27.0),
        (dict(max_bs=3), [2, 1], 30.0),
        (dict(max_bs=5), [2, 1], 30.0),
        (dict(max_bs=4, exact_count=True), None, 28.0),
        (dict(max_bs=2, beta=1.0), [1, 1], 22.0),
    ],
)
@pytest.mark.parametrize("method, solver", [("greedy", "cbc"), ("milp", "cbc"), ("milp", "highs")])
def test_toy_deployment_by_hand(kwargs, x, J, method, solver):
    p = DeployParams(capacity=10.0, alpha=1.0, **{"beta": 0.0, **kwargs})
    plan = solve_deployment(cube(TOY), p, method=method, solver=solver)
    if x is None:  # tied optima
        assert plan.x.tolist() in ([3, 1], [2, 2])
    else:
        assert plan.x.tolist() == x
    assert plan.objective == pytest.approx(J, abs=1e-6)
    assert plan.status == "optimal" and plan.method == method
    np.testing.assert_allclose(plan.served, np.minimum(10.0 * plan.x[:, None], TOY), atol=1e-6)


# Toy 2 (neighbour coverage, by hand). Adjacent cells A, B, one slot, U = (4, 6), C0 = 10, M = 1,
# alpha = beta = 0. Without coverage the BS goes to B and serves 6. With coverage of up to 50% of a
# BS's capacity: BS in B serves its 6 + min(4, 10 - 6, 5) = 4 of A = 10; BS in A serves its 4 +
# min(6, 6, 5) = 5 of B = 9. Optimum: x = (0, 1), 10 served.
@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_neighbour_coverage_by_hand(solver):
    d = cube([[4.0], [6.0]])
    alone = solve_deployment(d, DeployParams(capacity=10, max_bs=1), method="milp", solver=solver)
    assert alone.x.tolist() == [0, 1] and alone.objective == pytest.approx(6.0)
    shared = solve_deployment(d, DeployParams(capacity=10, max_bs=1, neighbour_share=0.5), solver=solver)
    assert shared.method == "milp"  # coverage is not separable: auto picks the MILP
    assert shared.x.tolist() == [0, 1] and shared.objective == pytest.approx(10.0)
    np.testing.assert_allclose(shared.served, [[4.0], [6.0]], atol=1e-6)
    # a share of 10% only lets B's BS give 1 user to A
    small = solve_deployment(d, DeployParams(capacity=10, max_bs=1, neighbour_share=0.1), solver=solver)
    assert small.objective == pytest.approx(7.0)


def test_constraints_are_named_structurally():
    d = cube(TOY, ids=["north", "south"])
    m = build_deploy_model(d, DeployParams(capacity=10, max_bs=2, budget=5.0, min_served=0.5))
    names = {c.name for c in constraints_of(m.prob)}
    # PuLP writes '-' as '_' in names; the structure capacity-{cell}-{t} survives
    assert {"capacity_north_0", "capacity_south_1", "bs_count", "budget", "service_north"} <= names


def test_existing_sites_cost_nothing_and_bound_x():
    # cell A already has 2 BSs: x_A >= 2 and only new BSs pay alpha T c
    p = DeployParams(capacity=10.0, max_bs=3, alpha=1.0, existing=[2, 0])
    for method in ("greedy", "milp"):
        plan = solve_deployment(cube(TOY), p, method=method)
        assert plan.x.tolist() == [2, 1]
        assert plan.objective == pytest.approx(20 + 16 - 2)  # one new BS (in B) costs 2


def test_site_limits_and_service_obligation():
    p = DeployParams(capacity=10.0, max_bs=3, alpha=1.0, x_max=[1, 1])
    assert solve_deployment(cube(TOY), p, method="milp").x.tolist() == [1, 1]
    # serving all of A (20 user-slots) needs 2 BSs even though the second only earns 5 - 2
    q = DeployParams(capacity=10.0, max_bs=2, alpha=1.0, min_served=[1.0, 0.0])
    for method in ("greedy", "milp"):
        assert solve_deployment(cube(TOY), q, method=method).x.tolist() == [2, 0]


def random_instance(rng: np.random.Generator):
    N, T = int(rng.integers(2, 8)), int(rng.integers(2, 9))
    U = rng.gamma(0.8, 20.0, size=(N, T)) * (rng.random((N, T)) > 0.15)
    C0 = float(rng.uniform(5, 25))
    kw = dict(capacity=C0, max_bs=int(rng.integers(1, 3 * N)), alpha=float(rng.uniform(0, 0.6 * C0)),
              beta=float(rng.choice([0.0, 0.5, 2.0])))
    if rng.random() < 0.5:
        kw["x_max"] = rng.integers(1, 5, size=N)
    if rng.random() < 0.4:
        kw["existing"] = np.minimum(rng.integers(0, 2, size=N), kw.get("x_max", 9))
    if rng.random() < 0.4:
        kw["site_cost"] = rng.uniform(0.5, 2.0, size=N).round(2)
    elif rng.random() < 0.5:
        kw["budget"] = float(rng.integers(0, 2 * N))
    if rng.random() < 0.3:
        kw["exact_count"] = True
    if rng.random() < 0.3:
        kw["min_served"] = rng.choice([0.0, 0.3, 0.8], size=N)
    return cube(U), DeployParams(**kw)


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_greedy_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    d, p = random_instance(rng)
    assert greedy_applies(p, d.n_cells)[0]
    solver = "highs" if seed % 3 == 0 else "cbc"
    try:
        g = greedy_deploy(d, p)
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            solve_deployment(d, p, method="milp", solver=solver, check_first=False)
        return
    scale = (1 + p.beta) * d.values.sum()  # solvers report values to ~1e-9 of the terms' magnitude
    for method in ("milp", "milp-compact"):
        m = solve_deployment(d, p, method=method, solver=solver, gap_rel=1e-9)
        assert m.objective == pytest.approx(g.objective, abs=1e-7 * scale)
        # the MILP's plan, re-scored exactly, is as good as the greedy's (optimal up to ties)
        assert deploy_objective(m.x, d.values, p) == pytest.approx(g.objective, abs=1e-9 * scale)


@pytest.mark.parametrize("seed", range(6))
def test_compact_milp_equals_full_milp_on_knapsack_budgets(seed):
    # unequal site costs under a budget: the greedy is not exact, both MILPs are
    rng = np.random.default_rng(100 + seed)
    d, p = random_instance(rng)
    N = d.n_cells
    p = DeployParams(capacity=p.capacity, max_bs=p.max_bs, alpha=p.alpha, beta=p.beta, x_max=p.x_max,
                     site_cost=rng.uniform(0.5, 3.0, size=N).round(2), budget=float(rng.uniform(1, 2 * N)))
    assert not greedy_applies(p, N)[0]
    full = solve_deployment(d, p, method="milp", solver="cbc", gap_rel=1e-9)
    compact = solve_deployment(d, p, solver="highs" if seed % 2 else "cbc", gap_rel=1e-9)
    assert compact.method == "milp-compact"  # what 'auto' picks for a separable knapsack
    scale = (1 + p.beta) * d.values.sum()
    assert deploy_objective(compact.x, d.values, p) == pytest.approx(full.objective, abs=1e-7 * scale)
    assert compact.objective == pytest.approx(full.objective, abs=1e-7 * scale)
    a = p.resolve(N)
    assert a.cost @ (compact.x - a.existing) <= p.budget + 1e-9


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_warm_start_from_the_greedy(solver):
    d, p = random_instance(np.random.default_rng(7))
    g = greedy_deploy(d, p)
    m = solve_deployment(d, p, method="milp", solver=solver, warm_start=True)
    assert m.status == "optimal" and m.objective == pytest.approx(g.objective, abs=1e-7 * d.values.sum())
    assert g.x.sum() <= p.max_bs and np.all(g.x >= p.resolve(d.n_cells).existing)


def test_greedy_refuses_non_separable_problems():
    d = cube(TOY)
    with pytest.raises(InputError, match="neighbour"):
        greedy_deploy(d, DeployParams(capacity=10, max_bs=2, neighbour_share=0.5))
    with pytest.raises(InputError, match="knapsack"):
        greedy_deploy(d, DeployParams(capacity=10, max_bs=2, site_cost=[1.0, 2.0], budget=2.0))
    with pytest.raises(InputError, match="separable"):
        solve_deployment(d, DeployParams(capacity=10, max_bs=2, neighbour_share=0.5), method="milp-compact")


# Knapsack toy (worked by hand). One slot, U = (20, 16, 15), C0 = 20 (one BS serves a cell fully, a
# second gains 0), alpha = 0, site costs (3, 2, 2).
#   budget 4: taking the largest gain first (A: 20, cost 3) leaves 1 -> J = 20; but B + C cost 4 and
#             serve 31 -> optimum x = (0, 1, 1), J = 31 (this is why the greedy refuses unequal costs)
#   budget 5: A + B cost 5 and serve 36 > B + C's 31 -> x = (1, 1, 0), J = 36
@pytest.mark.parametrize("budget, x, J", [(4.0, [0, 1, 1], 31.0), (5.0, [1, 1, 0], 36.0)])
@pytest.mark.parametrize("method", ["milp", "milp-compact"])
def test_knapsack_budget_by_hand(budget, x, J, method):
    p = DeployParams(capacity=20, max_bs=6, site_cost=[3.0, 2.0, 2.0], budget=budget)
    plan = solve_deployment(cube([[20.0], [16.0], [15.0]]), p, method=method)
    assert plan.x.tolist() == x and plan.objective == pytest.approx(J)


@pytest.mark.parametrize(
    "params, match",
    [
        (DeployParams(capacity=10, max_bs=1, existing=[1, 1]), "existing sites require 2 BSs but max_bs M = 1"),
        (DeployParams(capacity=10, max_bs=5, x_max=1, exact_count=True), "sites allow only 2"),
        (DeployParams(capacity=10, max_bs=1, min_served=1.0), "needs more BSs than max_bs M = 1"),
        (DeployParams(capacity=10, max_bs=2, min_served=1.0), "service obligations require 3 BSs"),
        (DeployParams(capacity=10, max_bs=3, x_max=1, min_served=[1.0, 0.0]), "x_max = 1"),
    ],
)
@pytest.mark.parametrize("method", ["greedy", "milp"])
def test_infeasible_requirements_raise_a_clear_error(params, match, method):
    with pytest.raises(InfeasibleError, match=match):
        solve_deployment(cube(TOY), params, method=method)


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_solver_detected_infeasibility(solver):
    # both cells must be fully served (20 users) but one BS of 10 exists, even sharing with the neighbour
    p = DeployParams(capacity=10, max_bs=1, min_served=1.0, neighbour_share=0.5)
    with pytest.raises(InfeasibleError, match="infeasible.*service"):
        solve_deployment(cube([[10.0], [10.0]]), p, solver=solver, check_first=False)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: DeployParams(capacity=0.0, max_bs=1), "capacity C0 must be > 0"),
        (lambda: DeployParams(capacity=-3.0, max_bs=1), "capacity C0 must be > 0"),
        (lambda: DeployParams(capacity=10, max_bs=-1), "max_bs M"),
        (lambda: DeployParams(capacity=10, max_bs=1.5), "max_bs M"),
        (lambda: DeployParams(capacity=10, max_bs=1, alpha=np.nan), "alpha"),
        (lambda: DeployParams(capacity=10, max_bs=1, neighbour_share=2.0), "neighbour_share"),
    ],
)
def test_bad_parameters_are_rejected(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_bad_per_cell_inputs_and_units_are_rejected():
    d = cube(TOY)
    with pytest.raises(InputError, match="site_cost"):
        solve_deployment(d, DeployParams(capacity=10, max_bs=2, site_cost=[1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="x_max"):
        solve_deployment(d, DeployParams(capacity=10, max_bs=2, x_max=[1.5, 1]))
    with pytest.raises(InputError, match="existing"):
        solve_deployment(d, DeployParams(capacity=10, max_bs=2, existing=[-1, 0]))
    with pytest.raises(InputError, match="'traffic' but the BS capacity is in 'users'"):
        solve_deployment(cube(TOY, unit="traffic"), DeployParams(capacity=10, max_bs=2))
    with pytest.raises(InputError, match="method"):
        solve_deployment(d, DeployParams(capacity=10, max_bs=2), method="simplex")
