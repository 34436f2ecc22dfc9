"""Reports of a planning run: KPI tables, per-cell GeoJSON, figures and summary.json.

Reads only what `planning.pipeline.run_scenario` returns (plans written back as arrays, their replay
scores, demand cubes); never a solver model. The figures come from `planning.figures`, the per-cell
GeoDataFrame from `planning.geo`.

    paths = write_report(result, "out/demo")     # atomic: a temporary folder renamed into place

Files (per problem `<p>` in deployment, sleep):
    <p>/kpi.csv, <p>/kpi.md      one row per strategy (plan replayed on the real series)
    <p>/plan.geojson             one polygon per planned cell with its decisions and demand
    <p>/map.png                  deployment: BSs per cell over the real demand map, per strategy
    <p>/forecast.png             forecast vs real series of sample cells, with quantile bands
    sleep/capacity.png           per-cell load vs active RRU capacity over time
    summary.json, report.md, scenario.yaml (the validated scenario that ran)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .figures import (band_coverage, forecast_reliability, plot_deployment_map, plot_forecast_calibration,
                      plot_problem_forecast, plot_sleep_capacity)
from .geo import plan_geodataframe
from .output import atomic_output

STRATEGY_ORDER = ("forecast", "poi", "residents", "always_on", "threshold", "oracle")

# column name -> (KPI attribute of the score, number format); what the tables show, in order
DEPLOY_COLUMNS = {
    "BSs": ("n_bs", "{:d}"),
    "served": ("served_ratio", "{:.1%}"),
    "deficit slots": ("deficit", "{:.1%}"),
    "idle capacity": ("idle", "{:.1%}"),
    "cost ratio": ("cost_ratio", "{:.1%}"),
    "objective": ("objective", "{:.5g}"),
    "regret": ("regret", "{:.1%}"),
}
SLEEP_COLUMNS = {
    "QoS shortfall": ("qos", "{:.2%}"),
    "shortfall volume": ("shortfall_ratio", "{:.2%}"),
    "switches/cell/day": ("switching", "{:.2f}"),
    "energy vs always-on": ("energy_ratio", "{:.1%}"),
    "objective": ("objective", "{:.5g}"),
    "regret": ("regret", "{:.1%}"),
}

#: one line per KPI, printed under each table of report.md
KPI_DEFINITIONS = {
    "deployment": [
        "BSs: base stations the plan deploys",
        "served: users served / users demanded, replayed on the real demand (sum min(C0 x, U) / sum U)",
        "deficit slots: share of cell-slots with real demand above the deployed capacity",
        "idle capacity: share of deployed capacity left unused by the real demand",
        "cost ratio: cost of the new BSs / cost of max_bs new BSs",
        "objective: (1 + beta) served - beta demand - BS cost, on the real demand (higher is better)",
        "regret: objective lost against the oracle plan, as a share of the value of serving all demand",
    ],
    "sleep": [
        "QoS shortfall: mean relative shortfall (L - c0 x)^+ / L over loaded cell-slots, on the real load",
        "shortfall volume: load not carried / total load",
        "switches/cell/day: RRU switch-ons and switch-offs per cell per day",
        "energy vs always-on: energy of the schedule / energy with every RRU on",
        "objective: the weighted sleep objective on the real load (lower is better)",
        "regret: (objective - oracle objective) / oracle objective",
    ],
}


def winner(problem) -> str | None:
    """The non-oracle strategy with the lowest replay regret, as a sentence (None without rivals)."""
    rivals = [s for s in problem.strategies if s.name != "oracle" and s.score.regret is not None]
    if not rivals:
        return None
    best = min(rivals, key=lambda s: s.score.regret)
    return f"Best strategy on the real {problem.real.unit} (oracle aside): **{best.label}**, regret {best.score.regret:.1%}."


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


def _num(v):
    """Plain Python numbers (numpy scalars and NaN/inf made JSON-safe)."""
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def kpi_table(problem) -> pd.DataFrame:
    """One row per strategy: the replay KPIs plus how the plan was made (method, status, gap, seconds)."""
    rows = []
    for s in problem.strategies:
        row = {"strategy": s.name, "label": s.label}
        row.update({k: _num(v) for k, v in s.score.as_dict().items()})
        row.update({"method": s.plan.method, "status": s.plan.status, "gap": _num(s.plan.gap),
                    "seconds": round(float(s.seconds), 4)})
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if pattern == "{:d}":
        return str(int(value))
    return pattern.format(value)


def kpi_markdown(problem) -> str:
    """The KPI table as Markdown, formatted for reading (percentages, signed regret)."""
    cols = DEPLOY_COLUMNS if problem.problem == "deployment" else SLEEP_COLUMNS
    header = ["strategy", *cols, "plan"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(cols) + [" --- "]) + "|"]
    for s in problem.strategies:
        score = s.score.as_dict()
        cells = [s.label] + [_fmt(score.get(attr), f) for attr, f in cols.values()]
        plan = f"{s.plan.method}, {s.plan.status}"
        if s.plan.status != "optimal":
            plan += f" (gap {s.plan.gap:.2%})" if s.plan.gap is not None else " (gap unknown)"
        lines.append("| " + " | ".join(cells + [plan]) + " |")
    return "\n".join(lines) + "\n"


def summary_table(result) -> str:
    """A short fixed-width table of the main KPIs for the terminal."""
    out = []
    for name, p in result.problems.items():
        if name == "deployment":
            cols = {"BSs": "n_bs", "served": "served_ratio", "idle": "idle", "regret": "regret"}
            pats = ["{:d}", "{:.1%}", "{:.1%}", "{:.1%}"]
        else:
            cols = {"QoS": "qos", "energy": "energy_ratio", "switch/day": "switching", "regret": "regret"}
            pats = ["{:.2%}", "{:.1%}", "{:.2f}", "{:.1%}"]
        width = max(len(s.label) for s in p.strategies) + 2
        out.append(f"{name} ({p.real.n_cells} cells x {p.real.n_slots} slots, {p.horizon['days']:g} days):")
        out.append("  " + "strategy".ljust(width) + "".join(c.rjust(12) for c in cols))
        for s in p.strategies:
            d = s.score.as_dict()
            vals = [_fmt(d[a], f) for a, f in zip(cols.values(), pats)]
            flag = "" if s.plan.status == "optimal" else f"  [{s.plan.status}, gap {_fmt(s.plan.gap, '{:.2%}')}]"
            out.append("  " + s.label.ljust(width) + "".join(v.rjust(12) for v in vals) + flag)
        won = winner(p)
        if won:
            out.append("  " + won.replace("**", ""))
    return "\n".join(out)




# ----------------------------------------------------------------------------------------------------
# summary.json and the report folder
# ----------------------------------------------------------------------------------------------------


def _params_dict(params) -> dict:
    out = {}
    for k, v in vars(params).items():
        if isinstance(v, np.ndarray):
            out[k] = _num(v.item()) if v.ndim == 0 else [_num(x) for x in v.tolist()]
        else:
            out[k] = _num(v)
    return out


def summary_dict(result) -> dict:
    """Machine-readable summary of a run: status, timings, warnings and per-problem KPIs."""
    problems = {}
    for name, p in result.problems.items():
        fc = p.forecast
        problems[name] = {
            "status": p.status,
            "horizon": {k: _num(v) for k, v in p.horizon.items()},
            "unit": p.real.unit,
            "params": _params_dict(p.params),
            "forecast": None if fc is None else {
                "model": fc.model, "requested": fc.requested, "task": fc.task, "seconds": round(fc.seconds, 3),
                "quantiles": sorted(fc.quantiles), "notes": fc.notes,
            },
            "strategies": [
                {
                    "name": s.name, "label": s.label, "method": s.plan.method, "status": s.plan.status,
                    "gap": _num(s.plan.gap), "solver": s.plan.solver, "seconds": round(float(s.seconds), 4),
                    "notes": list(s.plan.notes), "kpi": {k: _num(v) for k, v in s.score.as_dict().items()},
                }
                for s in p.strategies
            ],
            "notes": p.notes,
        }
    return {
        "scenario": result.scenario.name,
        "description": result.scenario.description,
        "status": result.status,
        "city": result.city_info,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "warnings": result.warnings,
        "problems": problems,
    }


def report_markdown(result, files: dict[str, str]) -> str:
    """report.md: the scenario, the KPI tables and links to the figures."""
    sc = result.scenario
    lines = [f"# Planning report: {sc.name}", ""]
    if sc.description:
        lines += [sc.description.strip(), ""]
    info = result.city_info
    lines += [f"City `{result.city}`: regions {info.get('regions')} planned, grid {info.get('grid')}, "
              f"{info.get('slots_per_day')} slots/day. Status: **{result.status}**.", ""]
    for w in result.warnings:
        lines += [f"> warning: {w}", ""]
    for name, p in result.problems.items():
        lines += [f"## {name}", "",
                  f"{p.real.n_cells} cells x {p.real.n_slots} slots ({p.horizon['days']:g} days, "
                  f"{p.horizon['slots_per_day']} slots/day), unit `{p.real.unit}`."]
        if p.forecast is not None:
            lines += [f"Forecast: `{p.forecast.model}` ({p.forecast.task}), {p.forecast.seconds:.1f} s."]
        lines += [""] + [f"- {n}" for n in p.notes] + ([""] if p.notes else [])
        lines += [kpi_markdown(p)]
        won = winner(p)
        lines += ([won, ""] if won else []) + [f"- {d}" for d in KPI_DEFINITIONS[name]] + [""]
        cov = band_coverage(p)
        if cov:
            figure = f"; reliability: `{files[f'{name}/calibration']}`" if f"{name}/calibration" in files else ""
            lines += [f"Forecast band q{cov[0]:g}-q{cov[1]:g} covers {cov[2]:.1%} of the real cell-slots "
                      f"(nominal {cov[1] - cov[0]:.0%}{figure}).", ""]
        for key in ("map", "forecast", "calibration", "capacity"):
            path = files.get(f"{name}/{key}")
            if path:
                lines += [f"![{name} {key}]({path})", ""]
    return "\n".join(lines)


def write_report(result, out: str | Path | None = None, figures: bool | None = None,
                 label: str | None = None) -> dict[str, Path]:
    """Write every report file of `result` into `out` (default: the scenario's output.dir), atomically.

    Returns {name: final path}. `figures` overrides the scenario's output.figures; `label` names the
    folder in error messages (default '--out' when `out` is given, else 'output.dir').
    """
    from .scenario.loading import dump_scenario

    sc = result.scenario
    label = label or ("--out" if out is not None else "output.dir")
    out = Path(out) if out is not None else sc.output.dir
    figures = sc.output.figures if figures is None else figures
    k = sc.output.sample_cells
    rel: dict[str, str] = {}
    with atomic_output(out, label) as tmp:
        def save(key: str, name: str, writer) -> None:
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
            rel[key] = name

        for name, p in result.problems.items():
            table = kpi_table(p)
            save(f"{name}/kpi_csv", f"{name}/kpi.csv", lambda path, t=table: t.to_csv(path, index=False))
            save(f"{name}/kpi_md", f"{name}/kpi.md", lambda path, p=p: path.write_text(kpi_markdown(p)))
            gdf = plan_geodataframe(p, result.crs)
            save(f"{name}/geojson", f"{name}/plan.geojson", lambda path, g=gdf: path.write_text(g.to_json(drop_id=True)))
            if figures:
                if name == "deployment":
                    _save_fig(save, f"{name}/map", f"{name}/map.png", plot_deployment_map(p, result.crs))
                if p.forecast is not None:
                    _save_fig(save, f"{name}/forecast", f"{name}/forecast.png", plot_problem_forecast(p, k))
                reliability = forecast_reliability(p)
                if reliability is not None:
                    _save_fig(save, f"{name}/calibration", f"{name}/calibration.png",
                              plot_forecast_calibration(p, reliability))
                if name == "sleep":
                    _save_fig(save, f"{name}/capacity", f"{name}/capacity.png", plot_sleep_capacity(p, k))
        summary = summary_dict(result)
        top = {"summary": "summary.json", "report": "report.md", "scenario": "scenario.yaml"}
        summary["files"] = dict(sorted({**rel, **top}.items()))
        save("summary", "summary.json", lambda path: path.write_text(json.dumps(summary, indent=2)))
        save("report", "report.md", lambda path: path.write_text(report_markdown(result, rel)))
        save("scenario", "scenario.yaml", lambda path: path.write_text(dump_scenario(sc)))
    final = Path(out).resolve()
    return {key: final / name for key, name in rel.items()}


def _save_fig(save, key: str, name: str, fig) -> None:
    save(key, name, lambda path: fig.savefig(path, dpi=110))
