"""Calibrated predictive distributions: split-conformal recalibration fitted on the val regions.

Any forecaster's predictive distribution (UoMo's samples, or a baseline's point forecast) is recalibrated
from standardised residuals on the val regions, in the same per-cell log space the network works in
(`forecasting.encoding`): with s the cell's scale from its observed entries of the window,

    g(x) = (log1p(x / s) - SHIFT) / SPREAD          (0 maps to g0 = -SHIFT / SPREAD)
    z    = (g(y) - g(m)) / (sg + floor)

with m the point forecast (moved toward the cell's last observation at early leads by the persistence
anchor, then toward its value one day earlier by the seasonal term, both fitted on the same val entries,
`forecasting.anchor`; m below stands for that centre), sg the
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
whichever covers its held-out val regions better (leave one region out, `pooling_errors`), and with it a
width factor c of `WIDTHS` that scales every band about its median (Qz(a) -> Qz(1/2) + c (Qz(a) - Qz(1/2))):
a city whose val regions differ from each other more than from themselves (a new region strays further
from the point than the fitted ones did) gets wider bands, c > 1 (cities with MIN_WIDTH_REGIONS val regions
or more; with two, c = 1). A synthetic preset can add the val and test regions of other seeded draws of
its generator as more val regions (`fit_calibration(..., draws=seeds)`, `draw_residuals`): the synthetic
city's two val regions are busier than most (short-term residuals 1.4x, on average, those of the val and
test regions of draws 1-3), so bands fitted on them alone over-cover its other regions. Before both, a
sampling forecaster's residuals are standardised by its own spread sg or by 1 (`flat`), whichever scores
better on the held-out val regions by the quantile score (mean pinball loss), a proper score: the spread
earns its place only where it sharpens the bands (on the synthetic city it does not, and its noise from one
forecast to the next makes rolling sleep plans switch more). Optionally (`outer_widths=True`), a city with
MIN_WIDTH_REGIONS val regions or more may scale the central 50% band by c and the quantiles' steps beyond
it by an outer width c_out, where the pair chosen on its other regions beats the single width chosen there
on each held-out region (`nested_errors`; its generation bands are too narrow at 50% and right at 90%).
Choices made on val entries only, recorded in meta["pooling"].

Cells observed all zero also get an atom at 0 of their own: idle_zero[bucket] = the share of exact zeros
among the val entries of such cells (per city, task and lead bucket, borrowed from the pooled table like
the rows), and Q(a) = 0 for a < idle_zero. An idle cell that stayed idle on val is forecast exactly 0 by
every calibrated sample and by the calibrated point, whatever small values the sampler draws around it
(which matters to planning: any positive load asks for an active RRU).

The dead zone `zero_share` (one value per cell group, chosen on the val entries of that group from
`ZERO_SHARES` by the Brier score of the event "y = 0") turns the sampler's tiny positive values around the zero
level into exact zeros, so the predicted probability of an idle cell-slot is calibrated too; the calibrated
point forecast is the raw point forecast with the same dead zone. Per group, because a zeroed forecast of a
busy cell asks a sleep plan to switch every RRU off while load arrives (a full shortfall at any load): one
dead zone for all cells zeroed Nanjing's busiest test cell at night.

Calibrated samples keep the raw samples' rank order at every entry (ensemble copula coupling): sample k of
an entry takes the calibrated quantile at the level of its rank, so paths keep the model's dependence over
time and space while their marginals are the calibrated ones. A point forecaster's samples are the
calibrated quantiles at S evenly spaced levels, in the same order everywhere.

    cal = fit_calibration(model, [city], split="val")        # once, on val regions
    cal.save("runs/model.calibration.json")
    calibrated = CalibratedForecaster(model, cal)             # same interface, calibrated samples
"""

from __future__ import annotations

from .fit import (
    ANCHOR_ERRORS, calibration_cities, calibration_from_residuals, fit_calibration, fit_meta, fit_pooled_calibration,
)
from .fit import dead_zones, zero_briers
from .heldout import (
    best_bands, coverage_error, fold_scores, held_out_tables, heldout_pit, level_map, map_errors, nested_errors,
    outer_errors, pit_coverage, pooled_table, pooled_weights, pooling_errors, quantile_score, width_pairs, zero_brier,
)
from .residuals import (
    DRAW_REGION_OFFSET, Residuals, calibration_windows, city_residuals, draw_residuals, fitted_residuals,
    refuse_own_draw, residuals,
)
from .tables import (
    BUCKETS, FLOOR_SHARE, FORMAT, GROUPS, HORIZON, IDLE, LEVELS, MAP_LEVELS, MIN_GROUP_ENTRIES, MIN_WIDTH_REGIONS,
    POOL_WEIGHTS, POOLED, WIDTHS, ZERO_SHARES,
    CalibratedForecaster, Calibration, CalibrationError, CellFrame, OutdatedCalibration, ResidualTable,
    calibration_path, infer_task, lead_buckets, model_point_and_spread, zero_level,
)

__all__ = [
    "ANCHOR_ERRORS", "BUCKETS", "DRAW_REGION_OFFSET", "FLOOR_SHARE", "FORMAT", "GROUPS", "HORIZON", "IDLE", "LEVELS",
    "MAP_LEVELS",
    "MIN_GROUP_ENTRIES", "MIN_WIDTH_REGIONS", "POOLED", "POOL_WEIGHTS", "WIDTHS", "ZERO_SHARES",
    "CalibratedForecaster", "Calibration", "CalibrationError", "CellFrame", "OutdatedCalibration", "ResidualTable",
    "Residuals", "best_bands", "calibration_cities", "calibration_from_residuals", "calibration_path",
    "calibration_windows", "city_residuals", "coverage_error", "dead_zones", "draw_residuals", "fit_calibration",
    "fit_meta", "fit_pooled_calibration", "fitted_residuals", "fold_scores", "held_out_tables", "heldout_pit", "infer_task",
    "lead_buckets", "level_map", "map_errors", "model_point_and_spread", "nested_errors", "outer_errors",
    "pit_coverage", "pooled_table", "pooled_weights", "pooling_errors", "quantile_score", "refuse_own_draw",
    "residuals", "width_pairs", "zero_brier", "zero_briers", "zero_level",
]
