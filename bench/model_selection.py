"""Choose the benchmark's main UoMo checkpoint on the *validation* regions, never on test.

    python bench/model_selection.py \
        uomo_cpu_v2=bench/results/sampler_selection.json uomo_fine=bench/results/selection/cpu_fine.json ...

Each candidate is a `bench/sampler_selection.py` result file (its records hold the val MAE of every
city x task with the checkpoint(s) and sampler named in it). Candidates are compared at one sampler
setting (`--steps`, `--total-samples`: an ensemble of M members counts M x its per-member samples).
Per city x task, MAE / best MAE over the candidates; the candidate with the lowest mean of these
relative errors is chosen. Writes bench/results/model_selection.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import RESULTS, command_line
from forecasting.masks import EVAL_TASKS


def candidate_records(path: Path, steps: int, total_samples: int) -> tuple[str, int, dict[tuple[str, str], float]]:
    """(checkpoint, val stride, {(city, task): val MAE}) of one sampler-selection file at one sampler setting."""
    doc = json.loads(path.read_text())
    members = len(doc["checkpoint"].split(" + "))
    rows = [r for r in doc["records"] if r["steps"] == steps and r["samples"] * members == total_samples]
    if not rows:
        raise SystemExit(f"{path}: no records at DDIM-{steps} with {total_samples} samples in all "
                         f"({members} member(s)); run bench/sampler_selection.py with that setting first")
    return doc["checkpoint"], doc["stride"], {(r["city"], r["task"]): r["mae"] for r in rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", metavar="LABEL=FILE", help="a label and its sampler_selection JSON")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--total-samples", type=int, default=32)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    found, strides = {}, set()
    for item in args.candidates:
        label, sep, file = item.partition("=")
        if not sep or not label or not file:
            p.error(f"candidate {item!r}: write LABEL=PATH")
        checkpoint, stride, maes = candidate_records(Path(file), args.steps, args.total_samples)
        found[label] = checkpoint, maes
        strides.add(stride)
    if len(strides) > 1:
        p.error(f"the candidates were scored on different val windows (strides {sorted(strides)}): compare like with like")
    cells = sorted(set.intersection(*(set(m) for _, m in found.values())), key=lambda k: (k[0], EVAL_TASKS.index(k[1])))
    if not cells:
        p.error("the candidates share no city x task")
    best = {k: min(m[k] for _, m in found.values()) for k in cells}
    relative = {label: float(np.mean([m[k] / best[k] for k in cells])) for label, (_, m) in found.items()}
    chosen = min(relative, key=relative.get)
    per_cell = {k: min(found, key=lambda label: found[label][1][k]) for k in cells}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("model_selection.py", argv)
    (out / "model_selection.json").write_text(json.dumps({
        "steps": args.steps, "total_samples": args.total_samples, "chosen": chosen, "command": command,
        "chosen_per_cell": {f"{c}/{t}": per_cell[(c, t)] for c, t in cells},
        "candidates": [{"label": label, "checkpoint": ckpt, "mean_relative": relative[label],
                        "val_mae": {f"{c}/{t}": m[(c, t)] for c, t in cells}} for label, (ckpt, m) in found.items()],
    }, indent=1))
    lines = ["# Main UoMo checkpoint, chosen on the validation regions", "",
             f"Val MAE (normalised scale) with DDIM-{args.steps} and {args.total_samples} samples per window in all "
             "(an ensemble: split evenly over its members), median point forecast; relative = MAE / best candidate's "
             "MAE for that city x task, averaged.", "",
             "| candidate | checkpoint | " + " | ".join(f"{c} {t}" for c, t in cells) + " | mean relative |",
             "|---|---|" + "---|" * len(cells) + "---|"]
    for label, (ckpt, m) in found.items():
        lines.append(f"| {label} | `{ckpt}` | " + " | ".join(f"{m[k]:.5f}" for k in cells) + f" | {relative[label]:.4f} |")
    lines += ["", f"Chosen: {chosen}.", "",
              "Best candidate per city x task (a per-task choice, for forecasters that may use one checkpoint per task): "
              + "; ".join(f"{c} {t}: {per_cell[(c, t)]}" for c, t in cells) + ".",
              "", "Command:", "", f"    {command}", "",
              "Each file's own command (bench/sampler_selection.py) is recorded inside it."]
    (out / "model_selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
