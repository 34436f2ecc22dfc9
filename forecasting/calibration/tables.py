"""Calibration tables and their use: reading a batch (task, lead buckets, cell groups, point and spread in
the per-cell log space), the residual tables, the `Calibration` that turns raw predictions into calibrated
quantiles, samples and points, its file, and the calibrated forecaster. The method is described in
`forecasting.calibration`; fitting on val regions is `forecasting.calibration.fit` (reading a forecaster's
val residuals, `.residuals`, and choosing by held-out scores, `.heldout`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..anchor import MAX_LEAD, anchor_inputs, season_inputs, toward, weight_at, with_season
from ..data import Windows
from ..encoding import SHIFT, SPREAD, WindowTransform
from ..files import atomic_write_text
from ..interface import Forecaster, Prediction

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
WIDTHS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5)  # band-width candidates, chosen per city and task on val
MIN_WIDTH_REGIONS = 3  # val regions a city needs for its width to be chosen (with 2, one pair's disagreement)
POOLED = "*"  # the table fitted on every city's val entries, used for cities without their own
#: levels at which a table's level map (`ResidualTable.level_map`) is stored; linear in between
MAP_LEVELS = np.round(np.linspace(0.0, 1.0, 41), 6)
POOL_WEIGHTS = ("entries", "cities")  # how a table pooled over cities weighs them (`calibration.heldout.pooled_weights`)
FORMAT = "uomo-calibration/2"


class CalibrationError(ValueError):
    """A calibration file or table that cannot be used (wrong format, unknown task, too few entries)."""


class OutdatedCalibration(CalibrationError):
    """A calibration file written by an earlier version: re-fit it (the model itself is still usable)."""


def _number(value) -> bool:
    """True for an int or float read from a file (not a bool, a string or a list)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_shares(table: dict, key: str, shape: tuple[int, ...], source: str) -> np.ndarray | None:
    """`table[key]` as an array of `shape` whose entries all lie in [0, 1]; None when the key is absent
    (files fitted before it); CalibrationError when it is malformed."""
    value = table.get(key)
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape or not np.all((a >= 0) & (a <= 1)):
        raise CalibrationError(f"{source}: malformed {key} for {table.get('city')}/{table.get('task')}")
    return a


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
    g_last, lead (N, T, H, W): the persistence anchor's inputs (`forecasting.anchor.anchor_inputs`);
    g_day (N, T, H, W): the seasonal term's input, g of the value one day earlier (NaN: none;
    `forecasting.anchor.season_inputs`).
    """

    transform: WindowTransform
    group: np.ndarray
    g_last: np.ndarray
    lead: np.ndarray
    g_day: np.ndarray

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
        g_day = season_inputs(observed, mask, windows.day_before, windows.slots_per_day, to_model)
        return cls(transform, group.astype(np.int64), g_last, lead, g_day)

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


def zero_level(share, group=None):
    """Model-space level at or below which a value is in the dead zone: g(share x s) = (log1p(share) - SHIFT)
    / SPREAD; `share` one value, or one per cell group (`GROUPS`) read at the entries' `group`."""
    share = np.asarray(share, dtype=np.float64)
    if share.ndim:
        share = share[np.asarray(group)]
    return (np.log1p(share) - SHIFT) / SPREAD


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


def weighted_quantile(x: np.ndarray, levels: np.ndarray, weight: np.ndarray | None, keep: np.ndarray) -> np.ndarray:
    """Quantiles of x[keep] at `levels`: numpy's linear interpolation without weights; with `weight`, the
    weighted inverse of the empirical CDF F(v) = sum_{x_i <= v} w_i / sum_i w_i (no interpolation, which
    a weighted sample has no canonical rule for)."""
    if weight is None:
        return np.quantile(x[keep], levels)
    return np.quantile(x[keep], levels, weights=weight[keep], method="inverted_cdf")


@dataclass
class ResidualTable:
    """Quantiles of standardised residuals z at `LEVELS` per (cell group, lead bucket), with the scale floor."""

    z: np.ndarray  # (G, B, len(LEVELS))
    floor: float
    n: int  # residuals fitted
    entries: np.ndarray | None = None  # (G, B) residuals behind each row when fitted here (not stored in files)
    idle_zero: np.ndarray | None = None  # (B,) P(y = 0) of cells observed all zero, per lead bucket
    anchor: np.ndarray | None = None  # (MAX_LEAD,) persistence weights w_l (`forecasting.anchor`); None: none
    width: float = 1.0  # c: every row's quantiles scaled about its median by c (1: the val residuals as they are)
    flat: bool = False  # the forecaster's own spread sg replaced by 1 (a constant relative error), chosen on val
    seasonal: float = 0.0  # v: the centre's weight on the value one day earlier (`forecasting.anchor`); 0: none
    level_map: np.ndarray | None = None  # (len(MAP_LEVELS),) table level of each nominal level; None: identity
    outer_width: float | None = None  # c_out: the quantiles' steps beyond the central 50% band scaled by it; None: c

    def table_level(self, levels) -> np.ndarray:
        """The table's level for each nominal level a: a itself, or with a level map L (chosen on val,
        `calibration.heldout.level_map`) the linear interpolation of L between MAP_LEVELS, so that the
        calibrated quantile at a is the table's at L(a): a monotone reshaping of the bands that a single
        width factor cannot make (e.g. a central band too narrow while the outer ones are right)."""
        levels = np.clip(np.asarray(levels, dtype=np.float64), 0.0, 1.0)
        return levels if self.level_map is None else np.interp(levels, MAP_LEVELS, self.level_map)

    def centre(self, gm: np.ndarray, pull: np.ndarray, lead: np.ndarray, g_day: np.ndarray | None = None) -> np.ndarray:
        """The point in model space the residuals are taken around: g(c) = g(m) + w_l (g(x_last) - g(m)),
        then g(c) + v (g(x_day) - g(c)) where a value one day earlier exists (`g_day` finite)."""
        gc = gm if self.anchor is None else gm + weight_at(self.anchor, lead) * pull
        return with_season(gc, g_day, self.seasonal)

    def idle_atom(self, levels, bucket, group) -> np.ndarray:
        """Where the calibrated quantile is the atom at 0 of an idle cell: group IDLE and level < P(y = 0)."""
        if self.idle_zero is None:
            return np.zeros(np.broadcast_shapes(np.shape(levels), np.shape(bucket), np.shape(group)), dtype=bool)
        bucket = np.clip(np.asarray(bucket, dtype=np.int64), 0, self.idle_zero.size - 1)
        return (np.asarray(group) == IDLE) & (self.table_level(levels) < self.idle_zero[bucket])

    def has_own(self, group: int, bucket: int) -> bool:
        """Whether row (group, bucket) was fitted on at least MIN_GROUP_ENTRIES residuals of its own."""
        return self.entries is not None and self.entries[group, bucket] >= MIN_GROUP_ENTRIES

    def _row_quantile(self, levels: np.ndarray, bucket: np.ndarray, group: np.ndarray) -> np.ndarray:
        """Qz_val at table levels `levels` in (`group`, `bucket`): linear between the stored LEVELS."""
        pos = levels * (LEVELS.size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, LEVELS.size - 1)
        frac = pos - lo
        return self.z[group, bucket, lo] * (1 - frac) + self.z[group, bucket, hi] * frac

    def quantile(self, levels, bucket, group) -> np.ndarray:
        """Qz(level) in (`group`, `bucket`) (broadcast together), widened about the row's median:
        Qz(a) = Qz_val(1/2) + c (Qz_val(L(a)) - Qz_val(1/2)) with c = `width` and L the level map (`table_level`).
        With an outer width c_out, c scales only the central 50% band and c_out the steps beyond it:
        Qz(a) = Qz(3/4) + c_out (Qz_val(L(a)) - Qz_val(3/4)) above L(a) = 3/4, and alike below 1/4
        (monotone for c, c_out > 0): the central band widened while the outer ones stay, or the reverse."""
        levels = self.table_level(levels)
        bucket = np.clip(np.asarray(bucket, dtype=np.int64), 0, self.z.shape[1] - 1)
        group = np.clip(np.asarray(group, dtype=np.int64), 0, self.z.shape[0] - 1)
        q = self._row_quantile(levels, bucket, group)
        if self.width == 1.0 and self.outer_width is None:
            return q
        median = self.z[group, bucket, (LEVELS.size - 1) // 2]
        inner = median + self.width * (q - median)
        if self.outer_width is None:
            return inner
        edge = np.where(levels > 0.5, 0.75, 0.25)  # the central band's edge on each side of the median
        q_edge = self._row_quantile(edge, bucket, group)
        outer = median + self.width * (q_edge - median) + self.outer_width * (q - q_edge)
        return np.where(np.abs(levels - 0.5) > 0.25, outer, inner)

    def widened(self, width: float, outer_width: float | None = None) -> "ResidualTable":
        """The same table with band-width factor `width` (and outer width `outer_width`, None: `width` for
        every level)."""
        return replace(self, width=float(width), outer_width=None if outer_width is None else float(outer_width))

    def model_quantile(self, levels, bucket, group, point, spread) -> np.ndarray:
        """Calibrated quantiles in the model space: g(m) + (sg + floor) Qz(level) (all broadcast together;
        sg = 1 in a `flat` table)."""
        return point + ((1.0 if self.flat else spread) + self.floor) * self.quantile(levels, bucket, group)

    @classmethod
    def fit(cls, numer: np.ndarray, spread: np.ndarray, bucket: np.ndarray, group: np.ndarray,
            task: str, shared: "ResidualTable | None" = None, is_zero: np.ndarray | None = None,
            anchor: np.ndarray | None = None, floor: float | None = None, flat: bool = False,
            seasonal: float = 0.0, weight: np.ndarray | None = None) -> "ResidualTable":
        """From g(y) - g(c), spreads sg, lead buckets and cell groups of hidden entries (1-D arrays alike),
        with c the centre: the point m moved by the persistence weights `anchor` (None: c = m) and toward
        the value one day earlier by `seasonal` (both only stored here: the residuals are already around c).

        A (group, bucket) with fewer than MIN_GROUP_ENTRIES residuals takes, in this order: the same row of
        `shared` (the table pooled over the fitted cities) where that row has its own residuals, else this
        bucket's residuals over all groups, else (a bucket with fewer than 10) the task's. Borrowing the
        same group from other cities first matters for idle cells: a city whose val regions hold no
        all-zero cell would otherwise give its idle cells the bands of busy ones.

        `is_zero` (whether each truth is exactly 0) gives the idle cells' atom: idle_zero[b] = the share of
        zeros among the IDLE group's entries of bucket b (borrowed from `shared` like the rows), so that
        Q(a) = 0 for a < idle_zero[b]. Quantiles above the atom stay the row's residual quantiles (a
        slight under-statement of the upper tail, since the row's ranks include the zeros).

        `floor`: the scale floor (default FLOOR_SHARE x the mean of `spread`). `flat`: residuals standardised
        by 1 instead of `spread` (the forecaster's spread left out). `weight` (one per residual, None: all 1):
        the rows' quantiles and the idle atom are weighted (`weighted_quantile`), e.g. so that each city of a
        pooled table counts as much as any other (`pooled_weights`); the floor and the entry counts are not.
        """
        numer, spread = np.asarray(numer, np.float64), np.asarray(spread, np.float64)
        spread = np.ones_like(numer) if flat else spread
        if numer.size < 10:
            raise CalibrationError(f"{numer.size} residuals are too few to calibrate {task!r} on")
        floor = FLOOR_SHARE * float(spread.mean()) + 1e-9 if floor is None else float(floor)
        z = numer / (spread + floor)
        w = None if weight is None else np.asarray(weight, np.float64)
        table = np.empty((len(GROUPS), BUCKETS[task], LEVELS.size))
        entries = np.zeros((len(GROUPS), BUCKETS[task]), dtype=np.int64)
        idle_zero = None if is_zero is None else np.zeros(BUCKETS[task])
        for b in range(BUCKETS[task]):
            in_bucket = bucket == b
            pooled = in_bucket if in_bucket.sum() >= 10 else np.ones_like(in_bucket)
            for g in range(len(GROUPS)):
                row = in_bucket & (group == g)
                entries[g, b] = row.sum()
                if entries[g, b] >= MIN_GROUP_ENTRIES:
                    table[g, b] = weighted_quantile(z, LEVELS, w, row)
                elif shared is not None and shared.has_own(g, b):
                    table[g, b] = shared.z[g, b]
                else:
                    table[g, b] = weighted_quantile(z, LEVELS, w, pooled)
            if idle_zero is not None:
                idle = in_bucket & (group == IDLE)
                if idle.sum() >= MIN_GROUP_ENTRIES:
                    idle_zero[b] = float(np.average(np.asarray(is_zero)[idle], weights=None if w is None else w[idle]))
                elif shared is not None and shared.has_own(IDLE, b) and shared.idle_zero is not None:
                    idle_zero[b] = shared.idle_zero[b]
        return cls(table, floor, int(z.size), entries, idle_zero,
                   None if anchor is None or not np.any(anchor) else np.asarray(anchor, dtype=np.float64),
                   flat=bool(flat), seasonal=float(seasonal))


@dataclass
class Calibration:
    """Residual tables by (city, task) and the dead zone; `POOLED` as city holds the tables over every city."""

    tables: dict[tuple[str, str], ResidualTable]
    meta: dict = field(default_factory=dict)
    zero_share: float | np.ndarray = 0.0  # the dead zone: one share, or one per cell group (GROUPS)

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
        for i in range(m.shape[0]):
            task = infer_task(mask[i])
            tab = self.table(windows.city, task)
            if tab is None:
                raise CalibrationError(f"no calibration for task {task!r} (city {windows.city!r}): "
                                       "fit one with fit_calibration")
            bucket = lead_buckets(mask[i], task)[None, :, None, None]
            gc = tab.centre(gm[i], pull[i], frame.lead[i], frame.g_day[i])
            y = tab.model_quantile(lv, bucket, frame.group[i][None], gc[None], sg[i][None])  # (Q, T, H, W)
            x = frame.transform.take([i]).from_model(torch.from_numpy(y)).numpy()
            dead = zero_level(self.zero_share, frame.group[i][None])
            atom = (y <= dead) | tab.idle_atom(lv, bucket, frame.group[i][None])
            x = np.where(atom, 0.0, np.clip(x, 0.0, 1.0))
            out[:, i] = np.where(mask[i][None], x, m[i][None])
        return out

    def point(self, pred: Prediction, windows: Windows, mask: np.ndarray, frame: CellFrame | None = None) -> np.ndarray:
        """The centre c (the raw point forecast moved by the persistence anchor and the seasonal term) with
        the dead zone (hidden entries at or below zero_share x s become 0) and the idle atom (entries of idle
        cells whose calibrated median is the atom at 0 become 0)."""
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
            if tab is not None and (tab.anchor is not None or tab.seasonal):
                gc[i] = tab.centre(gm[i], pull[i], frame.lead[i], frame.g_day[i])
                x = frame.transform.take([i]).from_model(torch.from_numpy(gc[i][None])).numpy()[0]
                out[i] = np.where(hidden[i] & (gc[i] != gm[i]), np.clip(x, 0.0, 1.0), m[i])
            if tab is not None and tab.idle_zero is not None:
                zero[i] |= hidden[i] & tab.idle_atom(0.5, lead_buckets(mask[i], task)[:, None, None], frame.group[i])
        zero |= hidden & (gc <= zero_level(self.zero_share, frame.group))
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
            "format": FORMAT, "levels": LEVELS.tolist(), "groups": list(GROUPS),
            "zero_share": np.asarray(self.zero_share, dtype=np.float64).tolist(),
            "meta": self.meta,
            "tables": [
                {"city": c, "task": t, "floor": tab.floor, "n": tab.n, "z": np.round(tab.z, 7).tolist(),
                 **({} if tab.idle_zero is None else {"idle_zero": np.round(tab.idle_zero, 7).tolist()}),
                 **({} if tab.anchor is None else {"anchor": np.round(tab.anchor, 6).tolist()}),
                 **({} if tab.width == 1.0 else {"width": tab.width}),
                 **({} if tab.outer_width is None else {"outer_width": tab.outer_width}),
                 **({} if not tab.seasonal else {"seasonal": tab.seasonal}),
                 **({} if tab.level_map is None else {"level_map": np.round(tab.level_map, 6).tolist()}),
                 **({"flat": True} if tab.flat else {})}
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
            idle_zero = _optional_shares(t, "idle_zero", (BUCKETS[t["task"]],), source)  # absent: no idle atom
            anchor = _optional_shares(t, "anchor", (MAX_LEAD,), source)  # absent: no persistence anchor
            width = t.get("width", 1.0)  # absent in files fitted before the width choice, or when it is 1
            if not _number(width) or not 0 < width < 10:
                raise CalibrationError(f"{source}: width of {t.get('city')}/{t.get('task')} must be a number "
                                       f"in (0, 10), got {width!r}")
            outer_width = t.get("outer_width")  # absent: the width holds for every level
            if outer_width is not None and (not _number(outer_width) or not 0 < outer_width < 10):
                raise CalibrationError(f"{source}: outer_width of {t.get('city')}/{t.get('task')} must be a number "
                                       f"in (0, 10), got {outer_width!r}")
            seasonal = t.get("seasonal", 0.0)  # absent: no seasonal term
            if not _number(seasonal) or not 0 <= seasonal <= 1:
                raise CalibrationError(f"{source}: seasonal of {t.get('city')}/{t.get('task')} must be a number "
                                       f"in [0, 1], got {seasonal!r}")
            level_map = _optional_shares(t, "level_map", MAP_LEVELS.shape, source)  # absent: nominal levels
            if level_map is not None and np.any(np.diff(level_map) < 0):
                raise CalibrationError(f"{source}: level_map of {t.get('city')}/{t.get('task')} must not decrease")
            flat = t.get("flat", False)  # absent: the forecaster's own spread
            if not isinstance(flat, bool):
                raise CalibrationError(f"{source}: flat of {t.get('city')}/{t.get('task')} must be true or false, "
                                       f"got {flat!r}")
            tables[(str(t["city"]), str(t["task"]))] = ResidualTable(z, float(t["floor"]), int(t["n"]),
                                                                     idle_zero=idle_zero, anchor=anchor,
                                                                     width=float(width), flat=flat,
                                                                     seasonal=float(seasonal), level_map=level_map,
                                                                     outer_width=None if outer_width is None
                                                                     else float(outer_width))
        share = d.get("zero_share", 0.0)  # one number (files before the per-group dead zone) or one per group
        values = share if isinstance(share, list) and len(share) == len(GROUPS) else [share]
        if not all(_number(v) and 0 <= v < 1 for v in values):
            raise CalibrationError(f"{source}: zero_share must be a number in [0, 1) or a list of {len(GROUPS)} "
                                   f"(one per cell group {list(GROUPS)}), got {share!r}")
        return cls(tables, dict(d.get("meta", {})),
                   np.asarray(share, dtype=np.float64) if isinstance(share, list) else float(share))

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
