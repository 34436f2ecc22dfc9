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

Sections: the city and its validation; normalisation (`Scaler`); windows; loaders (1: `.npz`,
2: the paper's release JSON, 3: long CSV/Parquet tables); geometry (`to_geodataframe`,
`to_long_table`, `from_geodataframe`); and `load_city`, one entry point for every source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

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
    cell_valid: np.ndarray | None = None  # (R, H, W) bool: False = padding / cell absent; None = all valid

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
            cell_valid=pick(self.cell_valid),
            meta=dict(self.meta),
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
    def fit(
        cls,
        series: np.ndarray,
        length: int = WINDOW,
        q: float = 99.99,
        valid: np.ndarray | None = None,
    ) -> "Scaler":
        """Fit on (R, T, H, W) training series: `q`-th percentile of all stride-1 window values.

        Each value x[r, t, h, w] counts once per stride-1 window holding step t (its multiplicity),
        so the result equals `np.percentile` over the materialised windows. `valid` (R, H, W) bool
        leaves padding cells (False) out of the percentile.
        """
        series = np.asarray(series)
        R, T = series.shape[:2]
        weights = np.broadcast_to(window_multiplicity(T, length)[None, :, None, None], series.shape)
        if valid is not None:
            weights = weights * np.asarray(valid, dtype=np.int64)[:, None, :, :]
        if T < length:
            raise DataError(f"training series of {T} steps are shorter than one {length}-step window")
        scale = weighted_percentile(series, weights, q)
        if not scale > 0:
            raise DataError("the training series are all zero: cannot fit a scale")
        return cls(scale)

    def transform(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        """x -> x / scale, clipped to [0, 1] unless `clip=False`. float32."""
        y = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
        return np.clip(y, 0.0, 1.0) if clip else y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """y -> y * scale in raw units (float64); exact inverse of `transform` below the scale."""
        return np.asarray(y, dtype=np.float64) * self.scale


@dataclass(frozen=True)
class CityScalers:
    """Scalers of one city: traffic always, users when the city has them."""

    traffic: Scaler
    users: Scaler | None = None

    @classmethod
    def fit(cls, city: City, length: int = WINDOW) -> "CityScalers":
        """Fit on the city's 'train' regions (padding cells of `cell_valid` left out)."""
        train = city.regions("train")
        if train.size == 0:
            raise DataError(f"{city.name}: no 'train' regions to fit the scaler on")
        valid = None if city.cell_valid is None else city.cell_valid[train]
        users = None if city.users is None else Scaler.fit(city.users[train], length, valid=valid)
        return cls(Scaler.fit(city.traffic[train], length, valid=valid), users)


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
    valid: np.ndarray | None = None  # (N, H, W) False at padded/absent cells; None = all valid

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
            valid=pick(self.valid),
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
        valid=None if city.cell_valid is None else city.cell_valid[reg],
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
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: _npz_array(npz, k, path) for k in npz.files}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any reader failure as bad input
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc
    missing = [k for k in ("traffic", "day_of_week", "slot_of_day", "split", "slots_per_day") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the arrays {missing} (expected keys: {NPZ_KEYS})")
    return City(
        name=name or path.stem,
        traffic=arrays["traffic"],
        users=arrays.get("users"),
        poi=arrays.get("poi"),
        day_of_week=arrays["day_of_week"],
        slot_of_day=arrays["slot_of_day"],
        slots_per_day=int(arrays["slots_per_day"]),
        split=arrays["split"],
        meta={"source": str(path)},
    )


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    """One array of an .npz, refusing (never unpickling) one that holds Python objects."""
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(
            f"{path}: array {key!r} holds pickled Python objects (an object array), which are refused because "
            "loading them could run code; store plain numeric arrays (e.g. np.asarray(values, dtype=float))"
        ) from None


def available_real_cities(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Name -> path of the real-city `.npz` files present in `data_dir` (may be empty)."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.glob("*.npz"))}


# ----------------------------------------------------------------------------------------------------
# Loader 2: the paper's public release (64-step windows in JSON), stitched back into series
# ----------------------------------------------------------------------------------------------------
#
# Layout of the release (as read by its own loading code):
#   24_<City>_short64.json   {"X_train": [1][N][64][H][W], "X_val": ..., "X_test": ...,
#                             "timestamps": {"train": [N][64][2], "val": ..., "test": ...}}
#                             each timestamp is [day_of_week, slot_of_day]
#   <City>_user64.json       {"X_train": [1][N][64][H][W], ...}        connected users, same windows
#   <City>_poi64.json        {"X_train": [N][C][H][W], ...}            POI counts of each window's region
# Windows of one region follow each other at a fixed stride (1 in the release); a new region starts
# where the chain breaks. The (N, 1, 64, H, W) order that the release's README mentions is read too.

RELEASE_SPLIT_KEYS = {"train": "X_train", "val": "X_val", "test": "X_test"}


def release_json_paths(directory: str | Path, city: str) -> dict[str, Path]:
    """Paths of the three release files of `city` (e.g. 'TrafficNJ') in `directory`."""
    d = Path(directory)
    return {
        "traffic": d / f"24_{city}_short64.json",
        "users": d / f"{city}_user64.json",
        "poi": d / f"{city}_poi64.json",
    }


def release_cities(directory: str | Path) -> list[str]:
    """City names of the release traffic files (`24_<City>_short64.json`) found in `directory`."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p.name[len("24_") : -len("_short64.json")] for p in d.glob("24_*_short64.json"))


def load_release_json(
    directory: str | Path,
    city: str,
    slots_per_day: int | None = None,
    stride: int | None = None,
    name: str | None = None,
) -> City:
    """Load a city from the paper's release JSON files and stitch its windows into continuous series.

    Per split, window k+1 *chains* to window k when it equals window k advanced by the stride s in
    traffic, users and timestamps: w[k+1][:L-s] == w[k][s:]. A break starts a new region. The stride is
    detected (the most common start-to-start advance of chaining pairs) unless given. A region of n
    windows becomes a series of (n-1)*s + L steps, and every window is checked to equal its slice.
    All regions must end up with the same length (one (R, T, H, W) array); a window that breaks the
    pattern (e.g. a corrupted one) raises a `DataError` naming the split and window index.

    `slots_per_day` is inferred from the timestamps (the slot after which the day changes) when not
    given. POI (optional file) must be identical across the windows of a region. Users are optional.
    """
    paths = release_json_paths(directory, city)
    if not paths["traffic"].exists():
        raise DataError(_missing_release_message(Path(directory), city, paths["traffic"]))
    traffic_doc = _read_json(paths["traffic"])
    users_doc = _read_json(paths["users"]) if paths["users"].exists() else None
    poi_doc = _read_json(paths["poi"]) if paths["poi"].exists() else None

    splits = [s for s, key in RELEASE_SPLIT_KEYS.items() if key in traffic_doc]
    if not splits:
        raise DataError(
            f"{paths['traffic']} holds none of the keys {list(RELEASE_SPLIT_KEYS.values())}: "
            "is it a release traffic file?"
        )
    windows = {s: _release_windows(traffic_doc[RELEASE_SPLIT_KEYS[s]], paths["traffic"], s) for s in splits}
    stamps = {s: _release_timestamps(traffic_doc, s, windows[s].shape[:2], paths["traffic"]) for s in splits}
    dow_col, slot_col = _timestamp_columns(np.concatenate([stamps[s].reshape(-1, 2) for s in splits]))
    dow = {s: stamps[s][..., dow_col] for s in splits}
    slot = {s: stamps[s][..., slot_col] for s in splits}
    spd = slots_per_day or infer_slots_per_day(
        np.concatenate([dow[s] for s in splits]), np.concatenate([slot[s] for s in splits])
    )
    users = None
    if users_doc is not None:
        users = {}
        for s in splits:
            if RELEASE_SPLIT_KEYS[s] not in users_doc:
                raise DataError(f"{paths['users']} lacks {RELEASE_SPLIT_KEYS[s]} although the traffic file has it")
            users[s] = _release_windows(users_doc[RELEASE_SPLIT_KEYS[s]], paths["users"], s)
            if users[s].shape != windows[s].shape:
                raise DataError(
                    f"split {s!r}: users windows {users[s].shape} do not match traffic windows {windows[s].shape}"
                )

    # stitch each split; chains are decided on traffic, users and timestamps together
    series = {s: {"traffic": windows[s], "day_of_week": dow[s], "slot_of_day": slot[s]} for s in splits}
    if users is not None:
        for s in splits:
            series[s]["users"] = users[s]
    chains: dict[str, list[tuple[int, int]]] = {}
    strides: dict[str, int | None] = {}
    for s in splits:
        strides[s], chains[s] = _find_chains(series[s], spd, stride)
    _check_equal_lengths(chains, strides, series)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("traffic", "users", "dow", "slot", "poi", "split")}
    for s in splits:
        st = strides[s] or windows[s].shape[1]
        poi_s = None
        if poi_doc is not None:
            poi_s = _release_poi(poi_doc, s, windows[s].shape, paths["poi"])
        for a, b in chains[s]:
            for part, key in (("traffic", "traffic"), ("dow", "day_of_week"), ("slot", "slot_of_day"), ("users", "users")):
                if key in series[s]:
                    parts[part].append(_stitch(series[s][key], a, b, st, f"split {s!r} {key}"))
            if poi_s is not None:
                differs = np.flatnonzero(np.any(poi_s[a : b + 1] != poi_s[a], axis=(1, 2, 3)))
                if differs.size:
                    raise DataError(
                        f"{paths['poi']}: split {s!r}: POI of window {a + differs[0]} differs from window {a} "
                        "of the same region: POI must be static per region"
                    )
                parts["poi"].append(poi_s[a])
            parts["split"].append(s)
    return City(
        name=name or city,
        traffic=np.stack(parts["traffic"]),
        users=np.stack(parts["users"]) if users is not None else None,
        poi=np.stack(parts["poi"]) if parts["poi"] else None,
        day_of_week=np.stack(parts["dow"]),
        slot_of_day=np.stack(parts["slot"]),
        slots_per_day=spd,
        split=np.array(parts["split"]),
        meta={
            "source": {k: str(p) for k, p in paths.items() if p.exists()},
            "stride": strides,
            "windows": {s: [(a, b) for a, b in chains[s]] for s in splits},
        },
    )


def save_release_json(city: City, directory: str | Path, release_name: str | None = None, stride: int = 1) -> dict[str, Path]:
    """Write `city` in the release layout (64-step windows every `stride` steps); returns the paths.

    The inverse of `load_release_json` (for interchange with the original code and for tests).
    """
    release_name = release_name or city.name
    paths = release_json_paths(directory, release_name)
    Path(directory).mkdir(parents=True, exist_ok=True)
    traffic_doc: dict = {"timestamps": {}}
    users_doc: dict = {}
    poi_doc: dict = {}
    starts = window_starts(city.n_steps, WINDOW, stride)
    if starts.size == 0:
        raise DataError(f"{city.name}: series of {city.n_steps} steps are shorter than one {WINDOW}-step window")
    t_idx = starts[:, None] + np.arange(WINDOW)[None, :]  # (n, L)
    for s, key in RELEASE_SPLIT_KEYS.items():
        regions = city.regions(s)
        if regions.size == 0:
            continue
        cut = lambda a: np.concatenate([a[r][t_idx] for r in regions])  # noqa: E731  (N, L, ...)
        traffic_doc[key] = [cut(city.traffic).tolist()]
        traffic_doc["timestamps"][s] = np.stack([cut(city.day_of_week), cut(city.slot_of_day)], -1).tolist()
        if city.users is not None:
            users_doc[key] = [cut(city.users).tolist()]
        if city.poi is not None:
            poi_doc[key] = np.repeat(city.poi[regions], starts.size, axis=0).tolist()
    import json

    written = {"traffic": paths["traffic"]}
    paths["traffic"].write_text(json.dumps(traffic_doc))
    if city.users is not None:
        paths["users"].write_text(json.dumps(users_doc))
        written["users"] = paths["users"]
    if city.poi is not None:
        paths["poi"].write_text(json.dumps(poi_doc))
        written["poi"] = paths["poi"]
    return written


def infer_slots_per_day(day_of_week: np.ndarray, slot_of_day: np.ndarray) -> int:
    """Slots per day from (N, L) day/slot stamps: one more than the slot after which the day changes."""
    dow = np.asarray(day_of_week).reshape(-1, np.shape(day_of_week)[-1])
    slot = np.asarray(slot_of_day).reshape(dow.shape)
    change = dow[:, 1:] != dow[:, :-1]
    last = np.unique(slot[:, :-1][change])
    if last.size == 0:
        raise DataError(
            "cannot infer slots_per_day: no window crosses midnight; pass slots_per_day explicitly"
        )
    if last.size > 1:
        raise DataError(
            f"cannot infer slots_per_day: the day changes after different slots {last.tolist()}; "
            "the timestamps are inconsistent (or pass slots_per_day explicitly)"
        )
    return int(last[0]) + 1


def _missing_release_message(directory: Path, city: str, traffic: Path) -> str:
    found = release_cities(directory)
    msg = f"release traffic file {traffic} not found (looked for 24_{city}_short64.json in {directory})"
    if found:
        msg += f"; release cities present there: {found}"
    rar = list(directory.glob(f"*{city}*.rar")) if directory.is_dir() else []
    if rar:
        msg += f"; found {[p.name for p in rar]}: extract the .rar archives first"
    return msg


def _read_json(path: Path) -> dict:
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable JSON file: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object with keys X_train/X_val/X_test")
    return doc


def _squeeze_release(a: np.ndarray, ndim: int) -> np.ndarray:
    """Drop the release's singleton axis: (1, N, ...) or (N, 1, ...) -> (N, ...)."""
    if a.ndim == ndim + 1 and a.shape[0] == 1:
        return a[0]
    if a.ndim == ndim + 1 and a.shape[1] == 1:
        return a[:, 0]
    return a


def _release_windows(obj, path: Path, split: str) -> np.ndarray:
    """(N, L, H, W) float64 windows of one split."""
    try:
        a = np.asarray(obj, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: split {split!r} is not a regular numeric array: {exc}") from exc
    a = _squeeze_release(a, 4)
    if a.ndim != 4 or a.shape[0] == 0:
        raise DataError(f"{path}: split {split!r} must hold windows (1, N, L, H, W), got shape {np.shape(obj)}")
    return a


def _release_timestamps(doc: dict, split: str, n_l: tuple[int, int], path: Path) -> np.ndarray:
    """(N, L, 2) integer stamps of one split."""
    block = doc.get("timestamps", doc.get("timestamp"))
    if not isinstance(block, dict):
        raise DataError(f"{path} lacks 'timestamps' ({{'train': [N][L][2], ...}} of [day_of_week, slot])")
    raw = block.get(split, block.get(RELEASE_SPLIT_KEYS[split]))
    if raw is None:
        raise DataError(f"{path}: 'timestamps' lacks the {split!r} entry")
    ts = _squeeze_release(np.asarray(raw), 3)
    if ts.shape != (*n_l, 2):
        raise DataError(f"{path}: timestamps of split {split!r} must be {(*n_l, 2)}, got {ts.shape}")
    if not np.all(np.mod(ts, 1) == 0):
        raise DataError(f"{path}: timestamps of split {split!r} must be whole numbers [day_of_week, slot]")
    return ts.astype(np.int64)


def _timestamp_columns(stamps: np.ndarray) -> tuple[int, int]:
    """Which stamp column is day-of-week and which slot: the one exceeding 6 is the slot.

    Default [day_of_week, slot] (the order the release's code reads); the README's [time, day] order is
    detected when its first column exceeds 6.
    """
    hi = stamps.max(axis=0)
    if hi[0] > 6 and hi[1] <= 6:
        return 1, 0
    return 0, 1


def _shift_chains(series: dict[str, np.ndarray], shift: int) -> np.ndarray:
    """(N-1,) bool: window k+1 equals window k advanced by `shift` steps in every series."""
    first = next(iter(series.values()))
    L = first.shape[1]
    ok = np.ones(first.shape[0] - 1, dtype=bool)
    for a in series.values():
        a = a.reshape(a.shape[0], L, -1)
        ok &= np.all(a[1:, : L - shift] == a[:-1, shift:], axis=(1, 2))
    return ok


def _find_chains(
    series: dict[str, np.ndarray], slots_per_day: int, stride: int | None
) -> tuple[int | None, list[tuple[int, int]]]:
    """Detect the stride and cut the windows of one split into chains (first, last window index)."""
    dow, slot = series["day_of_week"], series["slot_of_day"]
    N, L = dow.shape
    if N == 1:
        return stride, [(0, 0)]
    week = 7 * slots_per_day
    start = dow[:, 0] * slots_per_day + slot[:, 0]
    advance = np.mod(np.diff(start), week)  # (N-1,) start-to-start advance in slots
    if stride is None:
        best, best_count = None, 0
        for s in np.unique(advance):
            if 0 < s < L:
                count = int(np.sum(_shift_chains(series, int(s)) & (advance == s)))
                if count > best_count:
                    best, best_count = int(s), count
        stride = best
    if stride is None:  # no two windows overlap: each window is its own region
        return None, [(k, k) for k in range(N)]
    if not 0 < stride < L:
        raise DataError(f"stride must lie in 1..{L - 1} for windows of {L} steps, got {stride}")
    links = (advance == stride) & _shift_chains(series, stride)
    breaks = np.flatnonzero(~links)  # chain ends after these windows
    ends = np.append(breaks, N - 1)
    firsts = np.insert(breaks + 1, 0, 0)
    return stride, list(zip(firsts.tolist(), ends.tolist()))


def _chain_length(a: int, b: int, stride: int | None, L: int) -> int:
    return (b - a) * (stride or L) + L


def _check_equal_lengths(chains, strides, series) -> None:
    """All stitched regions must have one length; otherwise name the window that breaks the pattern.

    `series[split]` holds the split's windows by name (traffic, day_of_week, slot_of_day[, users]).
    """
    lengths = {}
    for s in chains:
        N, L = series[s]["traffic"].shape[:2]
        for a, b in chains[s]:
            lengths[(s, a, b)] = _chain_length(a, b, strides[s], L)
    if len(set(lengths.values())) <= 1:
        return
    # most specific diagnosis first: a lone window whose neighbours chain around it is corrupted
    for s in chains:
        N, L = series[s]["traffic"].shape[:2]
        st = strides[s]
        if st is None or 2 * st >= L:
            continue
        for a, b in chains[s]:
            k = a
            if a == b and 0 < k < N - 1:
                around = {n: v[[k - 1, k + 1]] for n, v in series[s].items()}
                if _shift_chains(around, 2 * st)[0]:
                    raise DataError(
                        f"split {s!r}: window {k} does not chain with its neighbours although windows "
                        f"{k - 1} and {k + 1} chain around it (stride {st}): window {k} is corrupted "
                        f"({_first_difference(series[s], k - 1, k, st)})"
                    )
    values, counts = np.unique(list(lengths.values()), return_counts=True)
    expected = int(values[np.argmax(counts)])
    (s, a, b), n = next((key, n) for key, n in lengths.items() if n != expected)
    N, L = series[s]["traffic"].shape[:2]
    st = strides[s] or L
    edges = []
    if st < L:
        if a > 0:
            edges.append(f"window {a} does not continue window {a - 1} ({_first_difference(series[s], a - 1, a, st)})")
        if b < N - 1:
            edges.append(f"window {b + 1} does not continue window {b} ({_first_difference(series[s], b, b + 1, st)})")
    raise DataError(
        f"split {s!r}: windows {a}..{b} chain into a series of {n} steps while the other regions have "
        f"{expected} steps, so the windows neither chain (each equal to the previous one advanced by the "
        f"stride {strides[s]}) nor start regions of one consistent length"
        + (": " + "; ".join(edges) if edges else "")
    )


def _first_difference(series: dict[str, np.ndarray], k0: int, k1: int, shift: int) -> str:
    """Where window k1 first differs from window k0 advanced by `shift`."""
    L = next(iter(series.values())).shape[1]
    for name, a in series.items():
        x, y = a[k0][shift:], a[k1][: L - shift]
        diff = np.argwhere(x != y)
        if diff.size:
            t = int(diff[0][0])
            return f"{name} differs at its step {t}: {y[tuple(diff[0])]!r} vs {x[tuple(diff[0])]!r} in window {k0}"
    return f"equal values, but its start time does not advance by {shift} slots"


def _stitch(windows: np.ndarray, a: int, b: int, stride: int, what: str) -> np.ndarray:
    """Series of the chain of windows a..b; verifies that every window equals its slice."""
    w = windows[a : b + 1]
    n, L = w.shape[:2]
    t_idx = np.arange(n)[:, None] * stride + np.arange(L)[None, :]  # (n, L)
    out = np.empty(((n - 1) * stride + L, *w.shape[2:]), dtype=w.dtype)
    out[t_idx] = w
    bad = np.flatnonzero(~np.all((out[t_idx] == w).reshape(n, -1), axis=1))
    if bad.size:
        raise DataError(f"{what}: window {a + bad[0]} does not equal its slice of the stitched series")
    return out


def _release_poi(doc: dict, split: str, shape: tuple, path: Path) -> np.ndarray:
    """(N, C, H, W) POI per window of one split."""
    key = RELEASE_SPLIT_KEYS[split]
    if key not in doc:
        raise DataError(f"{path} lacks {key} although the traffic file has it")
    p = np.asarray(doc[key], dtype=np.float64)
    N, _, H, W = shape
    if p.ndim == 5:
        p = _squeeze_release(p, 4)
    if p.ndim == 3:  # one POI map for the whole split
        p = np.broadcast_to(p, (N, *p.shape))
    if p.ndim != 4 or p.shape[0] != N or p.shape[2:] != (H, W):
        raise DataError(
            f"{path}: POI of split {split!r} must be (N={N}, categories, H={H}, W={W}), got {p.shape}: "
            "the POI grid does not match the traffic windows"
        )
    return p


# ----------------------------------------------------------------------------------------------------
# Loader 3: long tables (CSV / Parquet / DataFrame): one row per cell and time step
# ----------------------------------------------------------------------------------------------------
#
#   traffic table   cell_id, timestamp, traffic [, users]            (one row per cell and time step)
#   cell table      cell_id + row, col   |  cell_id + x, y (cell centres, regular spacing)
#                   | a GeoDataFrame of cell polygons or points (centroids -> grid)
#                   optional: region (explicit regions; row/col then local to the region), split
#   POI table       cell_id, category [, count]                      (count defaults to 1 per row)
# Column names are overridable: columns={"timestamp": "time", "cell_id": "cell"} maps the canonical
# name to yours. pandas/geopandas are imported lazily so that `import forecasting.data` stays light.

LONG_COLUMNS = ("cell_id", "timestamp", "traffic", "users", "row", "col", "x", "y", "region", "split", "category", "count")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
GEO_SUFFIXES = (".geojson", ".gpkg", ".shp", ".fgb")
REFERENCE_MONDAY = np.datetime64("2024-01-01T00:00")  # a Monday: day_of_week 0 when no date is known


def load_long_table(
    traffic,
    cells=None,
    poi=None,
    *,
    region_size: tuple[int, int] | None = None,
    split: str | Sequence[str] | dict | None = None,
    name: str | None = None,
    columns: dict[str, str] | None = None,
    cell_size: float | None = None,
    crs: str | None = None,
    fill_missing: float | None = None,
    poi_categories: Sequence[str] | None = None,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> City:
    """Load a city from long tables: one row per (cell, timestamp) with traffic and optional users.

    `traffic`, `cells`, `poi` are paths (CSV or Parquet; cells also GeoJSON/GeoPackage/Shapefile) or
    DataFrames. Cell coordinates come from `cells` (or from row/col or x/y columns of the traffic table
    when `cells` is None): integer `row, col`; or cell-centre `x, y` on a regular grid (spacing = the
    smallest gap, row 0 at the largest y); or a GeoDataFrame (centroids, cell size from the polygons).

    Time: the step is the most common gap between the sorted distinct timestamps; every gap must equal
    it (irregular steps raise, showing where) and it must divide a day: slots_per_day = 1 day / step,
    day_of_week = the timestamp's weekday (Monday = 0), slot_of_day = floor(time of day / step).
    Every cell needs a row at every timestamp (or pass `fill_missing`).

    Regions (splits are by region):
      - a `region` column in the cell table: one region per value, row/col local to the region
        (from x/y: offsets from the region's top-left cell);
      - `region_size=(h, w)`: the grid cut into h x w blocks, numbered row-major; partial blocks at the
        right/bottom edge are padded with zero traffic and `cell_valid` False; empty blocks are dropped;
      - otherwise the whole grid is one region.
    Cells absent from the table (holes, padding) hold 0 and `cell_valid` False (None when all valid).
    Splits: `split` as one label, a label per region, or a dict {region index or key: label};
    else a `split` column of the cell table; else `assign_splits(R, split_fractions, seed)`.
    POI categories are pivoted into (R, C, H, W) counts, names kept in `poi_categories` (natural
    order unless `poi_categories` fixes it).
    """
    import pandas as pd

    cols = _column_map(columns)
    tr = _rename(_read_table(traffic, "traffic table"), cols)
    _require_columns(tr, ("cell_id", "timestamp", "traffic"), "traffic table", cols)
    if tr.empty:
        where = "" if isinstance(traffic, pd.DataFrame) else f" {traffic}"
        raise DataError(f"the traffic table{where} has no rows (only a header): it needs one row per cell and timestamp")
    tr["cell_id"] = _as_ids(tr["cell_id"], "traffic table")
    tr["timestamp"], tz, utc_offset = _parse_timestamps(tr["timestamp"], "traffic table")
    for c in ("traffic", "users"):
        if c in tr.columns:
            tr[c] = _checked_numbers(tr, c, "traffic table")
    _check_duplicates(tr)
    axis, step = _time_axis(tr["timestamp"])
    spd = _slots_per_day(step)
    layout = _cell_layout(tr, cells, cols, region_size, cell_size, crs)

    known = pd.Index(layout.cell_id)
    ci = known.get_indexer(tr["cell_id"])
    if np.any(ci < 0):
        unknown = pd.unique(tr["cell_id"][ci < 0])
        raise DataError(
            f"{len(unknown)} cells appear in the traffic table but not in the cell table, e.g. "
            f"{list(unknown[:5])}: add their coordinates to the cell table"
        )
    ti = axis.get_indexer(tr["timestamp"])
    n, T = len(known), len(axis)
    has = np.zeros(n, dtype=bool)
    has[ci] = True
    series = {}
    for c in ("traffic", "users"):
        if c in tr.columns:
            a = np.full((n, T), np.nan)
            a[ci, ti] = tr[c].to_numpy(dtype=np.float64)
            series[c] = a
    gaps = has[:, None] & np.isnan(series["traffic"])
    if gaps.any():
        if fill_missing is None:
            i, t = np.argwhere(gaps)[0]
            raise DataError(
                f"{int(gaps.sum())} (cell, timestamp) rows are missing, e.g. cell {known[i]!r} at {axis[t]}: "
                "every cell needs a row at every timestamp; add them or pass fill_missing=0"
            )
        for a in series.values():
            a[has[:, None] & np.isnan(a)] = fill_missing

    R, (H, W) = len(layout.region_keys), layout.shape
    sel = np.flatnonzero(has)
    reg, row, col = layout.region[sel], layout.row[sel], layout.col[sel]
    t_all = np.arange(T)[None, :]
    grids = {}
    for c, a in series.items():
        g = np.zeros((R, T, H, W), dtype=np.float32)
        g[reg[:, None], t_all, row[:, None], col[:, None]] = a[sel]
        grids[c] = g
    valid = np.zeros((R, H, W), dtype=bool)
    valid[reg, row, col] = True
    ids = np.full((R, H, W), None, dtype=object)
    ids[layout.region, layout.row, layout.col] = layout.cell_id

    poi_grid, categories = None, None
    if poi is not None:
        poi_grid, categories = _poi_grid(poi, cols, known, layout, (R, H, W), poi_categories)

    keep = np.flatnonzero(valid.any(axis=(1, 2)))  # regions with no data at all are dropped
    kept = set(keep.tolist())
    dropped = [k for i, k in enumerate(layout.region_keys) if i not in kept]
    keys = [layout.region_keys[i] for i in keep]
    labels = _resolve_splits(split, keys, keep, layout.region_split, split_fractions, seed)
    pick = lambda a: None if a is None else a[keep]  # noqa: E731
    local = axis + utc_offset  # calendar features in the zone's time at the first step
    dow = np.asarray(local.dayofweek, dtype=np.int64)
    seconds = (local - local.normalize()).total_seconds().to_numpy()
    slot = np.floor(seconds / step.total_seconds()).astype(np.int64)
    Rk = keep.size
    valid = valid[keep]
    return City(
        name=name or _default_name(traffic),
        traffic=grids["traffic"][keep],
        users=pick(grids.get("users")),
        poi=pick(poi_grid),
        day_of_week=np.broadcast_to(dow, (Rk, T)),
        slot_of_day=np.broadcast_to(slot, (Rk, T)),
        slots_per_day=spd,
        split=labels,
        cell_size=layout.cell_size,
        region_origin=pick(layout.region_origin),
        crs=layout.crs,
        poi_categories=categories,
        cell_ids=ids[keep],
        start_time=np.full(Rk, local[0].to_datetime64()),
        cell_valid=None if valid.all() else valid,
        meta={
            "source": _describe_source(traffic),
            "region_keys": keys,
            "dropped_empty_regions": dropped,
            "time_step": str(step),
            "timezone": tz,
            "region_size": region_size,
        },
    )


def assign_splits(
    n_regions: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> np.ndarray:
    """Seeded split labels for `n_regions` regions (the long-table default).

    n_test = round(f_test * R) and n_val = round(f_val * R), each at least 1 when there are enough
    regions (test needs R >= 2, val R >= 3) and leaving at least one training region. A permutation
    drawn with `np.random.default_rng(seed)` gives the first n_test regions 'test', the next n_val 'val',
    the rest 'train'. One region: 'train' (cut the grid with `region_size` to evaluate on held-out areas).
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
    labels = np.full(R, "train", dtype="<U5")
    order = np.random.default_rng(seed).permutation(R)
    labels[order[:n_test]] = "test"
    labels[order[n_test : n_test + n_val]] = "val"
    return labels


@dataclass
class _Layout:
    """Where each cell of the cell table lies: region index and row/col inside the region."""

    cell_id: np.ndarray  # (n,) str
    region: np.ndarray  # (n,) int
    row: np.ndarray  # (n,) int, local to the region
    col: np.ndarray  # (n,) int
    shape: tuple[int, int]  # (H, W) of every region
    region_keys: list  # (R,) region value / (block row, block col) / 0
    region_origin: np.ndarray | None  # (R, 2) top-left corners
    cell_size: float
    crs: str | None
    region_split: np.ndarray | None  # (R,) labels from a 'split' column


def _column_map(columns: dict[str, str] | None) -> dict[str, str]:
    cols = dict(columns or {})
    unknown = sorted(set(cols) - set(LONG_COLUMNS))
    if unknown:
        raise DataError(f"columns= maps unknown canonical names {unknown}: use keys from {LONG_COLUMNS}")
    return cols


def _rename(df, cols: dict[str, str]):
    """Copy of `df` with the user's column names mapped to the canonical ones."""
    return df.rename(columns={theirs: ours for ours, theirs in cols.items() if theirs != ours}).copy()


def _require_columns(df, needed: Sequence[str], what: str, cols: dict[str, str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        example = ", ".join(f"'{c}': '<your column>'" for c in missing)
        mapped = [f"{c} (mapped from {cols[c]!r})" for c in missing if c in cols]
        raise DataError(
            f"{what} lacks the column(s) {missing}{' ' + str(mapped) if mapped else ''}; it has "
            f"{list(map(str, df.columns))}: rename them or pass columns={{{example}}}"
        )


def _read_table(obj, what: str):
    """A DataFrame from a DataFrame or a CSV/Parquet path (cell tables may also be geo files)."""
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    path = Path(obj)
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist")
    low = path.name.lower()
    try:
        if low.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if low.endswith((".csv", ".csv.gz", ".csv.zip", ".txt")):
            return pd.read_csv(path)
        if low.endswith(".tsv"):
            return pd.read_csv(path, sep="\t")
        if low.endswith(GEO_SUFFIXES):
            import geopandas as gpd

            return gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - report any reader failure as bad input
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    raise DataError(f"{what} {path}: unsupported file type; use CSV or Parquet ({TABLE_SUFFIXES})")


def _as_ids(s, what: str):
    """Cell ids as strings (so that 7 in a CSV and '7' in a Parquet file match)."""
    if s.isna().any():
        raise DataError(f"{what}: {int(s.isna().sum())} rows have no cell_id")
    if s.dtype.kind == "f" and np.all(np.mod(s.to_numpy(), 1) == 0):
        s = s.astype(np.int64)
    return s.astype(str)


def _parse_timestamps(s, what: str):
    """Naive datetime64[ns] timestamps, the zone's name and the zone's UTC offset at the first step.

    Time-zone-aware stamps (or strings with UTC offsets) become UTC instants, so that steps are checked
    in absolute time and a daylight-saving change does not look like a gap; the calendar features then
    use the offset of the first step throughout. Naive stamps are taken as they are (offset 0).
    """
    import pandas as pd

    try:
        t = pd.to_datetime(s)
    except (ValueError, TypeError):
        try:
            t = pd.to_datetime(s, utc=True)  # mixed UTC offsets
        except (ValueError, TypeError) as exc:
            raise DataError(f"{what}: cannot parse the timestamp column as dates/times: {exc}") from exc
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise DataError(f"{what}: {int(t.isna().sum())} rows have no timestamp (e.g. row {i})")
    if getattr(t.dt, "tz", None) is None:
        return t.astype("datetime64[ns]"), None, pd.Timedelta(0)
    tz = str(t.dt.tz)
    first = t.iloc[int(np.argmin(t.to_numpy()))]
    offset = first.utcoffset() or pd.Timedelta(0)
    return t.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]"), tz, pd.Timedelta(offset)


def _checked_numbers(df, col: str, what: str):
    """Column `col` as float64; NaN, non-numeric and negative values raise, with an example row."""
    import pandas as pd

    v = pd.to_numeric(df[col], errors="coerce")
    bad = ~np.isfinite(v.to_numpy(dtype=np.float64))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise DataError(
            f"{what}: {col} has {int(bad.sum())} NaN/inf or non-numeric values, e.g. {_row_text(df, i)}: "
            "fill or drop them before loading"
        )
    neg = v.to_numpy() < 0
    if neg.any():
        i = np.flatnonzero(neg)[0]
        raise DataError(
            f"{what}: {col} has {int(neg.sum())} negative values, e.g. {_row_text(df, i)}: "
            f"{col} must be >= 0"
        )
    return v.astype(np.float64)


def _row_text(df, i: int) -> str:
    row = df.iloc[int(i)]
    return "row " + str(int(i)) + " (" + ", ".join(f"{k}={row[k]!r}" for k in df.columns[:6]) + ")"


def _check_duplicates(tr) -> None:
    dup = tr.duplicated(["cell_id", "timestamp"], keep=False)
    if dup.any():
        first = tr[dup].iloc[0]
        same = int(((tr["cell_id"] == first["cell_id"]) & (tr["timestamp"] == first["timestamp"])).sum())
        raise DataError(
            f"traffic table has {int(dup.sum())} rows with a duplicated (cell_id, timestamp), e.g. cell "
            f"{first['cell_id']!r} at {first['timestamp']} appears {same} times: aggregate or drop duplicates"
        )


def _time_axis(times):
    """Sorted distinct timestamps and their step; raises where the step is irregular."""
    import pandas as pd

    axis = pd.DatetimeIndex(np.unique(times.to_numpy()))
    if len(axis) < 2:
        raise DataError("the traffic table has a single timestamp: cannot infer the time step")
    gaps = np.diff(axis.asi8)
    values, counts = np.unique(gaps, return_counts=True)
    step = int(values[np.argmax(counts)])
    bad = np.flatnonzero(gaps != step)
    if bad.size:
        i = bad[0]
        raise DataError(
            f"irregular time steps: the step is {pd.Timedelta(step)} almost everywhere, but from {axis[i]} to "
            f"{axis[i + 1]} it is {pd.Timedelta(int(gaps[i]))} ({bad.size} irregular gap(s)): resample to a "
            "regular step or add the missing timestamps"
        )
    return axis, pd.Timedelta(step)


def _slots_per_day(step) -> int:
    day = 24 * 3600 * 10**9
    if day % step.value:
        raise DataError(f"the time step {step} does not divide a day: resample to e.g. 10, 15, 30 or 60 minutes")
    spd = day // step.value
    if 24 * 60 % spd:
        raise DataError(f"the time step {step} is not a whole number of minutes")
    return int(spd)


def _grid_index(v: np.ndarray, spacing: float | None, axis: str) -> tuple[np.ndarray, float | None]:
    """Integer grid index of coordinates `v` = (v - min) / spacing; spacing = smallest gap if None."""
    v = np.asarray(v, dtype=np.float64)
    u = np.unique(np.round(v, 9))
    if spacing is None:
        if u.size < 2:
            return np.zeros(v.size, dtype=np.int64), None
        spacing = float(np.min(np.diff(u)))
    f = (v - u[0]) / spacing
    idx = np.rint(f)
    off = np.abs(f - idx) > 1e-3
    if off.any():
        raise DataError(
            f"cell {axis} coordinates are not on a regular grid of spacing {spacing:g}: "
            f"{axis}={v[off][0]:g} is not a whole number of cells from {u[0]:g}"
        )
    return idx.astype(np.int64), spacing


def _int_column(ct, c: str) -> np.ndarray:
    v = np.asarray(ct[c], dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(np.mod(v, 1) != 0) or np.any(v < 0):
        raise DataError(f"cell table: {c} must hold whole numbers >= 0 (grid indices)")
    return v.astype(np.int64)


def _cell_layout(tr, cells, cols, region_size, cell_size, crs) -> _Layout:
    """Grid position of every cell (row/col, x/y or geometry), then its region (see load_long_table)."""
    ct, geo, crs = _cell_table(tr, cells, cols, crs)
    grow, gcol, left, top, cs = _cell_positions(ct, geo, cell_size)
    if "region" in ct.columns:
        if region_size is not None:
            raise DataError("the cell table has a 'region' column: drop it or region_size=, not both")
        region, row, col, keys, origin, region_split = _explicit_regions(ct, grow, gcol, left, top, cs)
        H, W = int(row.max()) + 1, int(col.max()) + 1
    else:
        region_split = None
        gx, gy = _grid_origin(left, top, grow, gcol, cs)
        if region_size is not None:  # h x w blocks of the grid, numbered row-major
            H, W = _region_size(region_size)
            blocks = list(zip((grow // H).tolist(), (gcol // W).tolist()))
            keys = sorted(set(blocks))
            index = {k: i for i, k in enumerate(keys)}
            region = np.array([index[k] for k in blocks], dtype=np.int64)
            row, col = grow % H, gcol % W
            kb = np.array(keys, dtype=np.float64).reshape(-1, 2)
            origin = np.stack([gx + kb[:, 1] * W * cs, gy - kb[:, 0] * H * cs], axis=1)
        else:  # the whole grid is one region
            keys, region, row, col = [0], np.zeros(len(ct), dtype=np.int64), grow, gcol
            H, W = int(row.max()) + 1, int(col.max()) + 1
            origin = np.array([[gx, gy]])
    pos = region * (H * W) + row * W + col
    _, first, counts = np.unique(pos, return_index=True, return_counts=True)
    if np.any(counts > 1):
        p = pos[first[np.argmax(counts > 1)]]
        clash = ct["cell_id"].to_numpy()[pos == p][:3].tolist()
        raise DataError(f"cells {clash} lie on the same grid position: each cell needs its own row/col")
    return _Layout(
        cell_id=ct["cell_id"].to_numpy().astype(str),
        region=region,
        row=row,
        col=col,
        shape=(H, W),
        region_keys=keys,
        region_origin=origin,
        cell_size=float(cs),
        crs=crs,
        region_split=region_split,
    )


def _cell_table(tr, cells, cols, crs):
    """One row per cell: the given cell table, or the coordinate columns of the traffic table."""
    geo = None
    if cells is None:
        present = [c for c in ("row", "col", "x", "y", "region", "split") if c in tr.columns]
        ct = tr[["cell_id", *present]].drop_duplicates()
        dup = ct["cell_id"].duplicated(keep=False)
        if dup.any():
            raise DataError(
                f"cell {ct['cell_id'][dup].iloc[0]!r} has several coordinate/region values in the traffic "
                "table: a cell's position must not change over time"
            )
    else:
        ct = _rename(_read_table(cells, "cell table"), cols)
        _require_columns(ct, ("cell_id",), "cell table", cols)
        ct["cell_id"] = _as_ids(ct["cell_id"], "cell table")
        dup = ct["cell_id"].duplicated(keep=False)
        if dup.any():
            raise DataError(f"cell table lists cell {ct['cell_id'][dup].iloc[0]!r} more than once")
        if hasattr(ct, "geometry") and "geometry" in ct.columns:
            geo = ct.geometry
            if crs is None and getattr(ct, "crs", None) is not None:
                crs = ct.crs.to_string()
    for a, b in (("row", "col"), ("x", "y")):
        if (a in ct.columns) != (b in ct.columns):
            have, lack = (a, b) if a in ct.columns else (b, a)
            raise DataError(f"cell table has {have!r} but not {lack!r}: give both (or map them with columns=)")
    if "row" not in ct.columns and "x" not in ct.columns and geo is None:
        raise DataError(
            "no cell coordinates: give a cell table (cells=...) with cell_id and row, col (grid indices) or "
            "x, y (cell centres), or a GeoDataFrame of cell polygons; or put row, col / x, y columns in the "
            "traffic table (or map your names with columns=)"
        )
    return ct, geo, crs


def _cell_positions(ct, geo, cell_size):
    """Global grid row/col of each cell, its top-left corner (left, top; None if unknown), cell size.

    row/col columns are used as given; otherwise x/y (or polygon centroids) are snapped to the grid:
    col = (x - min x) / s, row = (max y - y) / s, with s = cell_size, the polygons' width, or the
    smallest coordinate gap.
    """
    geo_size = None
    if geo is not None:
        b = geo.bounds
        widths = (b["maxx"] - b["minx"]).to_numpy()
        if np.all(widths > 0):
            geo_size = float(np.median(widths))
    if "row" in ct.columns:
        grow, gcol = _int_column(ct, "row"), _int_column(ct, "col")
        cs, left, top = cell_size or geo_size, None, None
        if geo_size is not None:
            left, top = geo.bounds["minx"].to_numpy(), geo.bounds["maxy"].to_numpy()
        elif "x" in ct.columns:
            x, y = np.asarray(ct["x"], dtype=float), np.asarray(ct["y"], dtype=float)
            cs = cs or _grid_index(x, None, "x")[1] or _grid_index(-y, None, "y")[1]
            if cs is not None:
                left, top = x - cs / 2, y + cs / 2
        return grow, gcol, left, top, cs or 500.0
    if "x" in ct.columns:
        x, y = np.asarray(ct["x"], dtype=float), np.asarray(ct["y"], dtype=float)
    else:
        c = geo.centroid
        x, y = c.x.to_numpy(), c.y.to_numpy()
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("cell table: x/y coordinates must be finite numbers")
    spacing = cell_size or geo_size
    gcol, dx = _grid_index(x, spacing, "x")
    grow, dy = _grid_index(-y, spacing, "y")  # row 0 = northernmost (largest y)
    if dx is not None and dy is not None and not np.isclose(dx, dy, rtol=1e-6):
        raise DataError(
            f"cells are not square: x spacing {dx:g} differs from y spacing {dy:g} "
            "(pass cell_size= if some rows/columns are missing)"
        )
    cs = dx or dy or 500.0
    return grow, gcol, x - cs / 2, y + cs / 2, cs


def _explicit_regions(ct, grow, gcol, left, top, cs):
    """Regions from a 'region' column: index, local row/col, keys, origins and split labels.

    Given row/col are local to the region; rows/cols from x/y become offsets from the region's
    top-left cell. Origin = median over the region's cells of (left - col*s, top + row*s).
    """
    raw = ct["region"].to_numpy().tolist()
    try:
        keys = sorted(set(raw))
    except TypeError:
        keys = sorted(set(raw), key=str)
    index = {k: i for i, k in enumerate(keys)}
    region = np.array([index[k] for k in raw], dtype=np.int64)
    row, col = grow.copy(), gcol.copy()
    origin = None if left is None else np.zeros((len(keys), 2))
    labels = np.empty(len(keys), dtype="<U5") if "split" in ct.columns else None
    for i, k in enumerate(keys):
        m = region == i
        if "row" not in ct.columns:
            row[m] -= row[m].min()
            col[m] -= col[m].min()
        if origin is not None:
            origin[i] = np.median(left[m] - col[m] * cs), np.median(top[m] + row[m] * cs)
        if labels is not None:
            found = set(map(str, ct["split"].to_numpy()[m]))
            if len(found) != 1:
                raise DataError(f"cells of region {k!r} carry several split labels {sorted(found)}")
            labels[i] = found.pop()
    return region, row, col, keys, origin, labels


def _grid_origin(left, top, grow, gcol, cs) -> tuple[float, float]:
    """Top-left corner of grid cell (0, 0); without coordinates (0, H * cs) so that y stays >= 0."""
    if left is None:
        return 0.0, float((grow.max() + 1) * cs)
    return float(np.median(left - gcol * cs)), float(np.median(top + grow * cs))


def _region_size(region_size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in region_size)
    except (TypeError, ValueError):
        raise DataError(f"region_size must be (rows, cols) of positive integers, got {region_size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"region_size must be (rows, cols) of positive integers, got {region_size!r}")
    return h, w


def _poi_grid(poi, cols, known, layout: _Layout, rhw: tuple[int, int, int], order):
    """(R, C, H, W) POI counts pivoted from a cell_id, category, count table; and category names."""
    import re

    pt = _rename(_read_table(poi, "POI table"), cols)
    _require_columns(pt, ("cell_id", "category"), "POI table", cols)
    if "count" not in pt.columns:
        pt["count"] = 1.0
    pt["count"] = _checked_numbers(pt, "count", "POI table")
    pt["cell_id"] = _as_ids(pt["cell_id"], "POI table")
    pi = known.get_indexer(pt["cell_id"])
    if np.any(pi < 0):
        unknown = sorted(set(pt["cell_id"][pi < 0]))
        raise DataError(
            f"POI grid mismatch: the POI table has rows for {len(unknown)} cells that are not in the traffic "
            f"grid, e.g. {unknown[:5]}: use the same cell ids as the traffic/cell tables"
        )
    cats = pt["category"].astype(str)
    present = set(cats)
    if order is not None:
        categories = [str(c) for c in order]
        extra = sorted(present - set(categories))
        if extra:
            raise DataError(f"POI table has categories {extra} missing from poi_categories={categories}")
    else:
        natural = lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]  # noqa: E731
        categories = sorted(present, key=natural)
    cat_index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(known), len(categories)))
    np.add.at(counts, (pi, cats.map(cat_index).to_numpy()), pt["count"].to_numpy())
    R, H, W = rhw
    grid = np.zeros((R, len(categories), H, W), dtype=np.float32)
    grid[layout.region, :, layout.row, layout.col] = counts
    return grid, categories


def _resolve_splits(split, keys, kept, region_split, fractions, seed) -> np.ndarray:
    """Split label per kept region from `split`, a split column or the seeded default."""
    R = len(keys)
    if split is None:
        if region_split is not None:
            return region_split[kept]
        return assign_splits(R, fractions, seed)
    if isinstance(split, str):
        return np.full(R, split)
    if isinstance(split, dict):
        labels = []
        for i, k in zip(kept.tolist(), keys):
            for candidate in (k, i, str(k)):
                if candidate in split:
                    labels.append(split[candidate])
                    break
            else:
                raise DataError(f"split mapping has no label for region {k!r} (index {i}); give every region one")
        return np.array(labels)
    labels = np.asarray(split)
    if labels.shape != (R,):
        raise DataError(f"split must give one label per region ({R} regions: {keys}), got {labels.shape[0]} labels")
    return labels


def _default_name(source) -> str:
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return "city"
    return Path(source).name.split(".")[0]


def _describe_source(source) -> str:
    import pandas as pd

    return "DataFrame" if isinstance(source, pd.DataFrame) else str(source)


# ----------------------------------------------------------------------------------------------------
# Geometry: cells as a GeoDataFrame, and a city back to long tables
# ----------------------------------------------------------------------------------------------------


class LongTables(NamedTuple):
    """A city as long tables: traffic rows, a GeoDataFrame of cells and POI rows (None without POI)."""

    traffic: "pd.DataFrame"  # noqa: F821
    cells: "gpd.GeoDataFrame"  # noqa: F821
    poi: "pd.DataFrame | None"  # noqa: F821


def region_origins(city: City) -> np.ndarray:
    """(R, 2) top-left corners: `city.region_origin`, or regions side by side when it is None.

    Without origins, regions are laid out gap-free on a near-square board, ceil(sqrt(R)) regions per
    board row, region i at board position (i // n_cols, i % n_cols), all y >= 0.
    """
    if city.region_origin is not None:
        return np.asarray(city.region_origin, dtype=np.float64)
    R, (H, W), cs = city.n_regions, city.grid, city.cell_size
    n_cols = int(np.ceil(np.sqrt(R)))
    n_rows = int(np.ceil(R / n_cols))
    i = np.arange(R)
    return np.stack([(i % n_cols) * W * cs, (n_rows - i // n_cols) * H * cs], axis=1).astype(np.float64)


def cell_id_grid(city: City) -> np.ndarray:
    """(R, H, W) str cell ids: `city.cell_ids` where set, else '<region>/<row>/<col>'."""
    R, (H, W) = city.n_regions, city.grid
    r, h, w = np.indices((R, H, W))
    ids = np.char.add(np.char.add(np.char.add(r.astype(str), "/"), np.char.add(h.astype(str), "/")), w.astype(str))
    ids = ids.astype(object)
    if city.cell_ids is not None:
        given = np.asarray(city.cell_ids, dtype=object)
        ids = np.where(np.vectorize(lambda v: v is not None and v == v)(given), given, ids)
    return ids.astype(str)


def to_geodataframe(city: City, values: dict[str, np.ndarray] | None = None):
    """A GeoDataFrame with one square polygon per region x cell, for maps and spatial joins.

    Columns: region, row, col, cell_id, split, valid, one column per entry of `values` (arrays of shape
    (R, H, W), or (H, W) shared by all regions), geometry. Cell (r, c) of a region with top-left corner
    (x0, y0) covers [x0 + c*s, x0 + (c+1)*s] x [y0 - (r+1)*s, y0 - r*s], s = `city.cell_size`.
    """
    import geopandas as gpd
    import shapely

    R, (H, W), cs = city.n_regions, city.grid, city.cell_size
    reg, row, col = (a.ravel() for a in np.indices((R, H, W)))
    origin = region_origins(city)
    x0 = origin[reg, 0] + col * cs
    y1 = origin[reg, 1] - row * cs
    data = {
        "region": reg,
        "row": row,
        "col": col,
        "cell_id": cell_id_grid(city).ravel(),
        "split": city.split[reg],
        "valid": np.ones(reg.size, bool) if city.cell_valid is None else city.cell_valid.ravel(),
    }
    for key, v in (values or {}).items():
        v = np.asarray(v)
        if v.shape == (H, W):
            v = np.broadcast_to(v, (R, H, W))
        if v.shape != (R, H, W):
            raise DataError(f"values[{key!r}] must be (R, H, W) = {(R, H, W)} or (H, W), got {v.shape}")
        data[key] = v.ravel()
    return gpd.GeoDataFrame(data, geometry=shapely.box(x0, y1 - cs, x0 + cs, y1), crs=city.crs)


def to_long_table(city: City) -> LongTables:
    """The city as long tables that `load_long_table(t.traffic, t.cells, t.poi)` reads back.

    Timestamps: `city.start_time` per region when known, else a reference week starting Monday
    2024-01-01 shifted to the region's first day_of_week/slot_of_day. Cells with `cell_valid` False get
    no traffic rows. POI rows are the non-zero counts; unnamed categories are called poi_0, poi_1, ...
    (`load_long_table` sorts them naturally, or pass poi_categories= to fix the order). Regions with
    different start times give a table that must be read back region by region.
    """
    import pandas as pd

    R, T, H, W = city.traffic.shape
    ids = cell_id_grid(city)
    valid = np.ones((R, H, W), bool) if city.cell_valid is None else city.cell_valid
    step = np.timedelta64(int(round(city.minutes_per_slot * 60)), "s")
    if city.start_time is not None:
        start = np.asarray(city.start_time).astype("datetime64[s]")
    else:
        first = city.day_of_week[:, 0] * 86400 + city.slot_of_day[:, 0] * int(step.astype(int))
        start = REFERENCE_MONDAY.astype("datetime64[s]") + first.astype("timedelta64[s]")
    times = (start[:, None] + np.arange(T)[None, :] * step).astype("datetime64[ns]")  # (R, T)
    r, h, w = np.nonzero(valid)
    rows = {
        "cell_id": np.repeat(ids[r, h, w], T),
        "timestamp": times[r].ravel(),
        "traffic": city.traffic[r, :, h, w].ravel(),
    }
    if city.users is not None:
        rows["users"] = city.users[r, :, h, w].ravel()
    poi_df = None
    if city.poi is not None:
        names = city.poi_categories or [f"poi_{c}" for c in range(city.poi.shape[1])]
        pr, pc, ph, pw = np.nonzero(city.poi)
        poi_df = pd.DataFrame(
            {"cell_id": ids[pr, ph, pw], "category": np.asarray(names)[pc], "count": city.poi[pr, pc, ph, pw]}
        )
    return LongTables(pd.DataFrame(rows), to_geodataframe(city), poi_df)


def from_geodataframe(cells, traffic, poi=None, **kwargs) -> City:
    """A city from a GeoDataFrame of cells (e.g. from `to_geodataframe`) and a long traffic table.

    Shorthand for `load_long_table(traffic, cells=cells, poi=poi, **kwargs)`: a `region` column gives
    the regions (row/col local to each), a `split` column their labels, the polygons the cell size and
    region origins.
    """
    return load_long_table(traffic, cells=cells, poi=poi, **kwargs)


# ----------------------------------------------------------------------------------------------------
# One entry point for every source
# ----------------------------------------------------------------------------------------------------

REAL_CITY_NAMES = ("nanjing", "nanchang")


def load_city(source: str | Path, **kwargs) -> City:
    """Load a city from any supported source; keyword arguments go to the matching loader.

    - a synthetic preset name ('synthetic', 'synthetic-small', ...; see `forecasting.synthetic`);
    - 'nanjing' / 'nanchang': `<default_data_dir()>/<name>.npz` (`load_npz`);
    - a `.npz` file (`load_npz`);
    - a directory with release JSON (`load_release_json`; `city=` picks one if there are several);
    - a release traffic file `24_<City>_short64.json`;
    - a CSV/Parquet long table (`load_long_table`, e.g. with cells=..., poi=..., region_size=...).
    """
    text = str(source)
    if text.startswith("synthetic") and not Path(text).exists():
        from .synthetic import city_from_name  # lazy: the generator imports this module

        return city_from_name(text, **kwargs)
    if text.lower() in REAL_CITY_NAMES and not Path(text).exists():
        path = default_data_dir() / f"{text.lower()}.npz"
        if not path.exists():
            raise DataError(
                f"real city {text!r} not found: looked for {path} (set $UOMO_DATA_DIR to the folder holding "
                f"{text.lower()}.npz, or pass the file's path)"
            )
        return load_npz(path, **kwargs)
    path = Path(text)
    if not path.exists():
        available = sorted(available_real_cities())
        raise DataError(
            f"no city at {text!r}: looked for a file or directory at {path.resolve()} and for the names "
            f"{list(REAL_CITY_NAMES)} in {default_data_dir()} (present there: {available or 'none'})"
        )
    if path.is_dir():
        city = kwargs.pop("city", None)
        found = release_cities(path)
        if city is None:
            if len(found) != 1:
                npz = sorted(p.name for p in path.glob("*.npz"))
                raise DataError(
                    f"{path}: " + (f"several release cities {found}: pass city=" if found else
                    "no release traffic file (looked for 24_<City>_short64.json)"
                    + (f"; .npz files here: {npz} (pass one of them)" if npz else ""))
                )
            city = found[0]
        return load_release_json(path, city, **kwargs)
    low = path.name.lower()
    if low.endswith(".npz"):
        return load_npz(path, **kwargs)
    if low.endswith(".json"):
        if not (low.startswith("24_") and low.endswith("_short64.json")):
            raise DataError(f"{path}: a release traffic file is named 24_<City>_short64.json")
        return load_release_json(path.parent, path.name[len("24_") : -len("_short64.json")], **kwargs)
    if low.endswith(TABLE_SUFFIXES):
        return load_long_table(path, **kwargs)
    raise DataError(
        f"{path}: unsupported source; use a .npz file, a directory of release JSON, a release traffic "
        f"JSON file or a long table ({', '.join(TABLE_SUFFIXES)})"
    )
