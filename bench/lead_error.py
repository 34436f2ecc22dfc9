"""Short-term error by lead time on the val regions: how much of a forecast's edge is at the first steps.

    python bench/lead_error.py --city nanchang --forecasters last_value daily_profile uomo-public-cpu

For every forecaster (a baseline fitted on the city, or a UoMo checkpoint sampled with DDIM-3 x 16,
median), the short task (48 observed -> 16 hidden steps) on every `--stride`-th val window; prints the
MAE on the normalised scale at each lead (0 = the first hidden step) and over all 16. A rolling
planner commits to the first few leads, so this is the accuracy it sees. Nothing is written: the
numbers go into a results note with this command.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import command_line
from forecasting.data import load_city, make_windows
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.registry import is_baseline, make_forecaster

OBSERVED = 48  # the short task's observed steps


def lead_errors(forecaster, windows, mask) -> np.ndarray:
    """(16,) MAE of the point forecast at each hidden lead of the short task."""
    pred = forecaster.predict(hide(windows, mask), mask)
    return np.abs(pred.mean - windows.traffic)[:, OBSERVED:].mean(axis=(0, 2, 3))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--city", default="nanchang")
    ap.add_argument("--forecasters", nargs="+", default=["last_value", "daily_profile", "uomo-public-cpu"])
    ap.add_argument("--stride", type=int, default=8, help="val windows every N steps")
    ap.add_argument("--leads", type=int, default=4, help="leads printed one by one")
    args = ap.parse_args(argv)
    city = load_city(args.city)
    windows = make_windows(city, split="val", stride=args.stride)
    mask = batch_masks("short", len(windows), windows.traffic.shape[1:])
    print(f"$ {command_line('lead_error.py', argv, env=['OMP_NUM_THREADS'])}")
    print(f"{args.city}: {len(windows)} val windows; MAE at leads 0..{args.leads - 1} | all 16")
    for name in args.forecasters:
        sampling = None if is_baseline(name) else {"n_samples": 16, "steps": 3}
        model = make_forecaster(name, city=city if is_baseline(name) else None, sampling=sampling)
        err = lead_errors(model, windows, mask)
        print(f"{name:>28s} " + " ".join(f"{e:.5f}" for e in err[:args.leads]) + f" | {err.mean():.5f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
