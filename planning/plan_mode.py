"""Plan mode: forecast past the end of the city's data and plan that future; no replay, no oracle.

    scenario = load_scenario("scenarios/demo.yaml", overrides=["mode=plan", ...])
    result = run_plan(scenario)                      # writes nothing
    planning.plan_output.write_plan(result, "out/plan")

A back-test (`planning.pipeline`) plans a period of the data and replays the plans on its real series;
a planning engineer with data up to today wants tomorrow's schedule instead. Here every problem's demand
is the forward forecast (`forecasting.forward`) of the `<problem>.horizon.days` after the last observed
step (default `PLAN_DAYS`), rolled in long-term windows (16 observed -> 48 forecast steps) with one
sample path per forecast sample, converted to the problem's unit and aggregated as the horizon asks.
The plan is made on it with the problem's risk settings (`risk.plan_on`: point, quantile, scenarios);
strategies that need the real series of the planned period (replay-scored proxies, reactive rules,
rolling re-planning, the oracle) are refused by the schema (`planning.scenario.modes`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .results import ForecastRun, RunOutcome
from .scenario.modes import PLAN_DAYS
from .scenario.schema import PROBLEMS, Scenario, ScenarioError

if TYPE_CHECKING:
    from forecasting.data import City

#: the forward forecast of plan mode rolls long-term windows (the task its schema keys allow)
PLAN_TASK = "long"


@dataclass
class PlannedProblem:
    """One problem planned on the future: the plan, the forecast it was planned from, and its settings."""

    problem: str  # 'deployment' | 'sleep'
    plan: Any  # DeployPlan | SleepPlan
    forecast: ForecastRun  # point forecast (`mean`) and quantile bands, on the planned cells and slots
    planned: Any  # the Demand the plan was solved on (point, quantile cube, or point with scenarios)
    params: Any  # DeployParams | SleepParams
    horizon: dict
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.plan.status


@dataclass
class PlanResult(RunOutcome):
    """Everything a plan-mode run produced, in memory (`planning.plan_output.write_plan` writes it)."""

    info: dict = field(default_factory=dict)
    mode: str = "plan"


def plan_steps(city: "City", days: float | None) -> int:
    """Steps past the end to plan: `days` (default PLAN_DAYS) x slots per day, at least one."""
    from .errors import InputError

    days = PLAN_DAYS if days is None else days
    steps = int(round(days * city.slots_per_day))
    if steps < 1:
        raise InputError(f"horizon.days={days} is shorter than one slot ({1 / city.slots_per_day:.3g} days)")
    return steps


def future_forecast(scenario: Scenario, city: "City", regions: np.ndarray, spec, cache: dict) -> ForecastRun:
    """The problem's forward forecast past the end, in its unit, on the planned cells and slots.

    The demand's values are the point forecast and its scenarios the forecast's sample paths (when the
    forecaster samples), so every `risk.plan_on` works as in a back-test.
    """
    from forecasting.forward import forward_forecast, step_calendar

    from .scenario_city import future_users

    from .demand import UnitConversion, _frame
    from .pipeline import _shape, scenario_forecaster

    notes: list[str] = []
    t0 = time.perf_counter()
    name = spec.forecaster or scenario.forecaster.model
    model, used = scenario_forecaster(scenario, name, PLAN_TASK, city, cache, notes)
    h = plan_steps(city, spec.horizon.days)
    steps = np.arange(city.n_steps, city.n_steps + h)
    futr = future_users(scenario, city, regions, steps, step_calendar(city, regions, steps)[2])
    fc = forward_forecast(model, city, h, "end", PLAN_TASK, regions, seed=scenario.seed, futr_users=futr)
    demand = _frame(city, regions, fc.steps, fc.point, "traffic", f"forecast:{used}",
                    calendar=(fc.day_of_week[0], fc.slot_of_day[0]))
    if fc.samples is not None:
        S = fc.samples.shape[0]
        demand.scenarios = np.moveaxis(fc.samples, 2, -1).reshape(S, demand.n_cells, fc.steps.size)
    if spec.unit != "traffic":
        demand = demand.convert(spec.unit, UnitConversion.fit(city))
    demand = _shape(demand, spec.horizon, scenario.area.cells)
    quantiles = {float(q): demand.quantile(q) for q in scenario.forecaster.quantiles} if demand.n_scenarios >= 2 else {}
    return ForecastRun(model=used, requested=name, task=PLAN_TASK, mean=demand, quantiles=quantiles,
                       seconds=time.perf_counter() - t0, notes=notes)


def plan_deployment(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str]) -> PlannedProblem:
    """BSs per cell for the forecast demand past the end (planning.milp.deploy, with the risk settings)."""
    from .milp.deploy import solve_deployment
    from .pipeline import _check_per_cell, _recorded

    spec = scenario.deployment
    t0 = time.perf_counter()
    fc = future_forecast(scenario, city, regions, spec, cache)
    params = spec.params()
    _check_per_cell(params, fc.mean, "deployment")
    options = scenario.solver.options(spec.method)
    plan = _recorded(lambda: solve_deployment(fc.mean, params, options, on=spec.risk.plan_on, q=spec.risk.q), sink)
    return PlannedProblem("deployment", plan, fc, fc.mean, params, _horizon(city, fc.mean, spec.risk),
                          time.perf_counter() - t0, list(fc.notes))


def plan_sleep(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str]) -> PlannedProblem:
    """Active RRUs per cell and slot for the forecast load past the end (planning.milp.sleep).

    c0 by the history_peak rule is sized on the whole history (everything observed is before the plan).
    """
    from .milp.sleep import solve_sleep
    from .capacity import sleep_capacity
    from .pipeline import _check_per_cell, _recorded, _shape

    spec = scenario.sleep
    t0 = time.perf_counter()
    fc = future_forecast(scenario, city, regions, spec, cache)
    notes = list(fc.notes)
    shape = lambda d: _shape(d, spec.horizon, scenario.area.cells)  # noqa: E731
    params = spec.params(sleep_capacity(spec, city, regions, city.n_steps, shape, notes))
    _check_per_cell(params, fc.mean, "sleep")
    risk = spec.risk
    planned = fc.mean.quantile(risk.q) if risk.plan_on == "quantile" else fc.mean
    on = "scenarios" if risk.plan_on == "scenarios" else "point"
    options = scenario.solver.options(spec.method)
    plan = _recorded(lambda: solve_sleep(planned, params, options, groups=spec.groups, on=on, epsilon=risk.epsilon),
                     sink)
    return PlannedProblem("sleep", plan, fc, planned, params, _horizon(city, fc.mean, risk),
                          time.perf_counter() - t0, notes)


def _horizon(city: "City", demand, risk) -> dict:
    """What was planned: the slots after the last observation, their span, and what the plan was made on."""
    stamps = demand.timestamps
    return {
        "first_step": city.n_steps, "slots": demand.n_slots, "slots_per_day": demand.slots_per_day,
        "days": demand.n_slots / demand.slots_per_day, "cells": demand.n_cells, "planned_on": risk.label,
        "first_slot": None if stamps is None else str(stamps[0]), "last_slot": None if stamps is None else str(stamps[-1]),
        "last_observed": _last_observed(city),
    }


def _last_observed(city: "City") -> str | None:
    if city.start_time is None:
        return None
    last = np.asarray(city.start_time)[0] + np.timedelta64(int(round((city.n_steps - 1) * city.minutes_per_slot)), "m")
    return str(last)


def run_plan(scenario: Scenario, problems: Sequence[str] | None = None) -> PlanResult:
    """Load the city, forecast past its end and plan each problem; returns everything in memory.

    Raises as `planning.pipeline.run_scenario` does (bad data or parameters, infeasible plans, refused
    checkpoints); time-limited incumbents are kept with their warnings in `result.warnings`.
    """
    from .pipeline import _timed
    from .scenario_city import load_scenario_city, overlap_warnings, planned_regions

    if scenario.mode != "plan":
        raise ScenarioError(f"the scenario {scenario.name!r} has mode: {scenario.mode}: run_plan plans past the end "
                            "of the data (mode: plan); back-tests run with planning.pipeline.run_scenario")
    wanted = list(problems) if problems is not None else scenario.problems
    for p in wanted:
        if p not in PROBLEMS or getattr(scenario, p) is None:
            raise ScenarioError(f"the scenario {scenario.name!r} has no `{p}:` section; add one or run another problem",
                                [(p, "section missing")])
    timings: dict[str, float] = {}
    sink: list[str] = []
    city, timings["load"] = _timed(lambda: load_scenario_city(scenario))
    regions = planned_regions(scenario, city)
    sink.extend(overlap_warnings(scenario, city, regions))
    cache: dict = {}
    runs = {}
    for p in wanted:
        fn = plan_deployment if p == "deployment" else plan_sleep
        runs[p], timings[p] = _timed(lambda: fn(scenario, city, regions, cache, sink))
    info = {"name": city.name, "regions": [int(r) for r in regions], "grid": list(city.grid),
            "slots_per_day": city.slots_per_day, "steps": city.n_steps, "cell_size": city.cell_size,
            "last_observed": _last_observed(city)}
    return PlanResult(scenario, city.name, city.crs, runs, timings, sink, info)
