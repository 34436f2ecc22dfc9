"""Calibrated predictive distributions: split-conformal recalibration fitted on the val regions.

Any forecaster's predictive distribution (UoMo's samples, or a baseline's point forecast) is recalibrated
from standardised residuals on the val regions, in the same per-cell log space the network works in
(`forecasting.encoding`): with s the cell's scale from its observed entries of the window,

    g(x) = (log1p(x / s) - SHIFT) / SPREAD          (0 maps to g0 = -SHIFT / SPREAD)
    z    = (g(y) - g(m)) / (sg + floor)

with m the point forecast (moved toward the cell's last observation at early leads by the persistence
anchor fitted on the same val entries, `forecasting.anchor`; m below stands for that centre), sg the
forecaster's own spread in that space (half the 10-90% range of
g(samples)) when it samples, else 1 (a constant relative error), and floor = FLOOR_SHARE x mean(sg) over
the fitted entries. Errors are therefore relative to each cell's level: a quiet area and a busy one get
bands of the same *relative* width. The calibrated quantile at level a is

    Q(a) = g^-1(g(m) + (sg + floor) Qz(a)),  set to 0 where Q(a) < zero_share x s,  clipped to [0, 1]

with Qz the empirical quantile function of z on the val entries of the same city, task, lead bucket and
cell group (Mondrian split conformal prediction): group 0 = cells with non-zero observations in the window,
1 = cells observed and all zero (mostly cells with no traffic at all: 30-75% of a real region's cells),
2 = cells with no observation (generation). A central interval [Q((1-c)/2), Q((1+c)/2)] then covers a share
c of new exchangeable entries of each group; the bands of all-zero cells collapse to the atom at 0 when
the val regions' all-zero cells stay zero. A group too thin in one city's val regions borrows the same
group pooled over the fitted cities (a city whose val regions have no idle cell still learns from the
others' idle cells that they stay idle) before falling back to the city's other groups.

A city's val regions can disagree (the synthetic city has two, one quiet and noisier than the model's
spread says): bands fitted on them cover a new region of that city far from nominal. So a city with two
or more val regions keeps its own tables or takes tables fitted on every city's val entries, per task,
whichever covers its held-out val regions better (leave one region out, `pooling_errors`): a choice
made on val entries only, recorded in meta["pooling"].

Cells observed all zero also get an atom at 0 of their own: idle_zero[bucket] = the share of exact zeros
among the val entries of such cells (per city, task and lead bucket, borrowed from the pooled table like
the rows), and Q(a) = 0 for a < idle_zero. An idle cell that stayed idle on val is forecast exactly 0 by
every calibrated sample and by the calibrated point, whatever small values the sampler draws around it
(which matters to planning: any positive load asks for an active RRU).

The dead zone `zero_share` (one value per calibration, chosen on the val entries from `ZERO_SHARES` by the
Brier score of the event "y = 0") turns the sampler's tiny positive values around the zero level into exact
zeros, so the predicted probability of an idle cell-slot is calibrated too; the calibrated point forecast
is the raw point forecast with the same dead zone.

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
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .data import City, CityScalers, Windows, make_windows
from .files import atomic_write_text
from .anchor import MAX_LEAD, anchor_inputs, fit_weights, toward, weight_at
from .encoding import SHIFT, SPREAD, WindowTransform
from .interface import Forecaster, NotApplicable, Prediction, hide

#: quantile levels of z stored per table (0.5% steps; Qz is interpolated linearly between them)
LEVELS = np.round(np.linspace(0.0, 1.0, 201), 6)
#: lead-time buckets per task (equal shares of the hidden horizon); generation and random have no lead
BUCKETS = {"short": 4, "long": 6, "generation": 1, "random": 1}
HORIZON = {"short": 16, "long": 48}  # nominal hidden steps; buckets are shares of it
#: cell groups (Mondrian taxonomy): non-zero observations, observed all zero, unobserved
GROUPS = ("active", "observed_zero", "unobserved")
IDLE = GROUPS.index("observed_zero")
FLOOR_SHARE = 0.1
MIN_GROUP_ENTRIES = 50  # a (group, bucket) with fewer val entries borrows the bucket's pooled residuals
ZERO_SHARES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)  # dead-zone candidates, shares of the cell scale s
POOLED = "*"  # the table fitted on every city's val entries, used for cities without their own
FORMAT = "uomo-calibration/2"


class CalibrationError(ValueError):
    """A calibration file or table that cannot be used (wrong format, unknown task, too few entries)."""


class OutdatedCalibration(CalibrationError):
    """A calibration file written by an earlier version: re-fit it (the model itself is still usable)."""


# ----------------------------------------------------------------------------------------------------
# Reading a batch: task, lead buckets, cell groups, point and spread in the per-cell log space
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


@dataclass
class CellFrame:
    """What the calibration reads of a batch of windows: each cell's scale s and group, from observed entries.

    transform: the network's per-cell log space (`WindowTransform`, scale (N, 1, H, W));
    group (N, 1, H, W): 0 = some observed entry > 0, 1 = observed and all zero, 2 = no observed entry;
    g_last, lead (N, T, H, W): the persistence anchor's inputs (`forecasting.anchor.anchor_inputs`).
    """

    transform: WindowTransform
    group: np.ndarray
    g_last: np.ndarray
    lead: np.ndarray

    @classmethod
    def of(cls, windows: Windows, mask: np.ndarray) -> "CellFrame":
        """From `windows` (hidden entries may hold NaN or the truth: only entries outside `mask` are read)."""
        known = ~np.asarray(mask, dtype=bool)
        observed = np.nan_to_num(np.asarray(windows.traffic, dtype=np.float64)) * known
        transform = WindowTransform.from_observed(torch.from_numpy(observed), torch.from_numpy(known))
        n_known, n_positive = known.sum(axis=1), (observed > 0).sum(axis=1)  # (N, H, W)
        group = np.where(n_known == 0, 2, np.where(n_positive == 0, 1, 0))[:, None]
        to_model = lambda x: transform.to_model(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()  # noqa: E731
        g_last, lead = anchor_inputs(observed, mask, to_model)
        return cls(transform, group.astype(np.int64), g_last, lead)

    def to_model(self, x: np.ndarray) -> np.ndarray:
        """g(x) of normalised values (..., N, T, H, W)."""
        return self.transform.to_model(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()

    def pull(self, gm: np.ndarray) -> np.ndarray:
        """g(x_last) - g(m) per entry (0 without an earlier observation). (N, T, H, W)"""
        return toward(self.g_last, self.lead, gm)


def model_point_and_spread(pred: Prediction, frame: CellFrame) -> tuple[np.ndarray, np.ndarray]:
    """(g(m), sg): the point forecast in the cell's log space and the forecaster's own spread there (half
    the 10-90% range of g(samples); 1 for a point forecaster, i.e. a constant relative error)."""
    gm = frame.to_model(pred.mean)
    if pred.samples is None or pred.samples.shape[0] < 2:
        return gm, np.ones_like(gm)
    q10, q90 = np.quantile(np.asarray(pred.samples, dtype=np.float64), [0.1, 0.9], axis=0)
    return gm, (frame.to_model(q90) - frame.to_model(q10)) / 2


def zero_level(share: float) -> float:
    """Model-space level at or below which a value is in the dead zone: g(share x s) = (log1p(share) - SHIFT) / SPREAD."""
    return (float(np.log1p(share)) - SHIFT) / SPREAD


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


@dataclass
class ResidualTable:
    """Quantiles of standardised residuals z at `LEVELS` per (cell group, lead bucket), with the scale floor."""

    z: np.ndarray  # (G, B, len(LEVELS))
    floor: float
    n: int  # residuals fitted
    entries: np.ndarray | None = None  # (G, B) residuals behind each row when fitted here (not stored in files)
    idle_zero: np.ndarray | None = None  # (B,) P(y = 0) of cells observed all zero, per lead bucket
    anchor: np.ndarray | None = None  # (MAX_LEAD,) persistence weights w_l (`forecasting.anchor`); None: none

    def centre(self, gm: np.ndarray, pull: np.ndarray, lead: np.ndarray) -> np.ndarray:
        """The point in model space the residuals are taken around: g(m) + w_l (g(x_last) - g(m))."""
        return gm if self.anchor is None else gm + weight_at(self.anchor, lead) * pull

    def idle_atom(self, levels, bucket, group) -> np.ndarray:
        """Where the calibrated quantile is the atom at 0 of an idle cell: group IDLE and level < P(y = 0)."""
        if self.idle_zero is None:
            return np.zeros(np.broadcast_shapes(np.shape(levels), np.shape(bucket), np.shape(group)), dtype=bool)
        bucket = np.clip(np.asarray(bucket, dtype=np.int64), 0, self.idle_zero.size - 1)
        return (np.asarray(group) == IDLE) & (np.asarray(levels) < self.idle_zero[bucket])

    def has_own(self, group: int, bucket: int) -> bool:
        """Whether row (group, bucket) was fitted on at least MIN_GROUP_ENTRIES residuals of its own."""
        return self.entries is not None and self.entries[group, bucket] >= MIN_GROUP_ENTRIES

    def quantile(self, levels, bucket, group) -> np.ndarray:
        """Qz(level) in (`group`, `bucket`) (broadcast together)."""
        levels = np.clip(np.asarray(levels, dtype=np.float64), 0.0, 1.0)
        bucket = np.clip(np.asarray(bucket, dtype=np.int64), 0, self.z.shape[1] - 1)
        group = np.clip(np.asarray(group, dtype=np.int64), 0, self.z.shape[0] - 1)
        pos = levels * (LEVELS.size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, LEVELS.size - 1)
        frac = pos - lo
        return self.z[group, bucket, lo] * (1 - frac) + self.z[group, bucket, hi] * frac

    def model_quantile(self, levels, bucket, group, point, spread) -> np.ndarray:
        """Calibrated quantiles in the model space: g(m) + (sg + floor) Qz(level) (all broadcast together)."""
        return point + (spread + self.floor) * self.quantile(levels, bucket, group)

    @classmethod
    def fit(cls, numer: np.ndarray, spread: np.ndarray, bucket: np.ndarray, group: np.ndarray,
            task: str, shared: "ResidualTable | None" = None, is_zero: np.ndarray | None = None,
            anchor: np.ndarray | None = None, floor: float | None = None) -> "ResidualTable":
        """From g(y) - g(c), spreads sg, lead buckets and cell groups of hidden entries (1-D arrays alike),
        with c the centre: the point m moved by the persistence weights `anchor` (None: c = m).

        A (group, bucket) with fewer than MIN_GROUP_ENTRIES residuals takes, in this order: the same row of
        `shared` (the table pooled over the fitted cities) where that row has its own residuals, else this
        bucket's residuals over all groups, else (a bucket with fewer than 10) the task's. Borrowing the
        same group from other cities first matters for idle cells: a city whose val regions hold no
        all-zero cell would otherwise give its idle cells the bands of busy ones.

        `is_zero` (whether each truth is exactly 0) gives the idle cells' atom: idle_zero[b] = the share of
        zeros among the IDLE group's entries of bucket b (borrowed from `shared` like the rows), so that
        Q(a) = 0 for a < idle_zero[b]. Quantiles above the atom stay the row's residual quantiles (a
        slight under-statement of the upper tail, since the row's ranks include the zeros).

        `floor`: the scale floor (default FLOOR_SHARE x the mean of `spread`).
        """
        numer, spread = np.asarray(numer, np.float64), np.asarray(spread, np.float64)
        if numer.size < 10:
            raise CalibrationError(f"{numer.size} residuals are too few to calibrate {task!r} on")
        floor = FLOOR_SHARE * float(spread.mean()) + 1e-9 if floor is None else float(floor)
        z = numer / (spread + floor)
        table = np.empty((len(GROUPS), BUCKETS[task], LEVELS.size))
        entries = np.zeros((len(GROUPS), BUCKETS[task]), dtype=np.int64)
        idle_zero = None if is_zero is None else np.zeros(BUCKETS[task])
        for b in range(BUCKETS[task]):
            in_bucket = bucket == b
            pooled = z[in_bucket] if in_bucket.sum() >= 10 else z
            for g in range(len(GROUPS)):
                zg = z[in_bucket & (group == g)]
                entries[g, b] = zg.size
                if zg.size >= MIN_GROUP_ENTRIES:
                    table[g, b] = np.quantile(zg, LEVELS)
                elif shared is not None and shared.has_own(g, b):
                    table[g, b] = shared.z[g, b]
                else:
                    table[g, b] = np.quantile(pooled, LEVELS)
            if idle_zero is not None:
                idle = in_bucket & (group == IDLE)
                if idle.sum() >= MIN_GROUP_ENTRIES:
                    idle_zero[b] = float(np.asarray(is_zero)[idle].mean())
                elif shared is not None and shared.has_own(IDLE, b) and shared.idle_zero is not None:
                    idle_zero[b] = shared.idle_zero[b]
        return cls(table, floor, int(z.size), entries, idle_zero,
                   None if anchor is None or not np.any(anchor) else np.asarray(anchor, dtype=np.float64))


@dataclass
class Calibration:
    """Residual tables by (city, task) and the dead zone; `POOLED` as city holds the tables over every city."""

    tables: dict[tuple[str, str], ResidualTable]
    meta: dict = field(default_factory=dict)
    zero_share: float = 0.0

    def table(self, city: str, task: str) -> ResidualTable | None:
        return self.tables.get((city, task)) or self.tables.get((POOLED, task))

    def quantiles(self, pred: Prediction, windows: Windows, mask: np.ndarray, levels: Sequence[float],
                  frame: CellFrame | None = None) -> np.ndarray:
        """(len(levels), N, T, H, W) calibrated quantiles (normalised scale); entries outside `mask` keep m.

        `windows` are the windows the prediction was made for (only their observed entries are read);
        `frame` is their CellFrame when the caller already has it.
        """
        frame = frame or CellFrame.of(windows, mask)
        gm, sg = model_point_and_spread(pred, frame)
        pull = frame.pull(gm)
        m = np.asarray(pred.mean, dtype=np.float64)
        out = np.broadcast_to(m, (len(levels), *m.shape)).copy()
        lv = np.asarray(levels, dtype=np.float64)[:, None, None, None]
        dead = zero_level(self.zero_share)
        for i in range(m.shape[0]):
            task = infer_task(mask[i])
            tab = self.table(windows.city, task)
            if tab is None:
                raise CalibrationError(f"no calibration for task {task!r} (city {windows.city!r}): "
                                       "fit one with fit_calibration")
            bucket = lead_buckets(mask[i], task)[None, :, None, None]
            gc = tab.centre(gm[i], pull[i], frame.lead[i])
            y = tab.model_quantile(lv, bucket, frame.group[i][None], gc[None], sg[i][None])  # (Q, T, H, W)
            x = frame.transform.take([i]).from_model(torch.from_numpy(y)).numpy()
            atom = (y <= dead) | tab.idle_atom(lv, bucket, frame.group[i][None])
            x = np.where(atom, 0.0, np.clip(x, 0.0, 1.0))
            out[:, i] = np.where(mask[i][None], x, m[i][None])
        return out

    def point(self, pred: Prediction, windows: Windows, mask: np.ndarray, frame: CellFrame | None = None) -> np.ndarray:
        """The centre c (the raw point forecast moved by the persistence anchor) with the dead zone (hidden
        entries at or below zero_share x s become 0) and the idle atom (entries of idle cells whose
        calibrated median is the atom at 0 become 0)."""
        frame = frame or CellFrame.of(windows, mask)
        hidden = np.asarray(mask, dtype=bool)
        m = np.asarray(pred.mean, dtype=np.float64)
        gm = frame.to_model(m)
        pull = frame.pull(gm)
        gc, out = gm.copy(), m.copy()
        zero = np.zeros(m.shape, dtype=bool)
        for i in range(m.shape[0]):
            task = infer_task(mask[i])
            tab = self.table(windows.city, task)
            if tab is not None and tab.anchor is not None:
                gc[i] = tab.centre(gm[i], pull[i], frame.lead[i])
                x = frame.transform.take([i]).from_model(torch.from_numpy(gc[i][None])).numpy()[0]
                out[i] = np.where(hidden[i] & (gc[i] != gm[i]), np.clip(x, 0.0, 1.0), m[i])
            if tab is not None and tab.idle_zero is not None:
                zero[i] |= hidden[i] & tab.idle_atom(0.5, lead_buckets(mask[i], task)[:, None, None], frame.group[i])
        zero |= hidden & (gc <= zero_level(self.zero_share))
        return np.where(zero, 0.0, out).astype(np.float32)

    def samples(self, pred: Prediction, windows: Windows, mask: np.ndarray, n_samples: int | None = None,
                frame: CellFrame | None = None) -> np.ndarray:
        """(S, N, T, H, W) calibrated samples: each raw sample takes the calibrated quantile of its rank.

        Without raw samples, `n_samples` (default 32) quantiles at levels (k + 1/2) / S, comonotone.
        """
        if pred.samples is not None and pred.samples.shape[0] >= 2:
            raw = np.asarray(pred.samples)
            S = raw.shape[0]
            q = self.quantiles(pred, windows, mask, (np.arange(S) + 0.5) / S, frame)  # (S, ...) ascending in the level
            ranks = np.argsort(np.argsort(raw, axis=0, kind="stable"), axis=0, kind="stable")
            out = np.take_along_axis(q, ranks, axis=0)
        else:
            S = n_samples or 32
            out = self.quantiles(pred, windows, mask, (np.arange(S) + 0.5) / S, frame)
        return out.astype(np.float32)

    def calibrate(self, pred: Prediction, windows: Windows, mask: np.ndarray, n_samples: int | None = None) -> Prediction:
        """The calibrated prediction: the point forecast with the dead zone and the calibrated samples."""
        frame = CellFrame.of(windows, mask)
        return Prediction(mean=self.point(pred, windows, mask, frame),
                          samples=self.samples(pred, windows, mask, n_samples, frame))

    # -- files -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "levels": LEVELS.tolist(), "groups": list(GROUPS), "zero_share": self.zero_share,
            "meta": self.meta,
            "tables": [
                {"city": c, "task": t, "floor": tab.floor, "n": tab.n, "z": np.round(tab.z, 7).tolist(),
                 **({} if tab.idle_zero is None else {"idle_zero": np.round(tab.idle_zero, 7).tolist()}),
                 **({} if tab.anchor is None else {"anchor": np.round(tab.anchor, 6).tolist()})}
                for (c, t), tab in sorted(self.tables.items())
            ],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> "Calibration":
        if not isinstance(d, dict) or not str(d.get("format", "")).startswith("uomo-calibration/"):
            raise CalibrationError(f"{source}: not a uomo-calibration file")
        if d["format"] != FORMAT:
            raise OutdatedCalibration(f"{source}: a {d['format']} file, this version reads {FORMAT}: re-fit it "
                                   "(python bench/calibration_bench.py --checkpoint ... --save)")
        if not np.allclose(d.get("levels", []), LEVELS):
            raise CalibrationError(f"{source}: stored at other quantile levels than this version's")
        tables = {}
        for t in d.get("tables", []):
            z = np.asarray(t["z"], dtype=np.float64)
            if (t["task"] not in BUCKETS or z.shape != (len(GROUPS), BUCKETS[t["task"]], LEVELS.size)
                    or not np.all(np.isfinite(z))):
                raise CalibrationError(f"{source}: malformed table for {t.get('city')}/{t.get('task')}")
            idle_zero = t.get("idle_zero")  # absent in files fitted before the idle atom: no atom
            if idle_zero is not None:
                idle_zero = np.asarray(idle_zero, dtype=np.float64)
                if idle_zero.shape != (BUCKETS[t["task"]],) or not np.all((idle_zero >= 0) & (idle_zero <= 1)):
                    raise CalibrationError(f"{source}: malformed idle_zero for {t.get('city')}/{t.get('task')}")
            anchor = t.get("anchor")  # absent in files fitted before the persistence anchor: no anchor
            if anchor is not None:
                anchor = np.asarray(anchor, dtype=np.float64)
                if anchor.shape != (MAX_LEAD,) or not np.all((anchor >= 0) & (anchor <= 1)):
                    raise CalibrationError(f"{source}: malformed anchor for {t.get('city')}/{t.get('task')}")
            tables[(str(t["city"]), str(t["task"]))] = ResidualTable(z, float(t["floor"]), int(t["n"]),
                                                                     idle_zero=idle_zero, anchor=anchor)
        share = d.get("zero_share", 0.0)
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share < 1:
            raise CalibrationError(f"{source}: zero_share must be a number in [0, 1), got {share!r}")
        return cls(tables, dict(d.get("meta", {})), float(share))

    def save(self, path: str | Path) -> Path:
        """Write atomically (a kill leaves the old file or the new one)."""
        return atomic_write_text(path, json.dumps(self.to_dict()), make_folder=True)

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


@dataclass
class Residuals:
    """Hidden entries of fitted windows (1-D arrays alike): g(y) - g(m), sg, lead bucket, cell group, g(m),
    whether the truth is exactly zero, the anchor's pull g(x_last) - g(m) and lead, and the region of the
    window each entry came from (-1 where unknown; the pooling choice holds regions out)."""

    numer: np.ndarray
    spread: np.ndarray
    bucket: np.ndarray
    group: np.ndarray
    point: np.ndarray
    is_zero: np.ndarray
    pull: np.ndarray
    lead: np.ndarray
    region: np.ndarray | None = None

    def __post_init__(self):
        if self.region is None:
            self.region = np.full(np.shape(self.numer), -1, dtype=np.int64)

    def take(self, keep: np.ndarray) -> "Residuals":
        """The entries where the boolean `keep` holds."""
        return Residuals(*(getattr(self, k)[keep] for k in self.__dataclass_fields__))

    def anchored(self, weights: np.ndarray) -> "Residuals":
        """The residuals around the centre c = m moved by `weights` (g(y) - g(c), and g(c) as the point)."""
        shift = weight_at(weights, self.lead) * self.pull
        return dataclasses.replace(self, numer=self.numer - shift, point=self.point + shift)

    @classmethod
    def concat(cls, parts: Sequence["Residuals"]) -> "Residuals":
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__))


def residuals(forecaster: Forecaster, windows: Windows, masks: np.ndarray, task: str, chunk: int = 128) -> Residuals:
    """The residuals of the forecaster's raw predictions over the hidden entries of `windows`."""
    parts = []
    for lo in range(0, len(windows), chunk):
        part, mask = windows.take(slice(lo, lo + chunk)), masks[lo:lo + chunk]
        pred = forecaster.predict(hide(part, mask, futr_exog=forecaster.futr_exog), mask)
        frame = CellFrame.of(part, mask)
        gm, sg = model_point_and_spread(pred, frame)
        b = np.broadcast_to(np.stack([lead_buckets(mk, task) for mk in mask])[:, :, None, None], mask.shape)
        g = np.broadcast_to(frame.group, mask.shape)
        region = np.broadcast_to(np.asarray(part.region, dtype=np.int64)[:, None, None, None], mask.shape)
        parts.append(Residuals((frame.to_model(part.traffic) - gm)[mask], sg[mask], b[mask], g[mask], gm[mask],
                               (part.traffic == 0)[mask], frame.pull(gm)[mask], frame.lead[mask], region[mask]))
    return Residuals.concat(parts)


def zero_brier(res: Residuals, table: ResidualTable, shares: Sequence[float], n_levels: int = 32) -> np.ndarray:
    """Summed Brier score of P(y = 0) over `res`'s entries for each dead-zone share: P(y = 0) is the share of
    the calibrated quantiles at levels (k + 1/2) / n_levels that fall in the dead zone."""
    out = np.zeros(len(shares))
    levels = (np.arange(n_levels) + 0.5) / n_levels
    for lo in range(0, res.numer.size, 20_000):
        sl = slice(lo, lo + 20_000)
        y = table.model_quantile(levels[:, None], res.bucket[None, sl], res.group[None, sl],
                                 res.point[None, sl], res.spread[None, sl])  # (L, E) model space
        atom = table.idle_atom(levels[:, None], res.bucket[None, sl], res.group[None, sl])
        for k, share in enumerate(shares):
            p_zero = ((y <= zero_level(share)) | atom).mean(axis=0)
            out[k] += float(((p_zero - res.is_zero[sl]) ** 2).sum())
    return out


def heldout_pit(res: Residuals, table: ResidualTable, zero_share: float = 0.0, n_levels: int = 200,
                seed: int = 0) -> np.ndarray:
    """Randomised PIT of `res`'s truths under `table`'s calibrated distribution with the dead zone
    `zero_share`, for entries whose residuals are taken around the table's centre (`Residuals.anchored`
    with the table's weights).

    With Q(a) the calibrated model-space quantiles at levels a_k = (k + 1/2) / n_levels and A(a) whether
    level a is the atom at 0 (Q(a) in the dead zone, or the idle atom): u = mean_k [Q(a_k) <= g(y) or A(a_k)] for
    a positive truth, u = V mean_k A(a_k) with V ~ U(0, 1) for a zero truth (spread over the atom).
    """
    levels = (np.arange(n_levels) + 0.5) / n_levels
    u = np.empty(res.numer.size)
    rng = np.random.default_rng(seed)
    for lo in range(0, res.numer.size, 20_000):
        sl = slice(lo, lo + 20_000)
        y = table.model_quantile(levels[:, None], res.bucket[None, sl], res.group[None, sl],
                                 res.point[None, sl], res.spread[None, sl])  # (L, E) model space
        atom = (y <= zero_level(zero_share)) | table.idle_atom(levels[:, None], res.bucket[None, sl], res.group[None, sl])
        below = ((y <= (res.point + res.numer)[None, sl]) | atom).mean(axis=0)
        u[sl] = np.where(res.is_zero[sl], rng.uniform(size=below.size) * atom.mean(axis=0), below)
    return u


def coverage_error(u: np.ndarray, nominal: Sequence[float] = (0.5, 0.8, 0.9)) -> float:
    """Mean over the `nominal` levels of |share of PIT values u in the central interval - nominal|."""
    return float(np.mean([abs(float((np.abs(u - 0.5) <= c / 2).mean()) - c) for c in nominal]))


def pooling_errors(own: Residuals, others: Sequence[Residuals], task: str, anchor: np.ndarray | None,
                   floor: float, zero_share: float = 0.0,
                   same_area: Sequence[bool] | None = None) -> tuple[float, float] | None:
    """Leave-one-region-out coverage errors of a city's table fitted on its own val entries and on every
    fitted city's (mean over its held-out val regions of `coverage_error`); None with fewer than 2 regions.

    Each held-out region's entries are scored under (a) the table of the city's other val regions (thin
    rows borrowing from the pooled table of those and the other cities) and (b) the table of those and
    the other cities' entries pooled, both around the city's centre and with the city's floor, with the
    dead zone `zero_share`. Other cities flagged in `same_area` cover the same areas region by region (the
    same geography on another time axis): their entries of the held-out region are held out too, or the
    pooled table would have seen the region it is scored on.
    """
    regions = np.unique(own.region[own.region >= 0])
    if regions.size < 2:
        return None
    errors = np.zeros(2)
    for region in regions:
        held, rest = own.take(own.region == region), own.take(own.region != region)
        kept = [o.take(o.region != region) if same else o for o, same in zip(others, same_area or [False] * len(others))]
        pool = Residuals.concat([rest, *kept])
        pooled = ResidualTable.fit(pool.numer, pool.spread, pool.bucket, pool.group, task, is_zero=pool.is_zero,
                                   anchor=anchor, floor=floor)
        alone = ResidualTable.fit(rest.numer, rest.spread, rest.bucket, rest.group, task, shared=pooled,
                                  is_zero=rest.is_zero, anchor=anchor, floor=floor)
        errors += [coverage_error(heldout_pit(held, alone, zero_share)),
                   coverage_error(heldout_pit(held, pooled, zero_share))]
    return float(errors[0] / regions.size), float(errors[1] / regions.size)


def calibration_windows(city: City, split: str, stride: int, scalers: CityScalers | None = None) -> Windows:
    """Windows of `city`'s `split` regions every `stride` steps, on the city's benchmark scale."""
    regions = city.regions(split)
    if regions.size == 0:
        raise CalibrationError(f"{city.name} has no {split!r} regions to calibrate on")
    return make_windows(city, regions=regions, stride=stride, scalers=scalers or CityScalers.fit(city))


def city_residuals(forecaster: Forecaster, city: City, tasks: Sequence[str] = ("short", "long", "generation"),
                   split: str = "val", stride: int = 8, seed: int = 0) -> dict[tuple[str, str], Residuals]:
    """{(city, task): residuals} of the forecaster's raw predictions on `city`'s `split` regions, for the
    tasks it serves there (a calibrated forecaster is read uncalibrated)."""
    from .evaluate import window_masks

    if getattr(forecaster, "calibration", None) is not None:  # fit on the raw distribution, never on a calibrated one
        forecaster = copy.copy(forecaster)
        forecaster.calibration = None
    win = calibration_windows(city, split, stride)
    fitted = {}
    for task in tasks:
        if task not in forecaster.tasks:
            continue
        try:
            fitted[(city.name, task)] = residuals(forecaster, win, window_masks(win, task, seed), task)
        except NotApplicable:
            continue
    return fitted


def fit_calibration(
    forecaster: Forecaster,
    cities: Sequence[City],
    tasks: Sequence[str] = ("short", "long", "generation"),
    split: str = "val",
    stride: int = 8,
    seed: int = 0,
    anchor: bool = True,
) -> Calibration:
    """Residual tables per (city, task) and pooled over cities, from `forecaster` on the `split` regions,
    and the dead zone with the lowest Brier score of P(y = 0) over all of those entries (`anchor`: fit
    the persistence anchor too)."""
    fitted: dict[tuple[str, str], Residuals] = {}
    for city in cities:
        fitted.update(city_residuals(forecaster, city, tasks, split, stride, seed))
    if not fitted:
        raise CalibrationError(f"{forecaster.name} served none of the tasks {list(tasks)} on the {split} regions")
    return calibration_from_residuals(fitted, {"forecaster": forecaster.name, "split": split, "stride": stride,
                                               "seed": seed}, anchor=anchor,
                                      geographies={c.name: c.geography for c in cities})


def fit_pooled_calibration(forecaster_for: Callable[[City], Forecaster], city: City, pool: Sequence[City] = (),
                           tasks: Sequence[str] = ("short", "long", "generation"), split: str = "val",
                           stride: int = 8, cache: dict | None = None) -> Calibration:
    """`city`'s calibration fitted on its `split` regions and those of the `pool` cities, the forecaster
    built for each city by `forecaster_for` (a baseline fitted on that city's training regions): the same
    choice between own and pooled tables a checkpoint's calibration fitted on several cities has, for a
    forecaster that is fitted per city. `cache` ({city name: residuals}) spares re-fitting pool cities.
    """
    fitted = city_residuals(forecaster_for(city), city, tasks, split, stride)
    if not fitted:
        raise CalibrationError(f"the forecaster served none of the tasks {list(tasks)} on {city.name}'s {split} regions")
    for other in pool:
        if other.name == city.name:
            continue
        if cache is None or other.name not in cache:
            try:
                found = city_residuals(forecaster_for(other), other, tasks, split, stride)
            except CalibrationError:  # no such regions there: the pool goes without that city
                found = {}
            if cache is None:
                fitted.update(found)
                continue
            cache[other.name] = found
        fitted.update(cache[other.name])
    return calibration_from_residuals(fitted, {"split": split, "stride": stride,
                                               "pool": [c.name for c in pool if c.name != city.name]},
                                      geographies={c.name: c.geography for c in [city, *pool]})


def calibration_cities(calibration: Calibration) -> list[str]:
    """The cities a calibration was fitted on (from its meta), in name order."""
    return sorted({key.split("/")[0] for key in calibration.meta.get("entries", {})})


def calibration_from_residuals(fitted: dict[tuple[str, str], Residuals], meta: dict | None = None,
                               anchor: bool = True, pool_cities: bool = True,
                               geographies: dict[str, str] | None = None) -> Calibration:
    """Tables per (city, task) and pooled over cities per task, and the dead zone `zero_share` of
    `ZERO_SHARES` with the lowest Brier score of P(y = 0) over every fitted entry (ties: the smaller).

    With `anchor`, each table first gets its persistence weights (`forecasting.anchor.fit_weights`; a
    city's thin leads take the pooled weights) and its residuals are taken around the moved centre.

    With `pool_cities`, a city whose val entries come from two or more regions then keeps its own table
    or takes one fitted on every city's entries of the task (around each city's own centre, with its own
    floor), whichever covers its held-out val regions better (`pooling_errors`): a city with few val
    regions that disagree with each other (the synthetic city's two) borrows the others' strength, one
    whose regions agree keeps its own bands. The errors and the choice are stored in meta["pooling"].
    `geographies` ({city: `City.geography`}) tells cities that cover the same areas (held out together).
    """
    geography = geographies or {}
    tables, around = {}, {}
    for task in sorted({t for _, t in fitted}):
        r = Residuals.concat([r for (_, t), r in fitted.items() if t == task])
        w = fit_weights(r.numer, r.pull, r.lead) if anchor else None
        r = r if w is None else r.anchored(w)
        tables[(POOLED, task)] = ResidualTable.fit(r.numer, r.spread, r.bucket, r.group, task, is_zero=r.is_zero,
                                                   anchor=w)
    for key, r in fitted.items():  # a city's thin (group, bucket) rows borrow the pooled row of the same group
        pooled = tables[(POOLED, key[1])]
        w = fit_weights(r.numer, r.pull, r.lead, fallback=pooled.anchor) if anchor else None
        around[key] = r if w is None else r.anchored(w)
        r = around[key]
        tables[key] = ResidualTable.fit(r.numer, r.spread, r.bucket, r.group, key[1], shared=pooled,
                                        is_zero=r.is_zero, anchor=w)
    zero_share = best_zero_share(around, tables)
    choices = {}
    if pool_cities:
        for key, r in around.items():  # own table or every city's, whichever held-out val regions prefer
            keys = [k for k in around if k[1] == key[1] and k != key]
            others = [around[k] for k in keys]
            same = [geography.get(k[0], k[0]) == geography.get(key[0], key[0]) for k in keys]
            errors = (pooling_errors(r, others, key[1], tables[key].anchor, tables[key].floor, zero_share, same)
                      if others else None)
            if errors is None:
                continue
            choices[f"{key[0]}/{key[1]}"] = {"own": round(errors[0], 4), "pooled": round(errors[1], 4),
                                             "chosen": "pooled" if errors[1] < errors[0] else "own"}
            if errors[1] < errors[0]:
                pool = Residuals.concat([r, *others])
                tables[key] = ResidualTable.fit(pool.numer, pool.spread, pool.bucket, pool.group, key[1],
                                                is_zero=pool.is_zero, anchor=tables[key].anchor,
                                                floor=tables[key].floor)
    brier = sum(zero_brier(r, tables[key], ZERO_SHARES) for key, r in around.items())
    n = sum(r.numer.size for r in fitted.values())
    meta = dict(meta or {})
    meta.update(pooling=choices, entries={f"{c}/{t}": int(r.numer.size) for (c, t), r in fitted.items()},
                zero_brier={f"{s:g}": round(float(b) / n, 6) for s, b in zip(ZERO_SHARES, brier)})
    return Calibration(tables, meta, float(ZERO_SHARES[int(np.argmin(brier))]))


def best_zero_share(around: dict[tuple[str, str], Residuals], tables: dict[tuple[str, str], ResidualTable]) -> float:
    """The dead zone of `ZERO_SHARES` with the lowest Brier score of P(y = 0) over every table's entries."""
    brier = sum(zero_brier(r, tables[key], ZERO_SHARES) for key, r in around.items())
    return float(ZERO_SHARES[int(np.argmin(brier))])


# ----------------------------------------------------------------------------------------------------
# A calibrated forecaster
# ----------------------------------------------------------------------------------------------------


class CalibratedForecaster(Forecaster):
    """`base` with calibrated samples and the dead zone on its point forecast; `base` stays uncalibrated."""

    def __init__(self, base: Forecaster, calibration: Calibration, n_samples: int = 32):
        self.base = base
        self.calibration = calibration
        self.n_samples = n_samples
        self.name = base.name
        self.tasks = base.tasks

    @property
    def futr_exog(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base.futr_exog

    def fit(self, cities) -> "CalibratedForecaster":
        self.base.fit(cities)
        return self

    def predict(self, windows: Windows, mask: np.ndarray) -> Prediction:
        return self.calibration.calibrate(self.base.predict(windows, mask), windows, mask, self.n_samples)


def calibration_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's calibration lives: beside it, `<name>.calibration.json`."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".calibration.json")
