"""Baselines on tiny windows whose exact forecasts can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.baselines import (
    BASELINES,
    AutoARIMABaseline,
    DailyProfile,
    HistoricalAverage,
    LastValue,
    NeighbourMean,
    POIRegression,
    SeasonalNaive,
    daily_profile,
    resample_profile,
)
from forecasting.data import City, Windows, make_windows
from forecasting.interface import NotApplicable, hide
from forecasting.masks import batch_masks, generation_mask, long_term_mask, short_term_mask


def toy_windows(traffic: np.ndarray, slots_per_day: int = 16, poi: np.ndarray | None = None, city: str = "toy") -> Windows:
    """Windows around a hand-made (N, T, H, W) array; slot of day = t mod slots_per_day, Monday."""
    traffic = np.asarray(traffic, dtype=np.float32)
    N, T = traffic.shape[:2]
    t = np.arange(T)
    return Windows(
        city=city,
        traffic=traffic,
        day_of_week=np.broadcast_to((t // slots_per_day) % 7, (N, T)).copy(),
        slot_of_day=np.broadcast_to(t % slots_per_day, (N, T)).copy(),
        slots_per_day=slots_per_day,
        region=np.zeros(N, dtype=int),
        start=np.arange(N),
        poi=poi,
    )


def toy_city(name: str = "toy", slots_per_day: int = 24, days: int = 4, grid: tuple[int, int] = (3, 3), seed: int = 0) -> City:
    """4 regions (2 train, 1 val, 1 test) with a daily cycle, POI-dependent levels and a little noise."""
    rng = np.random.default_rng(seed)
    R, T = 4, slots_per_day * days
    H, W = grid
    t = np.arange(T)
    cycle = 1.0 + 0.6 * np.sin(2 * np.pi * t / slots_per_day)
    poi = rng.integers(0, 10, size=(R, 3, H, W)).astype(np.float32)
    level = 5.0 + poi.sum(axis=1)  # (R, H, W)
    traffic = level[:, None] * cycle[None, :, None, None] * rng.uniform(0.9, 1.1, size=(R, T, H, W))
    return City(
        name=name,
        traffic=traffic,
        users=traffic / 10,
        poi=poi,
        day_of_week=np.broadcast_to((t // slots_per_day) % 7, (R, T)),
        slot_of_day=np.broadcast_to(t % slots_per_day, (R, T)),
        slots_per_day=slots_per_day,
        split=np.array(["train", "train", "val", "test"]),
    )


def masks_for(task: str, windows: Windows) -> np.ndarray:
    N, T, H, W = windows.traffic.shape
    return batch_masks(task, N, (T, H, W), rng=np.random.default_rng(0))


def run(model, windows: Windows, mask: np.ndarray) -> np.ndarray:
    return model.predict(hide(windows, mask), mask).mean


# ----------------------------------------------------------------------------------------------------


def test_registry_names_match_classes():
    assert list(BASELINES) == [
        "historical_average", "last_value", "seasonal_naive", "daily_profile", "arima", "neighbour_mean", "poi_regression",
    ]  # fmt: skip
    for name, cls in BASELINES.items():
        assert cls.name == name
        assert set(cls.tasks) <= {"short", "long", "generation"}


def test_historical_average_is_the_mean_of_observed_steps():
    T = 64
    ramp = np.arange(T, dtype=np.float32) / 100  # cell (0, 0): 0.00, 0.01, ...
    x = np.zeros((1, T, 1, 2), dtype=np.float32)
    x[0, :, 0, 0] = ramp
    x[0, :, 0, 1] = 0.3
    w = toy_windows(x)
    short = short_term_mask((T, 1, 2))[None]
    pred = run(HistoricalAverage(), w, short)
    assert np.allclose(pred[0, 48:, 0, 0], np.mean(ramp[:48]))  # 0.235
    assert np.allclose(pred[0, 48:, 0, 1], 0.3)
    long = long_term_mask((T, 1, 2))[None]
    assert np.allclose(run(HistoricalAverage(), w, long)[0, 16:, 0, 0], np.mean(ramp[:16]))


def test_last_value_carries_the_latest_observation_forward_and_fills_leading_gaps_backward():
    T = 64
    x = (np.arange(T, dtype=np.float32) / 100)[None, :, None, None]
    w = toy_windows(x)
    pred = run(LastValue(), w, short_term_mask((T, 1, 1))[None])
    assert np.allclose(pred[0, 48:, 0, 0], 0.47)
    mask = np.zeros((1, T, 1, 1), dtype=bool)
    mask[0, :5] = True  # hidden start: no earlier observation, take the first one after
    mask[0, 30:33] = True
    pred = run(LastValue(), w, mask)
    assert np.allclose(pred[0, :5, 0, 0], 0.05)
    assert np.allclose(pred[0, 30:33, 0, 0], 0.29)


def test_seasonal_naive_repeats_the_previous_day_exactly_on_a_periodic_series():
    day, T = 16, 64
    t = np.arange(T)
    x = (0.2 + 0.1 * np.sin(2 * np.pi * t / day))[None, :, None, None] * np.array([1.0, 2.0])[None, None, None]
    w = toy_windows(x, slots_per_day=day)
    for mask in (short_term_mask((T, 1, 2)), long_term_mask((T, 1, 2))):  # long: k up to 3 days back
        pred = run(SeasonalNaive(), w, mask[None])
        assert np.allclose(pred[mask[None]], w.traffic[mask[None]], atol=1e-6)
    # a non-periodic series: the forecast is the value exactly one day earlier
    ramp = toy_windows((t / 100)[None, :, None, None], slots_per_day=day)
    pred = run(SeasonalNaive(), ramp, short_term_mask((T, 1, 1))[None])
    assert np.allclose(pred[0, 48:, 0, 0], (t[48:] - day) / 100)


def test_seasonal_naive_is_not_applicable_without_a_day_of_history():
    T = 64
    w = toy_windows(np.full((1, T, 1, 1), 0.5), slots_per_day=48)
    assert np.isfinite(run(SeasonalNaive(), w, short_term_mask((T, 1, 1))[None])).all()  # 48 observed = a day
    with pytest.raises(NotApplicable):
        run(SeasonalNaive(), w, long_term_mask((T, 1, 1))[None])  # 16 observed < 48
    with pytest.raises(NotApplicable):  # a day longer than the window (15-min data)
        run(SeasonalNaive(), toy_windows(np.full((1, T, 1, 1), 0.5), slots_per_day=96), short_term_mask((T, 1, 1))[None])


def test_seasonal_naive_reads_the_day_before_the_window_when_the_windows_carry_it():
    day, T = 96, 64  # 15-min slots: the window is shorter than a day
    past = np.linspace(0.1, 0.7, T, dtype=np.float32)[None, :, None, None]
    w = toy_windows(np.full((1, T, 1, 1), 0.5), slots_per_day=day)
    w.day_before = past.copy()
    pred = run(SeasonalNaive(), w, short_term_mask((T, 1, 1))[None])
    assert np.allclose(pred[0, 48:, 0, 0], past[0, 48:, 0, 0])
    w.day_before[0, 50] = np.nan  # a missing day before is not invented
    with pytest.raises(NotApplicable, match="1 hidden entries"):
        run(SeasonalNaive(), w, short_term_mask((T, 1, 1))[None])
    # a window longer than a day: steps past the first day read the window, earlier ones the record before it
    hourly = toy_windows(np.arange(T, dtype=np.float32)[None, :, None, None] / 100, slots_per_day=24)
    hourly.day_before = np.full((1, T, 1, 1), np.nan, np.float32)
    hourly.day_before[0, :24] = 0.9
    mask = np.zeros((1, T, 1, 1), bool)
    mask[0, 10:20] = True
    mask[0, 30:34] = True
    pred = run(SeasonalNaive(), hourly, mask)
    assert np.allclose(pred[0, 10:20, 0, 0], 0.9) and np.allclose(pred[0, 30:34, 0, 0], np.arange(6, 10) / 100)


def test_daily_profile_is_the_training_mean_per_slot():
    city = toy_city()
    model = DailyProfile().fit(city)
    train = city.regions("train")
    norm = make_windows(city).scalers.traffic.transform(city.traffic[train])
    expected = [norm[:, city.slot_of_day[0] == s].mean() for s in range(city.slots_per_day)]
    assert np.allclose(model.profiles["toy"], expected, rtol=1e-5)
    assert np.allclose(daily_profile(city), expected, rtol=1e-5)


def test_daily_profile_scales_the_profile_to_each_cells_observed_level():
    model = DailyProfile()
    model.profiles["toy"] = np.array([1.0, 2.0])  # two slots per day
    T = 64
    x = np.zeros((1, T, 1, 2), dtype=np.float32)
    x[0, :, 0, 0] = 0.1 * np.tile([1.0, 2.0], T // 2)  # proportional to the profile
    x[0, :, 0, 1] = 0.3  # flat: scale = sum x / sum p = 0.3 * 48 / (1.5 * 48) = 0.2
    w = toy_windows(x, slots_per_day=2)
    pred = run(model, w, short_term_mask((T, 1, 2))[None])
    assert np.allclose(pred[0, 48:, 0, 0], x[0, 48:, 0, 0], atol=1e-6)
    assert np.allclose(pred[0, 48:, 0, 1], 0.2 * np.tile([1.0, 2.0], 8), atol=1e-6)


def test_daily_profile_warns_and_falls_back_for_a_city_it_was_not_fitted_on():
    model = DailyProfile()
    model.profiles["a"] = np.array([1.0, 3.0])
    model.profiles["b"] = np.array([2.0, 6.0])  # same shape, other magnitude
    w = toy_windows(np.full((1, 64, 1, 1), 0.2), slots_per_day=4, city="elsewhere")
    with pytest.warns(UserWarning, match="not fitted"):
        profile = model.profile_for("elsewhere", 4)
    assert np.allclose(profile, resample_profile(np.array([0.5, 1.5]), 4))
    with pytest.warns(UserWarning):
        assert np.isfinite(run(model, w, short_term_mask((64, 1, 1))[None])).all()
    with pytest.raises(ValueError, match="not fitted"):
        DailyProfile().profile_for("x", 4)


def test_arima_returns_finite_forecasts_in_range_on_a_short_batch():
    rng = np.random.default_rng(0)
    T, day = 64, 16
    t = np.arange(T)
    x = 0.4 + 0.3 * np.sin(2 * np.pi * t / day)[None, :, None, None] + 0.02 * rng.standard_normal((2, T, 1, 2))
    x[1, :, 0, 1] = 0.0  # a constant (all-zero) series must not break the batch
    w = toy_windows(np.clip(x, 0, 1), slots_per_day=day)
    model = AutoARIMABaseline()
    mask = np.broadcast_to(short_term_mask((T, 1, 2)), (2, T, 1, 2))
    pred = run(model, w, mask)
    assert pred.shape == w.traffic.shape
    assert np.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1
    assert model.n_series == 4
    # on a clean periodic series it does far better than the historical average
    err_arima = np.abs(pred[0] - w.traffic[0])[mask[0]].mean()
    err_ha = np.abs(run(HistoricalAverage(), w, mask)[0] - w.traffic[0])[mask[0]].mean()
    assert err_arima < err_ha


def test_arima_falls_back_to_the_history_mean_when_a_fit_diverges_or_fails(monkeypatch):
    T = 64
    x = np.full((3, T, 1, 1), 0.25, dtype=np.float32)
    x[:, :48:2] = 0.35  # history mean 0.3
    w = toy_windows(x)

    def fake(self, histories, horizon, season):
        out = np.full((histories.shape[0], horizon), 0.5)
        out[0, 3] = np.nan  # failed
        out[1] = 1e6  # diverged
        return out

    monkeypatch.setattr(AutoARIMABaseline, "_forecast_batch", fake)
    model = AutoARIMABaseline()
    pred = run(model, w, np.broadcast_to(short_term_mask((T, 1, 1)), x.shape))
    assert model.n_fallbacks == 2 and model.n_series == 3
    assert np.allclose(pred[:2, 48:], 0.3) and np.allclose(pred[2, 48:], 0.5)


def test_arima_is_seasonal_only_with_two_days_of_history(monkeypatch):
    seen = []

    def fake(self, histories, horizon, season):
        seen.append((histories.shape[1], horizon, season))
        return np.full((histories.shape[0], horizon), 0.5)

    monkeypatch.setattr(AutoARIMABaseline, "_forecast_batch", fake)
    T = 64
    w = toy_windows(np.full((1, T, 1, 1), 0.5), slots_per_day=24)
    run(AutoARIMABaseline(), w, short_term_mask((T, 1, 1))[None])  # 48 observed = 2 days
    run(AutoARIMABaseline(), w, long_term_mask((T, 1, 1))[None])  # 16 observed < 2 days
    assert seen == [(48, 16, 24), (16, 48, 1)]


def test_neighbour_mean_uses_the_eight_neighbours_then_all_observed_cells():
    T = 64
    x = np.zeros((1, T, 3, 3), dtype=np.float32)
    x[0, :] = np.arange(9, dtype=np.float32).reshape(3, 3) / 10
    w = toy_windows(x)
    centre = generation_mask((T, 3, 3), cells=[(1, 1)])[None]
    pred = run(NeighbourMean(), w, centre)
    assert np.allclose(pred[0, :, 1, 1], np.mean([0, 1, 2, 3, 5, 6, 7, 8]) / 10)
    # a 1 x 4 strip: hidden cells (0, 0), (0, 1); (0, 0) has no observed neighbour -> mean of all observed
    strip = toy_windows(np.broadcast_to(np.array([0.0, 0.0, 0.2, 0.6]), (1, T, 1, 4)))
    mask = generation_mask((T, 1, 4), cells=[(0, 0), (0, 1)])[None]
    pred = run(NeighbourMean(), strip, mask)
    assert np.allclose(pred[0, :, 0, 1], 0.2)  # its only observed neighbour
    assert np.allclose(pred[0, :, 0, 0], 0.4)  # (0.2 + 0.6) / 2
    with pytest.raises(NotApplicable):
        run(NeighbourMean(), strip, short_term_mask((T, 1, 4))[None])


def test_poi_regression_recovers_a_bilinear_poi_times_time_of_day_city():
    rng = np.random.default_rng(1)
    R, C, H, W, day = 6, 2, 3, 3, 24
    T = day * 4
    t = np.arange(T)
    poi = rng.integers(0, 20, size=(R, C, H, W)).astype(np.float32)
    z = np.log1p(poi)  # (R, C, H, W)
    cell_level = 1.0 + 0.5 * z[:, 0] + 0.2 * z[:, 1]  # (R, H, W)
    cycle = 1.0 + 0.5 * np.cos(2 * np.pi * t / day)
    traffic = cell_level[:, None] * cycle[None, :, None, None]
    city = City(
        name="bilinear", traffic=traffic, poi=poi, slots_per_day=day,
        day_of_week=np.broadcast_to((t // day) % 5, (R, T)),  # weekdays only
        slot_of_day=np.broadcast_to(t % day, (R, T)),
        split=np.array(["train"] * 4 + ["val", "test"]),
    )  # fmt: skip
    model = POIRegression().fit(city)
    w = make_windows(city, split="test", stride=8)
    mask = generation_mask((64, H, W), cells=[(0, 0), (2, 1)])
    mask = np.broadcast_to(mask, w.traffic.shape)
    pred = run(model, w, mask)
    # exact up to the 99.99th-percentile clipping of the few largest training values
    assert np.abs(pred - w.traffic)[mask].max() < 2e-3
    with pytest.raises(NotApplicable, match="not fitted"):
        run(model, toy_windows(np.full((1, 64, 3, 3), 0.1), poi=poi[:1], city="other"), mask[:1])


def test_poi_regression_without_poi_is_a_time_of_day_model():
    city = toy_city()
    city.poi = None
    model = POIRegression().fit(city)
    assert model.coefficients["toy"].shape == (1, 10)
    w = make_windows(city, split="test")
    mask = np.broadcast_to(generation_mask((64, 3, 3), cells=[(1, 1)]), w.traffic.shape)
    pred = run(model, w, mask)
    # every cell gets the same curve, shaped like the city's daily cycle
    assert np.allclose(pred[:, :, 0, 0], pred[:, :, 2, 2])
    assert np.corrcoef(pred[:, :, 1, 1].ravel(), w.traffic[:, :, 1, 1].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_never_read_hidden_entries(name):
    """Hidden entries are NaN: a model reading them would return NaN; changing them changes nothing."""
    city = toy_city(grid=(2, 2))
    model = BASELINES[name]().fit(city)
    w = make_windows(city, split="test", stride=16).take(slice(0, 1 if name == "arima" else 3))
    for task in model.tasks:
        mask = masks_for(task, w)
        try:
            pred = run(model, w, mask)
        except NotApplicable:
            assert name == "seasonal_naive" and task == "long"
            continue
        assert np.isfinite(pred[mask]).all(), f"{name} produced NaN on {task}: it read a hidden entry"
        altered = w.take(slice(None))
        altered.traffic = np.where(mask, 1.0 - w.traffic, w.traffic).astype(np.float32)
        assert np.array_equal(run(model, altered, mask)[mask], pred[mask])


def test_bad_masks_are_rejected():
    w = toy_windows(np.zeros((1, 64, 1, 1)))
    with pytest.raises(ValueError, match="boolean"):
        HistoricalAverage().predict(w, np.zeros((1, 64, 1, 1), dtype=int))
    with pytest.raises(ValueError, match="does not match"):
        HistoricalAverage().predict(w, np.zeros((1, 63, 1, 1), dtype=bool))


def test_patchtst_optional_baseline_trains_and_forecasts_its_fitted_shapes():
    pytest.importorskip("neuralforecast")
    from forecasting.baselines import OPTIONAL_BASELINES, PatchTSTBaseline

    assert OPTIONAL_BASELINES == {"patchtst": PatchTSTBaseline}
    city = toy_city(grid=(2, 2))
    model = PatchTSTBaseline(shapes=[(48, 16)], max_steps=2, hidden_size=16, n_heads=2, encoder_layers=1).fit(city)
    w = make_windows(city, split="test", stride=16)
    short = masks_for("short", w)
    pred = run(model, w, short)
    assert np.isfinite(pred).all() and pred.min() >= 0 and pred.max() <= 1
    assert np.array_equal(pred[~short], w.traffic[~short])  # observed entries untouched
    with pytest.raises(NotApplicable, match="no model"):
        run(model, w, masks_for("long", w))
