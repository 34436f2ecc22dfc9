"""City tensors <-> 64-step windows, the paper's per-city scaler, and loaders of every supported format.

One in-memory representation (`City`) serves real cities (the `.npz` files of `../shared/data`, the
paper's release JSON, long tables) and the synthetic generator alike:

    traffic, users   (regions, time, H, W)   raw units (float32, >= 0)
    poi              (regions, categories, H, W)   static counts
    day_of_week      (regions, time)   0..6
    slot_of_day      (regions, time)   0..slots_per_day-1
    split            (regions,)        'train' | 'val' | 'test'

A *region* is an H x W block of grid cells with its own continuous series (the real data's 4 x 4
patches); splits are by region, so val/test regions are areas never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

WINDOW = 64
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to fix."""


# ----------------------------------------------------------------------------------------------------
# The city
# ----------------------------------------------------------------------------------------------------


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
            meta=dict(self.meta),
        )


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
    bad = set(city.split) - set(SPLITS)
    if bad:
        raise DataError(f"{city.name}: unknown split labels {sorted(bad)}: use {SPLITS}")
    if city.region_origin is not None and np.shape(city.region_origin) != (R, 2):
        raise DataError(f"{city.name}: region_origin must be (regions, 2), got {np.shape(city.region_origin)}")


def _check_values(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        n = int((~np.isfinite(a)).sum())
        raise DataError(f"{what} has {n} NaN/inf values: fill or drop them before loading")
    if np.any(a < 0):
        n = int((a < 0).sum())
        raise DataError(f"{what} has {n} negative values: traffic, users and POI must be >= 0")


# ----------------------------------------------------------------------------------------------------
# Normalisation (paper: clip at the 99.99th percentile of the training windows, divide by it)
# ----------------------------------------------------------------------------------------------------


def window_multiplicity(n_steps: int, length: int = WINDOW) -> np.ndarray:
    """How many stride-1 windows of `length` contain each step t of a series of `n_steps`.

    count(t) = min(t + 1, length, n_steps - t, n_steps - length + 1), zero if the series is too short.
    """
    n_windows = n_steps - length + 1
    if n_windows <= 0:
        return np.zeros(n_steps, dtype=np.int64)
    t = np.arange(n_steps)
    return np.minimum.reduce([t + 1, np.full(n_steps, length), n_steps - t, np.full(n_steps, n_windows)])


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Percentile `q` (0..100) of `values` each repeated `weights` times, with numpy's 'linear' rule.

    Equals `np.percentile(np.repeat(values, weights), q)` without materialising the repetition.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.int64).ravel()
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        raise DataError("no values to take a percentile of (series shorter than one window?)")
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    ends = np.cumsum(weights)  # repeated index of the last copy of each value is ends - 1
    pos = q / 100.0 * (ends[-1] - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    v_lo = values[np.searchsorted(ends, lo, side="right")]
    v_hi = values[np.searchsorted(ends, hi, side="right")]
    return float(v_lo + (v_hi - v_lo) * (pos - lo))


@dataclass(frozen=True)
class Scaler:
    """Per-city scaling x -> clip(x / scale, 0, 1) and its inverse back to raw units."""

    scale: float

    @classmethod
    def fit(cls, series: np.ndarray, length: int = WINDOW, q: float = 99.99) -> "Scaler":
        """Fit on (R, T, H, W) training series: `q`-th percentile of all stride-1 window values."""
        series = np.asarray(series)
        R, T = series.shape[:2]
        weights = np.broadcast_to(window_multiplicity(T, length)[None, :, None, None], series.shape)
        if T < length:
            raise DataError(f"training series of {T} steps are shorter than one {length}-step window")
        scale = weighted_percentile(series, weights, q)
        if not scale > 0:
            raise DataError("the training series are all zero: cannot fit a scale")
        return cls(scale)

    def transform(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        y = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
        return np.clip(y, 0.0, 1.0) if clip else y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) * self.scale


@dataclass(frozen=True)
class CityScalers:
    """Scalers of one city: traffic always, users when the city has them."""

    traffic: Scaler
    users: Scaler | None = None

    @classmethod
    def fit(cls, city: City, length: int = WINDOW) -> "CityScalers":
        train = city.regions("train")
        if train.size == 0:
            raise DataError(f"{city.name}: no 'train' regions to fit the scaler on")
        users = None if city.users is None else Scaler.fit(city.users[train], length)
        return cls(Scaler.fit(city.traffic[train], length), users)


# ----------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------


@dataclass
class Windows:
    """A batch of N windows of `length` steps cut from a city, normalised to [0, 1].

    traffic/users (N, L, H, W); poi (N, C, H, W); day_of_week/slot_of_day (N, L); region/start (N,).
    """

    city: str
    traffic: np.ndarray
    day_of_week: np.ndarray
    slot_of_day: np.ndarray
    slots_per_day: int
    region: np.ndarray
    start: np.ndarray
    users: np.ndarray | None = None
    poi: np.ndarray | None = None
    scalers: CityScalers | None = None

    def __len__(self) -> int:
        return self.traffic.shape[0]

    @property
    def time_of_day(self) -> np.ndarray:
        """Slot of day as a fraction of the day in [0, 1): granularity-free time feature. (N, L)"""
        return self.slot_of_day / float(self.slots_per_day)

    def take(self, idx: np.ndarray | slice) -> "Windows":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            traffic=self.traffic[idx],
            day_of_week=self.day_of_week[idx],
            slot_of_day=self.slot_of_day[idx],
            region=self.region[idx],
            start=self.start[idx],
            users=pick(self.users),
            poi=pick(self.poi),
        )


def window_starts(n_steps: int, length: int = WINDOW, stride: int = 1) -> np.ndarray:
    """Start indices of the windows of `length` with `stride` in a series of `n_steps`."""
    if stride < 1:
        raise DataError(f"stride must be >= 1, got {stride}")
    if n_steps < length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_steps - length + 1, stride, dtype=np.int64)


def make_windows(
    city: City,
    split: str | Sequence[str] | None = None,
    regions: Sequence[int] | None = None,
    length: int = WINDOW,
    stride: int = 1,
    scalers: CityScalers | None = None,
) -> Windows:
    """Cut normalised windows of `length` steps (every `stride` steps) from the chosen regions.

    Pick regions by `split` or explicit indices (default: all). `scalers` default to those fitted on
    the city's training regions.
    """
    if regions is None:
        regions = city.regions(split) if split is not None else np.arange(city.n_regions)
    regions = np.asarray(regions, dtype=int)
    scalers = scalers or CityScalers.fit(city, length)
    starts = window_starts(city.n_steps, length, stride)
    if starts.size == 0:
        raise DataError(f"{city.name}: series of {city.n_steps} steps are shorter than a {length}-step window")
    reg = np.repeat(regions, starts.size)
    st = np.tile(starts, regions.size)
    t_idx = st[:, None] + np.arange(length)[None, :]  # (N, L)

    def cut(series: np.ndarray) -> np.ndarray:
        return series[reg[:, None], t_idx]  # (N, L, ...) advanced indexing

    users = None
    if city.users is not None and scalers.users is not None:
        users = scalers.users.transform(cut(city.users))
    return Windows(
        city=city.name,
        traffic=scalers.traffic.transform(cut(city.traffic)),
        day_of_week=cut(city.day_of_week),
        slot_of_day=cut(city.slot_of_day),
        slots_per_day=city.slots_per_day,
        region=reg,
        start=st,
        users=users,
        poi=None if city.poi is None else city.poi[reg],
        scalers=scalers,
    )


# ----------------------------------------------------------------------------------------------------
# Loader 1: the .npz files of ../shared/data
# ----------------------------------------------------------------------------------------------------

NPZ_KEYS = ("traffic", "users", "poi", "day_of_week", "slot_of_day", "split", "slots_per_day")


def default_data_dir() -> Path:
    """`$UOMO_DATA_DIR` if set, else `../shared/data` next to the repository root."""
    import os

    env = os.environ.get("UOMO_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def load_npz(path: str | Path, name: str | None = None) -> City:
    """Load a city from an `.npz` file in the format of `../shared/data/README.md`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"city file {path} does not exist")
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - report any reader failure as bad input
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc
    missing = [k for k in ("traffic", "day_of_week", "slot_of_day", "split", "slots_per_day") if k not in arrays.files]
    if missing:
        raise DataError(f"{path} lacks the arrays {missing} (expected keys: {NPZ_KEYS})")
    get = lambda k: arrays[k] if k in arrays.files else None  # noqa: E731
    return City(
        name=name or path.stem,
        traffic=arrays["traffic"],
        users=get("users"),
        poi=get("poi"),
        day_of_week=arrays["day_of_week"],
        slot_of_day=arrays["slot_of_day"],
        slots_per_day=int(arrays["slots_per_day"]),
        split=arrays["split"],
        meta={"source": str(path)},
    )


def available_real_cities(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Name -> path of the real-city `.npz` files present in `data_dir` (may be empty)."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.glob("*.npz"))}
