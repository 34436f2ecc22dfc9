"""Grids other than 4 x 4: the tiled forecast of a whole grid vs the forecasts of its 4 x 4 crops, same cells.

    python bench/grid_bench.py [--sizes 5x5 6x5 6x6 8x8 4x6] [--windows 24] [--tasks short] [--splits val test]

Cities, each cut into regions of every size that fits:
  synthetic   `make_city` with regions of that size (seed 7: a city the shipped models never saw),
              forecast with uomo-synthetic-cpu;
  nanjing, nanchang (when ../shared/data is there)   their `--splits` 4 x 4 patches (default val + test,
              never trained on) laid side by side in the squarest mosaic (Nanjing 1 x 2 patches = 4 x 8
              cells, Nanchang 3 x 3 = 12 x 12), cut into regions, forecast with uomo-public-cpu. The
              patches are not neighbours in the city: the mosaic checks that tiling and blending keep the
              4 x 4 skill on real series, not what context a true larger grid would add.
For each city x size x task, on the same seeded windows and masks (normalised scale, the network's own
median, calibration off), the MAE on the hidden entries of every 4 x 4 crop (a cell counts once per crop):
  crops    every 4 x 4 crop forecast as a window of its own (the reference)
  centre   the whole grid forecast as overlapping 4 x 4 tiles (stride 2), the "centre" blend
  mean     the same tiles, the "mean" blend (equal weights)
  whole    the grid sent whole through the network, padded to its patch (`tile=None`: the path before tiling)
Writes grid.json and grid.md in --out (default bench/results).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace

import numpy as np
import torch

from common import RESULTS, command_line, commands_block, table, write_json, write_text
from forecasting.data import City, available_real_cities, load_city, make_windows
from forecasting.data.synthetic import make_city
from forecasting.forecast import forecast_scalers, load_forecaster
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.tiling import all_crops, crop_forecast_mae, mae_on_crops

VARIANTS = {"centre": {"blend": "centre"}, "mean": {"blend": "mean"}, "whole": {"tile": None}}
REAL = ("nanjing", "nanchang")
CHECKPOINTS = {"synthetic": "uomo-synthetic-cpu", "real": "uomo-public-cpu"}


def mosaic(a: np.ndarray, patches: np.ndarray, layout: tuple[int, int]) -> np.ndarray:
    """(R, X, 4, 4) per-patch arrays -> (X, rows * 4, cols * 4): `patches` laid out row-major."""
    rows, cols = layout
    _, X, h, w = a.shape
    tiles = a[patches].reshape(rows, cols, X, h, w)
    return tiles.transpose(2, 0, 3, 1, 4).reshape(X, rows * h, cols * w)


def blocks(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(X, H, W) -> (R, X, h, w): the whole non-overlapping `size` blocks, row-major (R may be 0)."""
    (h, w), (X, H, W) = size, a.shape
    nr, nc = H // h, W // w
    out = a[:, : nr * h, : nc * w].reshape(X, nr, h, nc, w).transpose(1, 3, 0, 2, 4)  # (nr, nc, X, h, w)
    return out.reshape(nr * nc, X, h, w)


def mosaic_layout(n: int) -> tuple[int, int]:
    """(rows, cols) of the squarest mosaic of at most n patches: 2 -> 1 x 2, 4 or 5 -> 2 x 2, 9 -> 3 x 3."""
    rows = max(1, int(np.sqrt(n)))
    return rows, n // rows


def real_city_cut(city: City, size: tuple[int, int], splits: list[str]) -> City | None:
    """The city's `splits` patches in a mosaic (`mosaic_layout`), cut into `size` regions (None if none fits)."""
    patches = city.regions(splits)
    layout = mosaic_layout(patches.size)
    patches = patches[: layout[0] * layout[1]]
    traffic = blocks(mosaic(city.traffic, patches, layout), size)  # (R, T, h, w)
    R = traffic.shape[0]
    if R == 0:
        return None
    pick = lambda a: None if a is None else blocks(mosaic(a, patches, layout), size)  # noqa: E731
    calendar = lambda a: np.repeat(a[patches[:1]], R, 0)  # noqa: E731  (the patches share one calendar)
    return City(name=city.name, traffic=traffic, users=pick(city.users), poi=pick(city.poi),
                day_of_week=calendar(city.day_of_week), slot_of_day=calendar(city.slot_of_day),
                slots_per_day=city.slots_per_day, split=np.full(R, "test"))


def cities(sizes: list[tuple[int, int]], splits: list[str], synthetic: bool, real: bool):
    """(name, checkpoint, size, city cut into regions of that size, scalers) for every size that fits."""
    for size in sizes if synthetic else []:
        synth = make_city(rows=2 * size[0], cols=2 * size[1], region_size=size, days=6, slots_per_day=48, seed=7)
        yield "synthetic", CHECKPOINTS["synthetic"], size, synth, forecast_scalers(synth)
    for name in sorted(set(available_real_cities()) & set(REAL)) if real else []:
        real = load_city(name)
        if not np.all(real.day_of_week == real.day_of_week[:1]) or not np.all(real.slot_of_day == real.slot_of_day[:1]):
            raise ValueError(f"{name}: the patches do not share one calendar, so they cannot form a mosaic")
        for size in sizes:
            cut = real_city_cut(real, size, splits)
            if cut is not None:
                yield name, CHECKPOINTS["real"], size, cut, forecast_scalers(real)  # the city's own training scale


def evenly(n: int, k: int) -> np.ndarray:
    """k evenly spaced indices of range(n) (all when k >= n)."""
    return np.arange(n) if k >= n else np.unique(np.linspace(0, n - 1, k).round().astype(int))


def score(model, city: City, scalers, task: str, windows: int, seed: int) -> dict:
    """MAE of every variant and of the crops on the same windows and hidden entries (see the docstring)."""
    win = make_windows(city, stride=16, scalers=scalers)
    win = win.take(evenly(len(win), windows))
    mask = batch_masks(task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(seed))
    crops = all_crops(city.grid)
    out = {"windows": len(win), "crops_per_window": crops.n_tiles}
    t0 = time.perf_counter()
    out["crops"] = crop_forecast_mae(model, win, mask, crops)
    out["seconds_crops"] = time.perf_counter() - t0
    for name, change in VARIANTS.items():
        variant = copy.copy(model)
        variant.sampling = replace(model.sampling, **change)
        t0 = time.perf_counter()
        out[name] = mae_on_crops(variant.predict(hide(win, mask), mask).mean, win, mask, crops)
        out[f"seconds_{name}"] = time.perf_counter() - t0
    return out


def report(records: list[dict], command: str) -> str:
    """grid.md: one row per city x size x task, MAE of the crops and each variant's ratio to them."""
    rows = [[r["city"], f"{r['size'][0]}x{r['size'][1]}", r["task"], r["windows"], r["crops_per_window"],
             f"{r['crops']:.5f}", *(f"{r[v] / r['crops']:.3f}" for v in VARIANTS)] for r in records]
    lines = ["# Any grid: the tiled forecast vs its 4 x 4 crops", "",
             "MAE (normalised scale, the network's median, calibration off) on the hidden entries of every 4 x 4",
             "crop of each region (a cell counts once per crop): `MAE crops` forecasts each crop alone; the",
             "ratios are the whole grid's forecast to it, as overlapping 4 x 4 tiles blended with the `centre`",
             "or `mean` weights (`forecasting/tiling.py`), or sent `whole`, padded to the network's patch (the",
             "path before tiling). Below 1: better than the crops. Real cities: a mosaic of their patches of",
             "the listed splits (not neighbours in the city), uomo-public-cpu; synthetic: a city of that region",
             "size never seen in training, uomo-synthetic-cpu. Crops per window: all 4 x 4 crops of the grid.", "",
             *table(["city", "grid", "task", "windows", "crops", "MAE crops",
                     *(f"{v} / crops" for v in VARIANTS)], rows), "",
             *commands_block([command])]
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["5x5", "6x5", "6x6", "8x8", "4x6"], help="region sizes HxW")
    ap.add_argument("--tasks", nargs="+", default=["short"], help="tasks (short, long, generation)")
    ap.add_argument("--windows", type=int, default=24, help="windows per city x size (evenly spaced, stride 16)")
    ap.add_argument("--samples", type=int, default=8, help="samples per window")
    ap.add_argument("--steps", type=int, default=3, help="DDIM steps (the forecast benchmark's val-chosen sampler)")
    ap.add_argument("--splits", nargs="+", default=["val", "test"], help="the real cities' patches in the mosaic")
    ap.add_argument("--no-real", action="store_true", help="no real city, even when ../shared/data is there")
    ap.add_argument("--no-synthetic", action="store_true", help="no synthetic city")
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    command = command_line("grid_bench.py", env=("OMP_NUM_THREADS",))
    models, records = {}, []
    sizes = [parse_size(s) for s in args.sizes]
    for name, ckpt, size, city, scalers in cities(sizes, args.splits, not args.no_synthetic, not args.no_real):
        if ckpt not in models:
            models[ckpt] = load_forecaster(ckpt, device="cpu", n_samples=args.samples, steps=args.steps)
            models[ckpt].calibration = None
        for task in args.tasks:
            r = {"city": name, "checkpoint": ckpt, "size": list(size), "task": task, "samples": args.samples,
                 "splits": args.splits if name in REAL else None,
                 "steps": args.steps, **score(models[ckpt], city, scalers, task, args.windows, seed=0),
                 "command": command}
            records.append(r)
            print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items() if k != "command"}, flush=True)
    write_json(f"{args.out}/grid.json", records)
    write_text(f"{args.out}/grid.md", report(records, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
