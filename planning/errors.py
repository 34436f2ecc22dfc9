"""Errors, their exit codes, and input checks shared by the planning modules.

No solver import, so replay can use them; the CLI and the sweep both map an exception to its exit
code with `exit_code` (documented in `plan-bs-deploy --help`).
"""

from __future__ import annotations

import numpy as np


class PlanningError(Exception):
    """Base class of every error raised by `planning`."""


class InputError(PlanningError, ValueError):
    """Bad input to a planning function (negative or NaN demand, bad shape, C0 <= 0, ...)."""


class OutputError(InputError):
    """The output folder cannot take the report: a file in the way, read-only, or another run writing it."""


class InfeasibleError(PlanningError):
    """The planning problem has no feasible solution; the message names the binding requirement."""


class SolverError(PlanningError):
    """The solver failed or stopped without a usable solution (not infeasible, just unsolved)."""


class NoIncumbentError(SolverError):
    """The solver hit its time limit before finding any feasible solution."""


class PlanningWarning(UserWarning):
    """A usable but not proven-optimal result (e.g. a time-limited incumbent with a gap)."""


# exit codes of plan-bs-deploy / plan-rru-sleep (and the sweep's `exit_code` column)
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_PLAN_FAILED = 3
EXIT_CHECKPOINT = 4
EXIT_TIME_LIMIT = 5
EXIT_INTERRUPTED = 130


def exit_code(exc: BaseException) -> int:
    """The exit code of an exception raised while loading, running or reporting a scenario."""
    from forecasting.checkpoint import CheckpointError
    from forecasting.data import DataError
    from forecasting.interface import NotApplicable

    from .scenario.schema import ScenarioError  # lazy: the schema imports pydantic

    if isinstance(exc, CheckpointError):
        return EXIT_CHECKPOINT
    if isinstance(exc, (InfeasibleError, SolverError)):
        return EXIT_PLAN_FAILED
    if isinstance(exc, (ScenarioError, DataError, InputError, NotApplicable, FileNotFoundError, FileExistsError,
                        NotADirectoryError, IsADirectoryError, PermissionError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_INTERNAL


def check_matrix(values: np.ndarray, name: str, ndim: int = 2) -> np.ndarray:
    """`values` as a float64 array of `ndim` dimensions, finite and >= 0, else `InputError`."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != ndim:
        raise InputError(f"{name} must be a {ndim}-d array, got shape {a.shape}")
    if a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        n = int((~np.isfinite(a)).sum())
        raise InputError(f"{name} has {n} NaN/inf entries: fill or drop them before planning")
    if np.any(a < 0):
        n = int((a < 0).sum())
        raise InputError(f"{name} has {n} negative entries (min {a.min():.4g}): demand and load must be >= 0")
    return a


def per_cell(value, n: int, name: str, *, integer: bool = False, positive: bool = False,
             allow_none: bool = False) -> np.ndarray | None:
    """Broadcast a scalar or (n,) array to (n,), checking it is finite and >= 0 (> 0 if `positive`)."""
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name} is required")
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise InputError(f"{name} must be a scalar or one value per cell ({n},), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} has NaN/inf entries")
    if positive and np.any(a <= 0):
        raise InputError(f"{name} must be > 0, got min {a.min():.4g}")
    if np.any(a < 0):
        raise InputError(f"{name} must be >= 0, got min {a.min():.4g}")
    if integer:
        if np.any(a != np.round(a)):
            raise InputError(f"{name} must hold whole numbers, got {a[a != np.round(a)][:3]}")
        return a.astype(np.int64)
    return a
