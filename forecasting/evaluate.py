"""The forecast benchmark: every forecaster, every city, the paper's three tasks (metrics: `forecasting.metrics`).

    uomo-bench [--quick] [--cities synthetic nanjing nanchang] [--models ...]
               [--tasks short long generation] [--out runs/bench]     (= python -m forecasting.evaluate)

Each model is fitted on a city's training regions, then scored on all stride-1 windows of its test
regions (every 8th window with `--quick`). Metrics are pooled over all hidden entries of
all windows, on the normalised [0, 1] scale (clipped ground truth, as in the paper) and in raw units
(the normalised errors times the city's scale). Results are merged into `forecast.json` (records
replaced by (city, task, model), others kept) and rendered as `forecast.md`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .data import City, DataError, Windows, available_real_cities, load_city, make_windows
from .interface import Forecaster, NotApplicable, hide
from .masks import EVAL_TASKS, batch_masks, task_mask
from .metrics import MetricAccumulator
from .records import ratio_report, write_results

DEFAULT_ARIMA_MAX_WINDOWS = 32
QUICK_ARIMA_MAX_WINDOWS = 4
QUICK_STRIDE = 8


# ----------------------------------------------------------------------------------------------------
# Masks and window subsets shared by all models
# ----------------------------------------------------------------------------------------------------


def window_masks(windows: Windows, task: str, seed: int = 0) -> np.ndarray:
    """(N, T, H, W) masks of `task`; random masks (generation) are seeded by (seed, region, start) of
    each window, so every model and every subsample of the windows sees the same mask for a window."""
    N, T, H, W = windows.traffic.shape
    if task not in ("generation", "random"):
        return batch_masks(task, N, (T, H, W))
    out = np.empty((N, T, H, W), dtype=bool)
    for i in range(N):
        rng = np.random.default_rng([seed, int(windows.region[i]), int(windows.start[i])])
        out[i] = task_mask(task, (T, H, W), rng=rng)
    return out


def subsample_indices(n: int, k: int | None, seed: int = 0) -> np.ndarray:
    """k evenly spaced indices of 0..n-1 with a seeded random offset (all n when k is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError(f"a window cap must be >= 1, got {k}")
    step = n / k
    offset = np.random.default_rng(seed).uniform(0, step)
    return np.minimum(np.floor(offset + step * np.arange(k)).astype(int), n - 1)


# ----------------------------------------------------------------------------------------------------
# Harness
# ----------------------------------------------------------------------------------------------------


def evaluate_forecaster(
    forecaster: Forecaster,
    windows: Windows,
    task: str,
    seed: int = 0,
    masks: np.ndarray | None = None,
    max_windows: int | None = None,
    chunk_size: int = 256,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Score `forecaster` on `task` over `windows` (normalised); returns one benchmark record.

    Windows are predicted in chunks of `chunk_size` with their hidden entries set to NaN (`hide`).
    `max_windows` caps the count with `subsample_indices(len(windows), max_windows, seed)`.
    A forecaster raising `NotApplicable` yields a record with null metrics and status 'skipped'.
    """
    name = model_name or forecaster.name
    masks = window_masks(windows, task, seed) if masks is None else np.asarray(masks, dtype=bool)
    if masks.shape != windows.traffic.shape:
        raise ValueError(f"masks {masks.shape} do not match windows {windows.traffic.shape}")
    idx = subsample_indices(len(windows), max_windows, seed)
    scale = windows.scalers.traffic.scale if windows.scalers is not None else None
    record: dict[str, Any] = {
        "city": windows.city, "task": task, "model": name,
        "rmse": None, "mae": None, "jsd": None, "crps": None,
        "windows": 0, "seconds": None,
        "rmse_raw": None, "mae_raw": None,
        "windows_total": len(windows), "subsampled": bool(idx.size < len(windows)),
        "status": "ok", "note": None,
    }  # fmt: skip
    if task not in forecaster.tasks:
        record.update(status="skipped", note=f"{name} does not serve the {task!r} task")
        return record
    acc = MetricAccumulator()
    fallbacks_before = getattr(forecaster, "n_fallbacks", None)
    series_before = getattr(forecaster, "n_series", None)
    seconds = 0.0
    for lo in range(0, idx.size, chunk_size):
        chunk_idx = idx[lo : lo + chunk_size]
        chunk, mask = windows.take(chunk_idx), masks[chunk_idx]
        t0 = time.perf_counter()
        try:
            pred = forecaster.predict(hide(chunk, mask, futr_exog=forecaster.futr_exog), mask)
        except NotApplicable as exc:
            record.update(status="skipped", note=str(exc), windows=0)
            return record
        seconds += time.perf_counter() - t0
        mean = np.asarray(pred.mean)
        if mean.shape != mask.shape:
            raise ValueError(f"{name} returned a forecast of shape {mean.shape} for windows {mask.shape}")
        if not np.all(np.isfinite(mean[mask])):
            raise ValueError(f"{name} returned non-finite forecasts at {int((~np.isfinite(mean[mask])).sum())} hidden entries")
        acc.update(mean, chunk.traffic, mask, pred.samples)
    record.update(acc.result(with_jsd=task == "generation"))
    record.update(windows=int(idx.size), seconds=round(seconds, 3))
    if scale is not None:
        record.update(rmse_raw=record["rmse"] * scale, mae_raw=record["mae"] * scale)
    if fallbacks_before is not None and series_before is not None:
        n_series = forecaster.n_series - series_before
        n_fallbacks = forecaster.n_fallbacks - fallbacks_before
        record.update(fallbacks=int(n_fallbacks), series=int(n_series))
    return record


def default_cities(data_dir: str | Path | None = None) -> list[str]:
    """'synthetic' plus every real city present in the data directory."""
    return ["synthetic", *available_real_cities(data_dir)]


def make_model(name: str, checkpoint: str | Sequence[str] | None = None, sampling: dict | None = None,
               refused: dict[str, str] | None = None) -> Forecaster | None:
    """A fresh baseline by registry name, or the UoMo forecaster 'uomo' (None, with a message, if unavailable).

    `checkpoint`: one path or shipped name, or several (a `UoMoEnsemble`, n_samples per member).
    `refused`: filled with {name: why} for a model that could not be made. Names resolve in
    `forecasting.registry`.
    """
    refused = {} if refused is None else refused
    from .registry import ForecasterUnavailable, baseline_names, is_baseline, make_forecaster

    if not is_baseline(name) and name != "uomo":
        raise ValueError(f"unknown model {name!r}: use 'uomo' or one of {baseline_names()}")
    try:
        model = make_forecaster((checkpoint or name) if name == "uomo" else name, sampling=sampling)
    except ForecasterUnavailable as exc:
        refused[name] = str(exc)
    except Exception as exc:  # noqa: BLE001 - any checkpoint load failure: report and go on with the baselines
        refused[name] = f"could not load {checkpoint or 'the default checkpoint'} ({exc})"
    else:
        if name == "uomo":
            model.name = "uomo"
        return model
    print(f"[bench] skipping {name!r}: {refused[name]}", file=sys.stderr)
    return None


def run_benchmark(
    cities: Sequence[str | City] | None = None,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] = EVAL_TASKS,
    quick: bool = False,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    checkpoint: str | Sequence[str] | None = None,
    uomo_sampling: dict | None = None,
    uomo_label: str = "uomo",
    arima_max_windows: int | None = None,
    max_windows: int | None = None,
    seed: int = 0,
    chunk_size: int = 256,
    command: str | None = None,
    verbose: bool = True,
    refused: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Fit every model on each city's training regions and score it on the test windows of every task.

    cities: names (see `forecasting.data.load_city`) or City objects (default: synthetic + the real cities present);
    models: registry names (default: all baselines, plus 'uomo' when a checkpoint is given). Baselines are
    fitted per city; 'uomo' is used as loaded (its training is `forecasting.train`). ARIMA runs on at most
    `arima_max_windows` windows (a seeded evenly spaced subsample; default 32, 4 with `quick`);
    `max_windows` caps every model the same way (e.g. a slow sampler), default none. `uomo_label` names
    the records of 'uomo' (e.g. 'uomo_city_ft' for a second UoMo checkpoint kept beside the main one).
    Writes/merges `out/forecast.json` and `out/forecast.md` when `out` is given; returns the new records.
    `refused` is filled with {model: why} for each requested model that could not be made (then skipped).
    """
    from .baselines import BASELINES

    cities = list(cities) if cities else default_cities(data_dir)
    models = list(models) if models else [*BASELINES, *(["uomo"] if checkpoint else [])]
    for t in tasks:
        if t not in EVAL_TASKS:
            raise ValueError(f"unknown task {t!r}: use some of {EVAL_TASKS}")
    if arima_max_windows is None:
        arima_max_windows = QUICK_ARIMA_MAX_WINDOWS if quick else DEFAULT_ARIMA_MAX_WINDOWS
    caps = {name: max_windows for name in models}
    caps["arima"] = min(arima_max_windows, max_windows or arima_max_windows)
    stride = QUICK_STRIDE if quick else 1
    command = command or "run_benchmark(...)"
    records: list[dict[str, Any]] = []
    uomo_cache: dict[str, Forecaster | None] = {}
    for entry in cities:
        city = entry if isinstance(entry, City) else load_city(entry, data_dir)
        windows = make_windows(city, split="test", stride=stride)
        masks = {task: window_masks(windows, task, seed) for task in tasks}
        for name in models:
            model, fit_seconds = _fitted_model(name, city, uomo_cache, checkpoint, uomo_sampling, refused)
            if model is None:
                continue
            for task in tasks:
                if task not in model.tasks:  # not the model's job: no record (NotApplicable is recorded)
                    continue
                rec = evaluate_forecaster(
                    model, windows, task, seed, masks[task], caps.get(name), chunk_size,
                    model_name=uomo_label if name == "uomo" else name,
                )
                rec.update(fit_seconds=round(fit_seconds, 3), quick=quick, command=command)
                if rec["subsampled"] and rec["status"] == "ok":
                    rec.update(same_window_reference(city, windows, task, rec["windows"], seed, masks[task], chunk_size))
                records.append(rec)
                if verbose:
                    print(_progress_line(rec), flush=True)
    if out is not None:
        merged = write_results(records, out)
        if verbose:
            print(ratio_report(merged, {r["city"] for r in records}))
    return records


def _fitted_model(name: str, city: City, uomo_cache: dict, checkpoint, sampling: dict | None,
                  refused: dict[str, str] | None) -> tuple[Forecaster | None, float]:
    """(model ready for `city`, seconds spent fitting it): a baseline fitted on the city's training regions,
    or 'uomo' loaded once and used as is; (None, 0) when the model could not be made (`refused` says why)."""
    if name == "uomo":
        if "uomo" not in uomo_cache:
            uomo_cache["uomo"] = make_model("uomo", checkpoint, sampling, refused)
        return uomo_cache["uomo"], 0.0
    model = make_model(name, refused=refused)
    if model is None:
        return None, 0.0
    t0 = time.perf_counter()
    model.fit(city)
    return model, time.perf_counter() - t0


#: fast baselines re-scored on a capped model's subsample, so its ratio compares the same windows
REFERENCE_BASELINES = ("historical_average", "last_value", "seasonal_naive", "daily_profile", "neighbour_mean", "poi_regression")


def same_window_reference(
    city: City, windows: Windows, task: str, n_windows: int, seed: int = 0,
    masks: np.ndarray | None = None, chunk_size: int = 256,
) -> dict[str, Any]:
    """Best fast baseline (lowest MAE) on the same seeded subsample of `n_windows` windows:
    {'ref_model', 'ref_mae'} (None when no reference baseline serves the task)."""
    from .baselines import BASELINES

    best: dict[str, Any] = {"ref_model": None, "ref_mae": None}
    for name in REFERENCE_BASELINES:
        model = BASELINES[name]()
        if task not in model.tasks:
            continue
        rec = evaluate_forecaster(model.fit(city), windows, task, seed, masks, n_windows, chunk_size, model_name=name)
        if rec["mae"] is not None and (best["ref_mae"] is None or rec["mae"] < best["ref_mae"]):
            best = {"ref_model": name, "ref_mae": rec["mae"]}
    return best


def _progress_line(rec: dict[str, Any]) -> str:
    head = f"[bench] {rec['city']:>10} {rec['task']:>10} {rec['model']:>18}"
    if rec["status"] != "ok":
        return f"{head}  skipped: {rec['note']}"
    extra = f" jsd={rec['jsd']:.4f}" if rec["jsd"] is not None else ""
    extra += f" crps={rec['crps']:.5f}" if rec["crps"] is not None else ""
    return (
        f"{head}  rmse={rec['rmse']:.5f} mae={rec['mae']:.5f}{extra}  "
        f"windows={rec['windows']} seconds={rec['seconds']:.1f}"
    )


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------


#: where `uomo-bench` writes without --out: a scratch folder under the git-ignored runs/ (relative to the
#: working directory); the committed tables in bench/results are updated only with --out bench/results
DEFAULT_OUT = Path("runs") / "bench"

EXAMPLES = [
    "uomo-bench --quick --cities synthetic                 # the baselines on every 8th window, into runs/bench",
    "uomo-bench --models uomo daily_profile --checkpoint uomo-synthetic-cpu --uomo-steps 3 --quick",
    "uomo-bench --out bench/results                        # the full run that updates the committed tables",
]

EXIT_CODES = ("exit codes:\n  0  results written (a refused model among others is skipped with a message)\n"
              "  2  bad data, or no requested model could run (e.g. an optional package is missing)\n"
              "  4  the UoMo checkpoint was refused and no other requested model ran")


def build_parser() -> argparse.ArgumentParser:
    """The `uomo-bench` parser (also `python -m forecasting.evaluate`)."""
    import inspect

    from .baselines import BASELINES
    from .cli_common import examples, make_parser
    from .forecast import load_forecaster

    shipped = inspect.signature(load_forecaster).parameters["name_or_path"].default

    parser = make_parser(
        "uomo-bench", description="\n\n".join(par for par in __doc__.strip().split("\n\n") if not par.startswith("    ")),
        epilog=examples(EXAMPLES) + "\n\n" + EXIT_CODES,
    )
    parser.add_argument("--quick", action="store_true", help=f"every {QUICK_STRIDE}th test window; ARIMA on {QUICK_ARIMA_MAX_WINDOWS}")
    parser.add_argument("--cities", nargs="+", help="synthetic presets and/or real city names (default: synthetic + all real found)")
    parser.add_argument("--models", nargs="+", help=f"models to score: baselines, 'uomo' (the model) and 'patchtst' (optional) "
                        f"(default: all baselines ({', '.join(BASELINES)}), plus 'uomo' with --checkpoint)")
    parser.add_argument("--tasks", nargs="+", default=list(EVAL_TASKS), choices=list(EVAL_TASKS), help="tasks to score")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results folder: forecast.json is merged there and forecast.md rewritten; the committed "
                             "tables are bench/results (pass --out bench/results to update them)")
    parser.add_argument("--data-dir", type=Path, default=None, help="real city .npz folder (default: $UOMO_DATA_DIR or ../shared/data)")
    parser.add_argument("--checkpoint", nargs="+", default=None,
                        help="UoMo checkpoint (path or shipped name) for the 'uomo' model; several = an ensemble "
                             "pooling their samples (--uomo-samples per member) "
                             f"(default: {shipped}, the default shipped checkpoint)")
    parser.add_argument("--uomo-steps", type=int, default=20, help="DDIM steps of the 'uomo' sampler")
    parser.add_argument("--uomo-samples", type=int, default=8, help="samples per window (per ensemble member) of 'uomo' (median = point forecast)")
    parser.add_argument("--uomo-label", default="uomo", help="model name of the 'uomo' records")
    parser.add_argument("--arima-max-windows", type=int, default=None, help=f"cap on ARIMA windows per city x task (default: {DEFAULT_ARIMA_MAX_WINDOWS}, quick {QUICK_ARIMA_MAX_WINDOWS})")
    parser.add_argument("--max-windows", type=int, default=None, help="cap on windows per model x city x task (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the window subsamples and of the generation masks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `uomo-bench`; returns the exit code."""
    from .registry import baseline_names, is_baseline

    parser = build_parser()
    args = parser.parse_args(argv)
    for m in args.models or []:
        if m != "uomo" and not is_baseline(m):
            parser.error(f"unknown model {m!r}: use 'uomo' or some of {baseline_names()}")
    if is_baseline(args.uomo_label) or not args.uomo_label.strip():
        parser.error(f"--uomo-label {args.uomo_label!r} must be a non-empty name that is not a baseline's")
    command = "python -m forecasting.evaluate " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    refused: dict[str, str] = {}
    try:
        records = run_benchmark(
            cities=args.cities, models=args.models, tasks=args.tasks, quick=args.quick,
            out=args.out, data_dir=args.data_dir, checkpoint=args.checkpoint,
            uomo_sampling={"steps": args.uomo_steps, "n_samples": args.uomo_samples}, uomo_label=args.uomo_label,
            arima_max_windows=args.arima_max_windows, max_windows=args.max_windows, seed=args.seed,
            command=command.strip(), refused=refused,
        )  # fmt: skip
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if refused and not records:
        why = "; ".join(f"{m}: {reason}" for m, reason in refused.items())
        code = 4 if "uomo" in refused else 2
        print(f"error: no requested model could run, nothing was scored ({why}); exit {code}", file=sys.stderr)
        return code
    print(f"[bench] done in {time.perf_counter() - t0:.0f} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
