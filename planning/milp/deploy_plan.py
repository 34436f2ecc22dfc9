"""The deployment plan: what every BS deployment method returns (`DeployPlan`, plain arrays).

The full MILP and the compact MILP (`planning.milp.deploy`) and the exact greedy (`planning.milp.greedy`)
all write their solution back into a `DeployPlan`: BSs per cell x_i, the users served_it as planned,
the objective (served - beta * shortfall - cost, see `planning.milp.deploy`) and how the solve went.
Replay and reports read only these arrays, never solver objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..params import DeployParams


@dataclass
class DeployPlan:
    """A deployment written back from the model (or the greedy): plain arrays, no solver objects."""

    x: np.ndarray  # (N,) BSs per cell
    served: np.ndarray  # (N, T) users served, as planned on the demand it was planned from
    objective: float  # on the planning demand
    status: str  # 'optimal' | 'time_limit'
    gap: float | None
    bound: float | None
    method: str  # 'milp' | 'greedy'
    solver: str | None
    build_s: float
    solve_s: float
    cell_ids: np.ndarray
    demand_source: str
    params: DeployParams
    notes: list[str] = field(default_factory=list)

    @property
    def capacity(self) -> np.ndarray:
        return self.params.capacity * self.x

    @property
    def n_bs(self) -> int:
        return int(self.x.sum())
