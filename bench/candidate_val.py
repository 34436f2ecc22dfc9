"""Compare candidate checkpoints on *validation* data before one is shipped (test regions are never read).

Two views, each measured for every candidate in the same run with the same windows, masks and seeds:

- **forecast** - per city x task, the MAE (normalised scale) of the point forecast (median of `--samples`
  raw samples, DDIM-`--steps`, no recalibration) on every `--stride`-th window of the city's val regions,
  and its ratio to the best of the default baselines fitted on that city's training regions and scored on
  the same windows. For a real city that the candidate never saw this is its zero-shot val ratio.
- **deployment** - replay regret of the BS deployment planned on the candidate's generation forecast (the
  point plan of `bench/planning_bench.py`: its `deploy_params`, `solve_deployment`, `replay_deployment`),
  beside the POI- and resident-based plans, on the val regions of the synthetic city and on the val and
  test regions of the synthetic city drawn with other seeds (`--deploy-seeds`: cities that no model here
  was trained on, so their test regions are not the benchmark's test regions). Lower is better; the mean
  over all splits is the number to compare.

    OMP_NUM_THREADS=2 python bench/candidate_val.py names_back=runs/names-back/best.pt shipped=uomo-synthetic-cpu \
        --cities synthetic synthetic-15min synthetic-small nanchang nanjing nanchang@60min --out /tmp/cand

Writes OUT/candidate_val.json (records with keys view, candidate, checkpoint, city, task or split, value)
and OUT/candidate_val.md, and prints the tables.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from common import command_line, table, write_json, write_text
from forecasting.data import City, load_city, make_windows
from forecasting.data.synthetic import city_from_name
from forecasting.evaluate import evaluate_forecaster, make_model, window_masks
from forecasting.forecast import load_forecaster
from forecasting.masks import EVAL_TASKS
from planning.forecast_demand import forecast_demand
from planning.milp.deploy import solve_deployment
from planning.proxy_demand import poi_demand, resident_demand
from planning.demand import real_demand
from planning.replay import replay_deployment
from planning_bench import deploy_params, hourly_week

#: the baselines a candidate's forecast is compared with (fitted on each city's training regions)
BASELINES = ("historical_average", "last_value", "seasonal_naive", "daily_profile", "neighbour_mean", "poi_regression")


def parse_candidates(items: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """{label: checkpoint} from LABEL=CHECKPOINT items (a shipped name or a path)."""
    out = {}
    for item in items:
        label, sep, ckpt = item.partition("=")
        if not sep or not label or not ckpt:
            parser.error(f"candidate {item!r}: write LABEL=CHECKPOINT (a shipped name or a .pt path)")
        if label in out:
            parser.error(f"candidate label {label!r} given twice")
        out[label] = ckpt
    return out


def raw_forecaster(checkpoint: str, steps: int, samples: int):
    """The candidate's forecaster without its recalibration (candidates are compared as trained)."""
    f = load_forecaster(checkpoint, device="cpu", steps=steps, n_samples=samples)
    f.calibration = None
    return f


def forecast_records(city: City, candidates: dict[str, object], stride: int, seed: int) -> list[dict]:
    """MAE of every candidate and baseline on the val windows of `city`, and each candidate's ratio to the
    best baseline on the same windows."""
    windows = make_windows(city, split="val", stride=stride)
    out = []
    for task in EVAL_TASKS:
        masks = window_masks(windows, task, seed)
        best_name, best = None, np.inf
        for name in BASELINES:
            model = make_model(name)
            if model is None or task not in model.tasks:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fallbacks (e.g. too short a history) are intended here
                model.fit([city])
                rec = evaluate_forecaster(model, windows, task, seed, masks)
            if rec["status"] == "ok" and rec["mae"] < best:
                best_name, best = name, rec["mae"]
        for label, f in candidates.items():
            rec = evaluate_forecaster(f, windows, task, seed, masks, model_name=label)
            if rec["status"] != "ok":
                continue
            out.append(dict(view="forecast", candidate=label, city=city.name, task=task, value=rec["mae"],
                            ratio=rec["mae"] / best if np.isfinite(best) else None, best_baseline=best_name,
                            best_baseline_mae=best, windows=rec["windows"]))
            print(f"  {city.name:<16} {task:<10} {label:<14} MAE {rec['mae']:.5f}  ratio "
                  f"{out[-1]['ratio']:.3f} (best baseline {best_name} {best:.5f})", flush=True)
    return out


def deployment_records(city: City, split: str, candidates: dict[str, object], label: str) -> list[dict]:
    """Replay regret of point plans (candidates, POI, residents) on one split of `city` (named `label`)."""
    truth = hourly_week(real_demand(city, split, "users"))
    params = deploy_params(city, truth.n_cells)
    oracle = solve_deployment(truth, params)
    plans = {f"forecast:{label}": hourly_week(forecast_demand(f, city, "generation", split=split, unit="users"))
             for label, f in candidates.items()}
    plans["poi"] = hourly_week(poi_demand(city, unit="users", split=split))
    if city.residents is not None:
        plans["residents"] = hourly_week(resident_demand(city, unit="users", split=split))
    out = []
    for strategy, est in plans.items():
        regret = replay_deployment(solve_deployment(est, params), truth, params, oracle=oracle).regret
        out.append(dict(view="deployment", candidate=strategy, city=label, split=split, value=float(regret)))
    print(f"  {label:<18} {split:<5} " + "  ".join(f"{r['candidate']} {r['value']:.3f}" for r in out), flush=True)
    return out


def markdown(records: list[dict], labels: list[str], command: str, wall: float) -> str:
    lines = ["# Candidate checkpoints on validation data", "", "    " + command, "",
             f"Wall time {wall / 60:.0f} min. Forecast: MAE on the val windows (ratio to the best baseline fitted on "
             "the city's training regions, same windows). Deployment: replay regret of the point plan (lower is "
             "better).", ""]
    fc = [r for r in records if r["view"] == "forecast"]
    if fc:
        cells = sorted({(r["city"], r["task"]) for r in fc}, key=lambda c: (c[0], EVAL_TASKS.index(c[1])))
        rows = []
        for city, task in cells:
            by = {r["candidate"]: r for r in fc if (r["city"], r["task"]) == (city, task)}
            base = next(iter(by.values()))
            rows.append([city, task, f"{base['best_baseline']} {base['best_baseline_mae']:.5f}"]
                        + [f"{by[lb]['value']:.5f} ({by[lb]['ratio']:.3f})" if lb in by else "-" for lb in labels])
        lines += table(["city", "task", "best baseline"] + labels, rows) + [""]
    dep = [r for r in records if r["view"] == "deployment"]
    if dep:
        strategies = list(dict.fromkeys(r["candidate"] for r in dep))
        splits = list(dict.fromkeys((r["city"], r["split"]) for r in dep))
        rows = []
        for city, split in splits:
            by = {r["candidate"]: r["value"] for r in dep if (r["city"], r["split"]) == (city, split)}
            rows.append([city, split] + [f"{by[s]:.3f}" if s in by else "-" for s in strategies])
        means = [np.mean([r["value"] for r in dep if r["candidate"] == s]) for s in strategies]
        rows.append(["**mean**", ""] + [f"{m:.3f}" for m in means])
        lines += table(["city", "split"] + strategies, rows) + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", metavar="LABEL=CHECKPOINT")
    p.add_argument("--cities", nargs="*", default=["synthetic", "synthetic-15min", "synthetic-small"],
                   help="cities of the forecast view (val regions); none skips the view")
    p.add_argument("--deploy-seeds", nargs="*", type=int, default=[1, 2, 3, 4],
                   help="other seeds of the synthetic city for the deployment view (val and test regions)")
    p.add_argument("--no-deployment", action="store_true", help="skip the deployment view")
    p.add_argument("--stride", type=int, default=4, help="stride of the val windows")
    p.add_argument("--steps", type=int, default=3, help="DDIM steps")
    p.add_argument("--samples", type=int, default=16, help="samples per window (median = point forecast)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generation masks")
    p.add_argument("--out", default=None, help="folder for candidate_val.json/.md (default: print only)")
    args = p.parse_args(argv)
    if args.stride < 1 or args.steps < 1 or args.samples < 1:
        p.error("--stride, --steps and --samples must be >= 1")
    named = parse_candidates(args.candidates, p)
    t0 = time.perf_counter()
    try:
        candidates = {label: raw_forecaster(ckpt, args.steps, args.samples) for label, ckpt in named.items()}
        cities = [load_city(c) for c in args.cities]
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records = []
    for city in cities:
        records += forecast_records(city, candidates, args.stride, args.seed)
    if not args.no_deployment:
        records += deployment_records(city_from_name("synthetic"), "val", candidates, "synthetic")
        for s in args.deploy_seeds:
            city = city_from_name("synthetic", seed=s)
            for split in ("val", "test"):
                records += deployment_records(city, split, candidates, f"synthetic seed {s}")
    for r in records:
        lb = r["candidate"].removeprefix("forecast:")
        r["checkpoint"] = named.get(lb)
    command = command_line("candidate_val.py", argv, env=("OMP_NUM_THREADS",))
    text = markdown(records, list(named), command, time.perf_counter() - t0)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "candidate_val.json", records)
        write_text(out / "candidate_val.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
