"""Choose the forecast sampler (DDIM steps x samples) on the *validation* regions, never on test.

    OMP_NUM_THREADS=2 python bench/sampler_selection.py --checkpoint runs/pretrained-cpu.pt \
        --cities nanjing nanchang --steps 1 2 3 5 10 --samples 8 16

With x0-prediction, few DDIM steps move each sample towards the network's estimate of the conditional
mean (less spread, lower point error, worse CRPS); many steps give sharper, more diverse samples.
Which trade-off wins for the median point forecast is an empirical question, answered here on the
val regions. Each (city, task) MAE is divided by the best config's MAE for that (city, task); the
config with the lowest mean of these relative errors is selected. Writes
bench/results/sampler_selection.json and .md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import RESULTS, command_line
from forecasting.data import load_city, make_windows
from forecasting.evaluate import evaluate_forecaster
from forecasting.forecast import load_forecaster
from forecasting.masks import EVAL_TASKS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", nargs="+", required=True, help="one checkpoint, or several for an ensemble (samples per member)")
    p.add_argument("--cities", nargs="+", default=["nanjing", "nanchang"])
    p.add_argument("--tasks", nargs="+", default=list(EVAL_TASKS))
    p.add_argument("--steps", nargs="+", type=int, default=[1, 2, 3, 5, 10])
    p.add_argument("--samples", nargs="+", type=int, default=[8, 16])
    p.add_argument("--stride", type=int, default=2, help="stride of the val windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--merge", action="store_true",
                   help="add to the records already in OUT/sampler_selection.json (same checkpoint and stride)")
    args = p.parse_args(argv)

    model = load_forecaster(args.checkpoint, device="cpu")
    checkpoint = " + ".join(args.checkpoint)
    windows = {c: make_windows(load_city(c), split="val", stride=args.stride) for c in args.cities}
    records, commands = [], []
    previous = Path(args.out) / "sampler_selection.json"
    if args.merge and previous.is_file():
        doc = json.loads(previous.read_text())
        if doc["checkpoint"] != checkpoint or doc.get("stride") != args.stride:
            p.error(f"{previous} holds another checkpoint or stride: cannot merge")
        commands = doc.get("commands", [])
        records = [r for r in doc["records"] if r["steps"] not in args.steps or r["samples"] not in args.samples]
    for steps in args.steps:
        for n in args.samples:
            model.sampling = replace(model.sampling, steps=steps, n_samples=n)
            for city, win in windows.items():
                for task in args.tasks:
                    rec = evaluate_forecaster(model, win, task, args.seed, model_name="uomo")
                    records.append({"city": city, "task": task, "steps": steps, "samples": n, "mae": rec["mae"],
                                    "rmse": rec["rmse"], "crps": rec["crps"], "windows": rec["windows"]})
                    print(records[-1], flush=True)
    best = {(r["city"], r["task"]): min(q["mae"] for q in records if (q["city"], q["task"]) == (r["city"], r["task"]))
            for r in records}
    configs = sorted({(r["steps"], r["samples"]) for r in records})
    cities = list(dict.fromkeys(r["city"] for r in records))  # merged records may hold more than this run's
    tasks = list(dict.fromkeys(r["task"] for r in records))
    relative = {c: float(np.mean([r["mae"] / best[(r["city"], r["task"])] for r in records
                                  if (r["steps"], r["samples"]) == c])) for c in configs}
    chosen = min(configs, key=lambda c: relative[c])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands.append(command_line("sampler_selection.py", argv, env=("OMP_NUM_THREADS",)))
    (out / "sampler_selection.json").write_text(json.dumps(
        {"checkpoint": checkpoint, "stride": args.stride, "records": records, "commands": commands,
         "chosen": {"steps": chosen[0], "samples": chosen[1]}}, indent=1))
    lines = ["# Sampler selection on the validation regions", "",
             f"Checkpoint `{checkpoint}`; val windows every {args.stride} steps; DDIM (eta 0), median point forecast.",
             "Relative error = MAE / best MAE of that city x task over the configs; mean over city x task.", "",
             "| DDIM steps | samples | " + " | ".join(f"{c} {t}" for c in cities for t in tasks) + " | mean relative |",
             "|---|---|" + "---|" * (len(cities) * len(tasks)) + "---|"]
    for c in configs:
        cells = [next(r for r in records if (r["steps"], r["samples"], r["city"], r["task"]) == (*c, city, t))
                 for city in cities for t in tasks]
        lines.append(f"| {c[0]} | {c[1]} | " + " | ".join(f"{r['mae']:.5f}" for r in cells) + f" | {relative[c]:.3f} |")
    lines += ["", f"Chosen: DDIM-{chosen[0]} x {chosen[1]} samples.", "",
              "Commands:", "", *[f"    {c}" for c in commands]]
    (out / "sampler_selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
