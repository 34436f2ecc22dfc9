"""Write the "plan my city" example's data: a small synthetic city as the files an operator would have.

    python scenarios/my_city/make_data.py          # rewrites traffic.csv, cells.geojson, poi.csv here

One region of 6 x 6 cells (500 m, UTM zone 50N), 10 days of hourly traffic and connected users from
the seeded synthetic generator (never the real data), written as Nixtla's long format (unique_id, ds, y,
users), the cells as GeoJSON polygons (unique_id + geometry only: positions come from the polygons), and
the POI counts as a long table (unique_id, category, count). Values are rounded to keep the files small.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from forecasting.data import to_long_table
from forecasting.data.synthetic import make_city

HERE = Path(__file__).resolve().parent
ORIGIN = (405_000.0, 3_175_000.0)  # top-left corner of the grid, metres in EPSG:32650
START = np.datetime64("2024-03-04T00:00")  # a Monday


def my_city():
    """The example city: one 6 x 6 region, 10 days of hourly steps, users, POI, real-looking coordinates."""
    city = make_city(rows=6, cols=6, region_size=(6, 6), days=10, slots_per_day=24, seed=7, n_poi_categories=6,
                     name="my_city")
    ids = np.array([[f"cell_{r}{c}" for c in range(6)] for r in range(6)], dtype=object)[None]
    return replace(city, region_origin=np.array([ORIGIN]), crs="EPSG:32650", start_time=np.array([START]),
                   cell_ids=ids, traffic=np.round(city.traffic, 1), users=np.round(city.users))


def write(folder: Path = HERE) -> list[Path]:
    """Write traffic.csv, cells.geojson and poi.csv into `folder`; returns their paths."""
    tables = to_long_table(my_city(), nixtla=True)
    traffic = tables.traffic.assign(ds=tables.traffic["ds"].dt.strftime("%Y-%m-%d %H:%M"),
                                    users=tables.traffic["users"].astype(int))
    paths = [folder / "traffic.csv", folder / "cells.geojson", folder / "poi.csv"]
    traffic.to_csv(paths[0], index=False)
    tables.cells[["unique_id", "geometry"]].to_file(paths[1], driver="GeoJSON")
    tables.poi.assign(count=tables.poi["count"].round().astype(int)).query("count > 0").to_csv(paths[2], index=False)
    return paths


if __name__ == "__main__":
    for path in write():
        print(f"{path.relative_to(HERE.parent.parent)}: {path.stat().st_size / 1024:.0f} KiB")
