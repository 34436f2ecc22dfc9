"""How much the user counts say about traffic, per cell over time (context for the ablation table).

    python bench/context_signal.py [--cities nanjing nanchang]

For every cell with varying traffic and users, the Pearson correlation of the two series over the whole
record, and of their step-to-step changes (what is left once the shared level and slow trend are gone).
Writes bench/results/context_signal.md and .json; reads the cities through `forecasting.data.load_city`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import RESULTS
from forecasting.data import load_city


def cell_correlations(traffic: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell Pearson r of (R, T, H, W) series and of their first differences; cells without variance dropped."""
    T = traffic.shape[1]
    a = np.moveaxis(traffic, 1, -1).reshape(-1, T).astype(np.float64)
    b = np.moveaxis(users, 1, -1).reshape(-1, T).astype(np.float64)

    def rows_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = x - x.mean(1, keepdims=True)
        y = y - y.mean(1, keepdims=True)
        den = np.sqrt((x**2).sum(1) * (y**2).sum(1))
        ok = den > 0
        return (x[ok] * y[ok]).sum(1) / den[ok]

    return rows_r(a, b), rows_r(np.diff(a, axis=1), np.diff(b, axis=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cities", nargs="+", default=["nanjing", "nanchang"])
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    rows = []
    for name in args.cities:
        city = load_city(name)
        if city.users is None:
            raise SystemExit(f"{name} has no user counts")
        level, change = cell_correlations(city.traffic, city.users)
        rows.append({"city": name, "cells": int(level.size),
                     "median_r": float(np.median(level)), "median_r_changes": float(np.median(change))})
        print(rows[-1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "context_signal.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# User counts vs traffic, per cell over time", "", "Command: `python bench/context_signal.py "
             + " ".join(["--cities", *args.cities]) + "`", "",
             "| city | cells | median r (series) | median r (step-to-step changes) |", "|---|---|---|---|"]
    lines += [f"| {r['city']} | {r['cells']} | {r['median_r']:.2f} | {r['median_r_changes']:.2f} |" for r in rows]
    (out / "context_signal.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
