"""Running a scenario: load the city -> forecast -> plan -> replay (no files; `planning.report` writes them).

    scenario = load_scenario("scenarios/demo.yaml", overrides=["deployment.max_bs=80"])
    result = run_scenario(scenario)              # writes nothing
    planning.report.write_report(result, "out/demo")

Called by the CLI (`planning.cli`), the sweep (`planning.sweep`) and the notebooks.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from forecasting.data import City


from .capacity import sleep_capacity, size_rru_capacity  # noqa: F401  (public here too)
from .results import ForecastRun, ProblemRun, ScenarioResult, StrategyRun
from .scenario.schema import PROBLEMS, Horizon, RiskSpec, Scenario, ScenarioError, SleepSpec, _looks_like_path
from .scenario_city import load_scenario_city, overlap_warnings, planned_regions  # noqa: F401  (public here too)


class _Progress:
    """A tqdm bar when enabled (and stderr is a terminal: `progress_bar`), a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, desc: str, leave: bool = True):
        self.bar = None
        if enabled:
            from forecasting.cli_common import progress_bar

            self.bar = progress_bar(total, desc, leave=leave)

    def step(self, desc: str | None = None, n: int = 1) -> None:
        if self.bar is not None:
            if desc:
                self.bar.set_postfix_str(desc)
            self.bar.update(n)

    def describe(self, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(desc)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def crop_steps(city: "City", start: int, stop: int) -> "City":
    """The city restricted to steps [start, stop) (calendar features and start times follow)."""
    from forecasting.data import DataError

    if not 0 <= start < stop <= city.n_steps:
        raise DataError(f"{city.name}: steps [{start}, {stop}) are outside 0..{city.n_steps}")
    sl = slice(start, stop)
    pick = lambda a: None if a is None else a[:, sl]  # noqa: E731
    start_time = None
    if city.start_time is not None:
        start_time = np.asarray(city.start_time) + np.timedelta64(int(round(start * city.minutes_per_slot)), "m")
    exog = None if city.exog is None else {k: v[:, sl] for k, v in city.exog.items()}
    return replace(city, traffic=city.traffic[:, sl], users=pick(city.users), day_of_week=city.day_of_week[:, sl],
                   slot_of_day=city.slot_of_day[:, sl], start_time=start_time, exog=exog, meta=dict(city.meta))


def horizon_steps(city: "City", horizon: Horizon, task: str) -> tuple[int, int]:
    """[start, stop) steps of the planned period; a long-term forecast needs 16 observed steps first."""
    from forecasting.masks import LONG_OBSERVED
    from .errors import InputError

    spd, T = city.slots_per_day, city.n_steps
    earliest = LONG_OBSERVED if task == "long" else 0
    length = int(round(horizon.days * spd)) if horizon.days is not None else None
    if horizon.start_day is not None:
        start = int(round(horizon.start_day * spd))
        stop = T if length is None else start + length
    else:
        stop = T
        start = earliest if length is None else T - length
    if length is not None and length < 1:
        raise InputError(f"horizon.days={horizon.days} is shorter than one slot ({1 / spd:.3g} days)")
    if start < earliest:
        raise InputError(
            f"horizon starts at step {start} but the {task!r} forecast needs {earliest} observed steps before it: "
            f"set horizon.start_day >= {earliest / spd:.3g} or shorten horizon.days"
        )
    if stop > T:
        raise InputError(
            f"horizon [{start}, {stop}) steps runs past the series ({T} steps = {T / spd:.3g} days of {city.name}): "
            "shorten horizon.days or move horizon.start_day earlier"
        )
    return start, stop


def _select_cells(d, cells: list[str] | None):
    from .errors import InputError

    if cells is None:
        return d
    index = {c: i for i, c in enumerate(d.cell_ids.tolist())}
    missing = [c for c in cells if c not in index]
    if missing:
        raise InputError(
            f"area.cells: {missing[:5]} are not cells of the planned regions (ids look like {d.cell_ids[:3].tolist()})"
        )
    return d.cells([index[c] for c in cells])


def _shape(d, horizon: Horizon, cells: list[str] | None):
    """Restrict to the planned cells, then aggregate slots as the horizon asks."""
    d = _select_cells(d, cells)
    if horizon.slots_per_day is not None and horizon.slots_per_day != d.slots_per_day:
        how = horizon.aggregate or ("mean" if d.unit == "users" else "sum")
        d = d.aggregate(horizon.slots_per_day, how)
    return d


class _ProgressTap:
    """Wraps a forecaster and advances a progress bar once per `predict` call."""

    def __init__(self, inner, progress: _Progress):
        self.inner, self.progress = inner, progress
        self.name, self.tasks = inner.name, inner.tasks
        self.futr_exog = inner.futr_exog

    def predict(self, windows, mask):
        pred = self.inner.predict(windows, mask)
        self.progress.step()
        return pred


def scenario_forecaster(scenario: Scenario, name: str, task: str, city, cache: dict, notes: list[str]):
    """(fitted forecaster, name used): a baseline fitted on the city, or a UoMo checkpoint.

    A checkpoint that cannot be found is an error (`CheckpointError`), fallback or not: `forecaster.fallback`
    stands in only for a forecaster that loads but does not serve `task` (the notes say so).
    """
    from forecasting.registry import is_baseline

    model = _load_model(scenario, name, task, city, cache, notes)
    fallback = (scenario.forecaster.fallback or {}).get(task)
    if task not in model.tasks and fallback is not None:
        notes.append(f"{_display_name(name)} does not serve the {task!r} task (it serves {list(model.tasks)}); "
                     f"used the fallback baseline {fallback!r}")
        return _load_model(scenario, fallback, task, city, cache, notes), fallback
    if is_baseline(name) or task in model.tasks:
        return model, _display_name(name)
    from .errors import InputError

    raise InputError(f"{_display_name(name)} cannot forecast the {task!r} task (it serves {list(model.tasks)}): "
                     f"set forecaster.fallback.{task} to a baseline, or pick another forecaster")


def _load_model(scenario: Scenario, name: str, task: str, city, cache: dict, notes: list[str]):
    """The forecaster named `name` (`forecasting.registry`), loaded once per run (`cache`): a baseline
    fitted on the city, or a UoMo checkpoint with the scenario's sampling settings."""
    from forecasting.registry import ForecasterUnavailable, is_baseline, make_forecaster
    from .errors import InputError

    spec = scenario.forecaster
    if name in cache:
        return cache[name]
    s = spec.sampling
    sampling = dict(sampler=s.sampler, steps=s.steps, n_samples=s.n_samples, eta=s.eta, point=s.point,
                    batch_size=s.batch_size, seed=scenario.seed)
    try:
        model = make_forecaster(name, sampling=sampling, device=spec.device)
    except ForecasterUnavailable as exc:
        raise InputError(f"forecaster {name!r} cannot be used here: {exc}") from None
    if is_baseline(name):
        if task not in model.tasks:
            raise InputError(f"baseline {name!r} cannot forecast the {task!r} task (it serves {list(model.tasks)})")
        model.fit(city)
        if any(getattr(scenario, p).risk.plan_on != "point" for p in scenario.problems):
            model = _calibrated_baseline(model, city, spec.sampling.n_samples, notes)
    elif spec.calibrate_on:
        model = _recalibrated(model, name, spec.calibrate_on, scenario, notes)
    elif getattr(model, "calibration", None) is None:
        notes.append(f"{_display_name(name)} has no calibration file: its raw samples are used "
                     "(fit one with bench/calibration_bench.py --save)")
    cache[name] = model
    return model


def _recalibrated(model, name: str, cities: list[str], scenario: Scenario, notes: list[str]):
    """The UoMo `model` with a calibration fitted on the val regions of `cities` (`forecaster.calibrate_on`)
    in place of its calibration file, with the scenario's sampling settings."""
    from forecasting.calibration import CalibrationError, fit_calibration
    from forecasting.data import DataError, load_city
    from .errors import InputError

    try:
        sources = [load_city(c, getattr(scenario.city, "data_dir", None)) for c in cities]
        model.calibration = fit_calibration(model, sources, split="val", stride=8)
    except (DataError, CalibrationError, FileNotFoundError) as exc:
        raise InputError(f"forecaster.calibrate_on {cities}: {exc}") from None
    notes.append(f"{_display_name(name)}: recalibrated on the val regions of {', '.join(c.name for c in sources)} "
                 "(forecaster.calibrate_on) instead of its calibration file")
    return model


def _calibrated_baseline(model, city, n_samples: int, notes: list[str]):
    """A point baseline with samples from a split-conformal calibration fitted on the city's val regions."""
    from forecasting.calibration import CalibratedForecaster, fit_calibration
    from .errors import InputError

    if city.regions("val").size == 0:
        raise InputError(f"planning on a baseline's quantiles or scenarios calibrates it on val regions, and "
                         f"{city.name} has none: set risk.plan_on: point, or give the city val regions")
    tasks = [t for t in ("short", "long", "generation") if t in model.tasks]
    cal = fit_calibration(model, [city], tasks=tasks, split="val")
    notes.append(f"{model.name}: intervals from a split-conformal calibration on {city.name}'s val regions")
    return CalibratedForecaster(model, cal, n_samples=max(2, n_samples))


def _display_name(model: str) -> str:
    """A checkpoint path shows as its file name; names and baselines as they are."""
    return Path(model).name if _looks_like_path(model) else model


def shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape):
    """The forecast of `spec`'s task over [start, stop), its mean and quantile cubes passed through `shape`."""
    fc = forecast_horizon(scenario, city, regions, spec.task, spec.unit, start, stop,
                          spec.forecaster or scenario.forecaster.model, cache, progress)
    fc.mean = shape(fc.mean)
    fc.quantiles = {q: shape(d) for q, d in fc.quantiles.items()}
    return fc


def forecast_horizon(scenario: Scenario, city: "City", regions: np.ndarray, task: str, unit: str, start: int, stop: int,
                     model_name: str, cache: dict, progress: bool = False) -> ForecastRun:
    """Forecast `regions` over steps [start, stop) with the scenario's forecaster, mean and quantiles.

    The city is cropped to the period plus the context the task needs (16 observed steps for 'long';
    at least one 64-step window), so the forecaster only works on what is planned.
    """
    from forecasting.data import WINDOW
    from forecasting.masks import LONG_OBSERVED

    from .demand import UnitConversion
    from .forecast_demand import forecast_demand, rotation_groups
    from .errors import InputError

    notes: list[str] = []
    t0 = time.perf_counter()
    model, used = scenario_forecaster(scenario, model_name, task, city, cache, notes)
    if city.n_steps < WINDOW:
        raise InputError(f"{city.name} has {city.n_steps} steps; forecasting needs at least one {WINDOW}-step window")
    context = LONG_OBSERVED if task == "long" else 0
    lo = max(0, min(start - context, stop - WINDOW))
    hi = max(stop, lo + WINDOW)
    cropped = crop_steps(city, lo, hi)
    conversion = UnitConversion.fit(city) if unit == "users" else None
    calls = len(rotation_groups(*city.grid)) if task == "generation" else 1
    bar = _Progress(progress, calls, f"forecast ({used}, {task})", leave=False)
    try:
        mean = forecast_demand(_ProgressTap(model, bar), cropped, task=task, split=None, unit=unit, regions=regions,
                               first=start - lo, conversion=conversion, name=used)
    finally:
        bar.close()
    mean = mean.slots(0, stop - start)
    quantiles = {float(q): mean.quantile(q) for q in scenario.forecaster.quantiles} if mean.n_scenarios >= 2 else {}
    return ForecastRun(model=used, requested=model_name, task=task, mean=mean, quantiles=quantiles,
                       seconds=time.perf_counter() - t0, notes=notes)


def _recorded(fn, sink: list[str]):
    """Call fn() collecting PlanningWarnings (time-limited incumbents) into `sink` instead of printing."""
    from .errors import PlanningWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlanningWarning)
        out = fn()
    for w in caught:
        if issubclass(w.category, PlanningWarning):
            sink.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_deployment(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str],
                   progress: bool = False) -> ProblemRun:
    """Forecast demand, plan BSs for every strategy and the oracle, replay all plans on real demand."""
    from .demand import real_demand
    from .proxy_demand import poi_demand, resident_demand
    from .milp.deploy import solve_deployment
    from .replay import replay_deployment

    spec = scenario.deployment
    start, stop = horizon_steps(city, spec.horizon, spec.task)
    steps = slice(start, stop)
    shape = lambda d: _shape(d, spec.horizon, scenario.area.cells)  # noqa: E731
    real = shape(real_demand(city, None, spec.unit, regions=regions, steps=steps))
    params = spec.params()
    _check_per_cell(params, real, "deployment")
    notes: list[str] = []
    sources: list[tuple[str, str, Any]] = []  # (name, label, demand)
    forecast = None
    risk_kw: dict[str, dict] = {}
    if "forecast" in spec.strategies:
        fc = forecast = shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape)
        notes += fc.notes
        if spec.risk.plan_on != "point":  # the point plan beside it: their replay gap is the value of the hedging
            sources.append(("forecast_point", f"forecast ({fc.model}, point)", fc.mean))
        sources.append(("forecast", _forecast_label(fc.model, spec.risk), fc.mean))
        risk_kw["forecast"] = dict(on=spec.risk.plan_on, q=spec.risk.q)
    if "poi" in spec.strategies:
        if city.poi is None:
            notes.append(f"strategy 'poi' skipped: {city.name} has no POI layer")
        else:
            sources.append(("poi", "POI", shape(poi_demand(city, None, spec.unit, regions=regions, steps=steps))))
    if "residents" in spec.strategies:
        if city.residents is None:
            notes.append(f"strategy 'residents' skipped: {city.name} has no residents layer")
        else:
            sources.append(("residents", "residents",
                            shape(resident_demand(city, None, spec.unit, regions=regions, steps=steps))))
    sources.append(("oracle", "oracle (real demand)", real))
    options = scenario.solver.options(spec.method)
    bar = _Progress(progress, len(sources), "deployment plans", leave=False)
    plans = {}
    try:
        for name, label, demand in sources:
            bar.describe(name)
            kw = risk_kw.get(name, {})
            plans[name] = _recorded(lambda: _timed(lambda: solve_deployment(demand, params, options, **kw)), sink)
            bar.step()
    finally:
        bar.close()
    oracle = plans["oracle"][0]
    runs = [
        StrategyRun(name, label, plans[name][0], replay_deployment(plans[name][0], real, params, oracle=oracle),
                    demand, plans[name][1])
        for name, label, demand in sources
    ]
    return ProblemRun("deployment", real, params, runs, forecast,
                      _horizon_info(city, start, stop, real, spec.horizon), notes)


def _check_per_cell(params, real, problem: str) -> None:
    """Per-cell lists of the scenario checked against the planned cells before anything is solved."""
    from .errors import InputError

    try:
        params.resolve(real.n_cells)
    except InputError as exc:
        raise InputError(
            f"{problem}: {exc} (the plan covers {real.n_cells} cells, ordered as {real.cell_ids[:3].tolist()}...; "
            "give one value, or one per cell in that order)"
        ) from None


def run_sleep(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str],
              progress: bool = False) -> ProblemRun:
    """Forecast load, schedule RRUs from it, compare with always-on, threshold and the oracle on real load."""
    from .demand import real_demand
    from .replay import replay_sleep
    from .milp.sleep import always_on, solve_sleep, threshold_policy

    spec = scenario.sleep
    start, stop = horizon_steps(city, spec.horizon, spec.task)
    shape = lambda d: _shape(d, spec.horizon, scenario.area.cells)  # noqa: E731
    real = shape(real_demand(city, None, spec.unit, regions=regions, steps=slice(start, stop)))
    notes: list[str] = []
    params = spec.params(sleep_capacity(spec, city, regions, start, shape, notes))
    _check_per_cell(params, real, "sleep")
    options, groups = scenario.solver.options(spec.method), spec.groups
    jobs: list[tuple[str, str, Any, Any]] = []
    forecast = None
    risk = spec.risk
    if "forecast" in spec.strategies:
        fc = forecast = shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape)
        notes += fc.notes
        if risk.plan_on != "point":  # the point plan beside it: their replay gap is the value of the hedging
            jobs.append(("forecast_point", f"forecast ({fc.model}, point)", fc.mean,
                         lambda d=fc.mean: solve_sleep(d, params, options, groups=groups)))
        planned = fc.mean.quantile(risk.q) if risk.plan_on == "quantile" else fc.mean
        on = "scenarios" if risk.plan_on == "scenarios" else "point"
        jobs.append(("forecast", _forecast_label(fc.model, risk), planned,
                     lambda d=planned: solve_sleep(d, params, options, groups=groups, on=on, epsilon=risk.epsilon)))
    if "rolling" in spec.strategies:
        label, fn = _rolling_job(scenario, city, regions, spec, params, real, start, stop, cache, notes)
        jobs.append(("rolling", label, None, fn))
    if "always_on" in spec.strategies:
        jobs.append(("always_on", "always on", None, lambda: always_on(real, params)))
    if "threshold" in spec.strategies:
        jobs.append(("threshold", f"threshold {spec.threshold:g} (lag {spec.lag})", None,
                     lambda: threshold_policy(real, params, spec.threshold, spec.lag)))
    jobs.append(("oracle", "oracle (real load)", real, lambda: solve_sleep(real, params, options, groups=groups)))
    bar = _Progress(progress, len(jobs), "sleep schedules", leave=False)
    plans = {}
    try:
        for name, _, _, fn in jobs:
            bar.describe(name)
            plans[name] = _recorded(lambda: _timed(fn), sink)
            bar.step()
    finally:
        bar.close()
    oracle = plans["oracle"][0]
    runs = [StrategyRun(name, label, plans[name][0], replay_sleep(plans[name][0], real, params, oracle=oracle),
                        demand, plans[name][1]) for name, label, demand, _ in jobs]
    return ProblemRun("sleep", real, params, runs, forecast, _horizon_info(city, start, stop, real, spec.horizon), notes)


def _forecast_label(model: str, risk: RiskSpec) -> str:
    return f"forecast ({model})" if risk.plan_on == "point" else f"forecast ({model}, {risk.label})"


def _rolling_job(scenario: Scenario, city, regions, spec: SleepSpec, params, real, start: int, stop: int,
                 cache: dict, notes: list[str]):
    """(label, plan function) of model-predictive sleep control over [start, stop) on native slots."""
    from .errors import InputError
    from .rolling import rolling_forecast, rolling_sleep

    if spec.horizon.slots_per_day not in (None, city.slots_per_day):
        raise InputError("sleep.rolling re-plans on the city's own slots: remove sleep.horizon.slots_per_day, "
                         "or drop 'rolling' from sleep.strategies")
    if spec.unit != "traffic":
        raise InputError("sleep.rolling forecasts traffic: set sleep.unit: traffic, or drop 'rolling' from sleep.strategies")
    name = spec.forecaster or scenario.forecaster.model
    model, used = scenario_forecaster(scenario, name, "short", city, cache, notes)
    if "short" not in model.tasks:
        raise InputError(f"sleep.rolling needs a short-term forecaster; {used!r} serves {list(model.tasks)}")
    fc = rolling_forecast(model, city, regions, start, stop, every=spec.rolling.every, lookahead=spec.rolling.lookahead)
    full = [str(c) for c in _planned_cell_ids(city, regions)]
    if scenario.area.cells is not None:  # the planned cells, in the truth's order
        keep = [full.index(c) for c in real.cell_ids.tolist()]
        fc.point = fc.point[:, keep]
        fc.samples = None if fc.samples is None else fc.samples[:, :, keep]
    risk = spec.risk
    label = f"rolling ({used}, R {spec.rolling.every}, {risk.label})"
    return label, lambda: rolling_sleep(fc, real, params, on=risk.plan_on, q=risk.q, epsilon=risk.epsilon)


def _planned_cell_ids(city, regions) -> np.ndarray:
    from .demand import real_demand

    return real_demand(city, None, "traffic", regions=regions, steps=slice(0, 1)).cell_ids


def _horizon_info(city, start: int, stop: int, real, horizon: Horizon) -> dict:
    return {
        "start_step": start, "stop_step": stop, "days": (stop - start) / city.slots_per_day,
        "slots_per_day": real.slots_per_day, "slots": real.n_slots, "cells": real.n_cells,
        "aggregate": horizon.aggregate or (None if horizon.slots_per_day in (None, city.slots_per_day)
                                           else ("mean" if real.unit == "users" else "sum")),
    }


def run_scenario(scenario: Scenario, problems: Sequence[str] | None = None, progress: bool = False) -> ScenarioResult:
    """Load the city, then forecast -> plan -> replay each problem; returns everything in memory.

    `problems`: which of the scenario's problems to run (default: all it defines). Raises
    `forecasting.data.DataError` / `planning.errors.InputError` (bad data or parameters),
    `InfeasibleError` / `SolverError` (planning failed) and `CheckpointError` (unusable checkpoint).
    Time-limited MILP incumbents do not raise: their warnings are in `result.warnings` and the plans'
    status is 'time_limit'.
    """
    if scenario.mode == "plan":
        from .errors import InputError

        raise InputError(f"the scenario {scenario.name!r} has mode: plan (forecast past the end, no replay): run it "
                         "with planning.plan_mode.run_plan, or set mode: backtest")
    wanted = list(problems) if problems is not None else scenario.problems
    for p in wanted:
        if p not in PROBLEMS:
            raise ScenarioError(f"unknown problem {p!r}: use {PROBLEMS}")
        if getattr(scenario, p) is None:
            raise ScenarioError(f"the scenario {scenario.name!r} has no `{p}:` section; add one or run another problem",
                                [(p, "section missing")])
    timings: dict[str, float] = {}
    sink: list[str] = []
    stages = _Progress(progress, 1 + len(wanted), f"{scenario.name}")
    try:
        stages.describe("load city")
        city, timings["load"] = _timed(lambda: load_scenario_city(scenario))
        stages.step()
        regions = planned_regions(scenario, city)
        sink.extend(overlap_warnings(scenario, city, regions))
        cache: dict = {}
        runs = {}
        for p in wanted:
            stages.describe(p)
            fn = run_deployment if p == "deployment" else run_sleep
            runs[p], timings[p] = _timed(lambda: fn(scenario, city, regions, cache, sink, progress))
            stages.step()
    finally:
        stages.close()
    info = {"name": city.name, "regions": [int(r) for r in regions], "grid": list(city.grid),
            "slots_per_day": city.slots_per_day, "steps": city.n_steps, "cell_size": city.cell_size}
    return ScenarioResult(scenario, city.name, city.crs, runs, timings, sink, info)
