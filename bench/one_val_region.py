"""Which calibration bands should a city with a single val region use: its own table, the pooled one, either
widened by the width the other cities' held-out regions need?

    python bench/one_val_region.py --checkpoint uomo-public-cpu --cities nanchang nanjing synthetic \
        --fit-draws 1 2 3 4 --residuals runs/public-val-residuals.npz

`forecasting.calibration` chooses between a city's own tables and the pooled ones (and a band width) by
holding val regions out, so a city with one val region (Nanjing) keeps its own tables at width 1 by rule.
This benchmark checks that rule on val data only: for each city with several val regions, it fits the
calibration as if that city had one of them (each in turn; the other cities' val regions as they are), then
scores on the city's other val regions, by the mean |coverage - nominal| over the central 50/80/90% bands
of the randomised PIT (`coverage_error`, lower is better):

- `own`, `pooled`: the city's own table (the one region alone, thin rows from the pool) or the pooled one
  (that region and the other cities' entries), at width 1;
- `own x c`, `pooled x c`: the same widened by the width c the *other* cities' held-out val regions ask of
  that table row (`borrowed_widths`: the width of `WIDTHS` with the lowest held-out coverage error summed
  over the cities with MIN_WIDTH_REGIONS val regions or more), the rule a one-region city could borrow.

The residuals are those of `calibration_levers.py` (`--residuals` keeps them; `--fit-draws` joins draws of
the synthetic city as more val regions). No test region is read. Writes bench/results/one_val_region.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from calibration_levers import anchored_residuals, choice_folds, residual_run
from common import command_line, table, write_text
from forecasting.calibration import (
    MIN_WIDTH_REGIONS, WIDTHS, Residuals, calibration_from_residuals, coverage_error, heldout_pit, pooled_table,
)
from forecasting.calibration.heldout import band_errors

RULES = ("own", "pooled", "own x c", "pooled x c")


def held_out_width_errors(fitted: dict[tuple[str, str], Residuals], cal, geographies: dict[str, str]
                          ) -> dict[tuple[str, str], np.ndarray]:
    """{(city, task): (2, len(WIDTHS)) leave-one-region-out coverage errors of the city's own (row 0) and the
    pooled table (row 1) at each width} for every city with MIN_WIDTH_REGIONS val regions or more, under
    the anchor, spread and dead zone of `cal`, the calibration fitted on all of `fitted`."""
    around = anchored_residuals(fitted, cal)
    out = {}
    for key, r in around.items():
        if np.unique(r.region[r.region >= 0]).size < MIN_WIDTH_REGIONS:
            continue
        rec, folds = choice_folds(around, cal, key, geographies)
        if rec is not None:
            out[key] = band_errors(folds, cal.zero_share, WIDTHS)
    return out


def borrowed_widths(errors: dict[tuple[str, str], np.ndarray], city: str, task: str) -> tuple[float, float]:
    """(own width, pooled width) that `city` borrows for `task`: per table row, the width with the lowest
    held-out coverage error summed over the other cities' `held_out_width_errors` (1 when none has any)."""
    rows = [e for (c, t), e in errors.items() if t == task and c != city]
    if not rows:
        return 1.0, 1.0
    total = np.sum(rows, axis=0)
    return WIDTHS[int(np.argmin(total[0]))], WIDTHS[int(np.argmin(total[1]))]


def one_region_errors(fitted: dict[tuple[str, str], Residuals], city: str, task: str, geographies: dict[str, str],
                      widths: tuple[float, float] = (1.0, 1.0), zero_share=None) -> dict[str, list[float]]:
    """{rule: [error]} over `RULES`, one per val region r of `city`: the calibration fitted with only r of the
    city's val entries (its own table: r alone, thin rows from the pool; the pooled table: r and the other
    cities' entries, around the city's centre), at width 1 and at the borrowed `widths` (own, pooled),
    scored on the city's other val regions with the dead zone `zero_share` (the full fit's, chosen over
    every task's entries; by default the one of the task's fit)."""
    entries = fitted[(city, task)]
    task_fitted = {k: v for k, v in fitted.items() if k[1] == task}
    others = [r for (c, _), r in task_fitted.items() if c != city]
    errors: dict[str, list[float]] = {rule: [] for rule in RULES}
    for region in np.unique(entries.region[entries.region >= 0]):
        one = entries.take(entries.region == region)
        cal = calibration_from_residuals({**task_fitted, (city, task): one}, geographies=geographies,
                                         pool_cities=False)
        own = cal.tables[(city, task)]
        pooled = pooled_table([one, *others], task, own.anchor, own.floor)
        held = entries.take(entries.region != region).anchored(own.anchor, own.seasonal)
        tables = {"own": own, "pooled": pooled, "own x c": own.widened(widths[0]),
                  "pooled x c": pooled.widened(widths[1])}
        zone = cal.zero_share if zero_share is None else zero_share
        for rule, tab in tables.items():
            errors[rule].append(coverage_error(heldout_pit(held, tab, zone)))
    return errors


def main(argv=None) -> int:
    args, fitted, geographies, settings, t0 = residual_run(argv, __doc__)
    full = calibration_from_residuals(fitted, geographies=geographies)
    width_errors = held_out_width_errors(fitted, full, geographies)
    rows, borrowed = [], []
    for city in sorted({c for c, _ in fitted}):
        for task in sorted(t for c, t in fitted if c == city):
            widths = borrowed_widths(width_errors, city, task)
            n_regions = np.unique(fitted[(city, task)].region).size
            if n_regions < 2:
                borrowed.append(f"{city}/{task} own x {widths[0]:g}, pooled x {widths[1]:g}")
                continue
            e = one_region_errors(fitted, city, task, geographies, widths, full.zero_share)
            means = {rule: float(np.mean(v)) for rule, v in e.items()}
            rows.append([city, task, n_regions, f"{widths[0]:g} / {widths[1]:g}",
                         *(f"{means[rule]:.3f}" for rule in RULES), min(means, key=means.get)])
            print(*rows[-1], flush=True)
    lines = ["# A city with one val region: which calibration bands (val regions only)", "",
             f"Command: `{command_line('one_val_region.py', argv).strip()}` "
             f"(wall time {time.perf_counter() - t0:.0f} s, 2 CPU cores).", "",
             "Each city with several val regions is calibrated as if it had only one of them (each in turn) and",
             "scored on its other val regions: mean |PIT coverage - nominal| over the central 50/80/90% bands",
             "(lower is better), under its own table, the pooled one, and each widened by the width c the other",
             "cities' held-out val regions ask of that table (`borrowed_widths`). Checkpoint "
             f"`{settings['checkpoint']}`, {settings['sampler']}, val windows every {settings['stride']} steps"
             + (f", the synthetic city joined by its draws {settings['draws']}" if settings["draws"] else "") + ".", "",
             *table(["city", "task", "regions", "c (own / pooled)", *RULES, "best"], rows), "",
             "What a city with one val region would borrow: " + ("; ".join(borrowed) or "none") + ".", ""]
    path = write_text(Path(args.out) / "one_val_region.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
