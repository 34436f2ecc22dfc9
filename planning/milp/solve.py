"""Solver selection for the planning MILPs and the *true* status of a solve.

PuLP's bundled CBC is the default; HiGHS is picked by name (PuLP's in-process `highspy` interface).
PuLP reports status "Optimal" when a solver stops at its time limit with an incumbent; `solve` looks
at the solver's own result (CBC's log, HiGHS's model status and dual bound) and returns

- ``status="optimal"``: proven optimal (within the relative gap `gap_rel`, default 1e-6);
- ``status="time_limit"``: the incumbent at the time limit, with its bound and gap, plus a
  `PlanningWarning`;

and raises `InfeasibleError` (no feasible plan) or `SolverError` (unbounded, solver failure, or a stop
before any feasible solution was found).

`SolverOptions` (method, solver, time limit, relative gap, threads) is the one description of how to
solve; the planning entry points take it, or its fields as keywords.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import pulp

from ..errors import InfeasibleError, InputError, NoIncumbentError, PlanningWarning, SolverError

SOLVERS = {"cbc": "PULP_CBC_CMD", "highs": "HiGHS"}
# relative MIP gap for "optimal": the solvers' own numerical tolerances are ~1e-6 to 1e-7 (HiGHS's
# default 1e-4 would call a 0.01% worse plan optimal; 1e-9 is below what large models can certify)
DEFAULT_GAP = 1e-6


@dataclass(frozen=True)
class SolverOptions:
    """How to solve a planning problem: the method, the MILP solver and its time limit, gap and threads.

    `method` None means the problem's own default ('auto' for deployment, 'dp' for sleep control);
    `time_limit` applies to each MILP (seconds, None: no limit); `gap_rel` is the relative MIP gap
    counted as optimal; `threads` None leaves the choice to the solver.
    """

    method: str | None = None
    solver: str = "cbc"
    time_limit: float | None = None
    gap_rel: float | None = DEFAULT_GAP
    threads: int | None = None

    @classmethod
    def of(cls, options: SolverOptions | None = None, **changes) -> SolverOptions:
        """`options` (default: the defaults) with some fields changed; an unknown field name is an error."""
        unknown = sorted(set(changes) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown solver option(s) {unknown}: use {[f.name for f in fields(cls)]}")
        return replace(options if options is not None else cls(), **changes)


@dataclass
class SolveInfo:
    """What a solve returned: status, objective (with constant), best bound, relative gap, timings."""

    status: str  # 'optimal' | 'time_limit'
    objective: float
    bound: float | None
    gap: float | None  # |objective - bound| / max(|objective|, 1e-9); None when the solver gave no bound
    solver: str
    solve_s: float
    build_s: float = 0.0
    message: str = ""
    notes: list[str] = field(default_factory=list)


def available_solvers() -> list[str]:
    """Names usable with `solve` on this machine ('cbc', 'highs')."""
    found = set(pulp.listSolvers(onlyAvailable=True))
    return [name for name, cls in SOLVERS.items() if cls in found]


def make_solver(
    options: SolverOptions | None = None, msg: bool = False, log_path: str | None = None, warm_start: bool = False
) -> pulp.LpSolver:
    """A configured PuLP solver object for `options.solver` ('cbc' or 'highs').

    `warm_start`: start from the variables' current values (set with `LpVariable.setInitialValue`).
    """
    options = options if options is not None else SolverOptions()
    name, time_limit, gap_rel, threads = options.solver, options.time_limit, options.gap_rel, options.threads
    key = name.lower()
    if key not in SOLVERS:
        raise InputError(f"unknown solver {name!r}: use one of {sorted(SOLVERS)}")
    if key not in available_solvers():
        raise SolverError(
            f"solver {name!r} is not available here (PuLP lists {pulp.listSolvers(onlyAvailable=True)}); "
            "install PuLP < 4 for the bundled CBC, or highspy for HiGHS"
        )
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"time_limit must be > 0 seconds, got {time_limit}")
    if key == "cbc":
        with warnings.catch_warnings():
            # PuLP 3.x flags the bundled CBC as going away in 4.0; we pin pulp < 4 for exactly it
            warnings.simplefilter("ignore", DeprecationWarning)
            return pulp.PULP_CBC_CMD(
                msg=msg, timeLimit=time_limit, gapRel=gap_rel, threads=threads, logPath=log_path,
                timeMode="elapsed", warmStart=warm_start,
            )
    engine = _HiGHSWarm(msg=msg, timeLimit=time_limit, gapRel=gap_rel, threads=threads)
    engine.warm_start = warm_start
    return engine


class _HiGHSWarm(pulp.HiGHS):
    """PuLP's in-process HiGHS, handing the variables' initial values to HiGHS as a start when asked."""

    warm_start = False

    def callSolver(self, lp):  # noqa: N802 - PuLP's method name
        if self.warm_start:
            import highspy

            start = highspy.HighsSolution()
            start.col_value = [float(v.varValue) if v.varValue is not None else 0.0 for v in lp.variables()]
            start.value_valid = True
            lp.solverModel.setSolution(start)
        lp.solverModel.run()


def solve(
    prob: pulp.LpProblem, options: SolverOptions | None = None, msg: bool = False, warm_start: bool = False
) -> SolveInfo:
    """Solve `prob` and return its true status; raise `InfeasibleError`/`SolverError` if unusable.

    CBC runs as a child process that dies with this process (`solver_children`), with its model,
    solution and log files in a private temporary folder removed when the solve ends, fails or is
    interrupted (the folder of a killed process is removed by the next solve).
    """
    options = options if options is not None else SolverOptions()
    key, time_limit = options.solver.lower(), options.time_limit
    if key != "cbc":
        engine = make_solver(options, msg, None, warm_start)
        t0 = time.perf_counter()
        try:
            prob.solve(engine)
        except pulp.PulpSolverError as exc:
            raise SolverError(f"{key} failed on {prob.name!r}: {exc}") from exc
        return _true_status(prob, key, time.perf_counter() - t0, "", time_limit)
    with _solver_folder() as tmp:
        log_path = os.path.join(tmp, "cbc.log")
        engine = make_solver(options, msg, log_path, warm_start)
        engine.tmpDir = tmp  # PuLP's .mps/.sol/.mst files
        t0 = time.perf_counter()
        with solver_children():
            try:
                prob.solve(engine)
            except pulp.PulpSolverError as exc:
                raise SolverError(f"{key} failed on {prob.name!r}: {exc}") from exc
        solve_s = time.perf_counter() - t0
        log = _read(log_path) if os.path.exists(log_path) else ""
    return _true_status(prob, key, solve_s, log, time_limit)


# ----------------------------------------------------------------------------------------------------
# Solver child processes: they die with us, and their files go with them
# ----------------------------------------------------------------------------------------------------

SOLVER_TMP_PREFIX = "uomo-solver-"
_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
_CHILDREN = threading.local()  # .procs: the solver processes started by this thread's current solve


def _die_with_parent(parent: int):
    """A `preexec_fn` (Linux): the child gets SIGKILL when the thread that started it exits, even by SIGKILL.

    A no-op where prctl is unavailable. Checks the parent is still there after arming (it may have died
    between the fork and the prctl call).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def arm() -> None:
        if prctl is None:
            return
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


class _SubprocessForSolvers:
    """Stands in for the `subprocess` module inside PuLP's CBC interface.

    Inside `solver_children()`, every `Popen` gets `_die_with_parent` and is recorded, so that an
    interrupted solve kills its solver; elsewhere (other PuLP users) it is the plain `subprocess`.
    """

    def __getattr__(self, name):
        return getattr(subprocess, name)

    def Popen(self, *args, **kwargs):  # noqa: N802 - subprocess's name
        procs = getattr(_CHILDREN, "procs", None)
        if procs is None:
            return subprocess.Popen(*args, **kwargs)
        if os.name != "posix":
            proc = subprocess.Popen(*args, **kwargs)
            procs.append(proc)
            return proc
        if kwargs.get("preexec_fn") is None:
            kwargs["preexec_fn"] = _die_with_parent(os.getpid())
        with _interrupts_deferred():  # an interrupt inside Popen would leave a started solver nobody kills
            proc = subprocess.Popen(*args, **kwargs)
            procs.append(proc)
        return proc


@contextmanager
def _interrupts_deferred():
    """Hold SIGINT/SIGTERM back for the block (main thread only), then deliver them to their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in _INTERRUPTS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending[:1]:
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL and sig == signal.SIGINT:
                raise KeyboardInterrupt


@contextmanager
def solver_children():
    """Solver processes PuLP starts in this block die with this process, and are killed if the block fails.

    A failure includes KeyboardInterrupt (Ctrl-C, or SIGTERM on the command line): PuLP would otherwise
    leave CBC running until its own time limit.
    """
    from pulp.apis import coin_api

    if not isinstance(coin_api.subprocess, _SubprocessForSolvers):
        coin_api.subprocess = _SubprocessForSolvers()
    outer = getattr(_CHILDREN, "procs", None)
    _CHILDREN.procs = []
    try:
        yield
    except BaseException:
        for proc in _CHILDREN.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    finally:
        _CHILDREN.procs = outer


@contextmanager
def _solver_folder():
    """A private temporary folder for one solve, flocked while in use and removed afterwards.

    The lock (`owner.lock` inside) is what tells a live solve's folder from a killed one's: the kernel
    releases it when its process dies, however it dies, so the next solve can remove the folder.
    """
    import fcntl

    _remove_dead_solver_folders()
    with tempfile.TemporaryDirectory(prefix=SOLVER_TMP_PREFIX) as tmp:
        lock = os.path.join(tmp, "owner.lock")
        fd = os.open(lock + ".new", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(lock + ".new", lock)  # it appears already locked: no cleaner can take it
            yield tmp
        finally:
            os.close(fd)


def _remove_dead_solver_folders() -> None:
    """Remove the solver folders of processes that died mid-solve (their owner.lock is free)."""
    import fcntl

    root = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(SOLVER_TMP_PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            fd = os.open(os.path.join(root, name, "owner.lock"), os.O_RDWR)
        except OSError:
            continue  # being set up by a live solve, or not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live solve holds it
        finally:
            os.close(fd)
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def _true_status(prob: pulp.LpProblem, solver: str, solve_s: float, log: str, time_limit) -> SolveInfo:
    """Turn PuLP's (status, sol_status) plus the solver's own report into a SolveInfo or an error."""
    status, sol_status = prob.status, prob.sol_status
    name = prob.name
    if status == pulp.LpStatusInfeasible or sol_status == pulp.LpSolutionInfeasible:
        if solver == "highs" and _highs_status(prob) == "Primal infeasible or unbounded" and not _all_bounded(prob):
            raise SolverError(
                f"{name}: highs reports the problem infeasible or unbounded and some variables have no "
                "finite bound: bound them (or solve with cbc) to tell which"
            )
        raise InfeasibleError(
            f"{name}: {solver} proved the problem infeasible. Constraint families in the model: "
            f"{_families(prob)}; relax the binding requirement (e.g. allow more BSs or sites)"
        )
    if status == pulp.LpStatusUnbounded or sol_status == pulp.LpSolutionUnbounded:
        raise SolverError(f"{name}: {solver} reports the problem unbounded (a missing bound in the model)")
    if sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible) or status != pulp.LpStatusOptimal:
        limit = f" within the time limit of {time_limit} s" if time_limit else ""
        raise (NoIncumbentError if time_limit else SolverError)(
            f"{name}: {solver} stopped without a feasible solution{limit} "
            f"(PuLP status {pulp.LpStatus.get(status, status)}, solution status {sol_status}); "
            "raise the time limit or simplify the instance"
        )
    objective = float(pulp.value(prob.objective) or 0.0)
    constant = float(prob.objective.constant) if prob.objective is not None else 0.0
    bound = _bound(prob, solver, log, constant)
    gap = None if bound is None else abs(objective - bound) / max(abs(objective), 1e-9)
    proven = sol_status == pulp.LpSolutionOptimal
    if solver == "cbc" and re.search(r"Result - Stopped on (time|iterations|nodes)", log):
        proven = False  # belt and braces: the log is the solver's own word
    if solver == "highs":
        proven = _highs_status(prob) == "Optimal"
    if proven:
        return SolveInfo("optimal", objective, bound, gap, solver, solve_s, message="optimal")
    msg = (
        f"{name}: {solver} stopped at its time limit ({time_limit} s) before proving optimality; "
        f"returning the incumbent (objective {objective:.6g}, bound {bound if bound is None else f'{bound:.6g}'}, "
        f"gap {'unknown' if gap is None else f'{gap:.3%}'}). Raise time_limit for a proven optimum."
    )
    warnings.warn(msg, PlanningWarning, stacklevel=3)
    return SolveInfo("time_limit", objective, bound, gap, solver, solve_s, message=msg)


def _highs_status(prob: pulp.LpProblem) -> str:
    """HiGHS's own model status, in its words ('Optimal', 'Time limit reached', ...)."""
    h = prob.solverModel
    return h.modelStatusToString(h.getModelStatus())


def _all_bounded(prob: pulp.LpProblem) -> bool:
    """Every variable has finite bounds (then 'infeasible or unbounded' can only mean infeasible)."""
    return all(v.lowBound is not None and v.upBound is not None for v in prob.variables())


def _bound(prob: pulp.LpProblem, solver: str, log: str, constant: float) -> float | None:
    """Best bound on the objective in the problem's own sense, including the objective's constant."""
    if solver == "cbc":
        m = re.search(r"^(?:Lower|Upper) bound:\s+(\S+)", log, flags=re.M)
        if m is None:  # an LP, or CBC proved optimality without printing a bound
            return float(pulp.value(prob.objective)) if prob.sol_status == pulp.LpSolutionOptimal else None
        value = float(m.group(1))
        return value + constant if math.isfinite(value) else None
    info = prob.solverModel.getInfo()
    if not prob.isMIP():
        return float(pulp.value(prob.objective)) if prob.sol_status == pulp.LpSolutionOptimal else None
    dual = float(info.mip_dual_bound)
    if not math.isfinite(dual):
        return None
    # PuLP hands HiGHS min(sense * objective without constant)
    return (-dual if prob.sense == pulp.LpMaximize else dual) + constant


def _families(prob: pulp.LpProblem) -> list[str]:
    """Constraint families (name up to the first '_' that PuLP writes for '-') present in `prob`."""
    return sorted({c.name.split("_", 1)[0] for c in constraints_of(prob) if c.name})


def constraints_of(prob: pulp.LpProblem) -> list:
    """The problem's constraints (PuLP 3.x+ `constraints()`, or the 2.x dict)."""
    cons = prob.constraints
    return list(cons()) if callable(cons) else list(cons.values())


def add_var(prob: pulp.LpProblem, name: str, low: float | None = None, up: float | None = None,
            cat: str = pulp.LpContinuous) -> pulp.LpVariable:
    """A variable owned by `prob` (PuLP 3.x `add_variable`; plain `LpVariable` on PuLP 2.x)."""
    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, low, up, cat=cat)
    return pulp.LpVariable(name, low, up, cat)


def timed_build(build, *args, **kwargs):
    """Call `build(*args, **kwargs)` and return (result, seconds)."""
    t0 = time.perf_counter()
    out = build(*args, **kwargs)
    return out, time.perf_counter() - t0
