"""Sampler accuracy and speed of a UoMo checkpoint: DDIM at 10/20/50 steps vs ancestral DDPM at all steps.

    python bench/sampling_bench.py --checkpoint runs/pretrain/best.pt [--city nanchang] [--task short]
    python bench/sampling_bench.py --checkpoint uomo-public-cpu --timing-only --timing-samples 1 4

Writes bench/results/sampling.json and sampling.md: MAE/RMSE/CRPS of each sampler on the same windows
(a stride subsample of the test regions so the 100-step ancestral sampler stays affordable on CPU),
and the wall time to forecast *all* stride-1 test windows of the city for one task with DDIM-20, once
per `--timing-samples` value. `--timing-only` measures the wall time alone and prints it (nothing is
written). Sampling goes through the forecaster's own `sample`, so a list of checkpoints (an ensemble)
works too. Measure timings on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import torch

from common import RESULTS, command_line, table, write_json, write_text
from forecasting.data import load_city, make_windows
from forecasting.forecast import load_forecaster
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.metrics import crps

#: (sampler, steps, eta) compared for accuracy; "all" = the schedule's own number of steps
CONFIGS = [("ddim", 10, 0.0), ("ddim", 20, 0.0), ("ddim", 50, 0.0), ("ddim", 20, 1.0), ("ddpm", "all", 0.0)]


def schedule_steps(model) -> int:
    """Steps of the model's noise schedule (an ensemble: its first member's)."""
    return (model.members[0] if hasattr(model, "members") else model).schedule.steps


def hidden_windows(city, task: str, stride: int):
    """(windows, mask, windows with the hidden entries blanked) of the city's test regions."""
    win = make_windows(city, split="test", stride=stride)
    mask = batch_masks(task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
    return win, mask, hide(win, mask)


def accuracy(model, city, args) -> list[dict]:
    """MAE / RMSE / CRPS and seconds of each sampler in CONFIGS on every `stride`-th test window."""
    win, mask, hidden = hidden_windows(city, args.task, args.stride)
    records = []
    for sampler, steps, eta in CONFIGS:
        steps = schedule_steps(model) if steps == "all" else steps
        cfg = replace(model.sampling, sampler=sampler, steps=steps, eta=eta, n_samples=args.samples)
        t0 = time.perf_counter()
        samples = model.sample(hidden, mask, cfg)
        dt = time.perf_counter() - t0
        err = (np.median(samples, 0) - win.traffic)[mask]
        records.append({
            "city": args.city, "task": args.task, "sampler": sampler, "steps": steps, "eta": eta,
            "samples": args.samples, "windows": len(win), "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())), "crps": crps(samples, win.traffic, mask), "seconds": dt,
        })
        print(records[-1], flush=True)
    return records


def full_test_timing(model, city, task: str, n_samples: int) -> dict:
    """Wall time to forecast all stride-1 test windows of `city` for `task` with DDIM-20 x n_samples."""
    _, mask, hidden = hidden_windows(city, task, 1)
    cfg = replace(model.sampling, sampler="ddim", steps=20, eta=0.0, n_samples=n_samples)
    t0 = time.perf_counter()
    model.sample(hidden, mask, cfg)
    return {"city": city.name, "task": task, "windows": len(mask), "sampler": "ddim", "steps": 20,
            "samples": n_samples, "seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}


def report(records: list[dict], timings: list[dict], args) -> list[str]:
    lines = [f"# Sampler comparison ({args.city}, {args.task}, test windows every {args.stride} steps, "
             f"{args.samples} samples, median point forecast)", ""]
    lines += table(["sampler", "steps", "eta", "MAE", "RMSE", "CRPS", "seconds"],
                   [[r["sampler"], r["steps"], r["eta"], f"{r['mae']:.5f}", f"{r['rmse']:.5f}", f"{r['crps']:.5f}",
                     f"{r['seconds']:.1f}"] for r in records])
    for t in timings:
        lines += ["", f"All {t['windows']} stride-1 test windows, one task, DDIM-20 with {t['samples']} sample(s): "
                      f"{t['seconds']:.1f} s on {t['threads']} CPU thread(s)."]
    return lines + ["", f"Command: `{command_line('sampling_bench.py', env=['OMP_NUM_THREADS'])}`"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", nargs="+", required=True, help="a shipped name or path (several: an ensemble)")
    p.add_argument("--city", default="nanchang")
    p.add_argument("--task", default="short")
    p.add_argument("--stride", type=int, default=16, help="window stride of the accuracy comparison")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--timing-samples", type=int, nargs="+", default=[4],
                   help="samples per window in the full-test timing (one timing per value)")
    p.add_argument("--timing-only", action="store_true", help="only the full-test timing, printed (no files)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    checkpoint = args.checkpoint[0] if len(args.checkpoint) == 1 else args.checkpoint
    model = load_forecaster(checkpoint, device="cpu")
    city = load_city(args.city)
    records = [] if args.timing_only else accuracy(model, city, args)
    timings = []
    for n in args.timing_samples:
        timings.append(full_test_timing(model, city, args.task, n))
        print(timings[-1], flush=True)
    if not args.timing_only:
        write_json(f"{args.out}/sampling.json", {"accuracy": records, "full_test_timing": timings})
        write_text(f"{args.out}/sampling.md", "\n".join(report(records, timings, args)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
