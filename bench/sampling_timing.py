"""Wall time to forecast all stride-1 Nanchang test windows (short task) with DDIM-20 on 2 CPU threads.

    python bench/sampling_timing.py --checkpoint runs/pretrained-cpu.pt
"""

import argparse
import time

import torch

from forecasting.data import load_city, make_windows
from forecasting.forecast import load_forecaster
from forecasting.inference import SamplingConfig, predict_samples
from forecasting.interface import hide
from forecasting.masks import batch_masks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--city", default="nanchang")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_forecaster(args.checkpoint, device="cpu")
    windows = make_windows(load_city(args.city), split="test", stride=1)
    mask = batch_masks("short", len(windows), windows.traffic.shape[1:])
    for s in args.samples:
        t0 = time.perf_counter()
        cfg = SamplingConfig(steps=20, n_samples=s, batch_size=256)
        predict_samples(model.net, model.schedule, hide(windows, mask), mask, cfg, model.context, "cpu")
        print(f"windows={len(windows)} ddim=20 samples={s} threads={args.threads} "
              f"seconds={time.perf_counter() - t0:.1f}", flush=True)


if __name__ == "__main__":
    main()
