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

Future: `make_city(config, future_days=k)` continues the city k days past `days` from separate seeded
streams (AR(1) processes carried on from their last values, the last day's factors until 04:00, new
events), so its first `days` are bit-for-bit the city without a future: a forecast of the shorter city
can be scored against the continuation.

10. Cell-level variation (synthetic_variation.py): level steps of regions and cells, all-zero cells
   (`zero_cell_share`) and intermittent cells. Off by default.

The city family drawn from wide priors over these knobs is `forecasting.data.synthetic_prior`.

Geometry and regions: the grid is cut into `region_size` blocks (regions, row-major); rows/cols that
are not multiples of the region size are cropped (the trailing partial band of cells is dropped; the
full land-use map stays in `meta["land_use"]`). Regions carry their top-left corner in a UTM CRS
(EPSG:32650) and tile the city; splits assign regions to train/val/test at random (seeded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .city import City, DataError, assign_splits

# the stages of the generator; their public names are re-exported (importable from this module)
from .synthetic_config import SYNTHETIC_PRESETS, SyntheticCityConfig, geography_key  # noqa: F401
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
    ar1_continue,
    ar1_noise,
    event_burst,
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
    config: SyntheticCityConfig, layout: CityLayout, steps: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise- and event-free users and traffic of the kept cells (step 7): (T, N) float32 each.

    Returns users, traffic, per-user volume per slot Dt kappa q_i (N,), day_of_week (T,), slot (T,), at
    `steps` (default: the config's days * slots_per_day steps from 0; later steps give its future).
    """
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    spd = config.slots_per_day
    t = np.arange(config.days * spd) if steps is None else np.asarray(steps)
    dow = (config.start_day_of_week + t // spd) % 7
    slot = t % spd
    users_rate, traffic_rate = weekly_rates(spd, config)  # (7, spd, K)
    stocks = layout.stocks[:rows, :cols].reshape(rows * cols, -1)  # (N, K)
    users = (USERS_PER_PERSON * users_rate[dow, slot] @ stocks.T).astype(np.float32)  # (T, N)
    traffic = (USERS_PER_PERSON * traffic_rate[dow, slot] @ stocks.T).astype(np.float32)
    per_user = (24.0 * 60.0 / spd * VOLUME_PER_USER_MINUTE) * layout.volume_factor[:rows, :cols].ravel()
    traffic *= per_user.astype(np.float32)[None, :]
    return users, traffic, per_user, dow, slot


@dataclass
class NoiseState:
    """Where the noise of step 9 left off at the last step: what a continuation (the city's future) needs."""

    people_last: np.ndarray  # (N,) last value of the people AR(1)
    volume_last: np.ndarray  # (N,) last value of the volume AR(1)
    sigma_v: np.ndarray  # (N,) per-cell volume noise scale (from the observed expected users)
    d_city: np.ndarray  # (days + 1,) day factors
    d_region: np.ndarray  # (days + 1, R)
    d_cell: np.ndarray  # (days + 1, N)


def _counting_noise(rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    """Log counting noise of the users (T, N): white, variance s^2 = theta / (U + theta), mean-one factor."""
    s2 = COUNT_DISPERSION / (users + np.float32(COUNT_DISPERSION))  # log-variance, <= 1
    counting = rng.standard_normal(users.shape, dtype=np.float32)
    counting *= np.sqrt(s2)
    counting -= s2 / 2
    return counting


def _day_factors(rng: np.random.Generator, n_days: int, n_regions: int, n_cells: int):
    """N(0, 1) day factors of the city (n_days,), of each region (n_days, R) and of each cell (n_days, N)."""
    return (rng.standard_normal(n_days, dtype=np.float32), rng.standard_normal((n_days, n_regions), dtype=np.float32),
            rng.standard_normal((n_days, n_cells), dtype=np.float32))


def _day_index(steps: np.ndarray, slot_h: float) -> np.ndarray:
    """Index of the day factor of each step: days start at 04:00, so steps before 04:00 of day 0 take 0."""
    return np.floor((steps * slot_h - DAY_BOUNDARY_HOURS) / 24.0).astype(int) + 1


def _multiply_noise(config: SyntheticCityConfig, users: np.ndarray, traffic: np.ndarray, counting: np.ndarray,
                    day: np.ndarray, factors, people_ar: np.ndarray, volume_ar: np.ndarray, sigma_v: np.ndarray) -> None:
    """users/traffic (T, N) *= the noise factors of step 9 built from its draws (`volume_ar` is overwritten)."""
    sigma = float(config.noise)
    s = np.float32(sigma)
    d_city, d_region, d_cell = factors
    log_people = d_region[day][:, _region_of_cell(config)]  # (T, N)
    log_people += d_city[day][:, None]
    log_people += d_cell[day]
    log_people *= 0.3 * s
    log_people += (0.5 * s) * people_ar
    log_people -= np.float32(sigma**2 * (0.25 + 3 * 0.09) / 2)  # each factor has mean 1
    people = np.exp(log_people)
    del log_people
    log_volume = volume_ar
    log_volume *= sigma_v.astype(np.float32)
    log_volume -= (sigma_v**2 / 2).astype(np.float32)
    users *= people
    users *= np.exp(counting)
    traffic *= people
    traffic *= np.exp(log_volume)


def _apply_noise(
    rng_noise: np.random.Generator,
    rng_day: np.random.Generator,
    config: SyntheticCityConfig,
    users: np.ndarray,
    traffic: np.ndarray,
) -> NoiseState | None:
    """Multiply users and traffic (T, N) in place by the noise of step 9; the state it ends in (None: no noise)."""
    sigma = float(config.noise)
    if sigma == 0:
        return None
    T, N = users.shape
    slot_h = 24.0 / config.slots_per_day
    counting = _counting_noise(rng_noise, users)
    factors = _day_factors(rng_day, config.days + 1, config.n_regions, N)
    people_ar = ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / config.people_tau_hours)))
    # per-user volume: burstier where few users share the cell
    mean_users = users.mean(axis=0)  # (N,)
    sigma_v = sigma * np.minimum(np.sqrt(1 + FEW_USERS / np.maximum(mean_users, 1e-6)), 5.0)
    volume_ar = ar1_noise(rng_noise, T, N, float(np.exp(-slot_h / config.volume_tau_hours)))
    state = NoiseState(people_ar[-1].copy(), volume_ar[-1].copy(), sigma_v, *factors)
    _multiply_noise(config, users, traffic, counting, _day_index(np.arange(T), slot_h), factors, people_ar,
                    volume_ar, sigma_v)
    return state


def _continue_noise(rng: np.random.Generator, config: SyntheticCityConfig, state: NoiseState, users: np.ndarray,
                    traffic: np.ndarray, first_step: int) -> None:
    """Multiply the future users/traffic (T', N) of steps [first_step, first_step + T') by step 9's noise,
    continuing `state`: the AR(1) processes go on from their last values, the last observed day's factors
    hold until 04:00 and new days draw new ones; `sigma_v` stays the observed one."""
    T, N = users.shape
    slot_h = 24.0 / config.slots_per_day
    day = _day_index(np.arange(first_step, first_step + T), slot_h)
    counting = _counting_noise(rng, users)
    new = _day_factors(rng, int(day.max()) + 1 - state.d_city.size, config.n_regions, N)
    factors = tuple(np.concatenate([old, extra]) for old, extra in
                    zip((state.d_city, state.d_region, state.d_cell), new))
    people_ar = ar1_continue(rng, state.people_last, T, float(np.exp(-slot_h / config.people_tau_hours)))
    volume_ar = ar1_continue(rng, state.volume_last, T, float(np.exp(-slot_h / config.volume_tau_hours)))
    _multiply_noise(config, users, traffic, counting, day, factors, people_ar, volume_ar, state.sigma_v)


def _future_series(config: SyntheticCityConfig, layout: CityLayout, future_days: int, state: NoiseState | None,
                   past_events: list[dict], per_user: np.ndarray):
    """The `future_days` after the config's `days`: users, traffic (T', N), day_of_week, slot (T',), events.

    A continuation, drawn from its own seeded streams so the observed days stay exactly what they are
    without a future: expected series at the later steps (step 7), the tails of observed events that run
    past the end and new events over the future days (step 8), and the noise of step 9 continued from
    where it stopped (`_continue_noise`).
    """
    rh, rw = config.region_size
    rows, cols = config.n_region_rows * rh, config.n_region_cols * rw
    spd = config.slots_per_day
    T = config.days * spd
    steps = np.arange(T, T + future_days * spd)
    users, traffic, _, dow, slot = expected_series(config, layout, steps)
    rng_noise, rng_events = (np.random.default_rng(s) for s in np.random.SeedSequence([config.seed, 3]).spawn(2))
    u3, x3 = users.reshape(-1, rows, cols), traffic.reshape(-1, rows, cols)
    volume = EVENT_VOLUME * per_user.reshape(rows, cols)
    land = layout.land_use[:rows, :cols] != WATER
    for e in past_events:  # an event of the last evening may run past the end
        event_burst(u3, x3, volume, land, e["row"], e["col"], e["start_hour"], e["duration_hours"],
                    e["radius_cells"], e["peak_users"], 24.0 / spd, first_step=T)
    events = _add_events(rng_events, replace(config, days=future_days), layout, u3, x3, volume)
    for e in events:  # drawn on the future's own clock: shift to the city's
        e.update(start_hour=e["start_hour"] + 24.0 * config.days, start_step=e["start_step"] + T, future=True)
    if state is not None:
        _continue_noise(rng_noise, config, state, users, traffic, T)
    return users, traffic, dow, slot, events


def _meta(config: SyntheticCityConfig, layout: CityLayout, kept: tuple[int, int], events: list[dict],
          future_days: int) -> dict:
    """The city's `meta`: generator, config, full land-use map, grid shapes, events (and future days)."""
    meta = {
        "generator": "forecasting.data.synthetic",
        "config": asdict(config),
        "land_use": layout.land_use.copy(),  # (rows, cols) full grid, index into land_use_names
        "land_use_names": list(LAND_USES),
        "grid_shape": (config.rows, config.cols),
        "kept_shape": kept,
        "grid_origin": GRID_ORIGIN,
        "events": events,
        "geography": geography_key(config),  # shared by the cities of other time axes on the same areas
    }
    if future_days:
        meta["future_days"] = int(future_days)  # the last future_days * slots_per_day steps continue the config's days
    return meta


def _with_overrides(config: SyntheticCityConfig, overrides: dict) -> SyntheticCityConfig:
    """`config` with the named fields replaced; an unknown field name is refused with the known ones."""
    if not overrides:
        return config
    known = {f.name for f in fields(SyntheticCityConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SyntheticCityConfig fields {unknown}: use {sorted(known)}")
    return replace(config, **overrides)


def _region_origins(config: SyntheticCityConfig) -> np.ndarray:
    """(R, 2) map position (x, y) of each region's top-left cell centre; regions numbered row-major."""
    rh, rw = config.region_size
    region = np.arange(config.n_regions)
    row0, col0 = region // config.n_region_cols * rh, region % config.n_region_cols * rw
    x0, y0 = GRID_ORIGIN
    return np.stack([x0 + col0 * config.cell_size, y0 - row0 * config.cell_size], axis=1)


def make_city(config: SyntheticCityConfig | None = None, *, future_days: int = 0, **overrides) -> City:
    """Generate the synthetic city of `config` (default SyntheticCityConfig()) with field `overrides`.

    `future_days` > 0 appends that many days *after* the config's `days`, continuing the same city (same
    profiles, the noise processes and day factors carried on, new events): the first `days` are exactly
    the city generated without a future, so `make_city(c, future_days=k).head(c.days * c.slots_per_day)`
    equals `make_city(c)` and the rest is the future a forecast of it can be scored against.

    >>> city = make_city(rows=8, cols=8, slots_per_day=24, seed=3)
    >>> city.traffic.shape
    (4, 336, 4, 4)
    """
    if isinstance(future_days, bool) or not isinstance(future_days, (int, np.integer)) or future_days < 0:
        raise ValueError(f"future_days must be a whole number >= 0, got {future_days!r}")
    config = _with_overrides(config or SyntheticCityConfig(), overrides)

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
    if future_days and has_cell_variation(config):
        raise ValueError("future_days cannot continue a city with cell-level variation (zero_cell_share, "
                         "intermittent_share, level_shift_prob): set those to 0 or future_days to 0")
    state = _apply_noise(rng_noise, rng_day, config, users, traffic)
    variation = {}
    if has_cell_variation(config):  # step 10; its own stream, so the other draws stay as they were
        rng_variation = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
        variation = apply_cell_variation(rng_variation, config, users, traffic, _region_of_cell(config))
    if future_days:
        f_users, f_traffic, f_dow, f_slot, f_events = _future_series(config, layout, future_days, state, events,
                                                                     per_user)
        users, traffic = np.concatenate([users, f_users]), np.concatenate([traffic, f_traffic])
        dow, slot, events = np.concatenate([dow, f_dow]), np.concatenate([slot, f_slot]), events + f_events
        T = dow.size

    # regions, geometry, splits
    R = config.n_regions
    traffic_r = _to_regions(traffic.reshape(T, rows, cols), config)  # (R, T, rh, rw)
    users_r = _to_regions(users.reshape(T, rows, cols), config)
    poi_r = _to_regions(layout.poi[:, :rows, :cols], config)  # (R, C, rh, rw)
    residents_r = _to_regions(layout.residents[:rows, :cols], config)  # (R, rh, rw)
    start = START_DATE + np.timedelta64(config.start_day_of_week, "D")
    meta = {**_meta(config, layout, (rows, cols), events, future_days),
            **variation}  # zero_cells, intermittent_cells (flat indices of the kept grid) when step 10 ran
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
        region_origin=_region_origins(config),
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
