"""Calibration of predictive distributions: coverage, PIT, CRPS and reliability, raw vs recalibrated.

    python bench/calibration_bench.py --checkpoint runs/public.pt --cities synthetic nanchang nanjing --save

The recalibration (`forecasting.calibration`) is fitted on the *val* regions of every city (windows every
`--fit-stride` steps; with `--fit-draws`, a synthetic preset's val regions are joined by the val and test
regions of its draws with those seeds); coverage of the central 50/80/90% intervals, CRPS and the PIT
histogram are then measured on the *test* regions (windows every `--stride` steps) for the raw and the
calibrated samples of the same predictions. `--save` writes the calibration beside the checkpoint
(`<name>.calibration.json`), where `load_forecaster` picks it up. Records: bench/results/calibration.json
(keys city, task, model, calibrated, split, nominal, coverage, crps, windows), a Markdown table and the
reliability figure beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, command_line, refuse_fit_draws, write_json, write_text
from forecasting.calibration import (
    POOL_WEIGHTS, Calibration, calibration_from_residuals, calibration_path, calibration_windows, fit_calibration,
    fit_meta, pit_coverage,
)
from forecasting.data import load_city
from forecasting.evaluate import window_masks
from forecasting.interface import hide
from forecasting.metrics import crps

NOMINAL = (0.5, 0.8, 0.9)
TASKS = ("short", "long", "generation")


def coverage(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, nominal: float) -> float:
    """Share of hidden entries inside the central `nominal` interval of the samples (Hazen positions: S
    samples stand for the levels (k + 1/2) / S, as the calibrated samples are drawn)."""
    lo, hi = np.quantile(samples, [(1 - nominal) / 2, (1 + nominal) / 2], axis=0, method="hazen")
    return float(((truth >= lo) & (truth <= hi))[mask].mean())


def pit_values(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, seed: int = 0,
               positions: str = "rank") -> np.ndarray:
    """Randomised PIT of the hidden entries from S samples, n_below of them below the truth and n_tied equal.

    `positions="rank"`, S exchangeable draws (the raw samples): the truth's rank among them spread uniformly
    over its rank bin and its ties, u = (n_below + V (n_tied + 1)) / (S + 1), V uniform.
    `positions="hazen"`, S quantiles at the levels (k + 1/2) / S (the calibrated samples): a truth between the
    quantiles k - 1 and k lies at a level in [(k - 1/2) / S, (k + 1/2) / S] (clipped to [0, 1]), a truth equal
    to n_tied of them on the atom [n_below / S, (n_below + n_tied) / S]; u is uniform there. The rank rule on
    such quantiles is not uniform for a calibrated forecast: its end bins hold half a bin's mass, which puts a
    calibrated ensemble of 16 at 53 / 85 / 95% coverage of the central 50 / 80 / 90% bands.
    Either way u is uniform on [0, 1] for a calibrated forecast, even with few samples and with atoms (an
    idle cell whose samples and truth are all 0 gets u = V).
    """
    if positions not in ("rank", "hazen"):
        raise ValueError(f"positions must be 'rank' or 'hazen', not {positions!r}")
    s, y = samples[:, mask], truth[mask]
    S = samples.shape[0]
    below, tied = (s < y).sum(axis=0), (s == y).sum(axis=0)
    v = np.random.default_rng(seed).uniform(size=y.size)
    if positions == "rank":
        return (below + v * (tied + 1)) / (S + 1)
    lo = np.where(tied > 0, below, np.maximum(below - 0.5, 0.0)) / S
    hi = np.where(tied > 0, below + tied, np.minimum(below + 0.5, S)) / S
    return lo + v * (hi - lo)


def reliability(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Observed frequency of y <= the samples' quantile at each level."""
    q = np.quantile(samples, levels, axis=0, method="hazen")
    return np.array([(truth <= q[k])[mask].mean() for k in range(levels.size)])


def score_city(model, cal: Calibration, city, task: str, stride: int, label: str) -> tuple[list[dict], dict]:
    win = calibration_windows(city, "test", stride)
    mask = window_masks(win, task)
    raw = model.predict(hide(win, mask), mask, calibrated=False)
    cal_samples = cal.samples(raw, win, mask)
    rows, curves = [], {}
    levels = np.linspace(0.05, 0.95, 19)
    region = np.broadcast_to(np.asarray(win.region)[:, None, None, None], mask.shape)[mask]  # per hidden entry
    for calibrated, samples in ((False, raw.samples), (True, cal_samples)):
        c = crps(samples, win.traffic, mask)
        pits = pit_values(samples, win.traffic, mask, positions="hazen" if calibrated else "rank")
        for nominal in NOMINAL:
            rows.append(dict(city=city.name, task=task, model=label, calibrated=calibrated, split="test",
                             nominal=nominal, coverage=coverage(samples, win.traffic, mask, nominal),
                             pit_coverage=pit_coverage(pits, nominal), crps=c, windows=len(win),
                             zero_share=float((win.traffic[mask] == 0).mean()),
                             region_pit_coverage={str(r): pit_coverage(pits[region == r], nominal)
                                                  for r in np.unique(region)}))
        pit = np.histogram(pits, bins=10, range=(0, 1))[0]
        curves[calibrated] = dict(reliability=reliability(samples, win.traffic, mask, levels).tolist(),
                                  pit=(pit / pit.sum()).tolist())
    return rows, {"levels": levels.tolist(), **{("calibrated" if k else "raw"): v for k, v in curves.items()}}


def region_lines(rows: list[dict]) -> list[str]:
    """The calibrated PIT coverage of each test region alone (how far single regions stray from the pooled
    figure: the noise a cell of one to five test regions carries)."""
    cal = [r for r in rows if r["calibrated"] and r.get("region_pit_coverage")]
    if not cal:
        return []
    lines = ["Calibrated PIT coverage of each test region alone (50 / 80 / 90%):", "",
             "| city | task | per test region |", "| --- | --- | --- |"]
    for city, task in dict.fromkeys((r["city"], r["task"]) for r in cal):
        get = {r["nominal"]: r["region_pit_coverage"] for r in cal if r["city"] == city and r["task"] == task}
        regions = sorted(get[NOMINAL[0]], key=int)
        cells = "; ".join(f"{g}: " + " / ".join(f"{get[n][g]:.0%}" for n in NOMINAL) for g in regions)
        lines.append(f"| {city} | {task} | {cells} |")
    return lines + [""]


def pooling_lines(pooling: dict) -> list[str]:
    """The val-only choices per city and task (`forecasting.calibration`): standardised by the model's spread
    or flat, own tables or every city's, and the band width."""
    if not pooling:
        return []
    lines = ["Choices on the val regions, leave one region out (cities with one val region keep their own",
             "tables, the model's spread and c = 1). Spread: residuals standardised by the model's own spread",
             "or by 1 (flat), by the held-out quantile score (mean pinball loss in the cells' log space, lower",
             "is better); then own or pooled tables and the band-width factor c together, by the held-out mean",
             "|coverage - nominal| over 50/80/90% (own and pooled at c = 1; c only for 3+ val regions):", "",
             "| city / task | score model | score flat | spread | own | pooled | chosen | width | error at the choice |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k, v in sorted(pooling.items()):
        scores = (f"{v['score_model']:.5f} | {v['score_flat']:.5f} | {v['spread']}" if "spread" in v
                  else "- | - | model")
        width = f"{v.get('width', 1.0):g}" + (f" / outer {v['outer_width']:g}" if v.get("outer_width") else "")
        error = v.get("error_outer", v.get("error", min(v["own"], v["pooled"])))
        lines.append(f"| {k} | {scores} | {v['own']:.3f} | {v['pooled']:.3f} | {v['chosen']} | {width} | {error:.3f} |")
    if any(v.get("outer_width") for v in pooling.values()):
        lines += ["", "Outer widths (`--outer-widths`): the central 50% band scaled by the width, the steps beyond it by",
                  "the outer width, kept where the pair chosen on the other val regions beat the single width on each",
                  "held-out region: " + "; ".join(f"{k} {v['nested_one']:.4f} -> {v['nested_two']:.4f}"
                                                  for k, v in sorted(pooling.items()) if "nested_one" in v) + "."]
    return lines + [""]


def markdown(rows: list[dict], command: str, wall: float, pooling: dict | None = None,
             draws: list | None = None) -> str:
    lines = [
        "# Calibration of UoMo's predictive distribution (test regions)",
        "",
        f"Command: `{command}` (wall time {wall:.0f} s, 2 CPU cores).",
        "",
        "Coverage = share of hidden test entries inside the central interval of the samples; target: within",
        "+-5 points of nominal. The recalibration is fitted on the val regions only (Mondrian split conformal in",
        "the per-cell log space, per city (or pooled over cities, see below), task, lead bucket and cell group,",
        "around the point moved toward the last observation at early leads (the persistence anchor,",
        "`forecasting/anchor.py`), plus a dead zone for exact zeros; `forecasting/calibration/`). CRPS on the",
        "normalised scale (fair estimator). `idle` = share of the hidden test entries that are exactly zero",
        "(cells without traffic). For those, a closed interval [0, 0] covers the truth at every nominal level,",
        "so the interval coverage of a forecaster that is sure of the zeros cannot fall below the idle share;",
        "`PIT` is the coverage counted on the randomised PIT, the standard coverage of an ensemble forecast of a",
        "distribution with atoms: for the raw samples (exchangeable draws) the truth's rank among them spread",
        "uniformly over its bin and its ties; for the calibrated samples (quantiles at the levels (k + 1/2) / S)",
        "the level range the truth falls in (`pit_values`; the rank rule would show a calibrated ensemble of 16",
        "at 53 / 85 / 95%).",
        *([f"The synthetic presets' val regions are joined by the val and test regions of their draws with seeds "
           f"{', '.join(map(str, draws))} (`--fit-draws`: cities no model was trained on; the presets' own test "
           "regions stay for the scores).", ""] if draws else [""]),
        "| city | task | idle | 50% raw | 50% cal | 50% cal PIT | 80% raw | 80% cal | 80% cal PIT | 90% raw | 90% cal "
        "| 90% cal PIT | CRPS raw | CRPS cal | within 5 pts (interval / PIT) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted({(r["city"], r["task"]) for r in rows}, key=lambda k: (k[0], TASKS.index(k[1])))
    for city, task in keys:
        get = {(r["calibrated"], r["nominal"]): r for r in rows if r["city"] == city and r["task"] == task}
        cells = []
        for n in NOMINAL:
            cells += [f"{get[(False, n)]['coverage']:.3f}", f"{get[(True, n)]['coverage']:.3f}",
                      f"{get[(True, n)]['pit_coverage']:.3f}"]
        ok = all(abs(get[(True, n)]["coverage"] - n) <= 0.05 for n in NOMINAL)
        ok_pit = all(abs(get[(True, n)]["pit_coverage"] - n) <= 0.05 for n in NOMINAL)
        lines.append(f"| {city} | {task} | {get[(True, 0.5)]['zero_share']:.2f} | " + " | ".join(cells)
                     + f" | {get[(False, 0.5)]['crps']:.5f} | {get[(True, 0.5)]['crps']:.5f} | "
                     + f"{'yes' if ok else 'no'} / {'yes' if ok_pit else 'no'} |")
    lines += ["", *region_lines(rows), *pooling_lines(pooling or {}), "Reliability and PIT histograms: `calibration.png`.", ""]
    return "\n".join(lines)


def figure(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(curves)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        c = curves[key]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.plot(c["levels"], c["raw"]["reliability"], "o-", ms=3, label="raw")
        ax.plot(c["levels"], c["calibrated"]["reliability"], "s-", ms=3, label="calibrated")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("nominal quantile level")
        ax.set_ylabel("observed frequency")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fit(model, cities: list, args: argparse.Namespace) -> Calibration:
    """The calibration of `model` fitted on the val regions of `cities` (`fit_calibration`), or, with
    `--residuals`, the same fit made from the cached val residuals (`calibration_levers.val_residuals`)."""
    options = dict(pool_weights=args.pool_weights, level_maps=args.level_maps, outer_widths=args.outer_widths)
    if args.residuals is None:
        return fit_calibration(model, cities, tasks=args.tasks, split="val",
                               stride=args.fit_stride, draws=args.fit_draws, **options)
    from calibration_levers import val_residuals

    fitted, geographies, _ = val_residuals(args)
    meta = fit_meta(model.name, "val", args.fit_stride, 0, args.fit_draws)
    return calibration_from_residuals(fitted, meta, geographies=geographies, **options)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="uomo-synthetic-cpu", help="UoMo checkpoint (path or shipped name)")
    ap.add_argument("--label", default="uomo", help="model name in the records")
    ap.add_argument("--cities", nargs="+", default=["synthetic"])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--steps", type=int, default=3, help="DDIM steps")
    ap.add_argument("--samples", type=int, default=32, help="samples per window")
    ap.add_argument("--stride", type=int, default=4, help="test windows every N steps")
    ap.add_argument("--fit-stride", type=int, default=8, help="val windows every N steps for the fit")
    ap.add_argument("--fit-draws", nargs="*", type=int, default=[], metavar="SEED",
                    help="seeds of other draws of the synthetic presets among --cities whose val and test regions "
                         "join the preset's val regions for the fit (never the preset's own seed)")
    ap.add_argument("--pool-weights", choices=POOL_WEIGHTS, default="entries",
                    help="how tables pooled over the cities weigh them: every val entry once (entries) or every "
                         "city as one (cities), also in the dead zone's Brier score")
    ap.add_argument("--level-maps", action="store_true",
                    help="let a city with 3+ val regions reshape its bands with a level map where that lowers the "
                         "held-out coverage error (forecasting.calibration.level_map)")
    ap.add_argument("--outer-widths", action="store_true",
                    help="let a city with 3+ val regions scale the steps beyond its central 50%% band by their own "
                         "width where that wins on held-out val regions (ResidualTable.outer_width)")
    ap.add_argument("--residuals", type=Path, default=None,
                    help="cache of the val residuals (.npz, as bench/calibration_levers.py keeps it): the fit reads "
                         "them when the cache holds the same settings, else samples them and writes the cache")
    ap.add_argument("--save", action="store_true", help="write the calibration beside the checkpoint")
    ap.add_argument("--score-saved", action="store_true",
                    help="score the calibration file beside the checkpoint on the test regions instead of fitting "
                         "one (e.g. one fitted from cached val residuals, bench/calibration_levers.py)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from forecasting.checkpoint import resolve_checkpoint, weights_digest
    from forecasting.forecast import load_forecaster

    if args.level_maps and args.outer_widths:
        ap.error("--level-maps and --outer-widths both reshape the bands beyond one width: choose one")
    if args.score_saved and (args.save or args.fit_draws or args.level_maps or args.outer_widths or args.residuals):
        ap.error("--score-saved scores the saved file as it is: drop --save, --fit-draws, --level-maps, "
                 "--outer-widths and --residuals")
    refuse_fit_draws(ap, args.cities, args.fit_draws)  # before the model loads: fit_calibration would refuse it only after minutes of sampling
    t0 = time.perf_counter()
    model = load_forecaster(args.checkpoint, steps=args.steps, n_samples=args.samples)
    cities = [load_city(c) for c in args.cities]
    if args.score_saved:
        cal = model.calibration  # the file beside the checkpoint, loaded (and checked against the weights) with it
        if cal is None:
            raise SystemExit(f"{args.checkpoint} has no calibration file to score; fit one with --save")
    else:
        cal = fit(model, cities, args)
        cal.meta.update(checkpoint=str(args.checkpoint), sampler=f"ddim-{args.steps} x {args.samples}",
                        weights_digest=weights_digest(model.net))  # the loader serves it only with these weights
    if args.save:
        print(f"calibration written to {cal.save(calibration_path(resolve_checkpoint(args.checkpoint)))}", file=sys.stderr)
    rows, curves = [], {}
    for city in cities:
        for task in args.tasks:
            r, c = score_city(model, cal, city, task, args.stride, args.label)
            rows += r
            curves[f"{city.name} {task}"] = c
            print(f"{city.name} {task}: " + ", ".join(f"{x['nominal']:.0%} {'cal' if x['calibrated'] else 'raw'} "
                                                      f"{x['coverage']:.3f}" for x in r), file=sys.stderr)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("calibration_bench.py", argv)
    pooling = cal.meta.get("pooling", {})
    write_json(out / "calibration.json", {"command": command, "records": rows, "curves": curves, "pooling": pooling})
    draws = cal.meta.get("draws")
    write_text(out / "calibration.md", markdown(rows, command.strip(), wall, pooling, draws))
    figure(curves, out / "calibration.png")
    print(markdown(rows, command.strip(), wall, pooling, draws))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
