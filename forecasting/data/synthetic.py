"""Seeded synthetic cities: land use, POI, residents, connected users and traffic on a metric grid.

The embedded default city of the toolkit (README demo, unit tests, extra pre-training data, planning
benchmarks). `make_city(config)` returns a `forecasting.data.City`; the same seed always gives the
same city, and the *layout* (land use, POI, residents) depends only on the seed, the grid size and
the layout fields (cell_size, water_fraction, n_poi_categories and the intensity knobs level_sigma,
hotspot_share, hotspot_tail), so cities that differ only in `days`, `slots_per_day`, `noise`,
`event_rate` or the other variation knobs share one geography.

The generator reads like its pipeline, one module a stage:

    synthetic_config.py    `SyntheticCityConfig` (validated) and `SYNTHETIC_PRESETS`
    synthetic_layout.py    vocabulary and tables; the layout: density, river, hubs, zones, people, POI
                           (steps 1-5 below)
    synthetic_profiles.py  daily/weekly profiles in continuous time (step 6), AR(1) noise, events (step 8)
    synthetic_variation.py level shifts, all-zero and intermittent cells (step 10)
    synthetic.py           this module: expected users and traffic (step 7), noise (step 9), regions,
                           splits and the `City`; `make_city`, `city_from_name`, `region_land_use`

Every public name of those modules is importable from here too.

Model
-----
Cells i = (row, col) of side `cell_size` metres; time t in slots of Dt minutes; h(t) the hour of day in
[0, 24); w(t) the day of week of t - 4 h (profiles switch day at 04:00).

1-5. The layout (synthetic_layout.py): a polycentric density D_i, land use lu_i (river, transport
   hubs, calibrated zones), a heavy-tailed intensity M_i, the people S_ik of the five COMPONENTS
   (home, work, visit, transit, leisure) and negative-binomial POI counts P_ic.

6. Presence profiles p_k(h, w), activity a(h) and per-user volume v_k(h), as slot means
   (synthetic_profiles.py).

7. Users and traffic. With phi = USERS_PER_PERSON connected users per present person, kappa =
   VOLUME_PER_USER_MINUTE and a per-cell volume factor q_i ~ LogNormal(0, 0.35) (device mix, 5G
   share; users and traffic are correlated but not proportional):

       U_i(t) = phi * sum_k S_ik p_k(t) a(t) + E_i(t)
       X_i(t) = Dt kappa q_i [ phi * sum_k S_ik p_k(t) a(t) v_k(t) + 1.4 E_i(t) ]

   Traffic is a volume per slot (proportional to Dt); users are a mean count per slot.

8. Events: localised bursts of extra users E_i(t) (synthetic_profiles.py).

9. Noise, multiplicative and temporally correlated. zeta, eta are independent stationary AR(1)
   processes with unit variance (discretised Ornstein-Uhlenbeck: rho = exp(-Dt / tau) for any
   granularity; tau = `people_tau_hours` (3 h) for the people present, `volume_tau_hours` (2 h) for the
   volume per user); delta are N(0, 1)
   day factors (days start at 04:00) of the city d, of each region rd and of each cell id; eps is
   white N(0, 1) noise:

       n_people   = 0.5 sigma zeta_i(t) + 0.3 sigma (delta_d + delta_rd + delta_id)
       sigma_v,i  = sigma min(sqrt(1 + U0 / mean_t U_i), 5)            (U0 = FEW_USERS)
       s^2_i(t)   = theta / (U_i(t) + theta)  (~ log(1 + theta / U))  (theta = COUNT_DISPERSION)
       U <- U exp(n_people - v_p / 2) exp(s eps - s^2 / 2)
       X <- X exp(n_people - v_p / 2) exp(sigma_v eta_i(t) - sigma_v^2 / 2)

   with sigma = `noise` and v_p = 0.52 sigma^2 the variance of n_people (each factor has mean 1).
   Users and traffic share the people noise; traffic also carries the per-user volume noise, which
   is burstier in quiet cells (as in the real data, where the log-residual spread of traffic falls
   from ~1 in the quietest cells to ~0.25 in the busiest), and users a counting noise of variance
   ~ theta U. Everything is >= 0, float32.

10. Cell-level variation (synthetic_variation.py): level steps of regions and cells, all-zero cells
   (`zero_cell_share`) and intermittent cells. Off by default.

The city family drawn from wide priors over these knobs is `forecasting.data.synthetic_prior`.

Geometry and regions: the grid is cut into `region_size` blocks (regions, row-major); rows/cols that
are not multiples of the region size are cropped (the trailing partial band of cells is dropped; the
full land-use map stays in `meta["land_use"]`). Regions carry their top-left corner in a UTM CRS
(EPSG:32650) and tile the city; splits assign regions to train/val/test at random (seeded).
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace

import numpy as np

from .city import City, DataError, assign_splits

# the stages of the generator; their public names are re-exported (importable from this module)
from .synthetic_config import SYNTHETIC_PRESETS, SyntheticCityConfig  # noqa: F401
from .synthetic_layout import (  # noqa: F401
    COMMERCIAL,
    COMPONENTS,
    HOME,
    HOTSPOT_SHARE,
    INTENSITY_SIGMA,
    LAND_USES,
    LEISURE,
    LOW_DENSITY,
    MIXED,
    OFFICE,
    PARK,
    POI_CATEGORIES,
    POI_RATES_PER_KM2,
    RESIDENTIAL,
    STOCKS_PER_KM2,
    TRANSIT,
    TRANSPORT,
    VISIT,
    WATER,
    WORK,
    ZONE_SHARES,
    ZONES,
    CityLayout,
    make_layout,
    smooth_field,
)
from .synthetic_profiles import (  # noqa: F401
    DAY_BOUNDARY_HOURS,
    SUBSAMPLE_MINUTES,
    _add_events,
    activity,
    ar1_noise,
    component_profiles,
    weekly_rates,
)
from .synthetic_variation import apply_cell_variation, has_cell_variation

USERS_PER_PERSON = 0.01  # phi: connected users (this operator, per slot) per present active person
VOLUME_PER_USER_MINUTE = 5.0  # kappa: traffic units (nominally MB) per connected user per minute
EVENT_VOLUME = 1.4  # per-user volume of event attendees (photos, video)
PEOPLE_TAU_HOURS = SyntheticCityConfig.people_tau_hours  # default correlation time, people present
VOLUME_TAU_HOURS = SyntheticCityConfig.volume_tau_hours  # default correlation time, volume per user
FEW_USERS = 5.0  # U0: the volume noise grows as sqrt(1 + U0 / mean users) in quiet cells
COUNT_DISPERSION = 0.3  # theta: variance of the users' counting noise = theta * expected users

CRS = "EPSG:32650"  # UTM zone 50N (eastern China), metres
GRID_ORIGIN = (405000.0, 3170000.0)  # x, y of the city's top-left corner in CRS
START_DATE = np.datetime64("2024-01-01T00:00")  # a Monday; shifted by start_day_of_week


# ----------------------------------------------------------------------------------------------------
# Presets by name
# ----------------------------------------------------------------------------------------------------


def city_from_name(name: str, seed: int | None = None) -> City:
    """The preset city `name` (a key of SYNTHETIC_PRESETS), optionally with another seed."""
    if name not in SYNTHETIC_PRESETS:
        raise ValueError(f"unknown synthetic city {name!r}: choose one of {sorted(SYNTHETIC_PRESETS)}")
    config = SYNTHETIC_PRESETS[name]
    return make_city(config if seed is None else replace(config, seed=int(seed)))


# ----------------------------------------------------------------------------------------------------
# The city
# ----------------------------------------------------------------------------------------------------


def _to_regions(a: np.ndarray, config: SyntheticCityConfig) -> np.ndarray:
    """(..., rows_kept, cols_kept) -> (R, ..., rh, rw) with regions in row-major order."""
    rh, rw = config.region_size
    nr, nc = config.n_region_rows, config.n_region_cols
    lead = a.shape[:-2]
    b = a.reshape(lead + (nr, rh, nc, rw))
    k = len(lead)
    order = (k, k + 2) + tuple(range(k)) + (k + 1, k + 3)
    return b.transpose(order).reshape((nr * nc,) + lead + (rh, rw))


def _region_of_cell(config: SyntheticCityConfig) -> np.ndarray:
    """Region index of every kept cell, flattened row-major: (N,)."""
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    return ((np.arange(rows)[:, None] // rh) * config.n_region_cols + np.arange(cols)[None, :] // rw).ravel()


def expected_series(
    config: SyntheticCityConfig, layout: CityLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise- and event-free users and traffic of the kept cells (step 7): (T, N) float32 each.

    Returns users, traffic, per-user volume per slot Dt kappa q_i (N,), day_of_week (T,), slot (T,).
    """
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    spd = config.slots_per_day
    t = np.arange(config.days * spd)
    dow = (config.start_day_of_week + t // spd) % 7
    slot = t % spd
    users_rate, traffic_rate = weekly_rates(spd, config)  # (7, spd, K)
    stocks = layout.stocks[:rows, :cols].reshape(rows * cols, -1)  # (N, K)
    users = (USERS_PER_PERSON * users_rate[dow, slot] @ stocks.T).astype(np.float32)  # (T, N)
    traffic = (USERS_PER_PERSON * traffic_rate[dow, slot] @ stocks.T).astype(np.float32)
    per_user = (24.0 * 60.0 / spd * VOLUME_PER_USER_MINUTE) * layout.volume_factor[:rows, :cols].ravel()
    traffic *= per_user.astype(np.float32)[None, :]
    return users, traffic, per_user, dow, slot


def _apply_noise(
    rng_noise: np.random.Generator,
    rng_day: np.random.Generator,
    config: SyntheticCityConfig,
    users: np.ndarray,
    traffic: np.ndarray,
) -> None:
    """Multiply users and traffic (T, N) in place by the noise of step 9."""
    sigma = float(config.noise)
    if sigma == 0:
        return
    T, N = users.shape
    slot_h = 24.0 / config.slots_per_day
    s = np.float32(sigma)
    # counting noise of the users, from the expected users: variance ~ theta U (white, log-normal)
    s2 = COUNT_DISPERSION / (users + np.float32(COUNT_DISPERSION))  # log-variance, <= 1
    counting = rng_noise.standard_normal((T, N), dtype=np.float32)
    counting *= np.sqrt(s2)
    counting -= s2 / 2
    del s2
    # the people present: AR(1) plus day factors of city, region and cell (days start at 04:00)
    day = np.floor((np.arange(T) * slot_h - DAY_BOUNDARY_HOURS) / 24.0).astype(int) + 1  # 0 .. days
    d_city = rng_day.standard_normal(config.days + 1, dtype=np.float32)
    d_region = rng_day.standard_normal((config.days + 1, config.n_regions), dtype=np.float32)
    d_cell = rng_day.standard_normal((config.days + 1, N), dtype=np.float32)
    log_people = d_region[day][:, _region_of_cell(config)]  # (T, N)
    log_people += d_city[day][:, None]
    log_people += d_cell[day]
    log_people *= 0.3 * s
    log_people += (0.5 * s) * ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / config.people_tau_hours)))
    log_people -= np.float32(sigma**2 * (0.25 + 3 * 0.09) / 2)  # each factor has mean 1
    people = np.exp(log_people)
    del log_people
    # per-user volume: burstier where few users share the cell
    mean_users = users.mean(axis=0)  # (N,)
    sigma_v = sigma * np.minimum(np.sqrt(1 + FEW_USERS / np.maximum(mean_users, 1e-6)), 5.0)
    log_volume = ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / config.volume_tau_hours)))
    log_volume *= sigma_v.astype(np.float32)
    log_volume -= (sigma_v**2 / 2).astype(np.float32)
    users *= people
    users *= np.exp(counting)
    traffic *= people
    traffic *= np.exp(log_volume)


def make_city(config: SyntheticCityConfig | None = None, **overrides) -> City:
    """Generate the synthetic city of `config` (default SyntheticCityConfig()) with field `overrides`.

    >>> city = make_city(rows=8, cols=8, slots_per_day=24, seed=3)
    >>> city.traffic.shape
    (4, 336, 4, 4)
    """
    config = config or SyntheticCityConfig()
    if overrides:
        known = {f.name for f in fields(SyntheticCityConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticCityConfig fields {unknown}: use {sorted(known)}")
        config = replace(config, **overrides)

    layout = make_layout(config)
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw  # cropped to whole regions
    spd = config.slots_per_day
    T = config.days * spd
    seeds = np.random.SeedSequence([config.seed, 2]).spawn(4)
    rng_noise, rng_day, rng_events, rng_split = (np.random.default_rng(s) for s in seeds)

    users, traffic, per_user, dow, slot = expected_series(config, layout)  # (T, N)
    events = _add_events(
        rng_events,
        config,
        layout,
        users.reshape(T, rows, cols),
        traffic.reshape(T, rows, cols),
        EVENT_VOLUME * per_user.reshape(rows, cols),
    )
    _apply_noise(rng_noise, rng_day, config, users, traffic)
    variation = {}
    if has_cell_variation(config):  # step 10; its own stream, so the other draws stay as they were
        rng_variation = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
        variation = apply_cell_variation(rng_variation, config, users, traffic, _region_of_cell(config))

    # regions, geometry, splits
    R = config.n_regions
    traffic_r = _to_regions(traffic.reshape(T, rows, cols), config)  # (R, T, rh, rw)
    users_r = _to_regions(users.reshape(T, rows, cols), config)
    poi_r = _to_regions(layout.poi[:, :rows, :cols], config)  # (R, C, rh, rw)
    residents_r = _to_regions(layout.residents[:rows, :cols], config)  # (R, rh, rw)
    region = np.arange(R)
    region_rc = np.stack([region // config.n_region_cols * rh, region % config.n_region_cols * rw], axis=1)
    x0, y0 = GRID_ORIGIN
    region_origin = np.stack(
        [x0 + region_rc[:, 1] * config.cell_size, y0 - region_rc[:, 0] * config.cell_size], axis=1
    )
    start = START_DATE + np.timedelta64(config.start_day_of_week, "D")
    meta = {
        "generator": "forecasting.data.synthetic",
        "config": asdict(config),
        "land_use": layout.land_use.copy(),  # (rows, cols) full grid, index into land_use_names
        "land_use_names": list(LAND_USES),
        "grid_shape": (config.rows, config.cols),
        "kept_shape": (rows, cols),
        "grid_origin": GRID_ORIGIN,
        "events": events,
        **variation,  # zero_cells, intermittent_cells (flat indices of the kept grid) when step 10 ran
    }
    return City(
        name=config.name,
        traffic=np.maximum(traffic_r, 0.0),
        users=np.maximum(users_r, 0.0),
        poi=poi_r,
        residents=residents_r,
        day_of_week=np.broadcast_to(dow, (R, T)).copy(),
        slot_of_day=np.broadcast_to(slot, (R, T)).copy(),
        slots_per_day=spd,
        split=assign_splits(R, config.split_fractions, rng_split),
        cell_size=float(config.cell_size),
        region_origin=region_origin,
        crs=CRS,
        poi_categories=layout.poi_categories,
        start_time=np.full(R, start),
        meta=meta,
    )


def region_land_use(city: City) -> np.ndarray:
    """Land use (indices into LAND_USES) of each cell of each region: (R, H, W).

    Read from `city.meta["land_use"]` through `region_origin`, so it stays right after `city.subset`.
    """
    if "land_use" not in city.meta or city.region_origin is None:
        raise DataError(f"{city.name}: no land-use map in meta (only synthetic cities carry one)")
    lu = np.asarray(city.meta["land_use"])
    x0, y0 = city.meta.get("grid_origin", GRID_ORIGIN)
    cols0 = np.rint((city.region_origin[:, 0] - x0) / city.cell_size).astype(int)
    rows0 = np.rint((y0 - city.region_origin[:, 1]) / city.cell_size).astype(int)
    H, W = city.grid
    return np.stack([lu[r : r + H, c : c + W] for r, c in zip(rows0, cols0)])
