"""Forecast past the last observation (or from any step inside the history): rolled windows, sample paths.

    model = load_forecaster("uomo-synthetic-cpu", n_samples=16)
    frame = forecast(model, city, horizon=96)                    # the next 96 steps after the data
    frame = forecast(model, city, horizon="2D", start=500)       # back-test: from step 500, with `truth`

A 64-step window holds `n_obs` observed steps and forecasts the next `hidden` ones (task 'short': 48 -> 16,
'long': 16 -> 48). Longer horizons roll: window k starts `k * hidden` steps later, and its observed part
is the history where there is one and the forecast of the previous windows after it. Each of the S sample
paths is rolled on its own: the window that continues path s is conditioned on path s's own values and
draws path s's next `hidden` steps, so the spread of the paths grows with the lead time the way the
uncertainty does (conditioning every path on the median would shrink it):

    x^(s)[t]  ~  p( x[t] | x^(s)[t - n_obs .. t_k), context )     for t in window k's hidden part

Each window is forecast as in a back-test, calibration included (`forecasting.calibration`): the first
window by the model's own `predict` (a UoMo checkpoint with a calibration file is calibrated exactly as
in a back-test), and every rolled (path, region) window by D draws (UoMo: `draws`, default its
n_samples), calibrated as one window's ensemble, of which path s keeps draw s mod D. So a rolled window
costs D times the first one; the calibration tables were fitted on windows whose observed part is the
truth, so at leads past the first window the bands are measured (tests/test_forward.py), not guaranteed.
Calibrating the ensemble of all paths instead (one draw per path) inflates the already propagated spread
again at every roll: the bands then grow geometrically (x15 over six rolls on a synthetic city).

A point forecaster (the baselines) rolls its one path on its own forecast; its frame has `mean` and no
quantile columns. A forecaster that returns samples without a `sample` method (a calibrated baseline)
continues path s with draw s of the window conditioned on path s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from .data import City, CityScalers, DataError, Windows, cut_day_before
from .data.geometry import cell_id_grid
from .exog import futr_values, horizon_users, users_shown
from .interface import Forecaster, Prediction, hide
from .masks import LONG_OBSERVED, SHORT_OBSERVED

#: observed steps per 64-step window of each task (the rest of the window is forecast)
OBSERVED = {"short": SHORT_OBSERVED, "long": LONG_OBSERVED}
WINDOW_LENGTH = 64


# ----------------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------------


@dataclass
class ForwardForecast:
    """A forecast of `regions` over the steps `steps` (from the first step of the series), raw units.

    point (R, h, H, W): the point forecast (the model's own point statistic, calibrated when it is);
    samples (S, R, h, H, W) or None: the sample paths; truth (R, h, H, W) where the steps were observed
    (NaN past the end), None for a pure forward forecast; times (R, h) datetime64, None without calendar.
    """

    city: str
    regions: np.ndarray
    steps: np.ndarray
    point: np.ndarray
    samples: np.ndarray | None
    cell_ids: np.ndarray  # (R, H, W) str
    day_of_week: np.ndarray  # (R, h)
    slot_of_day: np.ndarray  # (R, h)
    times: np.ndarray | None = None
    truth: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        """(R, h, H, W) mean of the sample paths (the point forecast when there are none)."""
        return self.point if self.samples is None else self.samples.mean(axis=0)

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """(len(qs), R, h, H, W) empirical quantiles of the sample paths."""
        if self.samples is None or self.samples.shape[0] < 2:
            raise DataError("this forecast has no sample paths: quantiles need a sampling forecaster")
        return np.quantile(self.samples, list(qs), axis=0)

    def frame(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), samples: bool = False) -> pd.DataFrame:
        """Tidy frame, one row per cell and step, sorted by cell then time.

        Columns: unique_id (cell id), ds (timestamp, or the step index when the city has no calendar),
        region, row, col, step, mean, q<level>... (only with sample paths), truth (back-tests only), and
        sample_<k> for every path when `samples`.
        """
        R, h, H, W = self.point.shape
        order = lambda a: np.moveaxis(a, 1, -1).reshape(-1)  # noqa: E731  (R, h, H, W) -> cell-major rows
        r, row, col, t = (np.broadcast_to(a, (R, H, W, h)).reshape(-1) for a in np.ix_(
            np.arange(R), np.arange(H), np.arange(W), np.arange(h)))
        ds = self.times[r, t] if self.times is not None else self.steps[t]
        out = pd.DataFrame({"unique_id": self.cell_ids[r, row, col], "ds": ds, "region": self.regions[r],
                            "row": row, "col": col, "step": self.steps[t], "mean": order(self.mean)})
        if self.samples is not None and self.samples.shape[0] >= 2:
            for q, values in zip(quantiles, self.quantiles(quantiles)):
                out[f"q{q:g}"] = order(values)
        if self.truth is not None:
            out["truth"] = order(self.truth)
        if samples and self.samples is not None:
            out = pd.concat([out, pd.DataFrame({f"sample_{k}": order(s) for k, s in enumerate(self.samples)})],
                            axis=1)
        return out


# ----------------------------------------------------------------------------------------------------
# Calendar past the end
# ----------------------------------------------------------------------------------------------------


def step_calendar(city: City, regions: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(day_of_week, slot_of_day, times) of `steps` (any step >= 0, past the end too) of `regions`: (R, n) each.

    Steps are regular (`validate_city`), so step t of region r is its first step plus t slots:
    a = 7-day slot index of step 0 + t, day_of_week = (a // slots_per_day) % 7, slot_of_day = a % slots_per_day;
    times = start_time + t x minutes_per_slot where the city knows its start time, else None.
    """
    spd = city.slots_per_day
    first = city.day_of_week[regions, 0] * spd + city.slot_of_day[regions, 0]  # (R,)
    a = first[:, None] + np.asarray(steps, dtype=np.int64)[None, :]
    times = None
    if city.start_time is not None:
        offset = (np.asarray(steps, dtype=np.int64) * city.minutes_per_slot).astype("timedelta64[m]")
        times = np.asarray(city.start_time)[regions][:, None] + offset[None, :]
    return (a // spd) % 7, a % spd, times


# ----------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------


def origin_step(city: City, start, regions: np.ndarray) -> int:
    """The first forecast step: 'end' (= n_steps), a step index in 1..n_steps, or a timestamp of the calendar."""
    T = city.n_steps
    if isinstance(start, str) and start == "end":
        return T
    if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        step = int(start)
    else:
        step = _timestamp_step(city, start, regions)
    if step > T:
        raise DataError(f"start={start!r} (step {step}) lies past the end of {city.name}'s data ({T} steps, "
                        f"the last one is step {T - 1}): forecast from start='end', with a longer horizon")
    if step < 1:
        raise DataError(f"start={start!r} (step {step}) leaves no history to forecast from: start after step 0")
    return step


def _timestamp_step(city: City, start, regions: np.ndarray) -> int:
    """The step index of the timestamp `start` (a step boundary of the city's calendar)."""
    if city.start_time is None:
        raise DataError(f"start={start!r}: {city.name} has no calendar (no start time), so start must be 'end' "
                        "or a step index")
    try:
        when = pd.Timestamp(start)
    except (TypeError, ValueError):
        raise DataError(f"start={start!r} is neither 'end', a step index nor a timestamp") from None
    first = pd.Timestamp(np.asarray(city.start_time)[regions[0]])
    slots = (when - first) / pd.Timedelta(minutes=city.minutes_per_slot)
    if slots != int(slots):
        raise DataError(f"start={start!r} is not on a step boundary of {city.name} (steps of "
                        f"{city.minutes_per_slot:g} min from {first})")
    return int(slots)


def horizon_steps(city: City, horizon) -> int:
    """The horizon in steps: a whole number >= 1, or a duration ('2D', '6h', a Timedelta) of whole steps."""
    if isinstance(horizon, (int, np.integer)) and not isinstance(horizon, bool):
        steps = int(horizon)
    else:
        try:
            steps_f = pd.Timedelta(horizon) / pd.Timedelta(minutes=city.minutes_per_slot)
        except (TypeError, ValueError):
            raise DataError(f"horizon={horizon!r} is neither a number of steps nor a duration like '2D'") from None
        if steps_f != int(steps_f):
            raise DataError(f"horizon={horizon!r} is not a whole number of {city.minutes_per_slot:g}-min steps")
        steps = int(steps_f)
    if steps < 1:
        raise DataError(f"horizon={horizon!r} must be at least one step")
    return steps


# ----------------------------------------------------------------------------------------------------
# Rolling
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Track:
    """Normalised values of the rolled windows' steps [origin - n_obs, origin - n_obs + L) per path.

    traffic (P, R, L, H, W): the history, then each path's forecast (NaN until written);
    users (R, L, H, W) or None: the history's users, then NaN, or the horizon's when declared futr
    (`forecasting.exog`).
    """

    traffic: np.ndarray
    users: np.ndarray | None
    day_of_week: np.ndarray  # (R, L)
    slot_of_day: np.ndarray  # (R, L)
    first_step: int
    before: np.ndarray  # (R, D, H, W) the record of the D = slots-per-day steps before the track (NaN before the series)


def _track(city: City, regions: np.ndarray, origin: int, n_obs: int, length: int, scalers: CityScalers,
           futr_users: np.ndarray | None = None) -> _Track:
    """The track of a forecast from `origin`: history steps [origin - n_obs, origin), then `length - n_obs` NaN
    (users: `futr_users` (R, length - n_obs, H, W) raw, when they are known for the horizon)."""
    R, (H, W) = regions.size, city.grid
    lo = origin - n_obs
    traffic = np.full((1, R, length, H, W), np.nan, dtype=np.float32)
    traffic[0, :, :n_obs] = scalers.traffic.transform(city.traffic[regions, lo:origin])
    users = None
    if city.users is not None and scalers.users is not None:
        users = np.full((R, length, H, W), np.nan, dtype=np.float32)
        users[:, :n_obs] = scalers.users.transform(city.users[regions, lo:origin])
        if futr_users is not None:
            users[:, n_obs:] = scalers.users.transform(futr_users)
    dow, sod, _ = step_calendar(city, regions, np.arange(lo, lo + length))
    d = city.slots_per_day  # the d steps before the track are the day before its first d steps
    before = scalers.traffic.transform(cut_day_before(city.traffic, regions, np.full(R, lo), d, d))
    return _Track(traffic, users, dow, sod, lo, before)


def _day_before(track: _Track, k: int, hidden: int, slots_per_day: int) -> np.ndarray:
    """(P * R, L, H, W) path-major: each step's value one day earlier for roll k's window, where that lies
    before the window (`forecasting.data.cut_day_before`): the record before the track, the track's
    history, or the path's own forecast of an earlier roll; NaN for steps a day or more into the window."""
    P, R = track.traffic.shape[:2]
    extended = np.concatenate([np.broadcast_to(track.before, (P, *track.before.shape)), track.traffic], axis=2)
    out = extended[:, :, k * hidden:k * hidden + WINDOW_LENGTH].copy()  # step t of roll k: its day before at k hidden + t
    out[:, :, slots_per_day:] = np.nan
    return out.reshape(P * R, WINDOW_LENGTH, *out.shape[3:])


def _windows(city: City, regions: np.ndarray, track: _Track, k: int, hidden: int, scalers: CityScalers) -> Windows:
    """Roll k's windows, one per (path, region), path-major: steps [k hidden, k hidden + 64) of the track."""
    P, R = track.traffic.shape[:2]
    sl = slice(k * hidden, k * hidden + WINDOW_LENGTH)
    tile = lambda a: None if a is None else np.tile(a, (P,) + (1,) * (a.ndim - 1))  # noqa: E731
    return Windows(
        city=city.name, traffic=track.traffic[:, :, sl].reshape(P * R, WINDOW_LENGTH, *city.grid),
        day_of_week=tile(track.day_of_week[:, sl]), slot_of_day=tile(track.slot_of_day[:, sl]),
        slots_per_day=city.slots_per_day, region=np.tile(regions, P),
        start=np.full(P * R, track.first_step + k * hidden), users=tile(None if track.users is None else track.users[:, sl]),
        poi=tile(None if city.poi is None else city.poi[regions]), scalers=scalers,
        valid=tile(None if city.cell_valid is None else city.cell_valid[regions]),
        day_before=_day_before(track, k, hidden, city.slots_per_day),
        poi_categories=city.poi_schema,
        residents=tile(None if city.residents is None else city.residents[regions]),
    )


def _first_window(model: Forecaster, win: Windows, mask: np.ndarray, shown: tuple[str, ...] = ()
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(paths (P, R, 64, H, W), point (R, 64, H, W)) of roll 0: the model's own (calibrated) `predict`;
    `shown`: the covariates known for the horizon (`hide`)."""
    pred = model.predict(hide(win, mask, futr_exog=shown), mask)
    point = np.asarray(pred.mean, dtype=np.float32)
    if pred.samples is not None and pred.samples.shape[0] >= 2:
        return np.asarray(pred.samples, dtype=np.float32), point
    return point[None], point


def _rolled_window(model: Forecaster, win: Windows, mask: np.ndarray, n_paths: int, seed: int,
                   draws: int | None = None, shown: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(paths (P, R, 64, H, W), point (R, 64, H, W)) of a later roll: path p continues from its own window.

    Every (path, region) window is forecast as in a back-test; path p takes draw p mod D of its window's D
    samples (UoMo: `draws` raw samples, default its n_samples, seeded `seed`, calibrated when the model
    has a calibration), or the point forecast of a point forecaster. The point is the paths' median.
    """
    masked = hide(win, mask, futr_exog=shown)
    if hasattr(model, "sample") and hasattr(model, "sampling"):
        sampling = replace(model.sampling, n_samples=draws or model.sampling.n_samples, seed=seed)
        raw = model.sample(masked, mask, sampling)
        pred = Prediction(np.median(raw, 0) if sampling.point == "median" else raw.mean(0), raw)
        calibration = getattr(model, "calibration", None)
        if calibration is not None and raw.shape[0] >= 2:
            pred = calibration.calibrate(pred, win, mask)
    else:
        pred = model.predict(masked, mask)
    if pred.samples is not None and pred.samples.shape[0] >= 2:
        paths = _path_draws(np.asarray(pred.samples, dtype=np.float32), n_paths)
    else:
        paths = np.asarray(pred.mean, dtype=np.float32).reshape(n_paths, -1, *win.traffic.shape[1:])
    return paths, np.median(paths, 0)


def _path_draws(draws: np.ndarray, n_paths: int) -> np.ndarray:
    """(P, R, ...) from (D, P R, ...) draws of path-major windows: path p takes draw p mod D of its window."""
    D, PR = draws.shape[:2]
    R = PR // n_paths
    by_path = draws.reshape(D, n_paths, R, *draws.shape[2:])
    return by_path[np.arange(n_paths) % D, np.arange(n_paths)]


def roll_forecast(model: Forecaster, city: City, regions: np.ndarray, origin: int, horizon: int,
                  task: Literal["short", "long"], scalers: CityScalers, seed: int = 0,
                  draws: int | None = None, futr_users: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(point (R, h, H, W), paths (P, R, h, H, W) or None) of normalised traffic for steps [origin, origin + h).

    Reads only the steps before `origin`, and `futr_users` (R, rolled steps, H, W) raw: the users of the
    horizon when they are known for it (`forecasting.exog`; None: hidden). Window k covers track steps [k hidden, k hidden + 64); its
    hidden part [n_obs + k hidden, n_obs + (k + 1) hidden) is written into each path's track.
    """
    n_obs = OBSERVED[task]
    hidden = WINDOW_LENGTH - n_obs
    n_rolls = -(-horizon // hidden)
    track = _track(city, regions, origin, n_obs, n_obs + n_rolls * hidden, scalers, futr_users)
    shown = ("users",) if futr_users is not None else ()
    R = regions.size
    mask = np.zeros((R, WINDOW_LENGTH, *city.grid), dtype=bool)
    mask[:, n_obs:] = True
    point = np.empty((R, n_rolls * hidden, *city.grid), dtype=np.float32)
    for k in range(n_rolls):
        win = _windows(city, regions, track, k, hidden, scalers)
        P = track.traffic.shape[0]
        if k == 0:
            paths, pt = _first_window(model, win, mask, shown)
            track.traffic = np.broadcast_to(track.traffic, (paths.shape[0], *track.traffic.shape[1:])).copy()
        else:
            paths, pt = _rolled_window(model, win, np.tile(mask, (P, 1, 1, 1)), P, seed + k, draws, shown)
        track.traffic[:, :, n_obs + k * hidden:n_obs + (k + 1) * hidden] = paths[:, :, n_obs:]
        point[:, k * hidden:(k + 1) * hidden] = pt[:, n_obs:]
    paths = track.traffic[:, :, n_obs:n_obs + horizon]
    return point[:, :horizon], (paths if paths.shape[0] >= 2 else None)


# ----------------------------------------------------------------------------------------------------
# The public calls
# ----------------------------------------------------------------------------------------------------


def forward_forecast(
    model: Forecaster,
    city: City,
    horizon: int | str | pd.Timedelta,
    start: str | int | pd.Timestamp | np.datetime64 = "end",
    task: Literal["short", "long"] = "short",
    regions: Sequence[int] | None = None,
    seed: int | None = None,
    draws: int | None = None,
    futr_users: np.ndarray | None = None,
) -> ForwardForecast:
    """Forecast `horizon` steps of `regions` (default: all) from `start`, in raw traffic units.

    `start`: 'end' (past the last observation), a step index, or a timestamp of the city's calendar.
    Only the steps before `start` are read, so a start inside the history is a back-test (the result
    then holds the truth where it was observed). `task` sets the windows: 'short' rolls 48 -> 16 steps,
    'long' 16 -> 48. The model must be fitted (baselines) and serve `task`. `seed` (default the model's
    sampling seed) seeds the rolled windows; `draws` samples a UoMo rolled window draws (default n_samples).
    Users of the horizon are shown only when declared futr and read by the model (`forecasting.exog`):
    then from the city inside the data and from `futr_users` (R, h, H, W) raw past its end.
    """
    if task not in OBSERVED:
        raise DataError(f"task={task!r}: a forecast past the end rolls 'short' (48 -> 16) or 'long' (16 -> 48) "
                        "windows")
    if task not in model.tasks:
        raise DataError(f"{model.name} does not forecast the {task!r} task (it serves {list(model.tasks)}): "
                        "pick a forecaster of future steps")
    idx = np.arange(city.n_regions) if regions is None else np.asarray(regions, dtype=int)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= city.n_regions:
        raise DataError(f"regions {list(idx)} are not regions of {city.name} (0..{city.n_regions - 1})")
    h = horizon_steps(city, horizon)
    origin = origin_step(city, start, idx)
    n_obs = OBSERVED[task]
    if origin < n_obs:
        raise DataError(f"start={start!r} leaves {origin} observed steps; the {task!r} windows need {n_obs}: "
                        "start later")
    history = city.head(origin)
    scalers = _scalers(model, history)
    seed = getattr(getattr(model, "sampling", None), "seed", 0) if seed is None else seed
    future = None
    if users_shown(model, city):
        hidden = WINDOW_LENGTH - n_obs
        future = horizon_users(city, idx, origin, h, -(-h // hidden) * hidden, futr_users)
    point, paths = roll_forecast(model, history, idx, origin, h, task, scalers, seed, draws, future)
    steps = np.arange(origin, origin + h)
    dow, sod, times = step_calendar(city, idx, steps)
    inverse = lambda a: np.clip(scalers.traffic.inverse(np.asarray(a, dtype=np.float64)), 0.0, None)  # noqa: E731
    truth = None
    if origin < city.n_steps:  # a back-test: the observed part of the horizon, NaN past the end
        truth = np.full(point.shape, np.nan)
        seen = min(h, city.n_steps - origin)
        truth[:, :seen] = city.traffic[idx, origin:origin + seen]
    return ForwardForecast(city.name, idx, steps, inverse(point), None if paths is None else inverse(paths),
                           cell_id_grid(city)[idx], dow, sod, times, truth)


def _scalers(model: Forecaster, history: City) -> CityScalers:
    """The model's scalers for this city when it carries them (UoMo checkpoints), else fitted on the history."""
    from .forecast import forecast_scalers

    return (getattr(model, "scalers", None) or {}).get(history.name) or forecast_scalers(history)


def forecast(
    model: Forecaster | str,
    data: City | pd.DataFrame,
    horizon: int | str | pd.Timedelta,
    start: str | int | pd.Timestamp | np.datetime64 = "end",
    *,
    task: Literal["short", "long"] = "short",
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    regions: Sequence[int] | None = None,
    samples: bool = False,
    cells=None,
    columns: dict[str, str] | None = None,
    hist_exog: Sequence[str] | None = None,
    futr_exog: Sequence[str] | None = None,
    stat_exog: Sequence[str] | None = None,
    futr_df: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Tidy forecast frame of `horizon` steps from `start` (default: past the end of the data).

    `model`: a fitted Forecaster, or a shipped checkpoint name / path (`load_forecaster`). `data`: a City,
    or a long frame read by `load_long_table`: Nixtla's (unique_id, ds, y[, covariates]) or (cell_id,
    timestamp, traffic[, users]) rows, with the cell table `cells` (positions; a GeoDataFrame or a frame
    with row/col or x/y), `columns` (renames) and the covariates' availability (`hist_exog`, `futr_exog`,
    `stat_exog`; users default to hist). `futr_df`: Nixtla's future frame (unique_id, ds, users) with the
    users of the horizon past the end of the data, needed when users are declared futr and read by the
    model (`forecasting.exog`). Columns: unique_id, ds, region, row, col, step, mean, q<level>..., truth
    (when `start` lies inside the history), sample_<k> (with `samples`); see `ForwardForecast.frame`.
    """
    if isinstance(model, str):
        from .forecast import load_forecaster

        model = load_forecaster(model)
    if isinstance(data, pd.DataFrame):
        from .data import load_long_table

        data = load_long_table(data, cells, columns=columns, hist_exog=hist_exog, futr_exog=futr_exog,
                               stat_exog=stat_exog)
    elif not isinstance(data, City):
        raise DataError(f"data must be a City or a long DataFrame, got {type(data).__name__}")
    futr = None
    if futr_df is not None:
        idx = np.arange(data.n_regions) if regions is None else np.asarray(regions, dtype=int)
        steps = np.arange(origin_step(data, start, idx), origin_step(data, start, idx) + horizon_steps(data, horizon))
        futr = futr_values(data, idx, steps, step_calendar(data, idx, steps)[2], futr_df)
    return forward_forecast(model, data, horizon, start, task, regions, futr_users=futr).frame(quantiles, samples)
