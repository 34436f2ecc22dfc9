"""A prior over synthetic cities: an unlimited, deterministic family of small, varied cities.

`SyntheticPrior` holds a range for every knob of `SyntheticCityConfig`; `sample_config(rng)` draws one
city's configuration and `prior_city(k, seed)` makes city k of the prior with seed `seed`, the same
city on every call. Pre-training on many such cities (`uomo-train --cities synthetic-prior:64`) shows
the network a new city every few windows instead of a handful of fixed presets.

Names (resolved by `forecasting.data.load_cities` / `load_city`):

    synthetic-prior:N         cities k = 0 .. N-1 of the prior with seed 0 (a family)
    synthetic-prior:A-B       cities k = A .. B-1 (e.g. held-out cities for a check)
    synthetic-prior@S:N       the same with prior seed S
    synthetic-prior@S#K       the single city k = K (the name each city of a family carries)
    synthetic-prior-v1...     the same names drawn from the first ranges (`FIRST_PRIOR`, see below), and
    synthetic-prior-v2...     from the second (`SECOND_PRIOR`: no noise scaling with the slot), kept so
                              that runs made with them can be repeated

Every city of a family has `meta["family"] == "synthetic-prior"` (or "synthetic-prior-v1", "synthetic-prior-v2"): `uomo-train
--city-weight synthetic-prior=W` weights the family as one group (W shared by its cities).

Draws (independent; U = uniform, LU = log-uniform, i.e. exp(U(log a, log b)); integers inclusive):

    grid            one of `grid` (default 8 x 8 cells = four 4 x 4 regions)
    days            U{days}                 slots_per_day   one of `slots_per_day` (1 h .. 10 min)
    start_day       U{0..6}                 water_fraction  U
    noise           U                       people/volume_tau_hours   LU (AR(1) rho = exp(-Dt / tau))
    event_rate      U (per region per week) event_scale     LU
    day_contrast    LU                      peak_shift_hours U
    extra_peaks     n ~ U{n_extra_peaks}, each (centre ~ U(6, 23), width ~ U, amplitude ~ U)
    weekend_shape   U                       weekend_level   U (signed: quieter or busier weekends)
    level_sigma     U                       hotspot_share, hotspot_tail  U
    level_shift_prob, level_shift_sigma  U
    zero_cell_share U                       intermittent_share, _duty U, intermittent_hours LU

The default ranges are wide around what the real cities show. Only summary statistics of the
*training* regions of Nanjing and Nanchang were read to set them (bench/results/synthetic_prior.md):
31-47% all-zero cells, a city-wide night/day traffic ratio of 0.17-0.26 (per cell 0.07-0.44), a
lag-1 autocorrelation of ~0.82-0.87 at 15-30 min, a log10 spread of cell levels of ~0.6, and a day that
repeats the day before: one-day autocorrelation 0.63-0.75, departures from the cell's own daily profile
16-24% of its level. The first ranges (noise 0.1-0.6, event_scale 0.5-4, event_rate 0-4 per week) made
days far less alike than the real cities' (one-day autocorrelation 0.05 / 0.16 / 0.41 at q10 / median /
q90) and were narrowed to the second ones (`bench/results/zero_shot_prior.md`). The present prior has
those ranges and scales the noise of slots longer than 30 minutes down (`noise_reference_minutes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import numpy as np

from .city import City
from .synthetic import make_city
from .synthetic_config import SyntheticCityConfig

PRIOR_FAMILY = "synthetic-prior"


@dataclass(frozen=True)
class SyntheticPrior:
    """Ranges of the prior: (low, high) pairs, or tuples of choices for `grid` and `slots_per_day`."""

    grid: tuple[tuple[int, int], ...] = ((8, 8),)
    days: tuple[int, int] = (14, 21)
    slots_per_day: tuple[int, ...] = (24, 48, 96, 144)
    split_fractions: tuple[float, float, float] = (0.8, 0.2, 0.0)  # no test regions: a prior city is never scored
    water_fraction: tuple[float, float] = (0.0, 0.15)
    noise: tuple[float, float] = (0.03, 0.3)
    people_tau_hours: tuple[float, float] = (0.1, 8.0)
    volume_tau_hours: tuple[float, float] = (0.1, 8.0)
    event_rate: tuple[float, float] = (0.0, 2.0)
    event_scale: tuple[float, float] = (0.25, 1.5)
    day_contrast: tuple[float, float] = (0.3, 1.4)
    peak_shift_hours: tuple[float, float] = (-2.0, 2.0)
    n_extra_peaks: tuple[int, int] = (0, 3)
    peak_width_hours: tuple[float, float] = (0.5, 3.0)
    peak_amplitude: tuple[float, float] = (0.1, 1.0)
    weekend_shape: tuple[float, float] = (0.0, 1.5)
    weekend_level: tuple[float, float] = (-0.4, 0.4)
    level_sigma: tuple[float, float] = (0.5, 1.6)
    hotspot_share: tuple[float, float] = (0.0, 0.1)
    hotspot_tail: tuple[float, float] = (1.1, 3.0)
    level_shift_prob: tuple[float, float] = (0.0, 0.5)
    level_shift_sigma: tuple[float, float] = (0.2, 1.0)
    zero_cell_share: tuple[float, float] = (0.0, 0.5)
    intermittent_share: tuple[float, float] = (0.0, 0.1)
    intermittent_duty: tuple[float, float] = (0.05, 0.5)
    intermittent_hours: tuple[float, float] = (0.5, 4.0)
    #: slots longer than this average more of the noise: noise x sqrt(reference / minutes per slot) (None: off)
    noise_reference_minutes: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in ("grid", "slots_per_day", "split_fractions", "noise_reference_minutes"):
                continue
            low, high = getattr(self, f.name)
            if low > high:
                raise ValueError(f"SyntheticPrior.{f.name}: low {low} > high {high}")
        if self.noise_reference_minutes is not None and not self.noise_reference_minutes > 0:
            raise ValueError(f"SyntheticPrior.noise_reference_minutes must be > 0, got {self.noise_reference_minutes}")
        if not self.grid or not self.slots_per_day:
            raise ValueError("SyntheticPrior.grid and slots_per_day need at least one choice each")

    def sample_config(self, rng: np.random.Generator, name: str = PRIOR_FAMILY) -> SyntheticCityConfig:
        """One city's configuration drawn from the prior (the draws of the module docstring).

        With `noise_reference_minutes` = m0, the drawn noise is that of an m0-minute slot and a slot of m > m0
        minutes carries sigma sqrt(m0 / m): a coarser slot sums more independent moments, as the real
        cities resampled to one hour do (their days repeat more: one-day autocorrelation Nanchang 0.71 at
        30 min, 0.75 at 60 min); finer slots keep the drawn noise (Nanjing's 15-min days repeat as
        much as 30-min ones do). The draws themselves are unchanged, so a city differs from its
        counterpart without the scaling only in its noise level.
        """
        uniform = lambda key: float(rng.uniform(*getattr(self, key)))  # noqa: E731
        log_uniform = lambda key: float(np.exp(rng.uniform(*np.log(getattr(self, key)))))  # noqa: E731
        rows, cols = self.grid[rng.integers(len(self.grid))]
        n_peaks = int(rng.integers(self.n_extra_peaks[0], self.n_extra_peaks[1] + 1))
        peaks = tuple(
            (float(rng.uniform(6.0, 23.0)), uniform("peak_width_hours"), uniform("peak_amplitude"))
            for _ in range(n_peaks)
        )
        days = int(rng.integers(self.days[0], self.days[1] + 1))
        slots_per_day = int(self.slots_per_day[rng.integers(len(self.slots_per_day))])
        start_day, water, noise = int(rng.integers(7)), uniform("water_fraction"), uniform("noise")
        if self.noise_reference_minutes is not None:
            noise *= float(np.sqrt(self.noise_reference_minutes / max(self.noise_reference_minutes, 1440 / slots_per_day)))
        return SyntheticCityConfig(
            name=name, rows=int(rows), cols=int(cols), days=days,
            slots_per_day=slots_per_day,
            start_day_of_week=start_day, split_fractions=self.split_fractions,
            water_fraction=water, noise=noise,
            people_tau_hours=log_uniform("people_tau_hours"), volume_tau_hours=log_uniform("volume_tau_hours"),
            event_rate=uniform("event_rate"), event_scale=log_uniform("event_scale"),
            day_contrast=log_uniform("day_contrast"), peak_shift_hours=uniform("peak_shift_hours"),
            extra_peaks=peaks, weekend_shape=uniform("weekend_shape"), weekend_level=uniform("weekend_level"),
            level_sigma=uniform("level_sigma"), hotspot_share=uniform("hotspot_share"),
            hotspot_tail=uniform("hotspot_tail"), level_shift_prob=uniform("level_shift_prob"),
            level_shift_sigma=uniform("level_shift_sigma"), zero_cell_share=uniform("zero_cell_share"),
            intermittent_share=uniform("intermittent_share"), intermittent_duty=uniform("intermittent_duty"),
            intermittent_hours=log_uniform("intermittent_hours"), seed=int(rng.integers(2**31)),
        )


DEFAULT_PRIOR = SyntheticPrior(noise_reference_minutes=30.0)
#: the first ranges, whose days repeat far less than the real cities' (names 'synthetic-prior-v1...')
FIRST_PRIOR = SyntheticPrior(noise=(0.1, 0.6), event_rate=(0.0, 4.0), event_scale=(0.5, 4.0))
#: the narrowed ranges with the same noise at every granularity (names 'synthetic-prior-v2...')
SECOND_PRIOR = SyntheticPrior()
#: the version suffix of a family's name -> its ranges
PRIOR_VERSIONS = {"": DEFAULT_PRIOR, "-v1": FIRST_PRIOR, "-v2": SECOND_PRIOR}
_VERSION = "|".join(re.escape(v) for v in PRIOR_VERSIONS if v)
_NAME = re.compile(
    rf"^synthetic-prior(?P<version>{_VERSION})?(?:@(?P<seed>\d+))?(?::(?P<a>\d+)(?:-(?P<b>\d+))?|#(?P<k>\d+))$")


def member_name(k: int, seed: int = 0, family: str = PRIOR_FAMILY) -> str:
    """The name of city k of the prior with seed `seed`: 'synthetic-prior@<seed>#<k>'."""
    return f"{family}@{int(seed)}#{int(k)}"


def prior_config(k: int, seed: int = 0, prior: SyntheticPrior = DEFAULT_PRIOR,
                 family: str = PRIOR_FAMILY) -> SyntheticCityConfig:
    """The configuration of city k: `prior.sample_config` with the generator seeded by (seed, k)."""
    if k < 0 or seed < 0:
        raise ValueError(f"prior city index and seed must be >= 0, got k={k}, seed={seed}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(k), 0x5EED]))
    return prior.sample_config(rng, name=member_name(k, seed, family))


def prior_city(k: int, seed: int = 0, prior: SyntheticPrior = DEFAULT_PRIOR, family: str = PRIOR_FAMILY) -> City:
    """City k of the prior with seed `seed` (deterministic); `meta` names its family and (seed, k)."""
    city = make_city(prior_config(k, seed, prior, family))
    city.meta.update(family=family, prior={"seed": int(seed), "k": int(k)})
    return city


def parse_prior_name(name: str) -> tuple[int, range] | None:
    """(seed, indices) named by a prior name (module docstring), or None when `name` is not one."""
    m = _NAME.match(name)
    if m is None:
        return None
    seed = int(m["seed"] or 0)
    if m["k"] is not None:
        return seed, range(int(m["k"]), int(m["k"]) + 1)
    start, stop = (0, int(m["a"])) if m["b"] is None else (int(m["a"]), int(m["b"]))
    if stop <= start:
        raise ValueError(f"{name!r} names no city: use synthetic-prior:N with N >= 1 or :A-B with B > A")
    return seed, range(start, stop)


def prior_cities(name: str, prior: SyntheticPrior | None = None) -> list[City]:
    """The cities named by a prior name such as 'synthetic-prior:64' (ValueError for other names), drawn
    from `prior` (default: the ranges the name's version stands for, `PRIOR_VERSIONS`)."""
    parsed = parse_prior_name(name)
    if parsed is None:
        raise ValueError(
            f"{name!r} is not a prior name: use synthetic-prior:N, synthetic-prior:A-B, synthetic-prior@S:N "
            "or synthetic-prior@S#K"
        )
    seed, indices = parsed
    version = _NAME.match(name)["version"] or ""
    prior = PRIOR_VERSIONS[version] if prior is None else prior
    return [prior_city(k, seed, prior, PRIOR_FAMILY + version) for k in indices]
