"""The files of a plan-mode run (`planning.plan_mode`), for a network team; written atomically.

    <out>/deployment/bs_plan.csv       one row per cell: id, region/row/col, x/y (cell centre, CRS units),
                                       BSs in total, already there, to deploy; forecast mean and peak demand
    <out>/deployment/plan.geojson      the same per cell, as cell polygons
    <out>/sleep/rru_schedule.csv       one row per cell and slot: id, position, slot, timestamp, active RRUs of
                                       n_rru, RRU capacity c0, the forecast load and the load planned on
    <out>/sleep/plan.geojson           per cell: n_rru, c0, mean/min/max active RRUs, forecast load
    <out>/<problem>/forecast.csv       one row per cell and slot: the point forecast and its quantile bands
    <out>/summary.json, scenario.yaml  what was planned (counts, horizon, files, notes); what ran

No replay, regret or oracle: those need the real series of the planned period, which does not exist yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .output import atomic_output


def _cells(demand) -> pd.DataFrame:
    """Per-cell columns: cell_id, region, row, col (when known), x, y (cell centre, when known)."""
    data = {"cell_id": demand.cell_ids}
    if demand.grid_index is not None:
        data.update(region=demand.grid_index[:, 0], row=demand.grid_index[:, 1], col=demand.grid_index[:, 2])
    if demand.coords is not None:
        data.update(x=demand.coords[:, 0], y=demand.coords[:, 1])
    return pd.DataFrame(data)


def _per_slot(demand, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of (cell, slot), cell-major: the cells' columns, slot, timestamp (when known), then `columns` (N, T)."""
    N, T = demand.n_cells, demand.n_slots
    out = _cells(demand).loc[np.repeat(np.arange(N), T)].reset_index(drop=True)
    out["slot"] = np.tile(np.arange(T), N)
    if demand.timestamps is not None:
        out["timestamp"] = np.tile(pd.to_datetime(demand.timestamps), N)
    for name, values in columns.items():
        out[name] = np.asarray(values).reshape(-1)
    return out


def forecast_table(problem) -> pd.DataFrame:
    """Per cell and slot: the point forecast and the forecast's quantile bands, in the problem's unit."""
    fc = problem.forecast
    cols = {"forecast": fc.mean.values, **{f"q{q:g}": d.values for q, d in sorted(fc.quantiles.items())}}
    out = _per_slot(fc.mean, cols)
    out["unit"] = fc.mean.unit
    return out


def bs_table(problem) -> pd.DataFrame:
    """Per cell: BSs in total, already in place and to deploy, beside the forecast demand they serve."""
    plan, demand = problem.plan, problem.forecast.mean
    existing = problem.params.resolve(demand.n_cells).existing
    out = _cells(demand)
    out["bs_total"] = np.asarray(plan.x, dtype=int)
    out["bs_existing"] = np.asarray(existing, dtype=int)
    out["bs_new"] = out["bs_total"] - out["bs_existing"]
    out["demand_mean"] = demand.values.mean(axis=1)
    out["demand_peak"] = demand.values.max(axis=1)
    return out


def rru_table(problem) -> pd.DataFrame:
    """Per cell and slot: active RRUs (of n_rru, capacity c0 each), the forecast load and the load planned on."""
    demand = problem.forecast.mean
    arrays = problem.params.resolve(demand.n_cells)
    N, T = demand.n_cells, demand.n_slots
    return _per_slot(demand, {
        "active_rru": np.asarray(problem.plan.x, dtype=int), "n_rru": np.repeat(arrays.n_rru, T).reshape(N, T),
        "c0": np.repeat(arrays.c0, T).reshape(N, T), "load_forecast": demand.values,
        "load_planned": problem.planned.values,
    })


def plan_geojson(problem, crs: str | None) -> str:
    """The problem's per-cell decisions on cell polygons (GeoJSON text)."""
    from .geo import cell_polygons

    demand = problem.forecast.mean
    gdf = cell_polygons(demand, crs)
    if problem.problem == "deployment":
        table = bs_table(problem)
        for col in ("bs_total", "bs_existing", "bs_new", "demand_mean", "demand_peak"):
            gdf[col] = table[col].to_numpy()
    else:
        arrays = problem.params.resolve(demand.n_cells)
        x = np.asarray(problem.plan.x, dtype=float)
        gdf["n_rru"], gdf["c0"] = arrays.n_rru, arrays.c0
        gdf["active_mean"], gdf["active_min"], gdf["active_max"] = x.mean(axis=1), x.min(axis=1), x.max(axis=1)
        gdf["load_mean"], gdf["load_peak"] = demand.values.mean(axis=1), demand.values.max(axis=1)
    return gdf.to_json(drop_id=True)


def problem_summary(problem) -> dict:
    """Counts of a planned problem (what the CLI prints and summary.json holds)."""
    plan = problem.plan
    out = {"status": plan.status, "method": plan.method, "forecaster": problem.forecast.model,
           "horizon": problem.horizon, "notes": list(problem.notes)}
    if problem.problem == "deployment":
        table = bs_table(problem)
        out.update(bs_total=int(table["bs_total"].sum()), bs_new=int(table["bs_new"].sum()),
                   cells_with_bs=int((table["bs_total"] > 0).sum()), cells=int(len(table)))
    else:
        x = np.asarray(plan.x, dtype=float)
        K = problem.params.resolve(x.shape[0]).n_rru
        out.update(cells=int(x.shape[0]), slots=int(x.shape[1]), active_mean=float(x.mean()),
                   asleep_share=float(1 - x.sum() / (K[:, None] * np.ones_like(x)).sum()))
    return out


def plan_summary(result, paths: dict[str, Path]) -> str:
    """Lines saying what was planned and where the files are."""
    lines = [f"{result.scenario.name}: planned {result.city} past its data (last observation "
             f"{result.info.get('last_observed') or 'step ' + str(result.info['steps'] - 1)})"]
    for name, p in result.problems.items():
        s, h = problem_summary(p), p.horizon
        span = f"{h['first_slot']} .. {h['last_slot']}" if h["first_slot"] else f"steps from {h['first_step']}"
        lines.append(f"  {name}: {h['slots']} slots ({h['days']:g} d, {span}), {s['cells']} cells, "
                     f"forecast {s['forecaster']} ({h['planned_on']}), {s['status']}")
        if name == "deployment":
            lines.append(f"    {s['bs_total']} BSs in {s['cells_with_bs']} cells, {s['bs_new']} to deploy")
        else:
            lines.append(f"    mean {s['active_mean']:.2f} active RRUs per cell-slot, {s['asleep_share']:.0%} "
                         "of RRU-slots asleep")
    lines.append("files:")
    lines += [f"  {path}" for key, path in sorted(paths.items())]
    return "\n".join(lines)


def write_plan(result, out: str | Path | None = None, label: str | None = None) -> dict[str, Path]:
    """Write the plan files of `result` into `out` (default: the scenario's output.dir), atomically.

    Returns {name: final path}; `label` names the folder in error messages ('--out' or 'output.dir').
    """
    from .scenario.loading import dump_scenario

    sc = result.scenario
    label = label or ("--out" if out is not None else "output.dir")
    out = Path(out) if out is not None else sc.output.dir
    rel: dict[str, str] = {}
    with atomic_output(out, label) as tmp:
        def save(key: str, name: str, text: str) -> None:
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            rel[key] = name

        for name, p in result.problems.items():
            table = bs_table(p) if name == "deployment" else rru_table(p)
            csv = "bs_plan.csv" if name == "deployment" else "rru_schedule.csv"
            save(f"{name}/plan_csv", f"{name}/{csv}", table.to_csv(index=False))
            save(f"{name}/geojson", f"{name}/plan.geojson", plan_geojson(p, result.crs))
            save(f"{name}/forecast", f"{name}/forecast.csv", forecast_table(p).to_csv(index=False))
        summary = {"mode": "plan", "scenario": sc.name, "city": result.info, "status": result.status,
                   "problems": {n: problem_summary(p) for n, p in result.problems.items()},
                   "warnings": list(result.warnings), "timings": result.timings}
        summary["files"] = dict(sorted({**rel, "summary": "summary.json", "scenario": "scenario.yaml"}.items()))
        save("summary", "summary.json", json.dumps(summary, indent=2, default=str))
        save("scenario", "scenario.yaml", dump_scenario(sc))
    final = Path(out).resolve()
    return {key: final / name for key, name in rel.items()}
