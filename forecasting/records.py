"""The forecast benchmark's records: merged into `forecast.json`, rendered as `forecast.md`, and each
record's ratio to the best baseline (the same-window reference for subsampled records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from .data import DataError
from .files import atomic_write_text
from .masks import EVAL_TASKS

RECORD_KEYS = ("city", "task", "model", "rmse", "mae", "jsd", "crps", "windows", "seconds")


def ratio_to_best(rec: dict[str, Any], best: dict[tuple[str, str], tuple[str, float]]) -> tuple[float | None, str | None]:
    """(MAE / reference MAE, reference model): the same-window reference for subsampled records, else the
    best baseline scored on all windows of the city and task."""
    if rec["mae"] is None:
        return None, None
    if rec.get("subsampled"):
        ref_model, ref_mae = rec.get("ref_model"), rec.get("ref_mae")
    else:
        ref_model, ref_mae = best.get((rec["city"], rec["task"]), (None, None))
    if not ref_mae:
        return None, ref_model
    return rec["mae"] / ref_mae, ref_model




def _key(rec: dict[str, Any]) -> tuple[str, str, str]:
    return rec["city"], rec["task"], rec["model"]


def merge_records(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old records whose (city, task, model) is not re-run, then the new ones; sorted by that key."""
    new = list(new)
    replaced = {_key(r) for r in new}
    kept = [r for r in old if _key(r) not in replaced]
    task_order = {t: i for i, t in enumerate(EVAL_TASKS)}
    return sorted(kept + new, key=lambda r: (r["city"], task_order.get(r["task"], 99), r["task"], r["model"]))


def write_results(records: Sequence[dict[str, Any]], out: str | Path) -> list[dict[str, Any]]:
    """Merge `records` into `out/forecast.json` and rewrite `out/forecast.md`; returns all records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "forecast.json"
    old: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}): fix or delete it before merging") from exc
        if not isinstance(old, list) or not all(isinstance(r, dict) and set(RECORD_KEYS) <= set(r) for r in old):
            raise DataError(f"{path} is not a list of benchmark records with keys {RECORD_KEYS}: fix or delete it")
    merged = merge_records(old, records)
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    atomic_write_text(out / "forecast.md", markdown_table(merged))
    return merged


def best_baseline_mae(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, float]]:
    """(city, task) -> (model, MAE) of the best baseline scored on all windows (not a capped subsample)."""
    from .registry import is_baseline

    best: dict[tuple[str, str], tuple[str, float]] = {}
    for r in records:
        if is_baseline(r["model"]) and r["mae"] is not None and not r.get("subsampled"):
            k = (r["city"], r["task"])
            if k not in best or r["mae"] < best[k][1]:
                best[k] = (r["model"], r["mae"])
    return best


def ratio_report(records: Sequence[dict[str, Any]], cities: Iterable[str] | None = None) -> str:
    """Plain-text lines: each scored model's MAE / best baseline MAE per city x task."""
    best = best_baseline_mae(records)
    wanted = set(cities) if cities is not None else None
    lines = ["MAE / best baseline MAE (per city x task; subsampled models: on their own windows):"]
    for r in records:
        if r["mae"] is None or (wanted is not None and r["city"] not in wanted):
            continue
        ratio, ref = ratio_to_best(r, best)
        where = ", same windows" if r.get("subsampled") else ""
        text = f"{ratio:.3f}" if ratio is not None else "n/a"
        lines.append(f"  {r['city']:>10} {r['task']:>10} {r['model']:>18}  {text}  (best: {ref}{where})")
    return "\n".join(lines)


def _fmt(x: float | None, digits: int = 5) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" if abs(x) < 1e4 else f"{x:.4g}"


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """The benchmark as Markdown: one table per city, rows task x model, with ratios to the best baseline."""
    best = best_baseline_mae(records)
    commands = sorted({r.get("command") for r in records if r.get("command")})
    lines = [
        "# Forecast benchmark",
        "",
        "Test regions of each city, 64-step windows (stride 1 unless the run was `--quick`). RMSE/MAE on the",
        "normalised [0, 1] scale (clipped truth), pooled over all hidden entries; raw = the same in the city's",
        "units. JSD (base 2, 50 bins on [0, 1]) for generation only; CRPS only for models returning samples.",
        "`ratio` = MAE / MAE of the best baseline scored on all windows of that city and task. Windows marked *",
        "are a seeded, evenly spaced subsample of the test windows (total in brackets; ARIMA is capped for",
        "time); their ratio* is to the best fast baseline re-scored on the same windows. 'quick' = every",
        "8th window (`--quick`).",
        "skipped = the model serves the task but cannot here (e.g. seasonal naive with less than a day",
        "observed); tasks a model does not serve are left out.",
        "",
        "Produced by:",
        "",
        *[f"    {c}" for c in commands],
        "",
    ]
    header = "| task | model | RMSE | MAE | RMSE raw | MAE raw | JSD | CRPS | ratio | windows | seconds |"
    for city in sorted({r["city"] for r in records}):
        lines += [f"## {city}", "", header, "|" + "---|" * 11]
        for r in (r for r in records if r["city"] == city):
            if r["mae"] is None:
                lines.append(f"| {r['task']} | {r['model']} | skipped | | | | | | | | |")
                continue
            value, _ = ratio_to_best(r, best)
            ratio = "–" if value is None else f"{value:.3f}" + ("*" if r.get("subsampled") else "")
            windows = f"{r['windows']}"
            if r.get("subsampled"):
                windows += f"* ({r.get('windows_total')})"
            if r.get("quick"):
                windows += " quick"
            lines.append(
                f"| {r['task']} | {r['model']} | {_fmt(r['rmse'])} | {_fmt(r['mae'])} | {_fmt(r.get('rmse_raw'), 1)} "
                f"| {_fmt(r.get('mae_raw'), 1)} | {_fmt(r['jsd'], 4)} | {_fmt(r['crps'])} | {ratio} | {windows} "
                f"| {_fmt(r['seconds'], 1)} |"
            )
        lines.append("")
    return "\n".join(lines)
