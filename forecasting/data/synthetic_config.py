"""Configuration of the seeded synthetic cities: `SyntheticCityConfig` and the named presets.

A `SyntheticCityConfig` holds everything that defines a synthetic city (grid, regions, calendar,
splits, POI categories, event rate, noise, seed, geometry, and the variation knobs drawn by
`forecasting.data.synthetic_prior`) and is validated on construction. Every variation knob defaults to
the value that reproduces the presets exactly (the generator skips a stage whose knobs are at default).
`SYNTHETIC_PRESETS` names the configurations behind `city_from_name` and the scenario files' `city.preset`.

The model itself (the steps the comments below refer to) is in the docstrings of
`forecasting.data.synthetic` and the modules it lists. rows/cols that are not multiples of the
region size are cropped to whole regions by `make_city`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------------------
# Configuration and presets
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticCityConfig:
    """Everything that defines a synthetic city; validated on construction (ValueError says what to fix)."""

    name: str = "synthetic"
    rows: int = 16  # grid cells; cropped to whole regions (see module docstring)
    cols: int = 16
    region_size: tuple[int, int] = (4, 4)  # cells per region (the real data's 4 x 4 patches)
    days: int = 14
    slots_per_day: int = 48  # must divide 1440 minutes: 144 (10 min), 96, 48, 24, ...
    start_day_of_week: int = 0  # 0 = Monday
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # regions -> train/val/test
    n_poi_categories: int = 15  # the first n of POI_CATEGORIES; more adds generic categories
    event_rate: float = 0.5  # expected events per region per week
    noise: float = 0.25  # sigma: scale of the multiplicative log-noise (step 9); 0 = noise-free
    seed: int = 0
    cell_size: float = 500.0  # metres
    water_fraction: float = 0.08  # share of cells under the river (no people, zero traffic)
    # -- variation (synthetic_profiles.reshape_rates, synthetic_variation; defaults = the presets) --
    day_contrast: float = 1.0  # gamma: rates r -> m (r / m)^gamma, night/day ratio ~ (preset's)^gamma
    peak_shift_hours: float = 0.0  # every daily profile runs this many hours later
    extra_peaks: tuple[tuple[float, float, float], ...] = ()  # (centre h, width h, amplitude) bumps
    weekend_shape: float = 1.0  # 1: weekend profiles as designed, 0: weekends shaped like weekdays
    weekend_level: float = 0.0  # log multiplier of the weekend days' rates (< 0: quieter weekends)
    level_sigma: float = 1.0  # log-std of the heavy-tailed cell intensity M (layout step 3)
    hotspot_share: float = 0.03  # share of cells with a Pareto hotspot multiplier
    hotspot_tail: float = 1.5  # Pareto index of the hotspot multiplier (lower = heavier tail)
    event_scale: float = 1.0  # multiplies the peak extra users of every event
    people_tau_hours: float = 3.0  # correlation time of the people-present AR(1) noise
    volume_tau_hours: float = 2.0  # correlation time of the per-user volume AR(1) noise
    level_shift_prob: float = 0.0  # chance of one level step for each region and, apart, each cell
    level_shift_sigma: float = 0.7  # log-std of a level step's factor
    zero_cell_share: float = 0.0  # share of kept cells with zero traffic and users throughout (water counts)
    intermittent_share: float = 0.0  # share of the other cells with traffic only in sporadic spells
    intermittent_duty: float = 0.2  # mean share of slots in a spell
    intermittent_hours: float = 1.0  # mean length of a spell

    def __post_init__(self) -> None:
        integers = ("rows", "cols", "days", "slots_per_day", "start_day_of_week", "n_poi_categories", "seed")
        for name in integers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        object.__setattr__(self, "region_size", tuple(int(v) for v in self.region_size))
        object.__setattr__(self, "split_fractions", tuple(float(v) for v in self.split_fractions))
        rh_rw = self.region_size
        if len(rh_rw) != 2 or min(rh_rw) < 1:
            raise ValueError(f"region_size must be two positive ints (rows, cols), got {self.region_size}")
        rh, rw = rh_rw
        if self.rows < rh or self.cols < rw:
            raise ValueError(
                f"grid {self.rows}x{self.cols} is smaller than one region {rh}x{rw}: "
                "raise rows/cols or lower region_size"
            )
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        if self.slots_per_day < 1 or 1440 % self.slots_per_day:
            raise ValueError(
                f"slots_per_day={self.slots_per_day} must divide 1440 minutes "
                "(e.g. 144 = 10 min, 96 = 15 min, 48 = 30 min, 24 = 1 h)"
            )
        if not 0 <= self.start_day_of_week <= 6:
            raise ValueError(f"start_day_of_week must be 0 (Monday) .. 6, got {self.start_day_of_week}")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or fr[0] <= 0 or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(
                f"split_fractions {fr} must be three non-negative (train, val, test) shares summing to 1 "
                "with train > 0"
            )
        if self.n_poi_categories < 1:
            raise ValueError(f"n_poi_categories must be >= 1, got {self.n_poi_categories}")
        if self.event_rate < 0 or self.noise < 0:
            raise ValueError(f"event_rate and noise must be >= 0, got {self.event_rate}, {self.noise}")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be > 0 metres, got {self.cell_size}")
        if not 0 <= self.water_fraction <= 0.5:
            raise ValueError(f"water_fraction must lie in [0, 0.5], got {self.water_fraction}")
        self._check_variation()

    def _check_variation(self) -> None:
        """The variation knobs: positive scales, shares in [0, 1], peaks as (centre, width, amplitude)."""
        object.__setattr__(self, "extra_peaks", tuple(tuple(float(v) for v in p) for p in self.extra_peaks))
        positive = ("day_contrast", "level_sigma", "hotspot_tail", "event_scale", "people_tau_hours",
                    "volume_tau_hours", "intermittent_hours")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        shares = ("hotspot_share", "level_shift_prob", "zero_cell_share", "intermittent_share")
        for name in shares:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 < self.intermittent_duty < 1:
            raise ValueError(f"intermittent_duty must lie in (0, 1), got {self.intermittent_duty}")
        if self.weekend_shape < 0 or self.level_shift_sigma < 0:
            raise ValueError(f"weekend_shape and level_shift_sigma must be >= 0, got {self.weekend_shape}, "
                             f"{self.level_shift_sigma}")
        for peak in self.extra_peaks:
            if len(peak) != 3 or not peak[1] > 0 or peak[2] < 0:
                raise ValueError(f"extra_peaks holds (centre hours, width hours > 0, amplitude >= 0), got {peak}")

    @property
    def n_region_rows(self) -> int:
        return self.rows // self.region_size[0]

    @property
    def n_region_cols(self) -> int:
        return self.cols // self.region_size[1]

    @property
    def n_regions(self) -> int:
        return self.n_region_rows * self.n_region_cols


#: the fields a synthetic city's geography (land use, POI, residents) and its region tiling and split
#: depend on: cities equal in these cover the same areas region by region, whatever their time axis
LAYOUT_FIELDS = ("seed", "rows", "cols", "region_size", "split_fractions", "cell_size", "water_fraction",
                 "n_poi_categories", "level_sigma", "hotspot_share", "hotspot_tail")


def geography_key(config: SyntheticCityConfig) -> str:
    """A name for the geography of `config`: equal for cities that share their areas (`LAYOUT_FIELDS`)."""
    return "synthetic:" + ",".join(f"{f}={getattr(config, f)!r}" for f in LAYOUT_FIELDS)


SYNTHETIC_PRESETS: dict[str, SyntheticCityConfig] = {
    "synthetic": SyntheticCityConfig(name="synthetic"),
    "synthetic-small": SyntheticCityConfig(name="synthetic-small", rows=8, cols=8, slots_per_day=24),
    "synthetic-15min": SyntheticCityConfig(name="synthetic-15min", slots_per_day=96),
    "synthetic-10min": SyntheticCityConfig(name="synthetic-10min", slots_per_day=144),
    "synthetic-large": SyntheticCityConfig(name="synthetic-large", rows=64, cols=64),
}
