"""Check a shipped checkpoint against the committed forecast table in one command (`make bench-check`).

    python bench/check_shipped.py                                   # uomo-public-cpu on the real cities
    python bench/check_shipped.py --checkpoint uomo-synthetic-cpu --cities synthetic --label uomo_shipped

Scores the checkpoint on a seeded, evenly spaced subsample of the test windows of each city x task
(`--windows`, default 200) with the benchmark's sampler, re-scores the fast baselines on the same windows,
and prints its MAE ratio to the best of them beside the ratio committed in bench/results/forecast.json
for the same model label. Writes nothing. About 5 minutes on 2 CPU cores at the default size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import RESULTS
from forecasting.data import available_real_cities
from forecasting.evaluate import run_benchmark
from forecasting.records import ratio_to_best
from forecasting.masks import EVAL_TASKS


def committed_ratios(label: str, path: Path = RESULTS / "forecast.json") -> dict[tuple[str, str], float]:
    """{(city, task): ratio} of the committed records of `label` (best baseline on all windows)."""
    from forecasting.records import best_baseline_mae

    records = json.loads(path.read_text()) if path.is_file() else []
    best = best_baseline_mae(records)
    out = {}
    for r in records:
        if r["model"] == label and r.get("status") == "ok":
            ratio, _ = ratio_to_best(r, best)
            if ratio is not None:
                out[(r["city"], r["task"])] = ratio
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="uomo-public-cpu", help="shipped name or checkpoint path")
    ap.add_argument("--label", default="uomo", help="model label of the committed records to compare with")
    ap.add_argument("--cities", nargs="+", default=None, help="default: the real cities present")
    ap.add_argument("--windows", type=int, default=200, help="test windows per city x task")
    ap.add_argument("--steps", type=int, default=3, help="DDIM steps (the benchmark's val-chosen sampler)")
    ap.add_argument("--samples", type=int, default=32, help="samples per window")
    args = ap.parse_args(argv)
    cities = args.cities or list(available_real_cities())
    if not cities:
        print("error: no real city data found (../shared/data or $UOMO_DATA_DIR); pass --cities synthetic", file=sys.stderr)
        return 2
    records = run_benchmark(cities=cities, models=["uomo"], tasks=EVAL_TASKS, checkpoint=args.checkpoint,
                            uomo_sampling={"steps": args.steps, "n_samples": args.samples},
                            max_windows=args.windows, out=None, verbose=False)
    committed = committed_ratios(args.label)
    print(f"{args.checkpoint}: MAE ratio to the best fast baseline on {args.windows} test windows per cell "
          f"(committed: '{args.label}' in bench/results/forecast.json, all windows, best baseline of all)")
    print(f"{'city':>10} {'task':>11} {'ratio now':>10} {'committed':>10}  reference")
    for r in records:
        if r["status"] != "ok":
            print(f"{r['city']:>10} {r['task']:>11} {'skipped':>10}")
            continue
        ratio, ref = ratio_to_best(r, {})
        c = committed.get((r["city"], r["task"]))
        print(f"{r['city']:>10} {r['task']:>11} {ratio:>10.3f} {('-' if c is None else f'{c:.3f}'):>10}  {ref}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
