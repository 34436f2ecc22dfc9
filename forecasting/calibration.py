"""Calibrated predictive distributions: split-conformal recalibration fitted on the val regions.

Any forecaster's predictive distribution (UoMo's samples, or a baseline's point forecast) is recalibrated
per city, task and lead-time bucket from standardised residuals on the val regions:

    z = (y - m) / (s + floor)

with m the point forecast, s the forecaster's own spread (half the 10-90% range of its samples) when it
samples, else |m| (a relative error), and floor = FLOOR_SHARE x mean(s) over the fitted entries (cells the
model is sure are empty still get a band). The calibrated quantile at level a is

    Q(a) = clip(m + (s + floor) Qz(a), 0, 1)                        (normalised traffic scale)

with Qz the empirical quantile function of z on the val entries of the same city, task and lead bucket:
split conformal prediction with a locally adaptive scale, so a central interval [Q((1-c)/2), Q((1+c)/2)]
covers a share c of new exchangeable entries. Baselines get their intervals from the same procedure, so a
comparison of plans measures the forecasts, not the hedging.

Calibrated samples keep the raw samples' rank order at every entry (ensemble copula coupling): sample k of
an entry takes the calibrated quantile at the level of its rank, so paths keep the model's dependence over
time and space while their marginals are the calibrated ones. A point forecaster's samples are the
calibrated quantiles at S evenly spaced levels, in the same order everywhere.

    cal = fit_calibration(model, [city], split="val")        # once, on val regions
    cal.save("runs/model.calibration.json")
    calibrated = CalibratedForecaster(model, cal)             # same interface, calibrated samples
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import City, CityScalers, Windows, make_windows
from .interface import Forecaster, NotApplicable, Prediction, hide

#: quantile levels of z stored per table (0.5% steps; Qz is interpolated linearly between them)
LEVELS = np.round(np.linspace(0.0, 1.0, 201), 6)
#: lead-time buckets per task (equal shares of the hidden horizon); generation and random have no lead
BUCKETS = {"short": 4, "long": 6, "generation": 1, "random": 1}
HORIZON = {"short": 16, "long": 48}  # nominal hidden steps; buckets are shares of it
FLOOR_SHARE = 0.1
POOLED = "*"  # the table fitted on every city's val entries, used for cities without their own
FORMAT = "uomo-calibration/1"


class CalibrationError(ValueError):
    """A calibration file or table that cannot be used (wrong format, unknown task, too few entries)."""


# ----------------------------------------------------------------------------------------------------
# Reading a batch: task, lead buckets, point and spread
# ----------------------------------------------------------------------------------------------------


def infer_task(mask: np.ndarray) -> str:
    """The task of one window's mask (T, H, W): 'short'/'long' (a hidden suffix of at most 16/48 steps over
    every cell), 'generation' (some cells hidden at every step, the others observed) or 'random'."""
    m = np.asarray(mask, dtype=bool)
    T = m.shape[0]
    steps = m.reshape(T, -1)
    hidden_t = steps.all(axis=1)
    if hidden_t.any() and (hidden_t == steps.any(axis=1)).all():
        first = int(np.argmax(hidden_t))
        if hidden_t[first:].all():  # a hidden suffix: the shorter horizons of a rolled plan count too
            return "short" if T - first <= HORIZON["short"] else "long" if T - first <= HORIZON["long"] else "random"
    cells = steps.any(axis=0)
    if cells.any() and (steps[:, cells].all() and not cells.all()):
        return "generation"
    return "random"


def lead_buckets(mask: np.ndarray, task: str) -> np.ndarray:
    """(T,) lead bucket of each step of a window with `mask` (T, H, W) of `task` (-1 where nothing is hidden)."""
    m = np.asarray(mask, dtype=bool).reshape(mask.shape[0], -1).any(axis=1)
    out = np.full(m.shape[0], -1, dtype=np.int64)
    if not m.any():
        return out
    n = BUCKETS[task]
    first = int(np.argmax(m))
    horizon = HORIZON.get(task, m.shape[0] - first)
    lead = np.arange(m.shape[0]) - first
    out[m] = np.minimum(lead[m] * n // max(horizon, 1), n - 1)
    return out


def point_and_spread(pred: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """(m, s) of a prediction: its point forecast and its own spread (half the 10-90% sample range, else |m|)."""
    m = np.asarray(pred.mean, dtype=np.float64)
    if pred.samples is None or pred.samples.shape[0] < 2:
        return m, np.abs(m)
    q10, q90 = np.quantile(np.asarray(pred.samples, dtype=np.float64), [0.1, 0.9], axis=0)
    return m, (q90 - q10) / 2


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


@dataclass
class ResidualTable:
    """Quantiles of standardised residuals z at `LEVELS`, one row per lead bucket, with the scale floor."""

    z: np.ndarray  # (B, len(LEVELS))
    floor: float
    n: int  # residuals fitted

    def quantile(self, levels: np.ndarray | float, bucket: np.ndarray | int) -> np.ndarray:
        """Qz(level) in `bucket` (broadcast together)."""
        levels = np.clip(np.asarray(levels, dtype=np.float64), 0.0, 1.0)
        bucket = np.clip(np.asarray(bucket, dtype=np.int64), 0, self.z.shape[0] - 1)
        pos = levels * (LEVELS.size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, LEVELS.size - 1)
        frac = pos - lo
        return self.z[bucket, lo] * (1 - frac) + self.z[bucket, hi] * frac

    @classmethod
    def fit(cls, residual: np.ndarray, spread: np.ndarray, bucket: np.ndarray, task: str) -> "ResidualTable":
        """From residuals y - m, spreads s and lead buckets of hidden entries (1-D arrays alike)."""
        residual, spread = np.asarray(residual, np.float64), np.asarray(spread, np.float64)
        if residual.size < 10:
            raise CalibrationError(f"{residual.size} residuals are too few to calibrate {task!r} on")
        floor = FLOOR_SHARE * float(spread.mean()) + 1e-9
        z = residual / (spread + floor)
        rows = []
        for b in range(BUCKETS[task]):
            zb = z[bucket == b]
            if zb.size < 10:  # a bucket with (almost) no entries borrows the task's pooled residuals
                zb = z
            rows.append(np.quantile(zb, LEVELS))
        return cls(np.array(rows), floor, int(z.size))


@dataclass
class Calibration:
    """Residual tables by (city, task); `POOLED` as city holds the tables over every fitted city."""

    tables: dict[tuple[str, str], ResidualTable]
    meta: dict = field(default_factory=dict)

    def table(self, city: str, task: str) -> ResidualTable | None:
        return self.tables.get((city, task)) or self.tables.get((POOLED, task))

    def quantiles(self, pred: Prediction, mask: np.ndarray, city: str, levels: Sequence[float]) -> np.ndarray:
        """(len(levels), N, T, H, W) calibrated quantiles (normalised scale); entries outside `mask` keep m."""
        m, s = point_and_spread(pred)
        out = np.broadcast_to(m, (len(levels), *m.shape)).copy()
        lv = np.asarray(levels, dtype=np.float64)
        for i in range(m.shape[0]):
            task = infer_task(mask[i])
            tab = self.table(city, task)
            if tab is None:
                raise CalibrationError(f"no calibration for task {task!r} (city {city!r}): fit one with fit_calibration")
            b = lead_buckets(mask[i], task)[:, None, None]  # (T, 1, 1)
            qz = tab.quantile(lv[:, None, None, None], b[None])  # (Q, T, 1, 1)
            q = m[i][None] + (s[i][None] + tab.floor) * qz
            out[:, i] = np.where(mask[i][None], np.clip(q, 0.0, 1.0), m[i][None])
        return out

    def samples(self, pred: Prediction, mask: np.ndarray, city: str, n_samples: int | None = None) -> np.ndarray:
        """(S, N, T, H, W) calibrated samples: each raw sample takes the calibrated quantile of its rank.

        Without raw samples, `n_samples` (default 32) quantiles at levels (k + 1/2) / S, comonotone.
        """
        if pred.samples is not None and pred.samples.shape[0] >= 2:
            raw = np.asarray(pred.samples)
            S = raw.shape[0]
            levels = (np.arange(S) + 0.5) / S
            q = self.quantiles(pred, mask, city, levels)  # (S, ...) ascending in the level
            ranks = np.argsort(np.argsort(raw, axis=0, kind="stable"), axis=0, kind="stable")
            out = np.take_along_axis(q, ranks, axis=0)
        else:
            S = n_samples or 32
            out = self.quantiles(pred, mask, city, (np.arange(S) + 0.5) / S)
        return out.astype(np.float32)

    # -- files -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "levels": LEVELS.tolist(), "meta": self.meta,
            "tables": [
                {"city": c, "task": t, "floor": tab.floor, "n": tab.n, "z": np.round(tab.z, 7).tolist()}
                for (c, t), tab in sorted(self.tables.items())
            ],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> "Calibration":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CalibrationError(f"{source}: not a {FORMAT} file")
        if not np.allclose(d.get("levels", []), LEVELS):
            raise CalibrationError(f"{source}: stored at other quantile levels than this version's")
        tables = {}
        for t in d.get("tables", []):
            z = np.asarray(t["z"], dtype=np.float64)
            if t["task"] not in BUCKETS or z.ndim != 2 or z.shape[1] != LEVELS.size or not np.all(np.isfinite(z)):
                raise CalibrationError(f"{source}: malformed table for {t.get('city')}/{t.get('task')}")
            tables[(str(t["city"]), str(t["task"]))] = ResidualTable(z, float(t["floor"]), int(t["n"]))
        return cls(tables, dict(d.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        """Write atomically (a kill leaves the old file or the new one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"cannot read calibration {path}: {exc}") from exc
        return cls.from_dict(d, str(path))


# ----------------------------------------------------------------------------------------------------
# Fitting on val regions
# ----------------------------------------------------------------------------------------------------


def residuals(forecaster: Forecaster, windows: Windows, masks: np.ndarray, task: str,
              chunk: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the hidden entries of `windows`: (y - m, s, lead bucket), from the forecaster's raw predictions."""
    res, spread, buckets = [], [], []
    for lo in range(0, len(windows), chunk):
        part, mask = windows.take(slice(lo, lo + chunk)), masks[lo:lo + chunk]
        pred = forecaster.predict(hide(part, mask, keep_users=forecaster.sees_future_users), mask)
        m, s = point_and_spread(pred)
        b = np.stack([lead_buckets(mk, task) for mk in mask])[:, :, None, None]
        b = np.broadcast_to(b, mask.shape)
        res.append((part.traffic - m)[mask])
        spread.append(s[mask])
        buckets.append(b[mask])
    return np.concatenate(res), np.concatenate(spread), np.concatenate(buckets)


def calibration_windows(city: City, split: str, stride: int, scalers: CityScalers | None = None) -> Windows:
    """Windows of `city`'s `split` regions every `stride` steps, on the city's benchmark scale."""
    regions = city.regions(split)
    if regions.size == 0:
        raise CalibrationError(f"{city.name} has no {split!r} regions to calibrate on")
    return make_windows(city, regions=regions, stride=stride, scalers=scalers or CityScalers.fit(city))


def fit_calibration(
    forecaster: Forecaster,
    cities: Sequence[City],
    tasks: Sequence[str] = ("short", "long", "generation"),
    split: str = "val",
    stride: int = 8,
    seed: int = 0,
) -> Calibration:
    """Residual tables per (city, task) and pooled over cities, from `forecaster` on the `split` regions."""
    from .evaluate import window_masks

    if getattr(forecaster, "calibration", None) is not None:  # fit on the raw distribution, never on a calibrated one
        forecaster = copy.copy(forecaster)
        forecaster.calibration = None
    pooled: dict[str, list] = {t: [] for t in tasks}
    tables: dict[tuple[str, str], ResidualTable] = {}
    counts = {}
    for city in cities:
        win = calibration_windows(city, split, stride)
        for task in tasks:
            if task not in forecaster.tasks:
                continue
            try:
                r, s, b = residuals(forecaster, win, window_masks(win, task, seed), task)
            except NotApplicable:
                continue
            tables[(city.name, task)] = ResidualTable.fit(r, s, b, task)
            pooled[task].append((r, s, b))
            counts[f"{city.name}/{task}"] = int(r.size)
    for task, parts in pooled.items():
        if not parts:
            continue
        r, s, b = (np.concatenate(p) for p in zip(*parts))
        tables[(POOLED, task)] = ResidualTable.fit(r, s, b, task)
    if not tables:
        raise CalibrationError(f"{forecaster.name} served none of the tasks {list(tasks)} on the {split} regions")
    meta = {"forecaster": forecaster.name, "split": split, "stride": stride, "seed": seed, "entries": counts}
    return Calibration(tables, meta)


# ----------------------------------------------------------------------------------------------------
# A calibrated forecaster
# ----------------------------------------------------------------------------------------------------


class CalibratedForecaster(Forecaster):
    """`base` with calibrated samples (same point forecast); `base` itself stays the uncalibrated one."""

    def __init__(self, base: Forecaster, calibration: Calibration, n_samples: int = 32):
        self.base = base
        self.calibration = calibration
        self.n_samples = n_samples
        self.name = base.name
        self.tasks = base.tasks

    @property
    def sees_future_users(self) -> bool:  # type: ignore[override]
        return self.base.sees_future_users

    def fit(self, cities) -> "CalibratedForecaster":
        self.base.fit(cities)
        return self

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        pred = self.base.predict(windows, mask)
        samples = self.calibration.samples(pred, mask, windows.city, self.n_samples)
        return Prediction(mean=pred.mean, samples=samples)


def calibration_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's calibration lives: beside it, `<name>.calibration.json`."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".calibration.json")
