"""Demand cubes (grid cell x time slot, in users or traffic) that the planning problems consume.

A `Demand` holds values (cells, slots) >= 0 in one stated unit, the cells' ids (and coordinates or grid
positions, for neighbourhoods) and the slots' time axis. Four sources, one per planning strategy:

- `forecast_demand`  (planning.forecast_demand) a forecaster's output: *generation* for areas without history (every cell is
                     generated from its observed surroundings and context, groups hidden in rotation),
                     or *long-term* prediction (16 observed -> 48 forecast steps, rolled over the horizon);
- `poi_demand`       (planning.proxy_demand) demand proportional to a POI score, calibrated on the
                     training regions;
- `resident_demand`  (planning.proxy_demand) demand proportional to the resident population (synthetic
                     cities, or a user layer);
- `real_demand`      the real series: the oracle, and what every plan is replayed against.

Units. Planning BS capacity counts *users*; RRU load is *traffic*. Forecasters predict traffic; to plan in
users it is converted with `UnitConversion`, the ratio of users to traffic fitted on the training regions
per slot of day (k_s = sum users / sum traffic over training cells and days at slot s, the ratio
estimator, i.e. least squares weighted by 1/traffic). When the city has users, the oracle uses them
directly; POI and resident demand are calibrated directly against the requested unit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np

from forecasting.data import City

from .errors import InputError, check_matrix

Unit = Literal["users", "traffic"]
UNITS = ("users", "traffic")


# ----------------------------------------------------------------------------------------------------
# The cube
# ----------------------------------------------------------------------------------------------------


@dataclass
class Demand:
    """Demand per cell and slot, (cells, slots), in `unit`, with the cells' and slots' labels."""

    values: np.ndarray  # (N, T) float64 >= 0
    unit: str  # 'users' | 'traffic'
    cell_ids: np.ndarray  # (N,) str
    slot_of_day: np.ndarray  # (T,) int
    day_of_week: np.ndarray  # (T,) int
    slots_per_day: int
    coords: np.ndarray | None = None  # (N, 2) cell centres (x, y) in CRS units
    grid_index: np.ndarray | None = None  # (N, 3) region, row, col in the source city
    cell_size: float | None = None
    timestamps: np.ndarray | None = None  # (T,) datetime64 when the city knows its start time
    source: str = ""  # 'real', 'poi', 'residents', 'forecast:<name>', ...
    city: str = ""
    scenarios: np.ndarray | None = None  # (K, N, T) equally likely demand scenarios (a forecast's samples)

    def __post_init__(self) -> None:
        self.values = check_matrix(self.values, f"demand ({self.source or 'values'})")
        N, T = self.values.shape
        if self.unit not in UNITS:
            raise InputError(f"demand unit must be one of {UNITS}, got {self.unit!r}")
        self.cell_ids = np.asarray(self.cell_ids).astype(str)
        if self.cell_ids.shape != (N,):
            raise InputError(f"cell_ids must be ({N},), got {self.cell_ids.shape}")
        if len(set(self.cell_ids.tolist())) != N:
            raise InputError("cell_ids must be unique")
        self.slot_of_day = np.asarray(self.slot_of_day, dtype=np.int64)
        self.day_of_week = np.asarray(self.day_of_week, dtype=np.int64)
        for name in ("slot_of_day", "day_of_week"):
            if getattr(self, name).shape != (T,):
                raise InputError(f"{name} must be ({T},), got {getattr(self, name).shape}")
        self.slots_per_day = int(self.slots_per_day)
        if self.slots_per_day < 1 or np.any(self.slot_of_day >= self.slots_per_day) or np.any(self.slot_of_day < 0):
            raise InputError(f"slot_of_day must lie in 0..slots_per_day-1 = {self.slots_per_day - 1}")
        if self.coords is not None and np.shape(self.coords) != (N, 2):
            raise InputError(f"coords must be ({N}, 2), got {np.shape(self.coords)}")
        if self.grid_index is not None and np.shape(self.grid_index) != (N, 3):
            raise InputError(f"grid_index must be ({N}, 3), got {np.shape(self.grid_index)}")
        if self.timestamps is not None and np.shape(self.timestamps) != (T,):
            raise InputError(f"timestamps must be ({T},), got {np.shape(self.timestamps)}")
        if self.scenarios is not None:
            sc = np.asarray(self.scenarios, dtype=np.float64)
            if sc.ndim != 3 or sc.shape[1:] != (N, T) or sc.shape[0] < 1:
                raise InputError(f"scenarios must be (K, {N}, {T}), got {sc.shape}")
            if not np.all(np.isfinite(sc)) or np.any(sc < 0):
                raise InputError("scenarios must be finite and >= 0")
            self.scenarios = sc

    # -- shape -----------------------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.values.shape[0]

    @property
    def n_slots(self) -> int:
        return self.values.shape[1]

    @property
    def days(self) -> float:
        return self.n_slots / self.slots_per_day

    def __repr__(self) -> str:
        return (
            f"Demand({self.city}:{self.source}, {self.n_cells} cells x {self.n_slots} slots "
            f"({self.slots_per_day}/day), unit={self.unit}, total={self.values.sum():.4g})"
        )

    # -- derived cubes ---------------------------------------------------------------------------------
    def with_values(self, values: np.ndarray, source: str | None = None, unit: str | None = None,
                    scenarios: np.ndarray | None = None) -> "Demand":
        """Same cells and slots, new values (e.g. a forecast on the axes of the real demand), no scenarios
        unless given."""
        return replace(self, values=np.asarray(values, dtype=np.float64), source=source or self.source,
                       unit=unit or self.unit, scenarios=scenarios)

    @property
    def n_scenarios(self) -> int:
        return 0 if self.scenarios is None else self.scenarios.shape[0]

    def quantile(self, q: float) -> "Demand":
        """The cube of the scenarios' q-quantile per cell-slot ("plan on quantile q"), no scenarios."""
        if not 0 < q < 1:
            raise InputError(f"a planning quantile must lie in (0, 1), got {q}")
        if self.n_scenarios < 2:
            raise InputError(f"{self.source or 'this demand'} holds no scenarios: quantiles need a sampling forecast")
        return self.with_values(np.quantile(self.scenarios, q, axis=0), source=f"{self.source}@q{q:g}")

    def stacked_scenarios(self) -> "Demand":
        """The K scenarios side by side as K x T slots (N, K T), no scenarios.

        For a planning objective that sums over slots, planning on this cube maximises the scenarios'
        total, i.e. K times their mean: the sample average approximation of the expected objective.
        """
        if self.n_scenarios < 2:
            raise InputError(f"{self.source or 'this demand'} holds no scenarios to stack")
        K = self.n_scenarios
        tile = lambda a: None if a is None else np.tile(a, K)  # noqa: E731
        return replace(
            self, values=np.concatenate(list(self.scenarios), axis=1), slot_of_day=np.tile(self.slot_of_day, K),
            day_of_week=np.tile(self.day_of_week, K), timestamps=tile(self.timestamps), scenarios=None,
            source=f"{self.source}@saa{K}",
        )

    def slots(self, start: int = 0, stop: int | None = None) -> "Demand":
        """The slots [start, stop) (a planning horizon, e.g. the first week of hourly slots)."""
        sl = slice(start, stop)
        if self.values[:, sl].shape[1] == 0:
            raise InputError(f"slots [{start}, {stop}) select nothing from {self.n_slots} slots")
        return replace(
            self, values=self.values[:, sl], slot_of_day=self.slot_of_day[sl], day_of_week=self.day_of_week[sl],
            timestamps=None if self.timestamps is None else self.timestamps[sl],
            scenarios=None if self.scenarios is None else self.scenarios[:, :, sl],
        )

    def cells(self, idx: Sequence[int] | np.ndarray) -> "Demand":
        """The cells `idx` (in that order)."""
        idx = np.asarray(idx, dtype=int)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(self, values=self.values[idx], cell_ids=self.cell_ids[idx], coords=pick(self.coords),
                       grid_index=pick(self.grid_index),
                       scenarios=None if self.scenarios is None else self.scenarios[:, idx])

    def aggregate(self, slots_per_day: int = 24, how: Literal["mean", "max", "sum"] = "mean") -> "Demand":
        """Coarser slots (e.g. hourly: 24 per day, a week = 168 slots).

        Each new slot combines `k = self.slots_per_day / slots_per_day` consecutive slots by `how`:
        'mean' (average connected users over the hour), 'max' (busy-slot peak, for capacity) or 'sum'
        (traffic volume). Leading slots before the first new-slot boundary and a trailing partial slot
        are dropped, so every new slot is complete.
        """
        if how not in ("mean", "max", "sum"):
            raise InputError(f"how must be 'mean', 'max' or 'sum', got {how!r}")
        if slots_per_day < 1 or self.slots_per_day % slots_per_day:
            raise InputError(
                f"cannot aggregate {self.slots_per_day} slots/day into {slots_per_day}: "
                "the new slots_per_day must divide the current one"
            )
        k = self.slots_per_day // slots_per_day
        if k == 1:
            return replace(self)
        first = int(np.argmax(self.slot_of_day % k == 0))
        n_new = (self.n_slots - first) // k
        if n_new == 0 or self.slot_of_day[first] % k:
            raise InputError(f"{self.n_slots} slots hold no complete {k}-slot period to aggregate")
        sl = slice(first, first + n_new * k)
        blocks = self.values[:, sl].reshape(self.n_cells, n_new, k)
        values = getattr(blocks, how)(axis=2)
        scenarios = None
        if self.scenarios is not None:
            scenarios = getattr(self.scenarios[:, :, sl].reshape(self.n_scenarios, self.n_cells, n_new, k), how)(axis=3)
        return replace(
            self, values=values, slots_per_day=slots_per_day, scenarios=scenarios,
            slot_of_day=self.slot_of_day[sl][::k] // k, day_of_week=self.day_of_week[sl][::k],
            timestamps=None if self.timestamps is None else self.timestamps[sl][::k],
        )

    def convert(self, unit: Unit, conversion: "UnitConversion") -> "Demand":
        """This demand in `unit` ('users' or 'traffic') via a fitted `UnitConversion`."""
        if unit == self.unit:
            return replace(self)
        values = conversion.convert(self.values, self.slot_of_day, self.unit, unit, self.slots_per_day)
        scenarios = None
        if self.scenarios is not None:
            scenarios = conversion.convert(self.scenarios, self.slot_of_day, self.unit, unit, self.slots_per_day)
        return replace(self, values=values, unit=unit, scenarios=scenarios)

    def neighbours(self, kind: Literal["rook", "queen"] = "rook") -> np.ndarray:
        """(P, 2) pairs i < j of adjacent cells: sharing an edge ('rook') or also a corner ('queen').

        Uses cell centres when known (adjacency across regions too), else grid positions within a region.
        """
        if kind not in ("rook", "queen"):
            raise InputError(f"kind must be 'rook' or 'queen', got {kind!r}")
        if self.coords is not None and self.cell_size:
            rc = np.floor(np.column_stack([-self.coords[:, 1], self.coords[:, 0]]) / self.cell_size).astype(np.int64)
            keys = [(0, int(r), int(c)) for r, c in rc]
        elif self.grid_index is not None:
            keys = [tuple(int(v) for v in g) for g in self.grid_index]
        else:
            raise InputError("demand has neither coords nor grid_index: neighbours are unknown")
        where = {k: i for i, k in enumerate(keys)}
        offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if kind == "queen" else [])
        pairs = []
        for i, (reg, r, c) in enumerate(keys):
            for dr, dc in offsets:
                j = where.get((reg, r + dr, c + dc))
                if j is not None:
                    pairs.append((min(i, j), max(i, j)))
        return np.array(sorted(set(pairs)), dtype=np.int64).reshape(-1, 2)


# ----------------------------------------------------------------------------------------------------
# Cells and slots of a city
# ----------------------------------------------------------------------------------------------------


def _pick_regions(city: City, split: str | Sequence[str] | None, regions: Sequence[int] | None) -> np.ndarray:
    if regions is not None:
        idx = np.asarray(regions, dtype=int)
    else:
        idx = city.regions(split if split is not None else "test")
    if idx.size == 0:
        raise InputError(f"{city.name}: no regions selected (split={split!r})")
    dow, sod = city.day_of_week[idx], city.slot_of_day[idx]
    if np.any(dow != dow[0]) or np.any(sod != sod[0]):
        raise InputError(
            f"{city.name}: the selected regions do not share one time axis; plan them separately"
        )
    return idx


def _steps(city: City, steps: slice | None) -> np.ndarray:
    t = np.arange(city.n_steps)[steps if steps is not None else slice(None)]
    if t.size == 0:
        raise InputError(f"{city.name}: steps {steps} select nothing from {city.n_steps} steps")
    return t


def _frame(city: City, regions: np.ndarray, t: np.ndarray, values: np.ndarray, unit: str, source: str,
           calendar: tuple[np.ndarray, np.ndarray] | None = None) -> Demand:
    """Wrap (R, T', H, W) values of `regions` at steps `t` into a Demand (cells ordered region, row, col).

    `calendar` (day_of_week, slot_of_day) of the steps `t`, (T',) each, is needed for steps past the end
    of the city's series (a forecast of the future); by default it is read from the city.
    """
    R, H, W = regions.size, *city.grid
    rr, hh, ww = np.meshgrid(regions, np.arange(H), np.arange(W), indexing="ij")
    grid_index = np.column_stack([rr.ravel(), hh.ravel(), ww.ravel()])
    if city.cell_ids is not None:
        ids = np.asarray(city.cell_ids)[regions].reshape(-1).astype(str)
    else:
        ids = np.array([f"r{r}_{h}_{w}" for r, h, w in grid_index])
    coords = None
    if city.region_origin is not None:
        origin = np.asarray(city.region_origin, dtype=np.float64)[grid_index[:, 0]]
        # north-up raster: the origin is the top-left corner, rows run south (y decreases)
        coords = np.column_stack([
            origin[:, 0] + (grid_index[:, 2] + 0.5) * city.cell_size,
            origin[:, 1] - (grid_index[:, 1] + 0.5) * city.cell_size,
        ])
    timestamps = None
    if city.start_time is not None:
        start = np.asarray(city.start_time)[regions[0]]
        timestamps = start + (t * city.minutes_per_slot).astype("timedelta64[m]")
    cube = np.moveaxis(np.asarray(values, dtype=np.float64), 1, -1).reshape(R * H * W, t.size)
    dow, sod = calendar if calendar is not None else (city.day_of_week[regions[0], t], city.slot_of_day[regions[0], t])
    return Demand(
        values=cube, unit=unit, cell_ids=ids, slot_of_day=sod,
        day_of_week=dow, slots_per_day=city.slots_per_day, coords=coords,
        grid_index=grid_index, cell_size=city.cell_size, timestamps=timestamps, source=source, city=city.name,
    )


def _series(city: City, unit: str) -> np.ndarray:
    if unit not in UNITS:
        raise InputError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "users":
        if city.users is None:
            raise InputError(f"{city.name} has no users series: plan in 'traffic' or convert a traffic demand")
        return city.users
    return city.traffic


# ----------------------------------------------------------------------------------------------------
# Oracle: the real series
# ----------------------------------------------------------------------------------------------------


def real_demand(
    city: City,
    split: str | Sequence[str] | None = "test",
    unit: Unit = "users",
    regions: Sequence[int] | None = None,
    steps: slice | None = None,
) -> Demand:
    """The real demand of the chosen regions (default: test split): the oracle and the replay truth."""
    idx = _pick_regions(city, split, regions)
    t = _steps(city, steps)
    return _frame(city, idx, t, _series(city, unit)[idx][:, t], unit, "real")


# ----------------------------------------------------------------------------------------------------
# Unit conversion traffic <-> users
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitConversion:
    """Users per traffic unit at each slot of day: users = k[s] * traffic, traffic = users / k[s]."""

    users_per_traffic: np.ndarray  # (slots_per_day,) > 0
    slots_per_day: int

    @classmethod
    def fit(cls, city: City, split: str | Sequence[str] = "train") -> "UnitConversion":
        """k[s] = sum(users) / sum(traffic) over the `split` cells and days at slot of day s.

        The ratio estimator (weighted least squares of users on traffic through the origin with
        variance proportional to traffic); slots with no traffic fall back to the all-slot ratio.
        """
        if city.users is None:
            raise InputError(f"{city.name} has no users: use UnitConversion.constant(ratio) instead")
        idx = city.regions(split)
        if idx.size == 0:
            raise InputError(f"{city.name}: no {split!r} regions to fit the unit conversion on")
        sod = city.slot_of_day[idx]  # (R, T)
        u = city.users[idx].sum(axis=(2, 3)).astype(np.float64)  # (R, T)
        tr = city.traffic[idx].sum(axis=(2, 3)).astype(np.float64)
        if tr.sum() <= 0:
            raise InputError(f"{city.name}: training traffic is all zero; cannot fit users per traffic")
        overall = u.sum() / tr.sum()
        su = np.bincount(sod.ravel(), u.ravel(), city.slots_per_day)
        st = np.bincount(sod.ravel(), tr.ravel(), city.slots_per_day)
        k = np.where(st > 0, su / np.where(st > 0, st, 1.0), overall)
        k = np.where(k > 0, k, overall)
        if not overall > 0:
            raise InputError(f"{city.name}: training users are all zero; cannot fit users per traffic")
        return cls(k, city.slots_per_day)

    @classmethod
    def constant(cls, users_per_traffic: float, slots_per_day: int = 24) -> "UnitConversion":
        """One ratio for every slot (e.g. from an operator's average users per traffic unit)."""
        if not users_per_traffic > 0:
            raise InputError(f"users_per_traffic must be > 0, got {users_per_traffic}")
        return cls(np.full(slots_per_day, float(users_per_traffic)), slots_per_day)

    def convert(self, values: np.ndarray, slot_of_day: np.ndarray, src: str, dst: str,
                slots_per_day: int | None = None) -> np.ndarray:
        """`values` (..., T) in unit `src` at slots `slot_of_day` (T,), expressed in `dst`."""
        if src not in UNITS or dst not in UNITS:
            raise InputError(f"units must be in {UNITS}, got {src!r} -> {dst!r}")
        if src == dst:
            return np.asarray(values, dtype=np.float64)
        spd = slots_per_day or self.slots_per_day
        k = self._ratio_at(np.asarray(slot_of_day), spd)
        v = np.asarray(values, dtype=np.float64)
        return v * k if dst == "users" else v / k

    def _ratio_at(self, slot_of_day: np.ndarray, spd: int) -> np.ndarray:
        """Ratio at slots given on a grid of `spd` slots/day (averaged/looked up across granularities)."""
        if spd == self.slots_per_day:
            return self.users_per_traffic[slot_of_day]
        if self.slots_per_day % spd == 0:  # coarser target slots: mean of the fine ratios inside
            f = self.slots_per_day // spd
            return self.users_per_traffic.reshape(spd, f).mean(axis=1)[slot_of_day]
        if spd % self.slots_per_day == 0:
            return self.users_per_traffic[slot_of_day // (spd // self.slots_per_day)]
        raise InputError(f"cannot map {spd} slots/day onto a conversion fitted at {self.slots_per_day}")


def require_demand(demand: object, unit: str, role: str, capacity: str, fix: str) -> "Demand":
    """Check that `demand` is a Demand cube in `unit` (the unit its capacity `capacity` is stated in).

    `role` names the argument in messages ('demand', 'load'); `fix` says how to repair a unit mismatch.
    """
    if not isinstance(demand, Demand):
        raise InputError(f"{role} must be a planning.demand.Demand, got {type(demand).__name__}")
    if demand.unit != unit:
        raise InputError(f"{role} is in {demand.unit!r} but the {capacity} is in {unit!r}: {fix}")
    return demand
