"""GeoDataFrames of planned cells: a square per cell around its centre, with every strategy's decisions
and the real (and forecast) demand as columns. Used by the report's GeoJSON and map, and by plan mode."""

from __future__ import annotations

import numpy as np

from .replay import served_matrix, sleep_terms


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

