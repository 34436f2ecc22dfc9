"""What a scenario run produces, in memory: per problem the plans, their replay and the forecast used.

`planning.pipeline.run_scenario` returns a `ScenarioResult`; `planning.report` and the sweep read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scenario.schema import Scenario


@dataclass
class StrategyRun:
    """One strategy of a problem: its plan, the plan's replay on real demand, what it was planned from."""

    name: str  # 'forecast' | 'poi' | 'residents' | 'oracle' | 'always_on' | 'threshold'
    label: str  # e.g. 'forecast (uomo)'
    plan: Any  # DeployPlan | SleepPlan
    score: Any  # DeployScore | SleepScore
    demand: Any | None  # the Demand it was planned from (None for reactive rules)
    seconds: float


@dataclass
class ForecastRun:
    """The forecast used by a problem, on the planned cells and slots (mean and quantile cubes)."""

    model: str  # the model actually used
    requested: str  # what the scenario asked for
    task: str
    mean: Any  # Demand
    quantiles: dict  # {q: Demand}; empty when the forecaster draws no samples
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class ProblemRun:
    """A solved and replayed problem: what the report reads."""

    problem: str  # 'deployment' | 'sleep'
    real: Any  # Demand on the planned cells and slots (the replay truth)
    params: Any  # DeployParams | SleepParams
    strategies: list[StrategyRun]
    forecast: ForecastRun | None
    horizon: dict
    notes: list[str] = field(default_factory=list)

    def strategy(self, name: str) -> StrategyRun:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(f"{self.problem} has no strategy {name!r} (has {[s.name for s in self.strategies]})")

    @property
    def status(self) -> str:
        """'optimal', or 'time_limit' when some plan is a time-limited incumbent."""
        return "time_limit" if any(s.plan.status == "time_limit" for s in self.strategies) else "optimal"


@dataclass
class RunOutcome:
    """What every scenario run holds, back-test or plan: the problems it solved and how it went."""

    scenario: Scenario
    city: str
    crs: str | None
    problems: dict  # problem name -> ProblemRun (back-test) or PlannedProblem (plan mode)
    timings: dict[str, float]
    warnings: list[str]

    @property
    def status(self) -> str:
        """'optimal', or 'time_limit' when some plan is a time-limited incumbent."""
        return "time_limit" if any(p.status == "time_limit" for p in self.problems.values()) else "optimal"


@dataclass
class ScenarioResult(RunOutcome):
    """Everything a back-test run produced, in memory."""

    city_info: dict = field(default_factory=dict)
