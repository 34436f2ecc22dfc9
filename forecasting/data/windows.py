"""64-step windows cut from a city's series (`Windows`, `make_windows`, `window_starts`, `concat_windows`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .city import WINDOW, City, DataError
from .scaling import CityScalers


@dataclass
class Windows:
    """A batch of N windows of `length` steps cut from a city, normalised to [0, 1].

    traffic/users (N, L, H, W); poi (N, C, H, W) with its category names `poi_categories` (C,) (None:
    unnamed); residents (N, H, W); day_of_week/slot_of_day (N, L); region/start (N,).
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
    day_before: np.ndarray | None = None  # (N, L, H, W) the record one day before each step (see `cut_day_before`)
    poi_categories: tuple[str, ...] | None = None  # names of the POI layers (one schema for the batch)
    residents: np.ndarray | None = None  # (N, H, W) resident counts per cell (static), where the city has them

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
            day_before=pick(self.day_before),
            residents=pick(self.residents),
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
        day_before=scalers.traffic.transform(cut_day_before(city.traffic, reg, st, length, city.slots_per_day)),
        poi_categories=city.poi_schema,
        residents=None if city.residents is None else city.residents[reg],
    )


def cut_day_before(series: np.ndarray, regions: np.ndarray, starts: np.ndarray, length: int, slots_per_day: int) -> np.ndarray:
    """The record one day before each step of the windows, where that step lies before the window.

    out[n, t] = series[regions[n], starts[n] + t - d] for t < d (d = slots_per_day) when that step exists
    (>= 0), NaN otherwise: for t >= d the day before lies inside the window itself and is read from there
    (with the window's mask applied), so only the past before the window's first step is carried here.
    series (R, T, H, W) -> (N, length, H, W) float32, in the series' units.
    """
    src = starts[:, None] + np.arange(length)[None, :] - slots_per_day  # (N, L)
    before = (src >= 0) & (np.arange(length)[None, :] < slots_per_day)
    out = series[regions[:, None], np.clip(src, 0, None)].astype(np.float32)  # (N, L, H, W)
    out[~before] = np.nan
    return out


def value_day_earlier(values: np.ndarray, observed: np.ndarray, day_before: np.ndarray | None,
                      slots_per_day: int) -> tuple[np.ndarray, np.ndarray]:
    """(lag, has), both (N, L, H, W): each step's value one day earlier, where it was observed.

    lag[n, t] = x(t - k d) for the smallest k >= 1 with step t - k d observed inside the window (d =
    `slots_per_day`); for steps less than a day after the window's start the record before the window
    (`day_before`, NaN where not recorded) comes first. has = whether such a value exists; lag is 0 where
    it does not. `values` are read only where `observed` holds.
    """
    values = np.asarray(values, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    lag = np.zeros(values.shape)
    has = np.zeros(values.shape, dtype=bool)
    if day_before is not None:
        has = ~np.isnan(day_before)
        lag = np.where(has, np.nan_to_num(np.asarray(day_before, dtype=np.float64)), 0.0)
    T, day = values.shape[1], int(slots_per_day)
    for k in range(1, (T - 1) // day + 1):
        shift = k * day
        take = ~has[:, shift:] & observed[:, :-shift]
        lag[:, shift:] = np.where(take, values[:, :-shift], lag[:, shift:])
        has[:, shift:] |= take
    return lag, has


def hide_unrecorded(day_before: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """`day_before` with NaN at cells hidden at every step of their window (mask (N, L, H, W)).

    A cell whose traffic is hidden throughout the window is one without a traffic record (the generation
    task: a new area), so its past is hidden too; cells observed at some step keep their day before.
    """
    if day_before is None:
        return None
    unrecorded = np.asarray(mask, dtype=bool).all(axis=1, keepdims=True)  # (N, 1, H, W)
    return np.where(unrecorded, np.nan, day_before).astype(np.float32)


def concat_windows(parts: Sequence[Windows], city: str) -> Windows:
    """The windows of `parts` (each already normalised by its own city's scalers) as one batch named `city`.

    The parts must share the granularity and the grid, and each optional array (users, POI of one
    width, valid, residents) must be present in all parts or in none; the joint batch carries no scalers,
    and the POI category names only where every part has the same.
    """
    if not parts:
        raise DataError("concat_windows needs at least one Windows")
    first = parts[0]
    if any(p.slots_per_day != first.slots_per_day or p.traffic.shape[1:] != first.traffic.shape[1:] for p in parts):
        raise DataError("concat_windows: the parts differ in slots_per_day or window shape; group them first")

    def join(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        if all(a is None for a in arrays):
            return None
        if any(a is None for a in arrays) or len({a.shape[1:] for a in arrays}) > 1:
            raise DataError(f"concat_windows: {name} is missing or shaped differently in some parts")
        return np.concatenate(arrays)

    return Windows(
        city=city, traffic=join("traffic"), day_of_week=join("day_of_week"), slot_of_day=join("slot_of_day"),
        slots_per_day=first.slots_per_day, region=join("region"), start=join("start"), users=join("users"),
        poi=join("poi"), scalers=None, valid=join("valid"), day_before=join("day_before"),
        poi_categories=first.poi_categories if len({p.poi_categories for p in parts}) == 1 else None,
        residents=join("residents"),
    )
