"""Parameters of the two planning problems, validated once (no solver import: replay reads them too)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError, per_cell


@dataclass
class DeployParams:
    """BS deployment (see `planning.milp.deploy`): symbols as in its docstring.

    capacity      C0, users one BS serves in a slot (> 0)
    max_bs        M, BSs allowed in total, existing ones included (>= 0)
    alpha         cost of one new BS per slot, in served-user units (>= 0)
    beta          penalty per unserved user-slot (>= 0)
    site_cost     c_i, relative cost of a new BS in cell i (> 0; scalar or per cell)
    x_max         per-cell site limit (None: only M limits)
    existing      BSs already in place (x_i >= existing_i; only new ones cost)
    budget        B, limit on sum_i c_i (x_i - existing_i) (None: no budget)
    exact_count   sum_i x_i == M as in the paper (default <= M: unused BSs are allowed)
    min_served    per-cell service obligation rho_i in [0, 1]: sum_t served_it >= rho_i sum_t U_it
    neighbour_share  > 0 lets a BS serve adjacent cells with up to this share of its capacity
    neighbours    (P, 2) adjacent cell pairs (default: the demand's rook neighbours)
    unit          unit of the demand and of `capacity` ('users')
    """

    capacity: float
    max_bs: int
    alpha: float = 0.0
    beta: float = 0.0
    site_cost: float | np.ndarray = 1.0
    x_max: int | np.ndarray | None = None
    existing: int | np.ndarray | None = None
    budget: float | None = None
    exact_count: bool = False
    min_served: float | np.ndarray | None = None
    neighbour_share: float = 0.0
    neighbours: np.ndarray | None = None
    unit: str = "users"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.capacity) and self.capacity > 0):
            raise InputError(f"capacity C0 must be > 0 users per BS, got {self.capacity}")
        if not float(self.max_bs).is_integer() or self.max_bs < 0:
            raise InputError(f"max_bs M must be a whole number >= 0, got {self.max_bs}")
        self.max_bs = int(self.max_bs)
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be finite and >= 0, got {v}")
        if self.budget is not None and not (np.isfinite(self.budget) and self.budget >= 0):
            raise InputError(f"budget must be >= 0, got {self.budget}")
        if not 0 <= self.neighbour_share <= 1:
            raise InputError(f"neighbour_share must lie in [0, 1], got {self.neighbour_share}")

    @property
    def covers_neighbours(self) -> bool:
        return self.neighbour_share > 0

    def resolve(self, n: int) -> "DeployArrays":
        """Per-cell arrays for `n` cells (broadcast and checked)."""
        cost = per_cell(self.site_cost, n, "site_cost", positive=True)
        exist = per_cell(0 if self.existing is None else self.existing, n, "existing", integer=True)
        xmax = per_cell(self.x_max, n, "x_max", integer=True, allow_none=True)
        unbounded = xmax is None
        if unbounded:
            xmax = np.full(n, max(self.max_bs, int(exist.max(initial=0))), dtype=np.int64)
        if np.any(exist > xmax):
            i = int(np.argmax(exist > xmax))
            raise InputError(f"cell {i} has {exist[i]} existing BSs but x_max = {xmax[i]}")
        rho = per_cell(self.min_served, n, "min_served", allow_none=True)
        if rho is not None and np.any(rho > 1):
            raise InputError(f"min_served must lie in [0, 1], got max {rho.max()}")
        return DeployArrays(cost, exist, xmax, unbounded, rho)


@dataclass
class DeployArrays:
    cost: np.ndarray  # (n,) c_i
    existing: np.ndarray  # (n,) e_i
    x_max: np.ndarray  # (n,) site limits (M where unlimited)
    unbounded: bool
    min_served: np.ndarray | None


@dataclass
class SleepParams:
    """RRU sleep control (see `planning.milp.sleep`): symbols as in its docstring.

    c0          load one RRU carries in a slot, in the load's unit (> 0; scalar or per cell)
    n_rru       K, RRUs per cell (scalar or per cell)
    x0          RRUs active before the first slot (default: all K on)
    beta        energy of one active RRU per slot (static power, > 0)
    alpha       energy per unit of served load (default 0.5 * beta / c0: a fully loaded RRU draws 1.5x
                its idle power)
    w_qos, w_switch, w_energy   weights of the three normalised terms
    min_active  RRUs that must stay on in every slot (coverage floor)
    unit        unit of the load and of c0 ('traffic')
    """

    c0: float | np.ndarray
    n_rru: int | np.ndarray = 3
    x0: int | np.ndarray | None = None
    beta: float = 1.0
    alpha: float | np.ndarray | None = None
    w_qos: float = 10.0
    w_switch: float = 1.0
    w_energy: float = 1.0
    min_active: int = 0
    unit: str = "traffic"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.beta) and self.beta > 0):
            raise InputError(f"beta (energy per active RRU) must be > 0, got {self.beta}")
        for name in ("w_qos", "w_switch", "w_energy"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be finite and >= 0, got {v}")
        if int(self.min_active) != self.min_active or self.min_active < 0:
            raise InputError(f"min_active must be a whole number >= 0, got {self.min_active}")

    def resolve(self, n: int) -> "SleepArrays":
        c0 = per_cell(self.c0, n, "c0 (RRU capacity)", positive=True)
        K = per_cell(self.n_rru, n, "n_rru", integer=True)
        if np.any(K < 1):
            raise InputError(f"n_rru must be >= 1 per cell, got min {K.min()}")
        if np.any(K < self.min_active):
            raise InputError(f"min_active={self.min_active} exceeds n_rru (min {K.min()})")
        x0 = K.copy() if self.x0 is None else per_cell(self.x0, n, "x0", integer=True)
        if np.any(x0 > K):
            raise InputError("x0 (initial active RRUs) exceeds n_rru in some cell")
        alpha = 0.5 * self.beta / c0 if self.alpha is None else per_cell(self.alpha, n, "alpha")
        return SleepArrays(c0, K, x0, alpha, float(self.beta), int(self.min_active))


@dataclass
class SleepArrays:
    c0: np.ndarray
    n_rru: np.ndarray
    x0: np.ndarray
    alpha: np.ndarray
    beta: float
    min_active: int
