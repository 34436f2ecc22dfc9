"""Figures of a planning run, built on `matplotlib.figure.Figure` with the Agg canvas (no pyplot state),
so they render headless and display in notebooks alike: the deployment map, forecast bands and their
calibration, per-cell sleep capacity, and a tidy forecast frame's bands."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .geo import plan_geodataframe


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
