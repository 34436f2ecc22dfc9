"""The city: `City` (traffic/users, POI, calendar, splits, geometry), its checks, and a few-shot prefix.

One in-memory representation (`City`) serves real cities (the `.npz` files of `../shared/data`, the
paper's release JSON, long tables) and the synthetic generator alike:

    traffic, users   (regions, time, H, W)   raw units (float32, >= 0)
    poi              (regions, categories, H, W)   static counts
    day_of_week      (regions, time)   0..6
    slot_of_day      (regions, time)   0..slots_per_day-1
    split            (regions,)        'train' | 'val' | 'test'

A *region* is an H x W block of grid cells with its own continuous series (the real data's 4 x 4
patches); splits are by region, so val/test regions are areas never seen in training. Any H x W works:
the forecaster cuts a region of another size into overlapping 4 x 4 tiles inside each of its windows
(`forecasting.tiling`), so tiles never mix regions or splits and every output stays per region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from .covariates import Covariates
from .errors import DataError

WINDOW = 64
SPLITS = ("train", "val", "test")


def split_counts(n_regions: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """(n_val, n_test) for `n_regions` regions split by (train, val, test) `fractions`.

    n_test = round(f_test R) and n_val = round(f_val R), each at least 1 when its share is positive and
    there are enough regions (test needs R >= 2, val R >= 3), then lowered (val first while it is the
    larger) until at least one region is left for training. One region: train only.
    """
    f_train, f_val, f_test = fractions
    if min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    R = int(n_regions)
    n_test = max(1, round(f_test * R)) if R >= 2 and f_test > 0 else 0
    n_val = max(1, round(f_val * R)) if R >= 3 and f_val > 0 else 0
    while n_test + n_val > R - 1 and n_test + n_val > 0:  # keep one region for training
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def assign_splits(
    n_regions: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Seeded split labels for `n_regions` regions: the one rule of the synthetic and long-table cities.

    Counts from `split_counts`; the labels ["train"] * n_train + ["val"] * n_val + ["test"] * n_test are
    then shuffled by a permutation of `seed` (an int for `np.random.default_rng`, or a generator).
    """
    n_val, n_test = split_counts(n_regions, fractions)
    R = int(n_regions)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    labels = np.array(["train"] * (R - n_val - n_test) + ["val"] * n_val + ["test"] * n_test, dtype="<U5")
    return labels[rng.permutation(R)]


@dataclass
class City:
    """A city as regions of H x W cells with traffic (and optional users/POI) in raw units."""

    name: str
    traffic: np.ndarray  # (R, T, H, W) raw traffic volume
    day_of_week: np.ndarray  # (R, T) int
    slot_of_day: np.ndarray  # (R, T) int
    slots_per_day: int
    split: np.ndarray  # (R,) str
    users: np.ndarray | None = None  # (R, T, H, W) connected users
    poi: np.ndarray | None = None  # (R, C, H, W) static POI counts
    residents: np.ndarray | None = None  # (R, H, W) resident population (synthetic or user layer)
    cell_size: float = 500.0  # side of a grid cell in CRS units (metres by default)
    region_origin: np.ndarray | None = None  # (R, 2) x, y of each region's top-left corner
    crs: str | None = None
    poi_categories: list[str] | None = None
    cell_ids: np.ndarray | None = None  # (R, H, W) object/str ids when loaded from a long table
    start_time: np.ndarray | None = None  # (R,) datetime64 of each region's first step, if known
    meta: dict = field(default_factory=dict)
    cell_valid: np.ndarray | None = None  # (R, H, W) bool: False = padding / cell absent; None = all valid
    exog: dict[str, np.ndarray] | None = None  # name -> (R, T, H, W) further dynamic covariates (any sign)
    covariates: Covariates | None = None  # availability of users/POI/exog (None: users hist, POI stat)

    def __post_init__(self) -> None:
        self.traffic = np.asarray(self.traffic, dtype=np.float32)
        self.day_of_week = np.asarray(self.day_of_week).astype(np.int64)
        self.slot_of_day = np.asarray(self.slot_of_day).astype(np.int64)
        self.split = np.asarray(self.split).astype(str)
        self.slots_per_day = int(self.slots_per_day)
        if self.users is not None:
            self.users = np.asarray(self.users, dtype=np.float32)
        if self.poi is not None:
            self.poi = np.asarray(self.poi, dtype=np.float32)
        if self.residents is not None:
            self.residents = np.asarray(self.residents, dtype=np.float32)
        if self.cell_valid is not None:
            self.cell_valid = np.asarray(self.cell_valid, dtype=bool)
        if self.exog is not None:
            self.exog = {str(k): np.asarray(v, dtype=np.float32) for k, v in self.exog.items()}
        validate_city(self)

    # -- shape helpers -------------------------------------------------------------------------------
    @property
    def n_regions(self) -> int:
        return self.traffic.shape[0]

    @property
    def n_steps(self) -> int:
        return self.traffic.shape[1]

    @property
    def grid(self) -> tuple[int, int]:
        return self.traffic.shape[2], self.traffic.shape[3]

    @property
    def geography(self) -> str:
        """Which areas the regions cover: equal for cities whose region k is the same area (a synthetic city
        at 30 and at 15 minutes); the city's name unless its loader says otherwise (`meta["geography"]`)."""
        return str(self.meta.get("geography", self.name))

    @property
    def poi_schema(self) -> tuple[str, ...] | None:
        """The names of the POI layers as windows carry them (`Windows.poi_categories`); None without POI or names."""
        return None if self.poi is None or self.poi_categories is None else tuple(self.poi_categories)

    @property
    def minutes_per_slot(self) -> float:
        return 24 * 60 / self.slots_per_day

    def regions(self, split: str | Sequence[str]) -> np.ndarray:
        """Indices of the regions in `split` ('train', 'val', 'test' or a list of them)."""
        wanted = [split] if isinstance(split, str) else list(split)
        for s in wanted:
            if s not in SPLITS:
                raise DataError(f"unknown split {s!r}: use one of {SPLITS}")
        return np.flatnonzero(np.isin(self.split, wanted))

    def subset(self, regions: Iterable[int]) -> "City":
        """A city holding only the given regions (in that order)."""
        idx = np.asarray(list(regions), dtype=int)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            traffic=self.traffic[idx],
            users=pick(self.users),
            poi=pick(self.poi),
            residents=pick(self.residents),
            day_of_week=self.day_of_week[idx],
            slot_of_day=self.slot_of_day[idx],
            split=self.split[idx],
            region_origin=pick(self.region_origin),
            cell_ids=pick(self.cell_ids),
            start_time=pick(self.start_time),
            cell_valid=pick(self.cell_valid),
            exog=None if self.exog is None else {k: v[idx] for k, v in self.exog.items()},
            meta={**self.meta, "geography": f"{self.geography}[{','.join(map(str, idx.tolist()))}]"},
        )

    def head(self, n_steps: int) -> "City":
        """The first `n_steps` of every region (a city observed only since its first step)."""
        if not 1 <= n_steps <= self.n_steps:
            raise DataError(f"{self.name}: head needs 1..{self.n_steps} steps, got {n_steps}")
        cut = lambda a: None if a is None else a[:, :n_steps]  # noqa: E731
        return replace(
            self,
            traffic=self.traffic[:, :n_steps],
            users=cut(self.users),
            exog=None if self.exog is None else {k: v[:, :n_steps] for k, v in self.exog.items()},
            day_of_week=self.day_of_week[:, :n_steps],
            slot_of_day=self.slot_of_day[:, :n_steps],
            meta=dict(self.meta),
        )


def few_shot_city(city: City, fraction: float, length: int = WINDOW) -> City:
    """The city as seen after its first `fraction` of training windows (few-shot transfer).

    With T steps there are n = T - length + 1 stride-1 windows per region; the few-shot city keeps the
    first k = max(1, ceil(fraction * n)) window starts, i.e. its first k + length - 1 steps, for every
    region. A time prefix rather than a random subset of windows: overlapping stride-1 windows drawn at
    random would cover almost the whole record even at 5%, which is not few-shot at all.
    """
    if not 0 < fraction <= 1:
        raise DataError(f"few-shot fraction must lie in (0, 1], got {fraction}")
    n = city.n_steps - length + 1
    if n < 1:
        raise DataError(f"{city.name}: {city.n_steps} steps hold no {length}-step window")
    if fraction == 1:
        return city
    k = max(1, math.ceil(fraction * n - 1e-9))
    return city.head(k + length - 1)


def validate_city(city: City) -> None:
    """Raise `DataError` naming the problem if the arrays of `city` are inconsistent or invalid."""
    tr = city.traffic
    if tr.ndim != 4:
        raise DataError(f"{city.name}: traffic must be (regions, time, H, W), got shape {tr.shape}")
    R, T, H, W = tr.shape
    if R == 0 or T == 0 or H == 0 or W == 0:
        raise DataError(f"{city.name}: traffic is empty (shape {tr.shape})")
    _check_values(tr, f"{city.name}: traffic")
    if city.users is not None:
        if city.users.shape != tr.shape:
            raise DataError(
                f"{city.name}: users shape {city.users.shape} does not match traffic {tr.shape}"
            )
        _check_values(city.users, f"{city.name}: users")
    for name, values in (city.exog or {}).items():
        if values.shape != tr.shape:
            raise DataError(f"{city.name}: covariate {name!r} shape {values.shape} does not match traffic {tr.shape}")
        if not np.all(np.isfinite(values)):
            raise DataError(f"{city.name}: covariate {name!r} has {int((~np.isfinite(values)).sum())} NaN/inf values")
    if city.covariates is not None:
        _check_declared(city)
    if city.poi is not None:
        if city.poi.ndim != 4 or city.poi.shape[0] != R or city.poi.shape[2:] != (H, W):
            raise DataError(
                f"{city.name}: poi must be (regions={R}, categories, H={H}, W={W}), "
                f"got {city.poi.shape}: the POI grid does not match the traffic grid"
            )
        _check_values(city.poi, f"{city.name}: poi")
    if city.residents is not None and city.residents.shape != (R, H, W):
        raise DataError(f"{city.name}: residents must be {(R, H, W)}, got {city.residents.shape}")
    for name in ("day_of_week", "slot_of_day"):
        a = getattr(city, name)
        if a.shape != (R, T):
            raise DataError(f"{city.name}: {name} must be (regions, time) = {(R, T)}, got {a.shape}")
    if city.slots_per_day < 1 or 24 * 60 % city.slots_per_day:
        raise DataError(
            f"{city.name}: slots_per_day={city.slots_per_day} must divide a day into whole minutes"
        )
    if city.day_of_week.min() < 0 or city.day_of_week.max() > 6:
        raise DataError(f"{city.name}: day_of_week must lie in 0..6")
    if city.slot_of_day.min() < 0 or city.slot_of_day.max() >= city.slots_per_day:
        raise DataError(f"{city.name}: slot_of_day must lie in 0..{city.slots_per_day - 1}")
    # consecutive steps must advance by exactly one slot (regular time steps)
    abs_slot = city.day_of_week * city.slots_per_day + city.slot_of_day
    step = np.diff(abs_slot, axis=1) % (7 * city.slots_per_day)
    if T > 1 and np.any(step != 1):
        r, t = np.argwhere(step != 1)[0]
        raise DataError(
            f"{city.name}: irregular time steps in region {r} between steps {t} and {t + 1}: "
            "every step must advance by exactly one slot (resample or fill gaps first)"
        )
    if city.split.shape != (R,):
        raise DataError(f"{city.name}: split must hold one label per region, got {city.split.shape}")
    bad = set(map(str, city.split)) - set(SPLITS)
    if bad:
        raise DataError(f"{city.name}: unknown split labels {sorted(bad)}: use {SPLITS}")
    if city.region_origin is not None and np.shape(city.region_origin) != (R, 2):
        raise DataError(f"{city.name}: region_origin must be (regions, 2), got {np.shape(city.region_origin)}")
    if city.cell_valid is not None and city.cell_valid.shape != (R, H, W):
        raise DataError(f"{city.name}: cell_valid must be {(R, H, W)}, got {city.cell_valid.shape}")
    if city.cell_ids is not None and np.shape(city.cell_ids) != (R, H, W):
        raise DataError(f"{city.name}: cell_ids must be {(R, H, W)}, got {np.shape(city.cell_ids)}")
    if not city.cell_size > 0:
        raise DataError(f"{city.name}: cell_size must be > 0, got {city.cell_size}")


def _check_declared(city: City) -> None:
    """Every declared dynamic covariate is a series of the city (users, or an `exog` entry)."""
    have = set(city.exog or {}) | ({"users"} if city.users is not None else set())
    missing = [n for n in city.covariates.dynamic if n not in have]
    if missing:
        raise DataError(f"{city.name}: covariates {missing} are declared (hist_exog/futr_exog) but the city has no "
                        f"such series (it has {sorted(have) or 'none'})")


def _check_values(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        n = int((~np.isfinite(a)).sum())
        raise DataError(f"{what} has {n} NaN/inf values: fill or drop them before loading")
    if np.any(a < 0):
        n = int((a < 0).sum())
        raise DataError(f"{what} has {n} negative values: traffic, users and POI must be >= 0")
