"""Recalibration of predictive distributions: nominal coverage where the truth's distribution is known."""

import dataclasses

import numpy as np
import pytest

from forecasting.calibration import (
    Calibration, CalibratedForecaster, CalibrationError, ResidualTable, calibration_from_residuals,
    calibration_path, fit_calibration, infer_task, lead_buckets, residuals,
)
from forecasting.data import Windows
from forecasting.encoding import SHIFT, SPREAD
from forecasting.interface import Forecaster, Prediction
from forecasting.masks import batch_masks

G0 = -SHIFT / SPREAD  # model-space image of 0


def _decode(level, y):
    """The network's per-cell log space back to values: level * expm1(SPREAD y + SHIFT), >= 0."""
    return np.clip(level * np.expm1(SPREAD * y + SHIFT), 0.0, None)


class _ToyModel(Forecaster):
    """Samples y = centre + sigma N(0, 1) in each cell's log space, the cell's level read off its observed
    entries: busy cells centred on 0 (their own level), cells observed all zero just above the zero image
    (the sampler's tiny positive values around an idle cell)."""

    name, tasks = "toy", ("short",)

    def __init__(self, sigma=0.1, seed=0):
        self.sigma, self.rng = sigma, np.random.default_rng(seed)

    def predict(self, windows, mask):
        observed = np.where(mask, 0.0, np.nan_to_num(windows.traffic))
        level = observed.sum(1, keepdims=True) / (~mask).sum(1, keepdims=True)
        idle = level == 0
        level = np.where(idle, 0.05 * level.mean(axis=(2, 3), keepdims=True), level)
        centre = np.where(idle, G0 + 0.03, 0.0)
        y = centre + self.sigma * self.rng.standard_normal((32, *mask.shape))
        samples = np.where(mask, _decode(level, y), observed)
        return Prediction(mean=np.median(samples, 0), samples=samples)


def _windows(rng, n=300, sigma_true=0.3, idle=True, city="toy"):
    """Short-task windows of 2x2 cells: observed at a constant level per cell (one cell in four idle
    unless `idle` is False), hidden truth = level * expm1(SPREAD * sigma_true * N(0, 1) + SHIFT); idle
    cells stay zero."""
    level = rng.uniform(0.05, 0.3, size=(n, 1, 2, 2))
    if idle:
        level[:, :, 0, 0] = 0.0
    mask = batch_masks("short", n, (64, 2, 2))
    hidden = _decode(level, sigma_true * rng.standard_normal((n, 64, 2, 2)))
    traffic = np.where(mask, hidden, level).astype(np.float64)
    win = Windows(city, traffic, np.zeros((n, 64), int), np.tile(np.arange(64), (n, 1)), 96,
                  np.zeros(n, int), np.zeros(n, int))
    return win, mask


def _coverage(q_lo, q_hi, truth, mask):
    return float(((truth >= q_lo) & (truth <= q_hi))[mask].mean())


def test_task_and_lead_buckets_are_read_off_the_mask():
    for task in ("short", "long", "generation"):
        mask = batch_masks(task, 1, (64, 4, 4), rng=np.random.default_rng(0))[0]
        assert infer_task(mask) == task
    b = lead_buckets(batch_masks("short", 1, (64, 2, 2))[0], "short")
    assert (b[:48] == -1).all() and b[48:].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_recalibration_reaches_nominal_coverage_and_idle_cells_collapse_to_zero():
    rng = np.random.default_rng(0)
    model = _ToyModel(sigma=0.1)  # three times too narrow in the log space
    win, mask = _windows(rng)
    cal = calibration_from_residuals({("toy", "short"): residuals(model, win, mask, "short")})
    assert np.all(cal.tables[("toy", "short")].idle_zero == 1.0)  # on val, idle cells stayed zero
    # fresh draws of the same process
    win2, mask2 = _windows(np.random.default_rng(1))
    pred2 = model.predict(win2, mask2)
    busy = mask2.copy()
    busy[:, :, 0, 0] = False
    raw_lo, raw_hi = np.quantile(pred2.samples, [0.1, 0.9], axis=0)
    assert _coverage(raw_lo, raw_hi, win2.traffic, busy) < 0.5
    for nominal in (0.5, 0.8, 0.9):
        lo, hi = cal.quantiles(pred2, win2, mask2, [(1 - nominal) / 2, (1 + nominal) / 2])
        assert abs(_coverage(lo, hi, win2.traffic, busy) - nominal) < 0.03
    # idle cells: every calibrated sample and the point forecast are exactly zero, as the truth
    out = cal.calibrate(pred2, win2, mask2)
    assert (pred2.samples[:, :, 48:, 0, 0] > 0).mean() > 0.4
    assert np.all(out.samples[:, :, 48:, 0, 0] == 0) and np.all(out.mean[:, 48:, 0, 0] == 0)
    # calibrated samples keep the raw samples' ranks and have the calibrated marginals
    assert out.samples.shape == pred2.samples.shape
    assert np.array_equal(np.argsort(out.samples[:, 0, 60, 1, 1]), np.argsort(pred2.samples[:, 0, 60, 1, 1]))
    lo, hi = np.quantile(out.samples, [0.1, 0.9], axis=0)
    assert abs(_coverage(lo, hi, win2.traffic, busy) - 0.8) < 0.05
    # observed entries are untouched
    assert np.array_equal(out.samples[:, ~mask2], np.broadcast_to(pred2.mean[~mask2], out.samples[:, ~mask2].shape).astype(np.float32))


def test_a_city_without_idle_val_cells_borrows_the_idle_group_from_the_other_cities():
    model = _ToyModel(sigma=0.1)
    busy_only, m_busy = _windows(np.random.default_rng(3), idle=False, city="busy")  # its val: no idle cell
    with_idle, m_idle = _windows(np.random.default_rng(4), city="other")
    fitted = {("busy", "short"): residuals(model, busy_only, m_busy, "short"),
              ("other", "short"): residuals(model, with_idle, m_idle, "short")}
    cal = calibration_from_residuals(fitted)
    assert not cal.tables[("busy", "short")].has_own(1, 0) and cal.tables[("other", "short")].has_own(1, 0)
    new, m_new = _windows(np.random.default_rng(5), city="busy")  # later, an idle cell appears in "busy"
    pred = model.predict(new, m_new)
    assert (pred.samples[:, :, 48:, 0, 0] > 0).mean() > 0.4
    out = cal.calibrate(pred, new, m_new)
    assert np.all(out.samples[:, :, 48:, 0, 0] == 0) and np.all(out.mean[:, 48:, 0, 0] == 0)
    # without the borrowing (each city alone) the idle cell would get the busy cells' bands: not zero
    alone = calibration_from_residuals({("busy", "short"): fitted[("busy", "short")]})
    assert (alone.calibrate(pred, new, m_new).samples[:, :, 48:, 0, 0] > 0).mean() > 0.4


def test_calibration_round_trips_through_its_file_and_refuses_foreign_files(tmp_path):
    rng = np.random.default_rng(2)
    r, s = rng.standard_normal(500), np.abs(rng.standard_normal(500))
    table = ResidualTable.fit(r, s, rng.integers(0, 6, 500), rng.integers(0, 3, 500), "long")
    cal = Calibration({("*", "long"): table}, {"note": "x"}, zero_share=0.02)
    path = cal.save(tmp_path / "m.calibration.json")
    back = Calibration.load(path)
    assert np.allclose(back.tables[("*", "long")].z, table.z, atol=1e-6) and back.zero_share == 0.02
    assert back.table("nanchang", "long") is back.tables[("*", "long")]  # unseen city: the pooled table
    assert back.table("nanchang", "short") is None
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(CalibrationError, match="not a uomo-calibration"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"format": "uomo-calibration/1"}')
    with pytest.raises(CalibrationError, match="re-fit"):
        Calibration.load(tmp_path / "old.json")
    assert calibration_path("runs/x/best.pt").name == "best.calibration.json"
    with pytest.raises(CalibrationError, match="too few"):
        ResidualTable.fit(r[:5], s[:5], np.zeros(5, int), np.zeros(5, int), "long")


def test_a_calibration_fitted_on_other_weights_is_not_served(tmp_path):
    """A calibration file records the weights it was fitted on; beside a checkpoint with other weights (a
    re-trained or re-exported model), the forecaster warns, says how to re-fit and serves raw samples."""
    import shutil

    from forecasting.checkpoint import resolve_checkpoint, weights_digest
    from forecasting.forecast import load_forecaster

    model = shutil.copy(resolve_checkpoint("uomo-synthetic-cpu"), tmp_path / "m.pt")
    digest = weights_digest(load_forecaster(model).net)
    rng = np.random.default_rng(3)
    r, s = rng.standard_normal(500), np.abs(rng.standard_normal(500))
    table = ResidualTable.fit(r, s, rng.integers(0, 6, 500), rng.integers(0, 3, 500), "long")
    Calibration({("*", "long"): table}, {"weights_digest": digest}).save(calibration_path(model))
    assert load_forecaster(model).calibration is not None
    Calibration({("*", "long"): table}, {"weights_digest": "0" * 64}).save(calibration_path(model))
    with pytest.warns(UserWarning, match="fitted on other weights.*calibration_bench"):
        assert load_forecaster(model).calibration is None


def test_a_point_baseline_gets_calibrated_samples_fitted_on_val():
    from forecasting.baselines import BASELINES
    from forecasting.calibration import calibration_windows
    from forecasting.data.synthetic import city_from_name
    from forecasting.evaluate import window_masks
    from forecasting.interface import hide

    city = city_from_name("synthetic-small")
    base = BASELINES["daily_profile"]().fit(city)
    cal = fit_calibration(base, [city], tasks=("long",), split="val", stride=16)
    assert (city.name, "long") in cal.tables and ("*", "long") in cal.tables
    model = CalibratedForecaster(base, cal, n_samples=16)
    win = calibration_windows(city, "val", 16)
    mask = window_masks(win, "long")
    pred = model.predict(hide(win, mask), mask)
    assert pred.samples.shape == (16, *mask.shape)
    raw = base.predict(hide(win, mask), mask).mean
    moved = pred.mean != raw
    anchored = np.zeros(mask.shape, bool)
    anchored[:, 16:16 + np.flatnonzero(cal.tables[(city.name, "long")].anchor).max(initial=-1) + 1] = True
    # point forecast: moved only by the dead zone, or toward the last observation at the anchored leads
    assert np.all((pred.mean[moved] == 0) | anchored[moved]) and (moved & ~anchored).mean() < 0.05
    plain = CalibratedForecaster(base, fit_calibration(base, [city], tasks=("long",), split="val", stride=16,
                                                       anchor=False), n_samples=16)
    plain_point = plain.predict(hide(win, mask), mask).mean
    moved = plain_point != raw
    assert np.all(plain_point[moved] == 0) and moved.mean() < 0.05
    lo, hi = np.quantile(pred.samples, [0.1, 0.9], axis=0)
    assert abs(_coverage(lo, hi, win.traffic, mask) - 0.8) < 0.1  # in-sample: close to nominal


class _ObservedMean(Forecaster):
    """Point forecast: each cell's mean over its observed entries (no samples)."""

    name, tasks = "observed_mean", ("short",)

    def predict(self, windows, mask):
        observed = np.where(mask, 0.0, np.nan_to_num(windows.traffic))
        level = observed.sum(1, keepdims=True) / (~mask).sum(1, keepdims=True)
        return Prediction(mean=np.broadcast_to(level, mask.shape).astype(np.float32), samples=None)


def _level_shift_windows(rng, n=200, persistent=True):
    """Short-task windows of 2x2 cells observed around a level a for 40 steps, then around a level b for
    the last 8 observed steps. persistent: the hidden steps stay at the last observed value exactly
    (persistence is perfect, the observed mean is wrong); else they return to a, and the last observed
    value is noise around b."""
    a = rng.uniform(0.1, 0.3, size=(n, 1, 2, 2))
    b = a * rng.uniform(0.3, 3.0, size=a.shape)
    traffic = np.concatenate([np.broadcast_to(a, (n, 40, 2, 2)), np.broadcast_to(b, (n, 8, 2, 2))], axis=1)
    traffic = traffic * rng.uniform(0.9, 1.1, size=traffic.shape)
    hidden = np.broadcast_to(traffic[:, 47:48] if persistent else a, (n, 16, 2, 2))
    return _short_task(np.concatenate([traffic, hidden], axis=1), "shift", 96)


def _short_task(traffic, city, slots_per_day):
    """Windows of `city` holding `traffic` (N, 64, H, W) from step 0 of a day, and short-task masks."""
    n = traffic.shape[0]
    win = Windows(city, traffic.astype(np.float64), np.zeros((n, 64), int),
                  np.tile(np.arange(64) % slots_per_day, (n, 1)), slots_per_day, np.zeros(n, int), np.zeros(n, int))
    return win, batch_masks("short", n, traffic.shape[1:])


def test_the_persistence_anchor_moves_the_point_only_where_the_last_observation_helps_on_val(tmp_path):
    from forecasting.anchor import MAX_LEAD
    from forecasting.baselines import BASELINES

    model = _ObservedMean()
    win, mask = _level_shift_windows(np.random.default_rng(0), persistent=True)
    cal = calibration_from_residuals({("shift", "short"): residuals(model, win, mask, "short")})
    assert np.allclose(cal.tables[("shift", "short")].anchor, np.ones(MAX_LEAD))  # w0 = 1, no decay
    new, m_new = _level_shift_windows(np.random.default_rng(1), persistent=True)
    out = cal.calibrate(model.predict(new, m_new), new, m_new)
    assert np.allclose(out.mean[:, 48:], new.traffic[:, 48:], rtol=1e-4)  # the calibrated point is the last value
    back = Calibration.load(cal.save(tmp_path / "a.calibration.json"))
    assert np.allclose(back.tables[("shift", "short")].anchor, 1.0)
    # the level returns to its old mean: the last observation only adds noise, so no anchor is fitted
    win, mask = _level_shift_windows(np.random.default_rng(2), persistent=False)
    cal = calibration_from_residuals({("shift", "short"): residuals(model, win, mask, "short")})
    assert cal.tables[("shift", "short")].anchor is None
    plain = calibration_from_residuals({("shift", "short"): residuals(model, win, mask, "short")}, anchor=False)
    assert plain.tables[("shift", "short")].anchor is None
    # a persistence forecaster's point already is the last observation: nothing to pull toward
    last = BASELINES["last_value"]()
    win, mask = _level_shift_windows(np.random.default_rng(3), persistent=True)
    cal = calibration_from_residuals({("shift", "short"): residuals(last, win, mask, "short")})
    assert cal.tables[("shift", "short")].anchor is None



def test_the_anchor_can_be_fitted_by_the_error_in_normalised_units_where_busy_cells_weigh_more():
    """Hand-checkable: a busy cell (scale 0.5) whose truth is its last observation and three times as many
    quiet entries (scale 0.001) whose truth is the forecaster's point, every pull 0.4 in model space. In model
    space copying costs 0.4 on 3/4 of the entries, keeping the point 0.4 on 1/4: no anchor. In normalised
    units a busy entry's miss is ~500x a quiet one's: copy the last observation (w0 = 1, no decay). Model space
    is the calibration's default."""
    from forecasting.anchor import MAX_LEAD, ValueSpace, fit_weights
    from forecasting.calibration import Residuals

    n_busy, n_quiet = 400, 1200
    n = n_busy + n_quiet
    busy = np.arange(n) < n_busy
    pull = np.full(n, 0.4)
    numer = np.where(busy, pull, 0.0)                       # busy: y = x_last; quiet: y = m
    lead = np.arange(n) % 16
    scale = np.where(busy, 0.5, 0.001)
    point = np.zeros(n)
    assert np.allclose(fit_weights(numer, pull, lead), 0.0)
    assert np.allclose(fit_weights(numer, pull, lead, value=ValueSpace(point, scale)), np.ones(MAX_LEAD))
    zeros_i = np.zeros(n, dtype=np.int64)
    res = Residuals(numer, np.ones(n), zeros_i, zeros_i, point, np.zeros(n, dtype=bool), pull, lead,
                    scale=scale)
    cal = calibration_from_residuals({("toy", "short"): res}, pool_cities=False, anchor_error="value")
    assert np.allclose(cal.tables[("toy", "short")].anchor, 1.0) and cal.meta["anchor_error"] == "value"
    # the default criterion is model space, left out of the meta (files fitted before the option stay equal)
    default = calibration_from_residuals({("toy", "short"): res}, pool_cities=False)
    assert default.tables[("toy", "short")].anchor is None and "anchor_error" not in default.meta
    # without the cells' scales (residuals cached before they were kept) "value" cannot be fitted: say so
    with pytest.raises(CalibrationError, match="cell scale, missing for toy/short"):
        calibration_from_residuals({("toy", "short"): dataclasses.replace(res, scale=None)}, anchor_error="value")
    with pytest.raises(CalibrationError, match="anchor_error must be one of model, value"):
        calibration_from_residuals({("toy", "short"): res}, anchor_error="values")

def _daily_windows(rng, n=200, repeats=True):
    """Short-task windows of 2x2 cells at 24 slots a day: a random daily shape per cell, the second day
    the first day's shape times a level. repeats: the hidden steps (the third day's first 16 slots) repeat
    the day before exactly; else they are noise about the cell's mean."""
    shape = rng.uniform(0.05, 0.4, size=(n, 24, 2, 2))
    day2 = shape * rng.uniform(0.8, 1.25, size=(n, 1, 2, 2))
    hidden = day2[:, :16] if repeats else shape.mean(1, keepdims=True) * rng.uniform(0.5, 1.5, size=(n, 16, 2, 2))
    return _short_task(np.concatenate([shape, day2, hidden], axis=1), "daily", 24)


def test_the_seasonal_term_moves_the_point_to_the_day_before_only_where_that_helps_on_val(tmp_path):
    model = _ObservedMean()
    win, mask = _daily_windows(np.random.default_rng(0), repeats=True)
    cal = calibration_from_residuals({("daily", "short"): residuals(model, win, mask, "short")})
    assert cal.tables[("daily", "short")].seasonal == 1.0
    new, m_new = _daily_windows(np.random.default_rng(1), repeats=True)
    out = cal.calibrate(model.predict(new, m_new), new, m_new)
    assert np.allclose(out.mean[:, 48:], new.traffic[:, 24:40], rtol=1e-4)  # the calibrated point is the day before
    back = Calibration.load(cal.save(tmp_path / "a.calibration.json"))
    assert back.tables[("daily", "short")].seasonal == 1.0
    # the hidden day does not repeat the one before: no seasonal weight is fitted
    win, mask = _daily_windows(np.random.default_rng(2), repeats=False)
    cal = calibration_from_residuals({("daily", "short"): residuals(model, win, mask, "short")})
    assert cal.tables[("daily", "short")].seasonal == 0.0
    assert not any("seasonal" in t for t in cal.to_dict()["tables"])
    # without the anchor, no seasonal term either
    win, mask = _daily_windows(np.random.default_rng(0), repeats=True)
    plain = calibration_from_residuals({("daily", "short"): residuals(model, win, mask, "short")}, anchor=False)
    assert plain.tables[("daily", "short")].seasonal == 0.0


def test_the_seasonal_input_reads_the_day_before_only_of_recorded_cells():
    from forecasting.anchor import season_inputs

    traffic = np.arange(64 * 4, dtype=np.float64).reshape(1, 64, 2, 2)
    mask = np.zeros((1, 64, 2, 2), dtype=bool)
    mask[:, 48:] = True
    mask[:, :, 0, 0] = True  # a cell without a record (the generation task's)
    day_before = np.full((1, 64, 2, 2), 7.0)
    day_before[:, 24:] = np.nan
    g_day = season_inputs(traffic, mask, day_before, 24, lambda x: x)
    assert np.isnan(g_day[0, :, 0, 0]).all()
    assert np.all(g_day[0, :24, 1, 1] == 7.0) and np.array_equal(g_day[0, 48:, 1, 1], traffic[0, 24:40, 1, 1])


def test_a_seasonal_weight_outside_zero_one_in_a_file_is_refused():
    model = _ObservedMean()
    win, mask = _daily_windows(np.random.default_rng(0), repeats=True)
    d = calibration_from_residuals({("daily", "short"): residuals(model, win, mask, "short")}).to_dict()
    next(t for t in d["tables"] if t["city"] == "daily")["seasonal"] = 1.5
    with pytest.raises(CalibrationError, match="seasonal of daily/short must be a number in \\[0, 1\\]"):
        Calibration.from_dict(d)


def _region_residuals(rng, sigmas, per_region=2000):
    """Residuals of the active group in one lead bucket, region k's residuals N(0, sigmas[k]) (spread 1)."""
    from forecasting.calibration import Residuals

    n = per_region * len(sigmas)
    numer = np.concatenate([s * rng.standard_normal(per_region) for s in sigmas])
    zeros_i, zeros_f = np.zeros(n, dtype=np.int64), np.zeros(n)
    return Residuals(numer, np.ones(n), zeros_i, zeros_i, zeros_f + 0.5, np.zeros(n, dtype=bool), zeros_f,
                     zeros_i - 1, np.repeat(np.arange(len(sigmas)), per_region))


def test_a_city_whose_val_regions_disagree_borrows_the_pooled_table_and_one_whose_agree_keeps_its_own():
    from forecasting.calibration import heldout_pit, pooling_errors

    rng = np.random.default_rng(5)
    fitted = {("split", "generation"): _region_residuals(rng, [0.4, 2.5]),
              ("steady", "generation"): _region_residuals(rng, [1.0, 1.0, 1.0, 1.0]),
              ("calm", "generation"): _region_residuals(rng, [1.0, 1.0])}
    cal = calibration_from_residuals(fitted)
    choice = cal.meta["pooling"]
    assert choice["split/generation"]["chosen"] == "pooled" and choice["steady/generation"]["chosen"] == "own"
    assert choice["split/generation"]["width"] == 1.0  # two val regions: one pair's disagreement sets no width
    # by hand, own bands: region N(0, 0.4) under N(0, 2.5)'s central 50/80/90% bands is covered ~1.0 / 1.0 /
    # 1.0 (errors 0.5, 0.2, 0.1), region N(0, 2.5) under N(0, 0.4)'s ~0.086 / 0.16 / 0.21 (errors 0.41, 0.64,
    # 0.69): mean error (0.267 + 0.58) / 2 ~ 0.42; pooled with the N(0, 1) cities both come closer
    others = [fitted[("steady", "generation")], fitted[("calm", "generation")]]
    own, pooled = pooling_errors(fitted[("split", "generation")], others, "generation", None,
                                 cal.tables[("split", "generation")].floor)[:, 0]
    assert 0.38 < own < 0.46 and pooled < own - 0.05
    # the steady city keeps bands of N(0, 1): its new entries are covered at the nominal rates
    new = _region_residuals(rng, [1.0])
    u = heldout_pit(new, cal.tables[("steady", "generation")])
    assert abs(float((np.abs(u - 0.5) <= 0.4).mean()) - 0.8) < 0.03
    # without pooling (or with one val region) every city keeps its own table
    assert calibration_from_residuals(fitted, pool_cities=False).meta["pooling"] == {}


def test_a_city_on_the_same_areas_is_held_out_with_the_region_it_shares():
    from forecasting.calibration import pooling_errors

    rng = np.random.default_rng(6)
    own = _region_residuals(rng, [0.4, 2.5])
    twin = _region_residuals(rng, [0.4, 2.5])  # the same two areas on another time axis
    others = [twin, _region_residuals(rng, [1.0, 1.0])]
    blind = pooling_errors(own, others, "generation", None, 0.1, same_area=[False, False])[:, 0]
    held = pooling_errors(own, others, "generation", None, 0.1, same_area=[True, False])[:, 0]
    # seeing the twin's copy of the held-out region flatters the pooled table; held out with it, it loses that
    assert blind[0] == held[0] and held[1] > blind[1] + 0.05


def test_a_width_factor_scales_the_bands_about_the_median_and_survives_the_file(tmp_path):
    from forecasting.calibration import ResidualTable, heldout_pit

    rng = np.random.default_rng(7)
    fit = _region_residuals(rng, [1.0], per_region=20000)
    fit.numer += 0.3  # a biased point: the median residual is 0.3, the width acts about it
    table = ResidualTable.fit(fit.numer, fit.spread, fit.bucket, fit.group, "generation", floor=0.0)
    wide = table.widened(2.0)
    q, q_wide = table.quantile(np.array([0.1, 0.5, 0.9]), 0, 0), wide.quantile(np.array([0.1, 0.5, 0.9]), 0, 0)
    assert q_wide[1] == pytest.approx(q[1]) and q_wide[2] - q_wide[1] == pytest.approx(2 * (q[2] - q[1]))
    # residuals of twice the spread around the same median are covered at the nominal rates by the wide table
    new = _region_residuals(rng, [2.0], per_region=20000)
    new.numer += 0.3
    new.point += 10.0  # far above the zero level G0, so that no quantile falls in the atom at 0
    u = heldout_pit(new, wide)
    for nominal in (0.5, 0.8, 0.9):
        assert abs(float((np.abs(u - 0.5) <= nominal / 2).mean()) - nominal) < 0.02
    assert abs(float((np.abs(heldout_pit(new, table) - 0.5) <= 0.4).mean()) - 0.8) > 0.2  # unscaled: far off
    cal = Calibration({("c", "generation"): wide})
    back = Calibration.load(cal.save(tmp_path / "w.calibration.json"))
    assert back.tables[("c", "generation")].width == 2.0
    d = cal.to_dict()
    d["tables"][0]["width"] = -1
    with pytest.raises(CalibrationError, match="width of c/generation"):
        Calibration.from_dict(d)


def test_a_city_whose_new_regions_stray_further_than_its_val_entries_spread_gets_wider_bands():
    rng = np.random.default_rng(8)
    shifted = _region_residuals(rng, [1.0] * 4)
    shifted.numer += np.repeat([-1.5, 1.5, -1.5, 1.5], 2000)  # each region off the point by its own bias
    steady = _region_residuals(rng, [1.0] * 4)
    cal = calibration_from_residuals({("shifted", "generation"): shifted, ("steady", "generation"): steady})
    choice = cal.meta["pooling"]
    # a held-out region sits 1.5 from the others' median: bands of N(0, 1.8) around it must widen to cover it
    assert choice["shifted/generation"]["width"] > 1.0
    assert choice["shifted/generation"]["error"] < choice["shifted/generation"]["own"] - 0.05
    assert cal.tables[("shifted", "generation")].width == choice["shifted/generation"]["width"]
    # regions that agree keep bands close to their residuals
    assert 0.9 <= choice["steady/generation"]["width"] <= 1.1 and choice["steady/generation"]["chosen"] == "own"


def test_a_sampling_forecasters_spread_is_kept_only_where_it_sharpens_the_held_out_bands(tmp_path):
    rng = np.random.default_rng(9)
    # informative: each entry's residual is drawn with the spread the forecaster reports (0.3 to 3)
    told = _region_residuals(rng, [1.0] * 3)
    told.spread = np.exp(rng.uniform(np.log(0.3), np.log(3.0), told.numer.size))
    told.numer *= told.spread
    # noise: the reported spread has nothing to do with the residuals, all N(0, 1)
    noisy = _region_residuals(rng, [1.0] * 3)
    noisy.spread = np.exp(rng.uniform(np.log(0.3), np.log(3.0), noisy.numer.size))
    cal = calibration_from_residuals({("told", "generation"): told, ("noisy", "generation"): noisy})
    choice = cal.meta["pooling"]
    assert choice["told/generation"]["spread"] == "model" and not cal.tables[("told", "generation")].flat
    assert choice["noisy/generation"]["spread"] == "flat" and cal.tables[("noisy", "generation")].flat
    assert choice["noisy/generation"]["score_flat"] < choice["noisy/generation"]["score_model"]
    # the flat table's bands ignore the reported spread and cover new N(0, 1) residuals at the nominal rates
    from forecasting.calibration import heldout_pit

    new = _region_residuals(rng, [1.0], per_region=20000)
    new.spread = np.exp(rng.uniform(np.log(0.3), np.log(3.0), new.numer.size))
    new.point += 10.0
    u = heldout_pit(new, cal.tables[("noisy", "generation")])
    assert abs(float((np.abs(u - 0.5) <= 0.4).mean()) - 0.8) < 0.03
    back = Calibration.load(cal.save(tmp_path / "f.calibration.json"))
    assert back.tables[("noisy", "generation")].flat and not back.tables[("told", "generation")].flat
    d = cal.to_dict()
    next(t for t in d["tables"] if t["city"] == "noisy")["flat"] = "yes"
    with pytest.raises(CalibrationError, match="flat of noisy/generation must be true or false"):
        Calibration.from_dict(d)


def test_the_dead_zone_is_chosen_per_cell_group_so_a_busy_cell_is_never_zeroed(tmp_path):
    from forecasting.calibration import GROUPS, Residuals, zero_level

    hidden = GROUPS.index("unobserved")  # cells without observations (the idle atom is for observed-zero ones)

    rng = np.random.default_rng(10)
    n = 4000
    # busy cells: small but positive truths around a point just above the zero level, never exactly 0
    point = np.full(n, zero_level(0.03))
    busy = Residuals(0.05 * np.abs(rng.standard_normal(n)), np.full(n, 0.1), np.zeros(n, dtype=np.int64),
                     np.zeros(n, dtype=np.int64), point, np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n, dtype=np.int64))
    # unobserved cells: the sampler's tiny values above 0, the truth exactly 0 every time
    idle_point = (np.log1p(rng.uniform(0.0, 0.05, n)) - SHIFT) / SPREAD  # g(tiny values): quantiles a bit above 0
    idle = Residuals(G0 - idle_point, np.full(n, 0.1), np.zeros(n, dtype=np.int64), np.full(n, hidden),
                     idle_point, np.ones(n, dtype=bool), np.zeros(n), np.zeros(n, dtype=np.int64))
    cal = calibration_from_residuals({("c", "generation"): Residuals.concat([busy, idle])}, anchor=False)
    shares = np.asarray(cal.zero_share)
    assert shares.shape == (len(GROUPS),) and shares[0] == 0.0 and shares[hidden] >= 0.03
    back = Calibration.load(cal.save(tmp_path / "z.calibration.json"))
    assert np.array_equal(back.zero_share, shares)
    d = cal.to_dict()
    d["zero_share"] = [0.0, 0.02]
    with pytest.raises(CalibrationError, match="zero_share must be a number in"):
        Calibration.from_dict(d)


def test_cities_on_one_geography_share_its_key():
    from forecasting.data import load_city

    base, fine, small = load_city("synthetic"), load_city("synthetic-15min"), load_city("synthetic-small")
    assert base.geography == fine.geography != small.geography
    assert base.subset([0, 1]).geography != base.geography


def test_draws_of_a_synthetic_preset_join_its_val_regions_as_more_regions():
    """`draws`: the val and test regions of other seeded draws of a synthetic preset join its val entries,
    numbered per seed (so leave-one-region-out holds each out alone); with them the preset has enough
    regions for its band width to be chosen. Its own seed is refused; a city that is not a preset adds none."""
    from forecasting.baselines import BASELINES
    from forecasting.calibration import DRAW_REGION_OFFSET, MIN_WIDTH_REGIONS, draw_residuals
    from forecasting.data.synthetic import city_from_name

    city = city_from_name("synthetic-small")  # 4 regions: one val, one test
    base = BASELINES["daily_profile"]().fit(city)
    extra = draw_residuals(base, city, [3, 2], ("long",), stride=16)
    regions = [np.unique(r.region) for r in extra[(city.name, "long")]]
    expected = [np.sort(np.concatenate([city_from_name(city.name, seed=s).regions(split)
                                        for split in ("val", "test")])) + DRAW_REGION_OFFSET * (s + 1)
                for s in (2, 3)]
    assert len(regions) == 4 and np.array_equal(np.sort(np.concatenate(regions)), np.concatenate(expected))
    alone = fit_calibration(base, [city], tasks=("long",), stride=16)
    joined = fit_calibration(base, [city], tasks=("long",), stride=16, draws=[2, 3])
    assert joined.meta["draws"] == [2, 3] and "draws" not in alone.meta
    assert joined.meta["entries"][f"{city.name}/long"] > 4 * alone.meta["entries"][f"{city.name}/long"]
    assert 1 + len(regions) >= MIN_WIDTH_REGIONS and f"{city.name}/long" in joined.meta["pooling"]
    assert f"{city.name}/long" not in alone.meta["pooling"]  # one val region: nothing to hold out
    with pytest.raises(CalibrationError, match="own draw"):
        fit_calibration(base, [city], tasks=("long",), stride=16, draws=[0, 2])
    renamed = city.subset(city.regions(["train", "val", "test"]))
    renamed.name = "my-city"
    assert draw_residuals(base, renamed, [2], ("long",), stride=16) == {}


def test_a_baseline_refitted_on_each_draw_joins_them_as_uomo_does():
    """`fit_pooled_calibration(..., draws=...)`: a baseline is fitted on each draw's own training regions (the
    builder is called with the draw) and that draw's val and test regions join the preset's val regions,
    as `fit_calibration`'s draws join a pre-trained network's; the meta records the seeds."""
    from forecasting.baselines import BASELINES
    from forecasting.calibration import fit_pooled_calibration
    from forecasting.data.synthetic import city_from_name

    city = city_from_name("synthetic-small")
    built = []

    def fitted_on(c):
        built.append(c)
        return BASELINES["daily_profile"]().fit(c)

    alone = fit_pooled_calibration(fitted_on, city, tasks=("long",), stride=16)
    built.clear()
    joined = fit_pooled_calibration(fitted_on, city, tasks=("long",), stride=16, draws=[3, 2])
    assert [c.meta["config"]["seed"] for c in built[1:]] == [2, 3] and built[0] is city
    assert all(c.name == city.name and not np.array_equal(c.traffic, city.traffic) for c in built[1:])
    assert joined.meta["draws"] == [2, 3] and "draws" not in alone.meta
    assert joined.meta["entries"][f"{city.name}/long"] > 4 * alone.meta["entries"][f"{city.name}/long"]
    with pytest.raises(CalibrationError, match="own draw"):
        fit_pooled_calibration(fitted_on, city, tasks=("long",), stride=16, draws=[0])


def test_pooled_tables_weigh_every_city_as_one_when_asked():
    from forecasting.calibration import POOLED, pooled_table

    rng = np.random.default_rng(8)
    big = _region_residuals(rng, [1.0, 1.0], per_region=20000)  # 40,000 entries of N(0, 1)
    small = _region_residuals(rng, [1.0, 1.0], per_region=1000)
    small.numer = small.numer * 0.2 + 3.0  # 2,000 entries of N(3, 0.2)
    parts = [big, small]
    t_entries = pooled_table(parts, "generation", None, 0.0)
    t_cities = pooled_table(parts, "generation", None, 0.0, pool_weights="cities")
    # the mixture's median: by entries the big city's (~0.05, 2,000 of 42,000 entries sit above 3); by city
    # half the mass is the small city's, so the median falls between the two (at the big city's upper tail)
    med_entries, med_cities = t_entries.quantile(0.5, 0, 0), t_cities.quantile(0.5, 0, 0)
    assert abs(med_entries) < 0.15 and 1.5 < med_cities < 3.0
    # by city, the 75% quantile lies in the small city's N(3, 0.2) (its own median: level 0.75 of the mixture)
    assert abs(t_cities.quantile(0.75, 0, 0) - 3.0) < 0.1 and t_entries.quantile(0.75, 0, 0) < 1.0
    # the same weighting carries to the calibration's pooled table, and is recorded
    fitted = {("big", "generation"): big, ("small", "generation"): small}
    cal = calibration_from_residuals(fitted, pool_weights="cities", pool_cities=False)
    assert cal.meta["pool_weights"] == "cities" and cal.tables[(POOLED, "generation")].quantile(0.5, 0, 0) > 1.5
    assert "pool_weights" not in calibration_from_residuals(fitted, pool_cities=False).meta
    with pytest.raises(CalibrationError, match="pool_weights must be one of entries, cities"):
        calibration_from_residuals(fitted, pool_weights="regions")


def test_a_level_map_reshapes_bands_a_width_cannot_and_is_kept_only_where_held_out_regions_gain(tmp_path):
    from forecasting.calibration import MAP_LEVELS, level_map, map_errors, pit_coverage
    from forecasting.calibration.heldout import through_map

    rng = np.random.default_rng(9)
    # PIT values piled up in the tails (a central band too wide, outer ones too narrow): Beta(0.6, 0.6)
    skewed = [rng.beta(0.6, 0.6, 5000) for _ in range(4)]
    assert pit_coverage(np.concatenate(skewed), 0.5) < 0.42 and pit_coverage(np.concatenate(skewed), 0.9) < 0.85
    plain, mapped = map_errors(skewed)
    assert plain > 0.05 and mapped < 0.01  # the map fitted on three regions straightens the fourth
    u = through_map(skewed[0], level_map(np.concatenate(skewed[1:])))
    for nominal in (0.5, 0.8, 0.9):
        assert abs(pit_coverage(u, nominal) - nominal) < 0.02
    # already uniform: the map is close to the identity and changes the held-out errors only by noise
    uniform = [rng.uniform(size=5000) for _ in range(4)]
    assert np.abs(level_map(np.concatenate(uniform)) - MAP_LEVELS).max() < 0.02
    assert max(map_errors(uniform)) < 0.01
    # a table reads its quantile at nominal level a at level L(a), and the map survives the file
    table = ResidualTable(np.broadcast_to(np.linspace(-3, 3, 201), (3, 1, 201)).copy(), 0.1, 100,
                          level_map=level_map(skewed[0]))
    assert table.quantile(0.5, 0, 0) == pytest.approx(0.0, abs=0.1)
    assert table.quantile(0.75, 0, 0) > 0.75 * 3 - 1.5 + 0.3  # Beta(0.6, 0.6)'s 75% quantile lies above 0.75
    cal = Calibration({("c", "generation"): table})
    back = Calibration.load(cal.save(tmp_path / "map.calibration.json")).tables[("c", "generation")]
    assert np.allclose(back.level_map, table.level_map, atol=1e-6) and back.level_map.size == MAP_LEVELS.size
    doc = cal.to_dict()
    doc["tables"][0]["level_map"] = doc["tables"][0]["level_map"][::-1]
    with pytest.raises(CalibrationError, match="level_map of c/generation must not decrease"):
        Calibration.from_dict(doc)


def test_an_outer_width_scales_the_steps_beyond_the_central_band_and_survives_the_file(tmp_path):
    table = ResidualTable(np.broadcast_to(np.linspace(-3, 3, 201), (3, 1, 201)).copy(), 0.1, 100)
    shaped = table.widened(1.5, 0.5)
    levels = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    q, q2 = table.quantile(levels, 0, 0), shaped.quantile(levels, 0, 0)
    assert q2[2] == pytest.approx(q[2])  # the median stays
    assert q2[3] - q2[2] == pytest.approx(1.5 * (q[3] - q[2])) and q2[2] - q2[1] == pytest.approx(1.5 * (q[2] - q[1]))
    assert q2[4] - q2[3] == pytest.approx(0.5 * (q[4] - q[3])) and q2[1] - q2[0] == pytest.approx(0.5 * (q[1] - q[0]))
    assert np.all(np.diff(shaped.quantile(np.linspace(0, 1, 401), 0, 0)) >= 0)  # still a quantile function
    assert np.allclose(table.widened(1.3, 1.3).quantile(levels, 0, 0), table.widened(1.3).quantile(levels, 0, 0))
    cal = Calibration({("c", "generation"): shaped})
    back = Calibration.load(cal.save(tmp_path / "outer.calibration.json")).tables[("c", "generation")]
    assert (back.width, back.outer_width) == (1.5, 0.5)
    assert "outer_width" not in Calibration({("c", "generation"): table}).to_dict()["tables"][0]
    doc = cal.to_dict()
    doc["tables"][0]["outer_width"] = "wide"
    with pytest.raises(CalibrationError, match="outer_width of c/generation must be a number"):
        Calibration.from_dict(doc)


def test_nested_errors_score_each_regions_width_choice_made_on_the_other_regions():
    from forecasting.calibration import nested_errors, width_pairs

    widths = (1.0, 2.0)
    pairs = width_pairs(widths)
    assert pairs == [(1.0, 1.0), (1.0, 2.0), (2.0, 1.0), (2.0, 2.0)]
    # regions 0-2 gain from (2, 1); region 3 alone prefers width 1, and chosen on the others it pays for it
    errors = np.array([[0.10, 0.20, 0.02, 0.08],
                       [0.10, 0.20, 0.02, 0.08],
                       [0.10, 0.20, 0.02, 0.08],
                       [0.01, 0.20, 0.05, 0.30]])
    one, two = nested_errors(errors, widths)
    # one width: without region 0, 1 or 2 the others' mean picks (1, 1) (0.07 vs 0.153); without region 3, (2, 2)
    assert one == pytest.approx((3 * 0.10 + 0.30) / 4)
    assert two == pytest.approx((3 * 0.02 + 0.05) / 4)  # the pair chosen without any one region: (2, 1)


def test_an_outer_width_is_kept_where_region_biases_starve_the_central_band_and_only_there():
    rng = np.random.default_rng(11)
    biased = _region_residuals(rng, [1.0] * 6, per_region=1000)
    biased.numer += np.repeat([-0.8, 0.8] * 3, 1000)  # a new region sits off the others' centre: 50% band misses
    steady = _region_residuals(rng, [1.0] * 4, per_region=1000)
    fitted = {("biased", "generation"): biased, ("steady", "generation"): steady}
    cal = calibration_from_residuals(fitted, outer_widths=True)
    rec = cal.meta["pooling"]
    assert cal.meta["outer_widths"] is True
    assert rec["biased/generation"]["outer_width"] is not None
    assert rec["biased/generation"]["nested_two"] < rec["biased/generation"]["nested_one"]
    assert rec["biased/generation"]["width"] > rec["biased/generation"]["outer_width"]  # the central band widens more
    assert cal.tables[("biased", "generation")].outer_width == rec["biased/generation"]["outer_width"]
    assert rec["steady/generation"]["outer_width"] is None and cal.tables[("steady", "generation")].outer_width is None
    plain = calibration_from_residuals(fitted)
    assert "outer_widths" not in plain.meta and all("nested_one" not in v for v in plain.meta["pooling"].values())
    with pytest.raises(CalibrationError, match="choose one"):
        calibration_from_residuals(fitted, level_maps=True, outer_widths=True)
