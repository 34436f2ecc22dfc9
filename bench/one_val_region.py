"""Which calibration table should a city with a single val region use: its own, or the one pooled over cities?

    python bench/one_val_region.py --checkpoint uomo-public-cpu --cities nanchang nanjing synthetic

`forecasting.calibration` can only choose between a city's own tables and the pooled ones (and a band
width) by holding val regions out, so a city with one val region (Nanjing) keeps its own tables by rule.
This benchmark checks the rule on val data only: for each city with several val regions, it fits the
calibration as if that city had one of them (each in turn; the other cities' val regions as they are), then
scores its own and the pooled table on the city's other val regions by the mean |coverage - nominal| over
the central 50/80/90% bands of the randomised PIT (`coverage_error`). Lower is better. No test region is
read. Writes bench/results/one_val_region.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import RESULTS, add_val_sampling_args, command_line, table, write_text
from forecasting.calibration import (
    Residuals, calibration_from_residuals, city_residuals, coverage_error, heldout_pit, pooled_table,
)
from forecasting.data import load_city


def one_region_errors(fitted: dict[tuple[str, str], Residuals], city: str, task: str,
                      geographies: dict[str, str]) -> dict[str, list[float]]:
    """{"own": [error], "pooled": [error]}, one per val region r of `city`: the calibration fitted with only
    r of the city's val entries, its own table (r alone, thin rows from the pool) and the pooled table (r and
    the other cities' entries, around the city's centre), scored on the city's other val regions."""
    entries = fitted[(city, task)]
    others = [r for (c, t), r in fitted.items() if t == task and c != city]
    errors: dict[str, list[float]] = {"own": [], "pooled": []}
    for region in np.unique(entries.region[entries.region >= 0]):
        one = entries.take(entries.region == region)
        cal = calibration_from_residuals({**fitted, (city, task): one}, geographies=geographies)
        own = cal.tables[(city, task)]
        pooled = pooled_table([one, *others], task, own.anchor, own.floor)
        held = entries.take(entries.region != region).anchored(own.anchor, own.seasonal)
        for name, tab in (("own", own), ("pooled", pooled)):
            errors[name].append(coverage_error(heldout_pit(held, tab, cal.zero_share)))
    return errors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_val_sampling_args(ap)
    ap.add_argument("--stride", type=int, default=8, help="val windows every N steps")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from forecasting.forecast import load_forecaster

    t0 = time.perf_counter()
    model = load_forecaster(args.checkpoint, steps=args.steps, n_samples=args.samples)
    cities = [load_city(c) for c in args.cities]
    fitted: dict[tuple[str, str], Residuals] = {}
    for c in cities:
        fitted.update(city_residuals(model, c, args.tasks, "val", args.stride))
    geographies = {c.name: c.geography for c in cities}
    rows = []
    for c in cities:
        if c.regions("val").size < 2:
            continue
        for task in args.tasks:
            if (c.name, task) not in fitted:
                continue
            e = one_region_errors(fitted, c.name, task, geographies)
            rows.append((c.name, task, len(e["own"]), f"{np.mean(e['own']):.3f}", f"{np.mean(e['pooled']):.3f}",
                         "own" if np.mean(e["own"]) <= np.mean(e["pooled"]) else "pooled",
                         " / ".join(f"{a:.3f} vs {b:.3f}" for a, b in zip(e["own"], e["pooled"]))))
    lines = ["# A city with one val region: its own calibration tables or the pooled ones (val regions only)", "",
             f"Command: `{command_line('one_val_region.py', argv).strip()}` "
             f"(wall time {time.perf_counter() - t0:.0f} s, 2 CPU cores).", "",
             "Each city with several val regions is calibrated as if it had only one of them (each in turn); its",
             "own and the pooled table are scored on its other val regions: mean |PIT coverage - nominal| over the",
             "central 50/80/90% bands (lower is better). Checkpoint " f"`{args.checkpoint}`, DDIM-{args.steps} x "
             f"{args.samples}, val windows every {args.stride} steps.", "",
             *table(["city", "task", "regions", "own", "pooled", "better", "per region (own vs pooled)"], rows), ""]
    path = write_text(Path(args.out) / "one_val_region.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
