"""Covariates known for the horizon in a forward forecast: whether users are shown, and their values.

The data declares when each covariate is known (`forecasting.data.covariates`); the forecaster declares
what it reads at hidden entries (`Forecaster.futr_exog`). Users of the horizon are shown to the model only
where both say so: the city declares them futr (a city that declares nothing follows the model), and the
model was trained to read them (`uomo-train --users-exog futr`). Declared hist they stay hidden (the
no-peeking rule); a hist-trained model never reads them at hidden entries anyway.

Their values: the city's own users where the horizon lies inside the data (a back-test), and past the end
the `futr` values the caller supplies (Nixtla's `futr_df`, read by `futr_values`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import City, DataError
from .data.covariates import users_availability
from .data.geometry import cell_id_grid


def users_shown(model, city: City) -> bool:
    """True when the horizon's users are shown: declared futr by the city (or, undeclared, by the model)
    and read by the model."""
    reads = "users" in getattr(model, "futr_exog", ())
    declared = users_availability(city.covariates) == "futr" if city.covariates is not None else reads
    return reads and declared and city.users is not None


def known_for_horizon(model, city: City) -> tuple[str, ...]:
    """The covariates to leave visible at hidden entries of `city`'s windows (`hide(futr_exog=...)`)."""
    return ("users",) if users_shown(model, city) else ()


def horizon_users(city: City, regions: np.ndarray, origin: int, horizon: int, length: int,
                  futr: np.ndarray | None = None) -> np.ndarray:
    """(R, length, H, W) raw users of steps [origin, origin + length): the city's, then `futr`'s, NaN after.

    `futr` (R, horizon, H, W) gives the users of the horizon steps; where it is NaN (or absent) the city's
    own values are used for steps inside the data. Every step of the horizon needs a value: a missing one
    raises, naming what to supply.
    """
    R, (H, W) = regions.size, city.grid
    out = np.full((R, length, H, W), np.nan, dtype=np.float32)
    inside = max(0, min(horizon, city.n_steps - origin))
    out[:, :inside] = city.users[regions, origin:origin + inside]
    if futr is not None:
        futr = np.asarray(futr, dtype=np.float32)
        if futr.shape != (R, horizon, H, W):
            raise DataError(f"futr users must be (regions, horizon, H, W) = {(R, horizon, H, W)}, got {futr.shape}")
        given = ~np.isnan(futr)
        out[:, :horizon][given] = futr[given]
    gaps = np.isnan(out[:, :horizon])
    if gaps.any():
        first = int(np.argwhere(gaps)[0][1])
        raise DataError(f"users are declared futr (known for the horizon) but have no values for {int(gaps.sum())} "
                        f"(cell, step) entries of it, from step {origin + first} (the data ends at step "
                        f"{city.n_steps - 1}): pass futr_df= with unique_id, ds, users rows for the horizon, or "
                        "declare users hist_exog")
    return out


def futr_values(city: City, regions: np.ndarray, steps: np.ndarray, times: np.ndarray | None, futr_df: pd.DataFrame,
                name: str = "users") -> np.ndarray:
    """(R, h, H, W) values of covariate `name` from a Nixtla future frame (unique_id, ds, name), NaN where absent.

    Rows are matched to cells by id (`cell_id` or `unique_id`) and to steps by timestamp (`ds` or
    `timestamp`; a step index where the city has no calendar); rows outside the horizon are ignored.
    """
    frame = futr_df.rename(columns={"unique_id": "cell_id", "ds": "timestamp"})
    missing = [c for c in ("cell_id", "timestamp", name) if c not in frame.columns]
    if missing:
        raise DataError(f"futr_df lacks the column(s) {missing}; it has {list(map(str, futr_df.columns))}: give "
                        f"unique_id, ds and {name} (one row per cell and horizon step)")
    ids = cell_id_grid(city)[regions]  # (R, H, W)
    where = {cid: (r, h, w) for (r, h, w), cid in np.ndenumerate(ids)}
    pos = [where.get(str(c)) for c in frame["cell_id"]]
    unknown = sorted({str(c) for c, p in zip(frame["cell_id"], pos) if p is None})
    if unknown:
        raise DataError(f"futr_df has rows for {len(unknown)} cells that are not forecast, e.g. {unknown[:5]}")
    keys = pd.Index(pd.to_datetime(times[0]) if times is not None else steps)
    stamp = pd.to_datetime(frame["timestamp"]) if times is not None else frame["timestamp"]
    t = keys.get_indexer(stamp)
    out = np.full((regions.size, steps.size, *city.grid), np.nan, dtype=np.float32)
    ok = t >= 0
    r, h, w = (np.array([p[i] for p, k in zip(pos, ok) if k], dtype=int) for i in range(3))
    out[r, t[ok], h, w] = pd.to_numeric(frame[name], errors="coerce").to_numpy()[ok]
    return out
