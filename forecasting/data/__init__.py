"""The data layer: one `City` in memory for real, released, tabular and synthetic cities.

Modules, in the order data flows through them:

    errors.py        `DataError`, the data layer's one exception
    covariates.py    `Covariates`: hist_exog / futr_exog / stat_exog, declared by availability
    city.py          `City` (traffic/users `(regions, time, H, W)`, POI, calendar, splits, geometry),
                     its checks, `few_shot_city`
    synthetic.py     the seeded synthetic city generator (`make_city`, `city_from_name`), in stages:
      synthetic_config.py    `SyntheticCityConfig` and the presets
      synthetic_layout.py    land-use and POI tables; density, river, hubs, zones, people, POI
      synthetic_profiles.py  daily/weekly profiles, AR(1) noise, events
      synthetic_variation.py level shifts, all-zero and intermittent cells
    synthetic_prior.py the synthetic prior: `SyntheticPrior`, city k of a family (`prior_city`)
    npz.py           loader 1: the `.npz` files of ../shared/data
    release_json.py  loader 2: the paper's release (64-step windows in JSON), stitched back into series
    tables.py        reading long tables (formats, column names, checked columns)
    cell_grid.py     cell tables -> regions and row/col positions, POI grids
    long_table.py    loader 3: long CSV/Parquet tables, one row per cell and time step (Nixtla's names too)
    geometry.py      cells as a GeoDataFrame; a city back to long tables
    resample.py      a city at a coarser time step (`resample_city`, names such as 'nanjing@60min')
    load.py          `load_city`: the one resolver of a city from a name or a path; `load_cities`
                     (families such as 'synthetic-prior:64')
    scaling.py       the paper's per-city scaler (`Scaler`, `CityScalers`)
    windows.py       64-step windows (`make_windows`)

The names below are the public API (`from forecasting.data import City, load_city, make_windows`).
"""

from .covariates import Covariates
from .city import SPLITS, WINDOW, City, DataError, assign_splits, few_shot_city, split_counts, validate_city
from .geometry import LongTables, cell_id_grid, from_geodataframe, region_origins, to_geodataframe, to_long_table
from .load import REAL_CITY_NAMES, load_cities, load_city
from .resample import parse_resampled_name, resample_city
from .long_table import load_long_table
from .npz import NPZ_KEYS, available_real_cities, default_data_dir, load_npz
from .release_json import (
    RELEASE_SPLIT_KEYS,
    infer_slots_per_day,
    load_release_json,
    release_cities,
    release_json_paths,
    save_release_json,
)
from .synthetic_prior import SyntheticPrior, prior_city, prior_config
from .scaling import CityScalers, Scaler, weighted_percentile, window_multiplicity
from .tables import GEO_SUFFIXES, LONG_COLUMNS, REFERENCE_MONDAY, TABLE_SUFFIXES
from .windows import (
    Windows, concat_windows, cut_day_before, hide_unrecorded, make_windows, value_day_earlier, window_starts,
)

__all__ = [
    "Covariates", "SPLITS", "WINDOW", "City", "DataError", "few_shot_city", "split_counts", "validate_city",
    "Scaler", "CityScalers", "weighted_percentile", "window_multiplicity",
    "Windows", "concat_windows", "cut_day_before", "hide_unrecorded", "make_windows", "value_day_earlier",
    "window_starts",
    "NPZ_KEYS", "available_real_cities", "default_data_dir", "load_npz",
    "RELEASE_SPLIT_KEYS", "infer_slots_per_day", "load_release_json", "release_cities", "release_json_paths",
    "save_release_json",
    "GEO_SUFFIXES", "LONG_COLUMNS", "REFERENCE_MONDAY", "TABLE_SUFFIXES", "assign_splits", "load_long_table",
    "LongTables", "cell_id_grid", "from_geodataframe", "region_origins", "to_geodataframe", "to_long_table",
    "REAL_CITY_NAMES", "load_cities", "load_city", "parse_resampled_name", "resample_city",
    "SyntheticPrior", "prior_city", "prior_config",
]
