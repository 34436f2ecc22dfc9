"""Solver selection and true status: optimal, time-limited incumbent with gap, infeasible, unsolved."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pulp
import pytest

from planning.demand import Demand
from planning.deploy import solve_deployment
from planning.errors import InfeasibleError, InputError, PlanningWarning, SolverError
from planning.params import DeployParams
from planning.solve import _classify, add_var, available_solvers, make_solver, solve


def test_bundled_cbc_and_highs_are_available():
    assert {"cbc", "highs"} <= set(available_solvers())


def test_unknown_solver_and_bad_time_limit_are_rejected():
    with pytest.raises(InputError, match="unknown solver"):
        make_solver("gurobi-ish")
    with pytest.raises(InputError, match="time_limit"):
        make_solver("cbc", time_limit=0)


def small_lp(sense=pulp.LpMaximize, infeasible=False, unbounded=False) -> pulp.LpProblem:
    # max 3a + 2b + 1 s.t. a + b <= 4, a <= 3, integers: a = 3, b = 1 -> 9 + 2 + 1 = 12
    p = pulp.LpProblem("small", sense)
    a = add_var(p, "a", 0, None if unbounded else 3, pulp.LpInteger)
    b = add_var(p, "b", 0, None, pulp.LpInteger)
    p.setObjective(pulp.LpAffineExpression([(a, 3.0), (b, 2.0)], constant=1.0))
    if not unbounded:
        p.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression([(a, 1.0), (b, 1.0)]), pulp.LpConstraintLE,
                                          "room-total", 4.0))
    if infeasible:
        p.addConstraint(pulp.LpConstraint(pulp.LpAffineExpression([(a, 1.0)]), pulp.LpConstraintGE,
                                          "need-a", 5.0))
    return p


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_optimal_status_objective_with_constant_and_zero_gap(solver):
    info = solve(small_lp(), solver)
    assert info.status == "optimal" and info.objective == pytest.approx(12.0)
    assert info.gap is not None and info.gap < 1e-9 and info.bound == pytest.approx(12.0)


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_infeasible_raises_with_constraint_families(solver):
    with pytest.raises(InfeasibleError, match=r"infeasible.*\['need', 'room'\]"):
        solve(small_lp(infeasible=True), solver)


@pytest.mark.parametrize("solver, match", [("cbc", "unbounded"), ("highs", "infeasible or unbounded")])
def test_unbounded_is_a_solver_error(solver, match):
    # HiGHS's presolve only says "infeasible or unbounded"; with unbounded variables that is not infeasibility
    with pytest.raises(SolverError, match=match):
        solve(small_lp(unbounded=True), solver)


def test_a_stop_without_any_solution_is_a_solver_error():
    # what PuLP reports when a solver stops at its limit before finding any feasible point
    fake = SimpleNamespace(status=pulp.LpStatusNotSolved, sol_status=pulp.LpSolutionNoSolutionFound, name="p")
    with pytest.raises(SolverError, match="without a feasible solution within the time limit of 1 s"):
        _classify(fake, "cbc", 1.0, "", 1)


def hard_instance() -> tuple[Demand, DeployParams]:
    """Neighbour coverage + a budget on unequal site costs: a knapsack-like MILP CBC/HiGHS cannot close fast."""
    rng = np.random.default_rng(0)
    N, T = 60, 12
    U = rng.gamma(0.7, 40, size=(N, T))
    d = Demand(U, "users", [f"c{i}" for i in range(N)], np.arange(T), np.zeros(T, int), 24,
               grid_index=np.column_stack([np.zeros(N, int), np.arange(N) // 10, np.arange(N) % 10]),
               source="real")
    p = DeployParams(capacity=17.3, max_bs=2 * N, alpha=1.3, beta=0.4, site_cost=rng.uniform(1, 3, N).round(3),
                     budget=N * 1.37, neighbour_share=0.35, x_max=6)
    return d, p


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_time_limit_returns_the_incumbent_with_its_gap_and_a_warning(solver):
    d, p = hard_instance()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # started from the all-zero plan (feasible), so an incumbent exists however slow the machine is
        plan = solve_deployment(d, p, solver=solver, time_limit=1, warm_start=True)
    # PuLP itself labels this solve "Optimal"; the true status is a time-limited incumbent
    assert plan.status == "time_limit"
    assert plan.gap is not None and plan.gap > 1e-6
    assert plan.bound is not None and plan.bound > plan.objective  # maximisation: bound above incumbent
    assert any(issubclass(w.category, PlanningWarning) and "time limit" in str(w.message) for w in caught)
    assert plan.x.sum() <= p.max_bs and plan.notes
