"""The persistence anchor's criterion measured on the *val* regions only: model-space vs normalised-unit error.

    python bench/anchor_criterion.py --checkpoint uomo-public-cpu --cities nanchang nanjing synthetic

The anchor (`forecasting.anchor`) moves the forecaster's point toward each cell's last observation and its
value a day earlier by weights (w0, tau, v) chosen on val entries. Two criteria for that choice:

- "model": the mean |g(y) - g(c)| in the network's per-cell log space, where every cell weighs alike;
- "value": the mean |y - c| in the benchmark's normalised units (the error the forecast table reports and a
  planner pays), where a busy cell weighs in proportion to its traffic.

For each city x task (short, long: the tasks with earlier observations) the forecaster's raw val residuals
(DDIM steps x samples, val windows every `--fit-stride` steps, as the calibration fits them; a synthetic
city's own val regions only, without the draws the shipped fit joins) are split by val region; each region
is held out in turn, the weights are fitted on the others by each criterion, and the held-out region's
normalised MAE of the centre is pooled over its entries (leave one region out). A city with a single val
region gets the in-sample figure only (marked). Writes
bench/results/anchor_criterion.json and .md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import RESULTS, add_val_sampling_args, command_line, table, write_json, write_text
from forecasting.anchor import ValueSpace, fit_seasonal, fit_weights
from forecasting.calibration import Residuals, city_residuals
from forecasting.data import load_city

CRITERIA = ("model", "value")


def fitted_shift(res: Residuals, criterion: str) -> tuple[np.ndarray, float]:
    """(w, v): the anchor's persistence weights and seasonal weight fitted on `res` by `criterion`."""
    value = res.value_space() if criterion == "value" else None
    w = fit_weights(res.numer, res.pull, res.lead, value=value)
    return w, fit_seasonal(res.numer, res.shift(w), res.season, value=value)


def centre_mae(res: Residuals, w: np.ndarray | None, v: float) -> float:
    """Normalised mean |y - c| of the centre moved by (w, v) over `res`'s entries."""
    return ValueSpace(res.point, res.scale).error(res.numer, res.shift(w, v))


def held_out(res: Residuals) -> dict:
    """Per criterion: the held-out (leave one val region out) MAE pooled over entries, its per-region MAEs,
    the in-sample MAE and the weights (w0, v) fitted on every val entry; the raw point's MAE."""
    regions = np.unique(res.region)
    out = {"raw": centre_mae(res, None, 0.0), "regions": [int(g) for g in regions]}
    for criterion in CRITERIA:
        w, v = fitted_shift(res, criterion)
        rec = {"in_sample": centre_mae(res, w, v), "w0": round(float(w[0]), 3), "v": v}
        if regions.size >= 2:
            per, total = [], 0.0
            for g in regions:
                test = res.take(res.region == g)
                per.append(centre_mae(test, *fitted_shift(res.take(res.region != g), criterion)))
                total += per[-1] * test.numer.size
            rec.update(held_out=total / res.numer.size, per_region=per)
        out[criterion] = rec
    return out


def markdown(records: list[dict], command: str, wall: float) -> str:
    rows = []
    for r in records:
        model, value = r["model"], r["value"]
        key = "held_out" if "held_out" in model else "in_sample"
        rows.append([r["city"], r["task"], len(r["regions"]), "held out" if key == "held_out" else "in sample",
                     f"{r['raw']:.6f}", f"{model[key]:.6f} (w0 {model['w0']:g}, v {model['v']:g})",
                     f"{value[key]:.6f} (w0 {value['w0']:g}, v {value['v']:g})", f"{value[key] / model[key]:.4f}"])
    held = [r["value"]["held_out"] / r["model"]["held_out"] for r in records if "held_out" in r["model"]]
    lines = ["# The anchor's criterion, on val regions", "",
             f"Command: `{command}` ({wall:.0f} s on 2 CPU cores).", "",
             "Normalised MAE of the anchored centre (the calibrated point before the dead zone); weights fitted",
             "by each criterion on the other val regions (held out) or on all of them (in sample: one val region).",
             ""]
    lines += table(["city", "task", "val regions", "scored", "raw point", "model-space fit", "value fit",
                    "value / model"], rows)
    if held:
        lines += ["", f"Mean held-out ratio value / model over {len(held)} cells: {np.mean(held):.4f}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_val_sampling_args(ap, tasks=None)
    ap.add_argument("--fit-stride", type=int, default=8, help="val windows every N steps")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from forecasting.forecast import load_forecaster

    t0 = time.time()
    model = load_forecaster(args.checkpoint, steps=args.steps, n_samples=args.samples)
    records = []
    for name in args.cities:
        fitted = city_residuals(model, load_city(name), tasks=("short", "long"), stride=args.fit_stride)
        for (city, task), res in sorted(fitted.items()):
            rec = {"city": city, "task": task, "checkpoint": args.checkpoint, **held_out(res)}
            records.append(rec)
            print(city, task, {c: round(rec[c].get("held_out", rec[c]["in_sample"]), 6) for c in CRITERIA},
                  flush=True)
    wall = time.time() - t0
    command = command_line("anchor_criterion.py", argv)
    write_json(f"{args.out}/anchor_criterion.json", {"command": command, "records": records})
    write_text(f"{args.out}/anchor_criterion.md", markdown(records, command, wall))
    print(markdown(records, command, wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
