"""A city at a coarser time step: `resample_city(city, minutes)` and the `<name>@<minutes>min` names.

Traffic is a volume per slot, so a coarser slot holds the sum of the fine slots it spans; users and
further covariates are stocks (connected users, a price), so a coarser slot holds their mean. Coarse
slots start at midnight: each region drops the fine steps before its first slot boundary and the
incomplete slot at its end, and every region keeps the same number of coarse steps.

    load_city("nanjing@60min")      # Nanjing's 15-minute series summed into hours
    resample_city(city, 60)         # the same for a City in memory
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .city import City, DataError

#: a resampled city's name: the source's name, '@', whole minutes per slot, 'min'
RESAMPLED_NAME = re.compile(r"^(?P<base>.+)@(?P<minutes>\d+)min$")


def parse_resampled_name(name: str) -> tuple[str, int] | None:
    """('nanjing', 60) for 'nanjing@60min'; None for a name without the suffix."""
    match = RESAMPLED_NAME.match(name)
    if match is None:
        return None
    return match["base"], int(match["minutes"])


def resample_factor(city: City, minutes: int) -> int:
    """How many of the city's slots one `minutes`-long slot spans (DataError if it is not a whole number
    of them, or if the slot would not divide a day)."""
    if minutes <= 0 or (24 * 60) % minutes:
        raise DataError(f"{city.name}: a slot of {minutes} minutes does not divide a day into whole slots "
                        "(use e.g. 30, 60, 120 minutes)")
    fine = city.minutes_per_slot
    factor = minutes / fine
    if factor < 1 or abs(factor - round(factor)) > 1e-9:
        raise DataError(f"{city.name} has {fine:g}-minute slots: resample to a whole multiple of them "
                        f"(e.g. {int(2 * fine)} minutes), not {minutes}")
    return int(round(factor))


def _block_sum(a: np.ndarray, offsets: np.ndarray, factor: int, n: int) -> np.ndarray:
    """(R, T, ...) -> (R, n, ...): region r's sums over fine steps [offset_r + k f, offset_r + (k + 1) f)."""
    out = [a[r, o:o + n * factor].reshape(n, factor, *a.shape[2:]).sum(1) for r, o in enumerate(offsets)]
    return np.stack(out).astype(np.float32)


def resample_city(city: City, minutes: int) -> City:
    """The city with `minutes`-long slots: traffic summed, users and covariates averaged over each slot.

    A coarse slot k of region r spans the fine steps [o_r + k f, o_r + (k + 1) f) with f = minutes /
    the city's slot length and o_r the first step of region r at a slot boundary (slot_of_day % f = 0);
    every region keeps n = min_r floor((T - o_r) / f) slots. The same areas as the source (its
    `geography`), so leave-one-region-out choices hold both out together.
    """
    factor = resample_factor(city, minutes)
    if factor == 1:
        return city
    offsets = (-city.slot_of_day[:, 0]) % factor  # (R,) fine steps before the first boundary
    n = int(((city.n_steps - offsets) // factor).min())
    if n < 1:
        raise DataError(f"{city.name}: {city.n_steps} steps hold no whole {minutes}-minute slot")
    first = offsets[:, None] + factor * np.arange(n)[None, :]  # (R, n) fine index of each slot's start
    rows = np.arange(city.n_regions)[:, None]
    mean = lambda a: _block_sum(a, offsets, factor, n) / factor  # noqa: E731
    start_time = city.start_time
    if start_time is not None:
        step = np.timedelta64(int(round(city.minutes_per_slot * 60)), "s")
        start_time = np.asarray(start_time) + offsets * step
    return replace(
        city,
        name=f"{city.name}@{minutes}min",
        traffic=_block_sum(city.traffic, offsets, factor, n),
        users=None if city.users is None else mean(city.users),
        exog=None if city.exog is None else {k: mean(v) for k, v in city.exog.items()},
        day_of_week=city.day_of_week[rows, first],
        slot_of_day=city.slot_of_day[rows, first] // factor,
        slots_per_day=city.slots_per_day // factor,
        start_time=start_time,
        meta={**city.meta, "geography": city.geography, "resampled_from_minutes": city.minutes_per_slot},
    )
