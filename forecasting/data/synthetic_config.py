"""Configuration of the seeded synthetic cities: `SyntheticCityConfig` and the named presets.

A `SyntheticCityConfig` holds everything that defines a synthetic city (grid, regions, calendar,
splits, POI categories, event rate, noise, seed, geometry) and is validated on construction.
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

    @property
    def n_region_rows(self) -> int:
        return self.rows // self.region_size[0]

    @property
    def n_region_cols(self) -> int:
        return self.cols // self.region_size[1]

    @property
    def n_regions(self) -> int:
        return self.n_region_rows * self.n_region_cols


SYNTHETIC_PRESETS: dict[str, SyntheticCityConfig] = {
    "synthetic": SyntheticCityConfig(name="synthetic"),
    "synthetic-small": SyntheticCityConfig(name="synthetic-small", rows=8, cols=8, slots_per_day=24),
    "synthetic-15min": SyntheticCityConfig(name="synthetic-15min", slots_per_day=96),
    "synthetic-10min": SyntheticCityConfig(name="synthetic-10min", slots_per_day=144),
    "synthetic-large": SyntheticCityConfig(name="synthetic-large", rows=64, cols=64),
}
