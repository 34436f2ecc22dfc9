"""Choose a scenario's risk settings on its city's *val* regions (never on the area it plans).

    python bench/risk_selection.py scenarios/demo.yaml

Runs the scenario with `area.split: val` once (forecasts with samples), then re-plans the forecast strategy
of each problem with every candidate setting and replays it on the val regions' real series:
deployment on the point forecast, quantiles 0.6-0.9 or the scenarios (SAA); day-ahead sleep on the point
forecast, quantiles 0.7-0.95 or the scenarios with a chance constraint; rolling sleep (when the scenario's
sleep strategies include `rolling`) with R in {1, 2, 4, 8} slots x the same kinds of setting. Prints and
writes bench/results/risk_selection_<scenario>.md: the val regret of every setting, the lowest-regret
pick and, for sleep, the lowest-regret pick whose val QoS is no worse than the threshold policy's.
Copy the pick into the scenario's `risk:` / `rolling:` sections.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import RESULTS, choose_on_val, choose_qos_matched, table

DEPLOY = [("point", None, None), *[("quantile", q, None) for q in (0.6, 0.7, 0.8, 0.9)], ("scenarios", None, None)]
SLEEP = [("point", None, None), *[("quantile", q, None) for q in (0.7, 0.8, 0.9, 0.95)],
         *[("scenarios", None, e) for e in (None, 0.2, 0.1, 0.05)]]
EVERY = (1, 2, 4, 8)


def label(on: str, q, eps, every: int | None = None) -> str:
    head = f"R={every} " if every else ""
    if on == "quantile":
        return f"{head}plan_on: quantile, q: {q:g}"
    return f"{head}plan_on: {on}" + (f", epsilon: {eps:g}" if eps is not None else "")


def deployment_lines(dep) -> list[str]:
    """Val regret of every deployment setting of DEPLOY, and the pick."""
    from planning.milp.deploy import solve_deployment
    from planning.replay import replay_deployment

    fc, params, oracle = dep.forecast.mean, dep.params, dep.strategy("oracle").plan
    regrets = {}
    for on, q, _ in DEPLOY:
        plan = solve_deployment(fc, params, on=on, q=q)
        regrets[label(on, q, None)] = replay_deployment(plan, dep.real, params, oracle=oracle).regret
    best = choose_on_val(regrets)
    return ["## deployment", "", *table(["setting", "val regret"], [(k, f"{v:.4f}") for k, v in regrets.items()]),
            "", f"Pick: **{best}**.", ""]


def sleep_scores(slp, sc, rolling: bool) -> dict:
    """Val replay scores of every sleep setting: day-ahead on SLEEP's settings, and rolling every R of EVERY."""
    from planning.milp.sleep import solve_sleep
    from planning.pipeline import horizon_steps, scenario_forecaster
    from planning.scenario_city import load_scenario_city, planned_regions
    from planning.replay import replay_sleep
    from planning.rolling import rolling_forecast, rolling_sleep

    fc, params, oracle, real = slp.forecast.mean, slp.params, slp.strategy("oracle").plan, slp.real
    scores = {}
    for on, q, eps in SLEEP:
        d = fc.quantile(q) if on == "quantile" else fc
        plan = solve_sleep(d, params, on="scenarios" if on == "scenarios" else "point", epsilon=eps)
        scores[f"day-ahead {label(on, q, eps)}"] = replay_sleep(plan, real, params, oracle=oracle)
    if rolling:
        city = load_scenario_city(sc)
        start, stop = horizon_steps(city, sc.sleep.horizon, sc.sleep.task)
        model, _ = scenario_forecaster(sc, sc.sleep.forecaster or sc.forecaster.model, "short", city, {}, [])
        roll = rolling_forecast(model, city, planned_regions(sc, city), start, stop, every=min(EVERY))
        for every in EVERY:
            sub = roll.every_kth(every)
            for on, q, eps in SLEEP:
                plan = rolling_sleep(sub, real, params, on=on, q=q, epsilon=eps)
                scores[f"rolling {label(on, q, eps, every)}"] = replay_sleep(plan, real, params, oracle=oracle)
    return scores


def sleep_lines(slp, sc, rolling: bool) -> list[str]:
    """The sleep table (val regret, QoS, switching per setting) and the two picks."""
    scores = sleep_scores(slp, sc, rolling)
    thr = slp.strategy("threshold").score
    regret, qos = {k: s.regret for k, s in scores.items()}, {k: s.qos for k, s in scores.items()}
    best, matched = choose_on_val(regret), choose_qos_matched(regret, qos, thr.qos)
    return ["## sleep", "", f"Threshold policy on val: regret {thr.regret:.4f}, QoS {thr.qos:.4f}, "
            f"{thr.switching:.2f} switches/cell/day.", "",
            *table(["setting", "val regret", "val QoS", "switches/cell/day"],
                   [(k, f"{v.regret:.4f}", f"{v.qos:.4f}", f"{v.switching:.2f}") for k, v in scores.items()]),
            "", f"Pick (lowest val regret): **{best}**.",
            f"Pick with val QoS no worse than the threshold policy's: **{matched or 'none'}**.", ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from planning.pipeline import run_scenario
    from planning.scenario.loading import load_scenario

    t0 = time.perf_counter()
    overrides = {"area.split": "val", "area.cells": None}
    base = load_scenario(args.scenario)
    for p in base.problems:
        overrides[f"{p}.risk"] = {"plan_on": "scenarios"}
    sleep_rolling = base.sleep is not None and "rolling" in base.sleep.strategies
    if base.sleep is not None:
        overrides["sleep.strategies"] = ["forecast", "threshold"]
    sc = load_scenario(args.scenario, overrides)
    result = run_scenario(sc)
    lines = [f"# Risk settings of `{args.scenario}` chosen on the val regions", "",
             f"Command: `python bench/risk_selection.py {args.scenario}`.", "",
             f"City {result.city}: val regions {result.city_info['regions']} (the scenario plans "
             f"{base.area.split if base.area.regions is None else base.area.regions}).", ""]
    if "deployment" in result.problems:
        lines += deployment_lines(result.problems["deployment"])
    if "sleep" in result.problems:
        lines += sleep_lines(result.problems["sleep"], sc, sleep_rolling)
    lines += [f"Wall time {time.perf_counter() - t0:.0f} s.", ""]
    text = "\n".join(lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"risk_selection_{Path(args.scenario).stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
