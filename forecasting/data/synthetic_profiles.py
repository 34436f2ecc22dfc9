"""Time in a synthetic city: daily and weekly profiles, AR(1) noise and event bursts.

Steps 6 and 8 of the model of `forecasting.data.synthetic`, and the AR(1) process of its step 9.
Time t runs in slots of Dt minutes; h(t) is the hour of day in [0, 24); w(t) the day of week of
t - 4 h (a night belongs to the day before, so profiles switch type at 04:00, when every profile is
near its floor).

6. Daily and weekly cycles, in continuous hours: presence profiles p_k(h, w) (fraction of the stock
   present: residents leave on weekday working hours, workers fill offices 09-18 on weekdays only,
   visitors peak at lunch and in the evening with a weekend uplift, transit has commuting double
   peaks, parks fill on weekend daytime and weekday evenings), a common activity a(h) (share of the
   present people using the network: night floor ~0.14) and a per-user volume v_k(h) (home evening
   streaming). See `component_profiles`. A slot's value is the mean over sub-samples every <= 5 min
   within the slot, so every `slots_per_day` gives the same shape (a 1 h slot = the mean of its six
   10 min slots). `weekly_rates` gives the slot means p_k a and p_k a v_k for every slot of the week.

   Variation (`reshape_rates`, only when a config's day-shape knobs differ from their defaults): the
   profiles run `peak_shift_hours` later; weekend rates blend towards a weekday's,
   r_we <- max(s r_we + (1 - s) r_wd, 0.1 r_we) with s = `weekend_shape`; extra activity bumps multiply
   every rate by 1 + sum_j A_j exp(-d(h, c_j)^2 / (2 w_j^2)) (`extra_peaks`, profile hours); the day
   contrast maps each component's rate to m_k (r / m_k)^gamma (m_k its weekly mean, gamma =
   `day_contrast`, so a night/day ratio rho becomes ~ rho^gamma); weekend days are multiplied by
   exp(`weekend_level`).

AR(1) noise (`ar1_noise`): a stationary process with unit variance, x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t,
e_t ~ N(0, 1); with rho = exp(-Dt / tau) it is the discretised Ornstein-Uhlenbeck process of
correlation time tau at any granularity (step 9 uses it for the people present and the volume per user).

8. Events. N_e ~ Poisson(event_rate * R * days / 7) localised bursts (concerts, matches, markets):
   a centre cell drawn with weight S_visit + S_leisure + 0.5 S_transit in a uniformly chosen region,
   start at 09:00-20:00 of a random day, duration 1.5-4.5 h with 15 min ramps, a Gaussian footprint of
   0.5-1.2 cells (not on water), and peak extra users E = m (mean users of the centre + 5),
   m ~ LogNormal(log 2.5, 0.5) times `event_scale`. The list is kept in `city.meta["events"]`.
"""

from __future__ import annotations

import numpy as np

from .synthetic_config import SyntheticCityConfig
from .synthetic_layout import COMPONENTS, LEISURE, TRANSIT, VISIT, WATER, CityLayout, _cell_coords

DAY_BOUNDARY_HOURS = 4.0  # profiles and day factors switch day at 04:00
SUBSAMPLE_MINUTES = 5.0  # a slot averages its profile every <= 5 minutes


# ----------------------------------------------------------------------------------------------------
# Profiles in continuous time of day
# ----------------------------------------------------------------------------------------------------


def _bump(h: np.ndarray, centre: float, width: float) -> np.ndarray:
    """exp(-d^2 / (2 width^2)) with d the circular distance in hours between h and centre."""
    d = (h - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _plateau(h: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """Smooth periodic indicator of [start, end] hours: logistic ramps of scale `ramp` hours."""

    def once(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(x - start) / ramp)) / (1 + np.exp(-(end - x) / ramp))

    return once(h) + once(h + 24.0) + once(h - 24.0)


# per-component day-of-week level (Monday..Sunday): Friday evening out, quieter Sunday errands
_DOW_LEVEL = np.array(
    [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.02, 1.04],  # home
        [1.0, 1.0, 1.0, 1.0, 0.97, 1.0, 1.0],  # work
        [0.95, 0.95, 0.97, 1.0, 1.1, 1.0, 0.92],  # visit
        [1.02, 1.0, 1.0, 1.0, 1.05, 1.0, 0.95],  # transit
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # leisure
    ]
)


def activity(h: np.ndarray) -> np.ndarray:
    """a(h): share of present people using the network (night floor 0.14, lunch bump)."""
    return 0.14 + 0.86 * _plateau(h, 6.9, 23.8, 0.7) + 0.12 * _bump(h, 12.5, 1.0)


def component_profiles(h: np.ndarray, day_of_week: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Presence p_k(h, w) (fraction of stock present) and per-user volume v_k(h), each (K, n).

    `h` hours in [0, 24); `day_of_week` 0..6 of the profile day (already shifted to 04:00 boundaries).
    """
    h = np.asarray(h, dtype=float)
    w = np.asarray(day_of_week)
    we = np.isin(w, (5, 6))
    pl, bu = _plateau, _bump
    home = np.where(we, 0.95 - 0.30 * pl(h, 10.0, 19.0, 1.0), 0.95 - 0.50 * pl(h, 8.3, 17.6, 0.6))
    work = np.where(
        we,
        0.04 + 0.18 * pl(h, 9.5, 17.5, 0.8),
        0.04 + 0.92 * pl(h, 8.6, 18.2, 0.5) - 0.15 * bu(h, 12.3, 0.5) + 0.08 * pl(h, 18.2, 21.0, 0.6),
    )
    visit = np.where(
        we,
        0.04 + 0.50 * pl(h, 10.0, 22.0, 0.7) + 0.30 * bu(h, 12.5, 1.0) + 0.55 * bu(h, 19.0, 1.8),
        0.03 + 0.25 * pl(h, 9.5, 22.0, 0.6) + 0.35 * bu(h, 12.3, 0.9) + 0.55 * bu(h, 19.3, 1.6),
    )
    transit = np.where(
        we,
        0.03 + 0.35 * pl(h, 8.0, 22.0, 1.0) + 0.25 * bu(h, 15.0, 3.0),
        0.03 + 0.30 * pl(h, 6.5, 22.5, 0.6) + 0.80 * bu(h, 8.0, 0.7) + 0.70 * bu(h, 18.0, 0.9),
    )
    leisure = np.where(
        we,
        0.03 + 0.70 * pl(h, 9.0, 18.0, 1.0) + 0.35 * bu(h, 19.8, 1.2) + 0.15 * bu(h, 7.0, 0.8),
        0.02 + 0.25 * bu(h, 6.8, 0.8) + 0.45 * bu(h, 19.8, 1.2) + 0.10 * pl(h, 9.0, 17.0, 1.0),
    )
    presence = np.stack([home, work, visit, transit, leisure]) * _DOW_LEVEL[:, w]
    ones = np.ones_like(h)
    volume = np.stack(
        [1.0 + 0.35 * bu(h, 21.8, 1.6), 0.75 * ones, 0.9 + 0.2 * bu(h, 20.0, 2.0), 0.8 * ones, 0.7 * ones]
    )
    return presence, volume


def _subsamples(slot_minutes: float) -> np.ndarray:
    """Offsets (fractions of a slot) of the sub-samples averaged within one slot."""
    n = max(1, int(np.ceil(slot_minutes / SUBSAMPLE_MINUTES)))
    return (np.arange(n) + 0.5) / n


_DAY_SHAPE_FIELDS = ("day_contrast", "peak_shift_hours", "extra_peaks", "weekend_shape", "weekend_level")


def has_day_shape(config: SyntheticCityConfig | None) -> bool:
    """Whether `config` reshapes the daily/weekly profiles (any day-shape knob off its default)."""
    return config is not None and any(
        getattr(config, name) != getattr(SyntheticCityConfig, name) for name in _DAY_SHAPE_FIELDS
    )


def reshape_rates(rate: np.ndarray, h: np.ndarray, day: np.ndarray, config: SyntheticCityConfig) -> np.ndarray:
    """The variation of step 6 (module docstring) applied to user rates `rate` (K, n) at profile hours
    `h` (n,) of profile days `day` (n,), which sample the week uniformly."""
    weekend = np.isin(day, (5, 6))
    s = config.weekend_shape
    if s != 1.0:
        presence, _ = component_profiles(h, np.full_like(day, 2))  # a Wednesday at the same hours
        weekday = presence * activity(h)[None, :]
        rate = np.where(weekend, np.maximum(s * rate + (1 - s) * weekday, 0.1 * rate), rate)
    if config.extra_peaks:
        bumps = sum(amplitude * _bump(h, centre, width) for centre, width, amplitude in config.extra_peaks)
        rate = rate * (1.0 + bumps)[None, :]
    if config.day_contrast != 1.0:
        mean = rate.mean(axis=1, keepdims=True)
        rate = mean * (rate / mean) ** config.day_contrast
    return rate * np.where(weekend, np.exp(config.weekend_level), 1.0)[None, :]


def weekly_rates(slots_per_day: int, config: SyntheticCityConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Slot-averaged user rate p_k a and traffic rate p_k a v_k for each weekday slot: (7, spd, K) each.

    Slot s of day w averages the continuous profiles over its sub-samples; the profile day is that of
    the time minus DAY_BOUNDARY_HOURS. `config` (optional) brings the day-shape variation.
    """
    slot_h = 24.0 / slots_per_day
    offs = _subsamples(slot_h * 60)
    w = np.arange(7)[:, None, None]
    s = np.arange(slots_per_day)[None, :, None]
    hours_of_week = 24.0 * w + slot_h * (s + offs[None, None, :])  # (7, spd, n_sub)
    reshape = has_day_shape(config)
    if reshape:
        hours_of_week = hours_of_week - config.peak_shift_hours  # the profiles run later
    h = hours_of_week % 24.0
    profile_day = np.floor((hours_of_week - DAY_BOUNDARY_HOURS) / 24.0).astype(int) % 7
    presence, volume = component_profiles(h.ravel(), profile_day.ravel())  # (K, n)
    users_rate = presence * activity(h.ravel())[None, :]
    if reshape:
        users_rate = reshape_rates(users_rate, h.ravel(), profile_day.ravel(), config)
    traffic_rate = users_rate * volume
    shape = (len(COMPONENTS), 7, slots_per_day, offs.size)
    return (
        users_rate.reshape(shape).mean(-1).transpose(1, 2, 0),
        traffic_rate.reshape(shape).mean(-1).transpose(1, 2, 0),
    )


# ----------------------------------------------------------------------------------------------------
# Noise and events
# ----------------------------------------------------------------------------------------------------


def ar1_noise(rng: np.random.Generator, n_steps: int, n_series: int, rho: float) -> np.ndarray:
    """Stationary AR(1) x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t with unit variance: (n_steps, n_series)."""
    e = rng.standard_normal((n_steps, n_series), dtype=np.float32)
    c = np.float32(np.sqrt(1 - rho**2))
    r = np.float32(rho)
    for t in range(1, n_steps):
        e[t] *= c
        e[t] += r * e[t - 1]
    return e


def ar1_continue(rng: np.random.Generator, last: np.ndarray, n_steps: int, rho: float) -> np.ndarray:
    """The next `n_steps` of AR(1) processes whose last values are `last` (n_series,): (n_steps, n_series).

    x_0 = rho last + sqrt(1 - rho^2) e_0, then as in `ar1_noise`: the continuation of a series drawn by
    `ar1_noise`, with the same stationary unit variance (a synthetic city's future, see `make_city`).
    """
    e = rng.standard_normal((n_steps, np.size(last)), dtype=np.float32)
    c = np.float32(np.sqrt(1 - rho**2))
    r = np.float32(rho)
    e[0] *= c
    e[0] += r * np.asarray(last, dtype=np.float32)
    for t in range(1, n_steps):
        e[t] *= c
        e[t] += r * e[t - 1]
    return e


def _ramped_box(hours: np.ndarray, start: float, end: float, ramp: float = 0.06) -> np.ndarray:
    """Smooth indicator of [start, end] on absolute hours: logistic ramps (10-90 % in ~15 min)."""
    return 1 / (1 + np.exp(-(hours - start) / ramp)) / (1 + np.exp(-(end - hours) / ramp))


def _add_events(
    rng: np.random.Generator,
    config: SyntheticCityConfig,
    layout: CityLayout,
    users: np.ndarray,
    traffic: np.ndarray,
    volume: np.ndarray,
) -> list[dict]:
    """Add event bursts (step 8) in place to users/traffic (T, rows, cols); return their records."""
    T, rows, cols = users.shape
    rh, rw = config.region_size
    n_events = rng.poisson(config.event_rate * config.n_regions * config.days / 7)
    slot_h = 24.0 / config.slots_per_day
    stocks = layout.stocks[:rows, :cols]
    weight = stocks[..., VISIT] + stocks[..., LEISURE] + 0.5 * stocks[..., TRANSIT]
    land = layout.land_use[:rows, :cols] != WATER
    mean_users = users.mean(axis=0)
    records = []
    for _ in range(n_events):
        region = int(rng.integers(config.n_regions))
        r0, c0 = (region // config.n_region_cols) * rh, (region % config.n_region_cols) * rw
        wr = weight[r0 : r0 + rh, c0 : c0 + rw].ravel()
        if wr.sum() <= 0:
            continue
        k = rng.choice(wr.size, p=wr / wr.sum())
        row, col = r0 + k // rw, c0 + k % rw
        start = 24.0 * rng.integers(config.days) + rng.uniform(9.0, 20.0)
        duration = rng.uniform(1.5, 4.5)
        radius = rng.uniform(0.5, 1.2)
        peak = float(rng.lognormal(np.log(2.5), 0.5) * config.event_scale * (mean_users[row, col] + 5.0))
        if not event_burst(users, traffic, volume, land, row, col, start, duration, radius, peak, slot_h):
            continue
        records.append(
            {
                "row": int(row),
                "col": int(col),
                "region": region,
                "start_hour": float(start),  # hours since the first slot (day = start_hour // 24)
                "start_step": int(start // slot_h),
                "duration_hours": float(duration),
                "radius_cells": float(radius),
                "peak_users": peak,
            }
        )
    return records


def event_burst(users: np.ndarray, traffic: np.ndarray, volume: np.ndarray, land: np.ndarray, row: int, col: int,
                start: float, duration: float, radius: float, peak: float, slot_h: float, first_step: int = 0) -> bool:
    """Add one event's extra users (and their traffic) in place to users/traffic (T, rows, cols).

    The arrays hold the steps [first_step, first_step + T) of the city; `start` is in hours since its
    step 0. Returns False when the event misses those steps (nothing added).
    """
    T, rows, cols = users.shape
    t0 = max(first_step, int(np.floor((start - 1.0) / slot_h)))
    t1 = min(first_step + T, int(np.ceil((start + duration + 1.0) / slot_h)) + 1)
    if t0 >= t1:
        return False
    hours = slot_h * (np.arange(t0, t1)[:, None] + _subsamples(slot_h * 60)[None, :])  # sub-samples of each slot
    envelope = _ramped_box(hours, start, start + duration).mean(1)  # (t,)
    # footprint in a box of +-4 cells (it is < 0.02 beyond 3.4 radius)
    yy, xx = _cell_coords((rows, cols))
    ra, rb, ca, cb = max(0, row - 4), min(rows, row + 5), max(0, col - 4), min(cols, col + 5)
    d2 = (yy[ra:rb, ca:cb] - row) ** 2 + (xx[ra:rb, ca:cb] - col) ** 2
    footprint = np.exp(-0.5 * d2 / radius**2) * land[ra:rb, ca:cb]
    footprint[footprint < 0.02] = 0.0
    extra = (peak * envelope[:, None, None] * footprint[None]).astype(np.float32)  # (t, box)
    a, b = t0 - first_step, t1 - first_step
    users[a:b, ra:rb, ca:cb] += extra
    traffic[a:b, ra:rb, ca:cb] += extra * volume[None, ra:rb, ca:cb]
    return True
