"""Solver selection and true status: optimal, time-limited incumbent with gap, infeasible, unsolved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pulp
import pytest

from planning.demand import Demand
from planning.errors import InfeasibleError, InputError, PlanningWarning, SolverError
from planning.milp.deploy import solve_deployment
from planning.params import DeployParams
from planning.milp.solve import (
    SOLVER_TMP_PREFIX,
    SolverOptions,
    _true_status,
    add_var,
    available_solvers,
    make_solver,
    solve,
)

REPO = Path(__file__).resolve().parents[1]


def test_bundled_cbc_and_highs_are_available():
    assert {"cbc", "highs"} <= set(available_solvers())


def test_unknown_solver_and_bad_time_limit_are_rejected():
    with pytest.raises(InputError, match="unknown solver"):
        make_solver(SolverOptions(solver="gurobi-ish"))
    with pytest.raises(InputError, match="time_limit"):
        make_solver(SolverOptions(solver="cbc", time_limit=0))


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
    info = solve(small_lp(), SolverOptions(solver=solver))
    assert info.status == "optimal" and info.objective == pytest.approx(12.0)
    assert info.gap is not None and info.gap < 1e-9 and info.bound == pytest.approx(12.0)


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_infeasible_raises_with_constraint_families(solver):
    with pytest.raises(InfeasibleError, match=r"infeasible.*\['need', 'room'\]"):
        solve(small_lp(infeasible=True), SolverOptions(solver=solver))


@pytest.mark.parametrize("solver, match", [("cbc", "unbounded"), ("highs", "infeasible or unbounded")])
def test_unbounded_is_a_solver_error(solver, match):
    # HiGHS's presolve only says "infeasible or unbounded"; with unbounded variables that is not infeasibility
    with pytest.raises(SolverError, match=match):
        solve(small_lp(unbounded=True), SolverOptions(solver=solver))


def test_a_stop_without_any_solution_is_a_solver_error():
    # what PuLP reports when a solver stops at its limit before finding any feasible point
    fake = SimpleNamespace(status=pulp.LpStatusNotSolved, sol_status=pulp.LpSolutionNoSolutionFound, name="p")
    with pytest.raises(SolverError, match="without a feasible solution within the time limit of 1 s"):
        _true_status(fake, "cbc", 1.0, "", 1)


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


# --- solver child processes die with their parent; their files live and die in a private folder ---

SOLVE_HARD = """
import os, signal, sys, threading, time, json, tempfile
sys.path.insert(0, sys.argv[2])
from test_solve import hard_instance, children, running
from planning.milp.deploy import solve_deployment

mode = sys.argv[1]
found = []
# Ctrl-C as in a terminal: a run started in the background (`cmd &`, nohup, some CI runners) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
if mode == "interrupt":  # Ctrl-C once CBC runs: the solve must stop it, not leave it to its time limit
    def interrupt():
        while not children(os.getpid()):
            time.sleep(0.05)
        found.extend(children(os.getpid()))
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
d, p = hard_instance()
t0 = time.monotonic()
try:
    plan = solve_deployment(d, p, solver="cbc", time_limit=100)
except KeyboardInterrupt:
    print(json.dumps({"cbc": found, "running": [pid for pid in found if running(pid)],
                      "files": os.listdir(tempfile.gettempdir())}))
else:  # no interrupt reached the solve: say what happened instead (the test fails with this line)
    print(json.dumps({"returned": plan.status, "method": plan.method, "seconds": round(time.monotonic() - t0, 2),
                      "cbc": found}), file=sys.stderr)
"""


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of `pid`, read from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):  # gone between listdir and read (an empty read has no ')')
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(name))
    return out


def running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _solve_hard(mode: str, tmp: Path) -> subprocess.Popen:
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SOLVE_HARD, mode, str(REPO / "tests")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(check, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    return check()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_a_killed_run_takes_its_solver_along_and_the_next_solve_removes_its_files(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    proc = _solve_hard("kill", tmp)
    cbc = []
    try:
        cbc = _wait_for(lambda: children(proc.pid), 120)
        assert cbc, "CBC never started"
        proc.kill()  # SIGKILL: no Python clean-up runs in the planner
        proc.wait()
        assert _wait_for(lambda: not any(running(pid) for pid in cbc), 10), "CBC outlived its parent"
    finally:
        for pid in cbc:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
    left = os.listdir(tmp)
    assert len(left) == 1 and left[0].startswith(SOLVER_TMP_PREFIX)  # every file of that solve in one folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    solve(small_lp())  # the next solve clears the dead one's folder, and leaves nothing itself
    assert os.listdir(tmp) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_interrupted_solve_stops_its_solver_and_removes_its_files(tmp_path):
    proc = _solve_hard("interrupt", tmp_path / "tmp")
    out, err = proc.communicate(timeout=180)
    assert out.strip(), f"the interrupted solve reported nothing (exit {proc.returncode}): {err[-3000:]}"
    report = json.loads(out)
    assert report["cbc"] and report["running"] == [] and report["files"] == []


def test_a_solve_leaves_no_file_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert solve(small_lp()).status == "optimal"
    assert os.listdir(tmp_path) == []
