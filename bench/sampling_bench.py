"""Sampler accuracy and speed of a UoMo checkpoint: DDIM at 10/20/50 steps vs ancestral DDPM at all steps.

    python bench/sampling_bench.py --checkpoint runs/pretrain/best.pt [--city nanchang] [--task short]

Writes bench/results/sampling.json and sampling.md: MAE/RMSE/CRPS of each sampler on the same windows
(a stride subsample of the test regions so the 100-step ancestral sampler stays affordable on CPU),
and the wall time to forecast *all* stride-1 test windows of the city for one task with DDIM-20.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from common import RESULTS
from forecasting.data import load_city, make_windows
from forecasting.forecast import load_forecaster
from forecasting.inference import SamplingConfig, predict_samples
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.metrics import crps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--city", default="nanchang")
    p.add_argument("--task", default="short")
    p.add_argument("--stride", type=int, default=16, help="window stride of the accuracy comparison")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--timing-samples", type=int, default=4, help="samples per window in the full-test timing")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    model = load_forecaster(args.checkpoint, device="cpu")
    city = load_city(args.city)
    win = make_windows(city, split="test", stride=args.stride)
    mask = batch_masks(args.task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
    hidden = hide(win, mask)
    records = []
    configs = [("ddim", 10, 0.0), ("ddim", 20, 0.0), ("ddim", 50, 0.0), ("ddim", 20, 1.0), ("ddpm", model.schedule.steps, 0.0)]
    for sampler, steps, eta in configs:
        cfg = SamplingConfig(sampler=sampler, steps=steps, eta=eta, n_samples=args.samples)
        t0 = time.perf_counter()
        samples = predict_samples(model.net, model.schedule, hidden, mask, cfg, model.context, "cpu")
        dt = time.perf_counter() - t0
        point = np.median(samples, 0)
        err = (point - win.traffic)[mask]
        records.append({
            "city": args.city, "task": args.task, "sampler": sampler, "steps": steps, "eta": eta,
            "samples": args.samples, "windows": len(win), "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())), "crps": crps(samples, win.traffic, mask),
            "seconds": dt,
        })
        print(records[-1], flush=True)

    full = make_windows(city, split="test", stride=1)
    full_mask = batch_masks(args.task, len(full), full.traffic.shape[1:], rng=np.random.default_rng(0))
    cfg = SamplingConfig(sampler="ddim", steps=20, n_samples=args.timing_samples)
    t0 = time.perf_counter()
    predict_samples(model.net, model.schedule, hide(full, full_mask), full_mask, cfg, model.context, "cpu")
    timing = {"city": args.city, "task": args.task, "windows": len(full), "sampler": "ddim", "steps": 20,
              "samples": args.timing_samples, "seconds": time.perf_counter() - t0,
              "threads": torch.get_num_threads()}
    print(timing, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sampling.json").write_text(json.dumps({"accuracy": records, "full_test_timing": timing}, indent=1))
    lines = [
        f"# Sampler comparison ({args.city}, {args.task}, test windows every {args.stride} steps, "
        f"{args.samples} samples, median point forecast)", "",
        "| sampler | steps | eta | MAE | RMSE | CRPS | seconds |", "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['eta']} | {r['mae']:.5f} | {r['rmse']:.5f} | "
                     f"{r['crps']:.5f} | {r['seconds']:.1f} |")
    lines += ["", f"All {timing['windows']} stride-1 test windows, one task, DDIM-20 with {timing['samples']} "
              f"samples: {timing['seconds']:.1f} s on {timing['threads']} CPU threads.", "",
              f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} python bench/sampling_bench.py --checkpoint {args.checkpoint} "
              f"--city {args.city} --task {args.task} --stride {args.stride} --samples {args.samples} "
              f"--timing-samples {args.timing_samples}` (2 CPU cores shared with a training job and a benchmark at the time)"]
    (out / "sampling.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
