"""Recalibration of predictive distributions: nominal coverage where the truth's distribution is known."""

import numpy as np
import pytest

from forecasting.calibration import (
    Calibration, CalibratedForecaster, CalibrationError, ResidualTable, calibration_path, fit_calibration,
    infer_task, lead_buckets,
)
from forecasting.interface import Prediction
from forecasting.masks import batch_masks


def _short_batch(rng, n=400, sigma_model=0.02, sigma_true=0.06):
    """Windows whose truth is m + N(0, sigma_true) while the model samples m + N(0, sigma_model): too narrow."""
    m = rng.uniform(0.3, 0.6, size=(n, 64, 2, 2))
    samples = m[None] + sigma_model * rng.standard_normal((32, *m.shape))
    truth = m + sigma_true * rng.standard_normal(m.shape)
    mask = batch_masks("short", n, (64, 2, 2))
    return Prediction(mean=np.median(samples, 0), samples=samples), truth, mask


def _coverage(q_lo, q_hi, truth, mask):
    return float(((truth >= q_lo) & (truth <= q_hi))[mask].mean())


def test_task_and_lead_buckets_are_read_off_the_mask():
    for task in ("short", "long", "generation"):
        mask = batch_masks(task, 1, (64, 4, 4), rng=np.random.default_rng(0))[0]
        assert infer_task(mask) == task
    b = lead_buckets(batch_masks("short", 1, (64, 2, 2))[0], "short")
    assert (b[:48] == -1).all() and b[48:].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_recalibration_reaches_nominal_coverage_on_a_known_distribution():
    rng = np.random.default_rng(0)
    pred, truth, mask = _short_batch(rng)
    residual = (truth - pred.mean)[mask]
    q10, q90 = np.quantile(pred.samples, [0.1, 0.9], axis=0)
    spread = ((q90 - q10) / 2)[mask]
    buckets = np.broadcast_to(lead_buckets(mask[0], "short")[None, :, None, None], mask.shape)[mask]
    cal = Calibration({("toy", "short"): ResidualTable.fit(residual, spread, buckets, "short")})
    # fresh draws of the same process: the raw 80% band is far too narrow, the calibrated one is nominal
    pred2, truth2, mask2 = _short_batch(np.random.default_rng(1))
    raw_lo, raw_hi = np.quantile(pred2.samples, [0.1, 0.9], axis=0)
    assert _coverage(raw_lo, raw_hi, truth2, mask2) < 0.5
    for nominal in (0.5, 0.8, 0.9):
        lo, hi = cal.quantiles(pred2, mask2, "toy", [(1 - nominal) / 2, (1 + nominal) / 2])
        assert abs(_coverage(lo, hi, truth2, mask2) - nominal) < 0.02
    # calibrated samples keep the raw samples' ranks and have the calibrated marginals
    cs = cal.samples(pred2, mask2, "toy")
    assert cs.shape == pred2.samples.shape
    assert np.array_equal(np.argsort(cs[:, 0, 60, 0, 0]), np.argsort(pred2.samples[:, 0, 60, 0, 0]))
    lo, hi = np.quantile(cs, [0.1, 0.9], axis=0)
    assert abs(_coverage(lo, hi, truth2, mask2) - 0.8) < 0.05
    # observed entries are untouched
    assert np.array_equal(cs[:, ~mask2], np.broadcast_to(pred2.mean[~mask2], cs[:, ~mask2].shape).astype(np.float32))


def test_calibration_round_trips_through_its_file_and_refuses_foreign_files(tmp_path):
    rng = np.random.default_rng(2)
    r, s = rng.standard_normal(500), np.abs(rng.standard_normal(500))
    cal = Calibration({("*", "long"): ResidualTable.fit(r, s, rng.integers(0, 6, 500), "long")}, {"note": "x"})
    path = cal.save(tmp_path / "m.calibration.json")
    back = Calibration.load(path)
    assert np.allclose(back.tables[("*", "long")].z, cal.tables[("*", "long")].z, atol=1e-6)
    assert back.table("nanchang", "long") is back.tables[("*", "long")]  # unseen city: the pooled table
    assert back.table("nanchang", "short") is None
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(CalibrationError, match="not a uomo-calibration"):
        Calibration.load(tmp_path / "bad.json")
    assert calibration_path("runs/x/best.pt").name == "best.calibration.json"
    with pytest.raises(CalibrationError, match="too few"):
        ResidualTable.fit(r[:5], s[:5], np.zeros(5, int), "long")


def test_a_point_baseline_gets_calibrated_samples_fitted_on_val():
    from forecasting.baselines import BASELINES
    from forecasting.data.synthetic import city_from_name
    from forecasting.evaluate import window_masks

    city = city_from_name("synthetic-small")
    base = BASELINES["daily_profile"]().fit(city)
    cal = fit_calibration(base, [city], tasks=("long",), split="val", stride=16)
    assert (city.name, "long") in cal.tables and ("*", "long") in cal.tables
    model = CalibratedForecaster(base, cal, n_samples=16)
    from forecasting.calibration import calibration_windows
    from forecasting.interface import hide

    win = calibration_windows(city, "val", 16)
    mask = window_masks(win, "long")
    pred = model.predict(hide(win, mask), mask)
    assert pred.samples.shape == (16, *mask.shape)
    assert np.array_equal(pred.mean, base.predict(hide(win, mask), mask).mean)  # point forecast unchanged
    lo, hi = np.quantile(pred.samples, [0.1, 0.9], axis=0)
    assert abs(_coverage(lo, hi, win.traffic, mask) - 0.8) < 0.1  # in-sample: close to nominal
