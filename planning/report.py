"""Reports of a planning run: KPI tables, per-cell GeoJSON, figures and summary.json.

Reads only what `planning.pipeline.run_scenario` returns (plans written back as arrays, their replay
scores, demand cubes); never a solver model. Figures are built on `matplotlib.figure.Figure` with the
Agg canvas (no pyplot state), so they render headless and display in notebooks alike.

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
from typing import Sequence

import numpy as np
import pandas as pd

from .output import atomic_output
from .replay import served_matrix, sleep_terms

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
# Geometry
# ----------------------------------------------------------------------------------------------------


def cell_polygons(demand, crs: str | None = None):
    """A GeoDataFrame of the demand's cells: squares of side cell_size around the cell centres."""
    import geopandas as gpd
    import shapely

    if demand.coords is None or not demand.cell_size:
        raise ValueError("the demand has no cell coordinates: maps and GeoJSON need cell centres and a cell size")
    x, y = demand.coords[:, 0], demand.coords[:, 1]
    h = demand.cell_size / 2
    data = {"cell_id": demand.cell_ids}
    if demand.grid_index is not None:
        data.update(region=demand.grid_index[:, 0], row=demand.grid_index[:, 1], col=demand.grid_index[:, 2])
    return gpd.GeoDataFrame(data, geometry=shapely.box(x - h, y - h, x + h, y + h), crs=crs)


def plan_geodataframe(problem, crs: str | None = None):
    """Per-cell GeoDataFrame of a problem's plans: decisions of every strategy beside the real demand.

    deployment: demand_mean, demand_peak (real), forecast_mean, bs_<strategy>, served_<strategy>
    sleep:      load_mean, load_peak (real), forecast_mean, c0, n_rru, active_mean_<strategy>,
                qos_<strategy> (mean relative shortfall), energy_<strategy> (ratio to always-on)
    """
    gdf = cell_polygons(problem.real, crs)
    R = problem.real.values
    prefix = "demand" if problem.problem == "deployment" else "load"
    gdf[f"{prefix}_mean"] = R.mean(axis=1)
    gdf[f"{prefix}_peak"] = R.max(axis=1)
    if problem.forecast is not None:
        gdf["forecast_mean"] = problem.forecast.mean.values.mean(axis=1)
    if problem.problem == "deployment":
        total = R.sum(axis=1)
        for s in problem.strategies:
            gdf[f"bs_{s.name}"] = np.asarray(s.plan.x, dtype=int)
            served = served_matrix(s.plan.x, R, problem.params.capacity).sum(axis=1)
            gdf[f"served_{s.name}"] = np.divide(served, total, out=np.ones_like(served), where=total > 0)
    else:
        arrays = problem.params.resolve(R.shape[0])
        gdf["c0"] = arrays.c0
        gdf["n_rru"] = arrays.n_rru
        for s in problem.strategies:
            terms = sleep_terms(s.plan.x, R, problem.params)
            gdf[f"active_mean_{s.name}"] = np.asarray(s.plan.x, dtype=float).mean(axis=1)
            gdf[f"qos_{s.name}"] = terms.qos / terms.n_slots
            gdf[f"energy_{s.name}"] = terms.energy / terms.energy_on
    return gdf


# ----------------------------------------------------------------------------------------------------
# Figures (matplotlib Figure objects on the Agg canvas)
# ----------------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def sample_cells(demand, k: int = 4) -> list[int]:
    """k cells spread over the demand distribution: the busiest, then evenly down the ranking by mean."""
    means = demand.values.mean(axis=1)
    order = np.argsort(-means, kind="stable")
    k = min(k, order.size)
    picks = np.unique(np.round(np.linspace(0, order.size * 0.75, k)).astype(int).clip(0, order.size - 1))
    return [int(order[i]) for i in picks]


def _time_axis(demand):
    if demand.timestamps is not None:
        return pd.to_datetime(demand.timestamps), "time"
    return np.arange(demand.n_slots) / demand.slots_per_day, "days from the start of the planned period"


def plot_deployment_map(problem, crs: str | None = None, strategies: Sequence[str] | None = None):
    """One panel per strategy: cells coloured by the real mean demand, annotated with their BS count."""
    from matplotlib.colors import LogNorm

    gdf = plan_geodataframe(problem, crs)
    runs = [s for s in problem.strategies if strategies is None or s.name in strategies]
    n = len(runs)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = _figure(5.2 * cols, 4.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    demand = gdf["demand_mean"].to_numpy()
    positive = demand[demand > 0]
    norm = LogNorm(vmin=max(positive.min(), 1e-3), vmax=max(positive.max(), 1e-2)) if positive.size else None
    shown = gdf.assign(demand_plot=np.where(demand > 0, demand, np.nan))
    for ax, s in zip(axes, runs):
        shown.plot(column="demand_plot", ax=ax, cmap="YlOrRd", norm=norm, edgecolor="0.6", linewidth=0.4,
                   missing_kwds={"color": "0.92", "edgecolor": "0.6"})
        cent = gdf.geometry.centroid
        for xc, yc, v in zip(cent.x, cent.y, gdf[f"bs_{s.name}"]):
            if v > 0:
                ax.annotate(str(int(v)), (xc, yc), ha="center", va="center", fontsize=7, fontweight="bold")
        ax.set_title(f"{s.label}\n{int(s.plan.x.sum())} BSs, served {s.score.served_ratio:.1%}", fontsize=9)
        ax.set_axis_off()
    for ax in axes[n:]:
        ax.set_axis_off()
    if norm is not None:
        from matplotlib.cm import ScalarMappable

        sm = ScalarMappable(norm=norm, cmap="YlOrRd")
        fig.colorbar(sm, ax=axes[:n].tolist(), shrink=0.7, label=f"real mean demand ({problem.real.unit} per slot)")
    fig.suptitle("BSs per cell (numbers) over the real demand map", fontsize=11)
    return fig


def plot_forecast_bands(real, mean, quantiles: dict | None = None, cells: Sequence[int] | None = None,
                        title: str = "forecast vs real", label: str = "forecast"):
    """Real series vs forecast (line) with the widest quantile band, for a few cells (one panel each)."""
    cells = list(cells) if cells is not None else sample_cells(real)
    fig = _figure(9, 2.1 * len(cells) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(cells), 1, sharex=True))
    t, xlabel = _time_axis(real)
    qs = sorted(quantiles or {})
    for ax, i in zip(axes, cells):
        if len(qs) >= 2:
            lo, hi = quantiles[qs[0]].values[i], quantiles[qs[-1]].values[i]
            ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.2, linewidth=0,
                            label=f"forecast q{qs[0]:g}-q{qs[-1]:g}")
        ax.plot(t, real.values[i], color="black", linewidth=1.0, label="real")
        ax.plot(t, mean.values[i], color="tab:blue", linewidth=1.0, label=label)
        ax.set_ylabel(real.unit)
        ax.set_title(f"cell {real.cell_ids[i]}", fontsize=9, loc="left")
    axes[0].legend(loc="upper right", fontsize=8, ncols=3)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_problem_forecast(problem, k: int = 4):
    """`plot_forecast_bands` for a problem's forecast on its planned cells and slots."""
    fc = problem.forecast
    if fc is None:
        raise ValueError(f"{problem.problem} ran without a forecast strategy")
    bands = "" if fc.quantiles else " (point forecast: this model draws no samples)"
    return plot_forecast_bands(
        problem.real, fc.mean, fc.quantiles, sample_cells(problem.real, k),
        title=f"{problem.problem}: {fc.model} ({fc.task}) vs real{bands}", label=f"{fc.model} ({fc.task})",
    )


def forecast_reliability(problem, levels: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))):
    """(levels, observed) of a problem's forecast on its real series: the share of cell-slots whose real
    value is at or below the forecast's quantile at each level (the forecast's samples, else its stored
    quantiles). A calibrated forecast lies on the diagonal. None without samples or quantiles."""
    fc = problem.forecast
    if fc is None:
        return None
    real = np.asarray(problem.real.values, dtype=np.float64)
    scenarios = getattr(fc.mean, "scenarios", None)
    if scenarios is not None and scenarios.shape[0] >= 2:
        q = np.quantile(scenarios, levels, axis=0, method="hazen")
        return np.asarray(levels, dtype=float), np.array([(real <= q[k]).mean() for k in range(len(levels))])
    if len(fc.quantiles) >= 2:
        qs = sorted(fc.quantiles)
        return np.asarray(qs, dtype=float), np.array([(real <= fc.quantiles[q].values).mean() for q in qs])
    return None


def band_coverage(problem) -> tuple[float, float, float] | None:
    """(lowest q, highest q, share of real cell-slots inside that stored quantile band), or None."""
    fc = problem.forecast
    if fc is None or len(fc.quantiles) < 2:
        return None
    qs = sorted(fc.quantiles)
    lo, hi, real = fc.quantiles[qs[0]].values, fc.quantiles[qs[-1]].values, problem.real.values
    return qs[0], qs[-1], float(((real >= lo) & (real <= hi)).mean())


def plot_forecast_calibration(problem, reliability: tuple | None = None):
    """Reliability diagram of the problem's forecast on the real series of its planned cells and slots
    (`reliability`: `forecast_reliability(problem)` when the caller already has it)."""
    rel = reliability or forecast_reliability(problem)
    if rel is None:
        raise ValueError(f"{problem.problem}'s forecast has no samples or quantiles to check")
    levels, observed = rel
    fig = _figure(4.2, 4.2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.5", linewidth=0.8, label="calibrated")
    ax.plot(levels, observed, "o-", color="tab:blue", markersize=3, label=problem.forecast.model)
    ax.set_xlabel("forecast quantile level")
    ax.set_ylabel(f"share of real {problem.real.unit} at or below it")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    cov = band_coverage(problem)
    title = f"{problem.problem}: forecast calibration"
    if cov:
        title += f"\nq{cov[0]:g}-q{cov[1]:g} band covers {cov[2]:.0%} (nominal {cov[1] - cov[0]:.0%})"
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_sleep_capacity(problem, k: int = 4, strategies: Sequence[str] = ("forecast", "threshold", "oracle")):
    """Per sample cell: the real load and the active capacity c0 x_t of each schedule, over time."""
    real = problem.real
    cells = sample_cells(real, k)
    arrays = problem.params.resolve(real.n_cells)
    fig = _figure(9, 2.1 * len(cells) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(cells), 1, sharex=True))
    t, xlabel = _time_axis(real)
    colours = {"forecast": "tab:blue", "threshold": "tab:orange", "oracle": "tab:green", "always_on": "0.5"}
    runs = [s for s in problem.strategies if s.name in strategies]
    for ax, i in zip(axes, cells):
        ax.fill_between(t, 0, real.values[i], step="mid", color="0.75", label="real load")
        for s in runs:
            ax.step(t, arrays.c0[i] * s.plan.x[i], where="mid", color=colours.get(s.name, None), linewidth=1.1,
                    label=f"capacity: {s.label}")
        ax.axhline(arrays.c0[i] * arrays.n_rru[i], color="0.3", linestyle=":", linewidth=0.8, label="all RRUs on")
        ax.set_ylabel(real.unit)
        ax.set_title(f"cell {real.cell_ids[i]} (c0 = {arrays.c0[i]:.4g}, {arrays.n_rru[i]} RRUs)", fontsize=9,
                     loc="left")
    axes[0].legend(loc="upper right", fontsize=7, ncols=2)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle("RRU sleep control: load vs active capacity", fontsize=11)
    return fig


def plot_forecast_frame(frame: pd.DataFrame, cells: Sequence[tuple[int, int, int]] | None = None, k: int = 3,
                        title: str = "forecast"):
    """Plot a tidy frame of `UoMoForecaster.forecast_city` (truth, mean, q<..> columns) for a few cells.

    `cells`: (region, row, col) triples (default: the k cells with the most forecast entries and traffic).
    """
    qcols = sorted((c for c in frame.columns if c.startswith("q") and c[1:].replace(".", "", 1).isdigit()),
                   key=lambda c: float(c[1:]))
    if cells is None:
        busy = frame.groupby(["region", "row", "col"])["truth"].agg(["size", "mean"])
        busy = busy.sort_values(["size", "mean"], ascending=False)
        cells = list(busy.index[:k])
    fig = _figure(9, 2.1 * len(cells) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(cells), 1))
    for ax, (r, h, w) in zip(axes, cells):
        part = frame[(frame.region == r) & (frame.row == h) & (frame.col == w)].sort_values("step")
        steps = part["step"].to_numpy()
        gaps = np.flatnonzero(np.diff(steps) > 1) + 1  # separate windows: do not join them with lines
        for seg in np.split(np.arange(steps.size), gaps):
            p = part.iloc[seg]
            if len(qcols) >= 2:
                ax.fill_between(p["step"], p[qcols[0]], p[qcols[-1]], color="tab:blue", alpha=0.2, linewidth=0)
            ax.plot(p["step"], p["truth"], color="black", linewidth=1.0)
            ax.plot(p["step"], p["mean"], color="tab:blue", linewidth=1.0)
        ax.set_title(f"region {r}, cell ({h}, {w})", fontsize=9, loc="left")
        ax.set_ylabel("traffic")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="black", label="real"), Line2D([], [], color="tab:blue", label="forecast mean")]
    if len(qcols) >= 2:
        handles.append(Patch(color="tab:blue", alpha=0.2, label=f"{qcols[0]}-{qcols[-1]}"))
    axes[0].legend(handles=handles, loc="upper right", fontsize=8, ncols=3)
    axes[-1].set_xlabel("step")
    fig.suptitle(title, fontsize=11)
    return fig


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
