"""Summary statistics of the synthetic prior's cities beside the real cities' training regions.

    OMP_NUM_THREADS=1 python bench/synthetic_prior_stats.py --n 64

Writes bench/results/synthetic_prior.md: for each statistic, the real cities' TRAIN regions (the only
part of them read here), the old `synthetic` preset's train regions, and the 10th / 50th / 90th
percentiles and range over the prior's cities (train regions too); plus the time and memory it
takes to build the prior's cities.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import RESULTS, command_line, commands_block, table, write_text
from forecasting.data import City, available_real_cities, load_cities, load_city

STATISTICS = {
    "zero_cells": "share of all-zero cells",
    "night_day": "night/day ratio (mean traffic 02-05 h / 10-22 h, active cells)",
    "acf1": "lag-1 autocorrelation (median over active cells, native slot)",
    "acf1h": "lag-1 h autocorrelation (median over active cells)",
    "acf1d": "one-day autocorrelation (median over active cells)",
    "off_profile": "departure from the cell's own daily profile (mean absolute, over the cell's mean; median over active cells)",
    "cv_cells": "coefficient of variation of the cells' mean traffic (all cells)",
    "zero_slots": "share of zero slots in active cells (intermittency)",
}


def _autocorrelation(series: np.ndarray, lag: int) -> np.ndarray:
    """Lag-`lag` autocorrelation of each row of `series` (n, T) around its own mean."""
    a = series - series.mean(axis=1, keepdims=True)
    return (a[:, lag:] * a[:, :-lag]).sum(1) / np.maximum((a * a).sum(1), 1e-30)


def city_statistics(city: City, split: str = "train") -> dict[str, float]:
    """The STATISTICS of `city`'s regions in `split` (every cell of every region is one series)."""
    regions = city.regions(split)
    x = city.traffic[regions].astype(np.float64)  # (R, T, H, W)
    cells = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])  # (N, T)
    empty = cells.max(axis=1) <= 0
    active = cells[~empty]
    hours = city.slot_of_day[regions[0]] * 24.0 / city.slots_per_day
    night, day = (hours >= 2) & (hours < 5), (hours >= 10) & (hours < 22)
    means = cells.mean(axis=1)
    per_hour = max(1, city.slots_per_day // 24)
    slot = city.slot_of_day[regions[0]]
    profile = np.stack([active[:, slot == s].mean(axis=1) for s in range(city.slots_per_day)], axis=1)[:, slot]
    return {
        "zero_cells": float(empty.mean()),
        "night_day": float(active[:, night].mean() / active[:, day].mean()),
        "acf1": float(np.median(_autocorrelation(active, 1))),
        "acf1h": float(np.median(_autocorrelation(active, per_hour))),
        "acf1d": float(np.median(_autocorrelation(active, city.slots_per_day))),
        "off_profile": float(np.median(np.abs(active - profile).mean(axis=1) / active.mean(axis=1))),
        "cv_cells": float(means.std() / means.mean()),
        "zero_slots": float((active == 0).mean()),
    }


def _spread(values: list[float]) -> str:
    """'q10 / median / q90 (min-max)' of `values`."""
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f} ({min(values):.3f}-{max(values):.3f})"


def _inside(stats: dict[str, dict], values: list[float], key: str) -> str:
    """The names of the cities whose statistic `key` lies within the 10-90% band of `values`."""
    low, high = np.quantile(values, [0.1, 0.9])
    inside = [name.split(" ")[0] for name, s in stats.items() if low <= s[key] <= high]
    return ", ".join(inside) or "none"


def build_prior(n: int, seed: int, family: str = "synthetic-prior") -> tuple[list[City], float, float]:
    """The prior's first `n` cities, the seconds it took and the megabytes their arrays hold."""
    start = time.perf_counter()
    cities = load_cities(f"{family}@{seed}:{n}")
    seconds = time.perf_counter() - start
    megabytes = sum(c.traffic.nbytes + (c.users.nbytes if c.users is not None else 0) for c in cities) / 1e6
    return cities, seconds, megabytes


def by_granularity(prior: list[City], seed: int, real: list[str]) -> list[str]:
    """Table lines: the one-day autocorrelation per slot length, for the present prior, the second ranges
    (`synthetic-prior-v2`, the same draws without the noise scaling of coarse slots) and the real cities
    summed into coarser slots (`forecasting.data.resample`; train regions only)."""
    second, _, _ = build_prior(len(prior), seed, "synthetic-prior-v2")
    sources = {name: load_city(name) for name in real}
    rows = []
    for spd in sorted({c.slots_per_day for c in prior}, reverse=True):
        minutes = 1440 // spd
        now = [city_statistics(c)["acf1d"] for c in prior if c.slots_per_day == spd]
        before = [city_statistics(c)["acf1d"] for c in second if c.slots_per_day == spd]
        cities = []
        for name, source in sources.items():
            if minutes == round(source.minutes_per_slot):
                cities.append(f"{name} {city_statistics(source)['acf1d']:.3f}")
            elif minutes > source.minutes_per_slot and minutes % round(source.minutes_per_slot) == 0:
                cities.append(f"{name}@{minutes}min {city_statistics(load_city(f'{name}@{minutes}min'))['acf1d']:.3f}")
        rows.append([f"{minutes} min", str(len(now)), _spread(now), _spread(before), ", ".join(cities) or "-"])
    return table(["slot", "prior cities", "present prior: q10 / median / q90 (range)",
                  "second ranges (`synthetic-prior-v2`)", "real cities (train regions)"], rows)


def report(n: int, seed: int) -> str:
    """The Markdown note: the statistics table, the build cost and the command."""
    prior, seconds, megabytes = build_prior(n, seed)
    stats = {name: city_statistics(load_city(name)) for name in sorted(available_real_cities())}
    stats["synthetic (preset)"] = city_statistics(load_city("synthetic"))
    prior_stats = [city_statistics(c) for c in prior]
    header = ["statistic", *(f"{k} train" if k in ("nanjing", "nanchang") else k for k in stats),
              f"prior, {n} cities: q10 / median / q90 (range)", "inside the prior's q10-q90"]
    rows = [[text, *(f"{s[key]:.3f}" for s in stats.values()), _spread([p[key] for p in prior_stats]),
             _inside(stats, [p[key] for p in prior_stats], key)] for key, text in STATISTICS.items()]
    spd = sorted({c.slots_per_day for c in prior})
    lines = [
        "# The synthetic prior beside the real cities", "",
        f"{n} cities of the synthetic prior (seed {seed}; `forecasting.data.synthetic_prior`, default ranges), "
        "each 8 x 8 cells = 4 regions of 4 x 4, 14-21 days, granularities "
        f"{', '.join(f'{1440 // s} min' for s in spd)}. Every statistic is computed on the train regions "
        "(prior cities: 3 of their 4 regions). The real cities' TRAIN regions are the only real data read; "
        "the prior's ranges were set wide around these summary figures, never fitted to val/test regions.", "",
        *table(header, rows), "",
        f"Building the {n} cities took {seconds:.1f} s on one core and their traffic + users arrays hold "
        f"{megabytes:.0f} MB (float32).", "",
        "One-day autocorrelation (median over active cells) by slot length. Summing a real city into coarser "
        "slots averages out part of its noise, so its days repeat more; the present prior scales the noise "
        "of slots longer than 30 minutes by sqrt(30 / minutes) (`SyntheticPrior.noise_reference_minutes`) "
        "for the same reason:", "",
        *by_granularity(prior, seed, sorted(available_real_cities())), "",
        *commands_block([command_line("synthetic_prior_stats.py", env=("OMP_NUM_THREADS",))]), "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="cities of the prior to summarise")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior")
    p.add_argument("--out", default=str(RESULTS / "synthetic_prior.md"), help="the Markdown note to write")
    args = p.parse_args()
    path = write_text(args.out, report(args.n, args.seed))
    print(path.read_text())


if __name__ == "__main__":
    main()
