"""The baselines with the persistence anchor and the seasonal term too: is UoMo's forecast table a fair fight?

    python bench/anchored_baselines.py --cities nanchang nanjing synthetic --fit-draws 1 2 3 4

UoMo's rows of bench/results/forecast.md are its calibrated point forecast, which the recalibration moves
toward each cell's last observation at the first leads and toward its value one day earlier
(`forecasting/anchor.py`, weights fitted on the val regions). The baselines there are raw. Here every
fast per-cell baseline gets the same step: its calibration (anchor and seasonal term included) is fitted
on the val regions of the city (windows every 8 steps; a synthetic preset's joined by the val and test regions
of its draws `--fit-draws`, the baseline refitted on each, as UoMo's calibration file was), and its raw and calibrated point forecasts are scored on the same windows as the forecast table (every test
window, short and long tasks, MAE on the normalised scale). UoMo's MAE is read from the committed
forecast.json (model `uomo`), so its ratio is given against the best raw baseline of that table
(PatchTST included where it was run) and against the best anchored baseline measured here.
Writes bench/results/anchored_baselines.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import RESULTS, command_line, refuse_fit_draws, table, write_json, write_text
from forecasting.baselines import BASELINES
from forecasting.calibration import CalibrationError, fit_pooled_calibration
from forecasting.data import CityScalers, load_city, make_windows
from forecasting.evaluate import window_masks
from forecasting.interface import NotApplicable, hide
from forecasting.records import best_baseline_mae

TASKS = ("short", "long")
MODELS = ("daily_profile", "seasonal_naive", "historical_average", "last_value")


def scores(city, models=MODELS, tasks=TASKS, draws=()) -> list[dict]:
    """MAE of each baseline's raw and anchored-calibrated point forecast per task on every test window
    (`draws`: seeds of the synthetic draws whose val and test regions join a preset's val regions)."""
    win = make_windows(city, split="test", stride=1, scalers=CityScalers.fit(city))
    truth = np.clip(win.traffic, 0.0, 1.0)
    out = []
    for name in models:
        base = BASELINES[name]().fit(city)
        try:
            calibration = fit_pooled_calibration(lambda c: base if c is city else BASELINES[name]().fit(c), city,
                                                 tasks=tasks, split="val", draws=draws)
        except CalibrationError:
            calibration = None  # the baseline serves none of the tasks on the val regions
        for task in tasks:
            mask = window_masks(win, task, 0)
            try:
                pred = base.predict(hide(win, mask), mask)
            except NotApplicable:
                continue
            row = dict(city=city.name, task=task, model=name, windows=len(win),
                       mae_raw=float(np.abs(pred.mean - truth)[mask].mean()), mae_anchored=None)
            if calibration is not None:
                anchored = calibration.point(pred, win, mask)
                row["mae_anchored"] = float(np.abs(anchored - truth)[mask].mean())
            out.append(row)
    return out


def markdown(rows: list[dict], uomo: dict, best_raw: dict, command: str, wall: float) -> str:
    lines = ["# Baselines with the persistence anchor and the seasonal term (test regions, every window)", "",
             f"Command: `{command}` (wall time {wall:.0f} s, 2 CPU cores).", "",
             "MAE on the normalised scale. `anchored` = the baseline's point after its own recalibration fitted on",
             "the val regions (persistence anchor and seasonal term included, `forecasting/anchor.py`), as",
             "UoMo's rows of forecast.md are. UoMo's MAE is the committed `uomo` record of forecast.json.", ""]
    lines += table(["city", "task", "baseline", "raw", "anchored"],
                   [[r["city"], r["task"], r["model"], f"{r['mae_raw']:.5f}",
                     "-" if r["mae_anchored"] is None else f"{r['mae_anchored']:.5f}"] for r in rows])
    lines += ["", "## UoMo against the best raw and the best anchored baseline", ""]
    body = []
    for (c, t), u in sorted(uomo.items()):
        anchored = [r for r in rows if (r["city"], r["task"]) == (c, t) and r["mae_anchored"] is not None]
        if not anchored or (c, t) not in best_raw:
            continue
        b = min(anchored, key=lambda r: r["mae_anchored"])
        name, raw = best_raw[(c, t)]
        body.append([c, t, f"{u:.5f}", f"{name} {raw:.5f}", f"{u / raw:.3f}", f"{b['model']} {b['mae_anchored']:.5f}",
                     f"{u / b['mae_anchored']:.3f}"])
    lines += table(["city", "task", "UoMo MAE", "best raw baseline", "ratio", "best anchored baseline", "ratio"], body)
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", nargs="+", default=["nanchang", "nanjing", "synthetic"])
    ap.add_argument("--fit-draws", nargs="*", type=int, default=[], metavar="SEED",
                    help="seeds of other draws of the synthetic presets among --cities whose val and test regions "
                         "join the preset's val regions for the baselines' calibration (as calibration_bench.py's)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    refuse_fit_draws(ap, args.cities, args.fit_draws)  # before any fit: a refused draw would otherwise leave a baseline uncalibrated
    t0 = time.time()
    rows = [r for name in args.cities for r in scores(load_city(name), draws=args.fit_draws)]
    records = json.loads((RESULTS / "forecast.json").read_text())
    uomo = {(r["city"], r["task"]): r["mae"] for r in records
            if r["model"] == "uomo" and r["task"] in TASKS and r["mae"] is not None and r["city"] in args.cities}
    best_raw = best_baseline_mae(records)
    write_json(f"{args.out}/anchored_baselines.json", rows)
    text = markdown(rows, uomo, best_raw, command_line("anchored_baselines.py", argv), time.time() - t0)
    write_text(f"{args.out}/anchored_baselines.md", text)
    print(text)


if __name__ == "__main__":
    main()
