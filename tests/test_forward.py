"""Forecasts past the end of the data (forecasting.forward): scored against a synthetic city's own future,
rolled sample paths, timestamps, back-tests from inside the history, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.baselines import LastValue
from forecasting.data import DataError, to_long_table
from forecasting.data.synthetic import make_city
from forecasting.forecast import load_forecaster
from forecasting.forward import ForwardForecast, forecast, forward_forecast
from forecasting.interface import Forecaster, Prediction

CONFIG = dict(rows=8, cols=8, slots_per_day=48, days=7, seed=3)


@pytest.fixture(scope="module")
def future_city():
    """(history, the same city with two more days): the history is the first 7 days of the longer city."""
    return make_city(**CONFIG), make_city(future_days=2, **CONFIG)


@pytest.fixture(scope="module")
def uomo():
    return load_forecaster("uomo-synthetic-cpu", n_samples=4, device="cpu")


class StepPaths(Forecaster):
    """Draw k of a hidden entry = the cell's last observed value + k * step: path p of a roll continued
    from its own window adds p * step per roll, so after k rolls paths differ by k * p * step."""

    name = "step_paths"
    tasks = ("short", "long")

    def __init__(self, n: int = 3, step: float = 0.01):
        self.n, self.step = n, step

    def predict(self, windows, mask):
        last = windows.traffic[:, ~mask[0].any(axis=(1, 2))][:, -1]  # (N, H, W) last observed step
        base = np.where(mask, last[:, None], windows.traffic)
        samples = np.stack([base + mask * k * self.step for k in range(self.n)]).astype(np.float32)
        return Prediction(mean=np.median(samples, 0), samples=samples)


def test_future_city_prefix_equals_the_city_without_future(future_city):
    history, full = future_city
    T = history.n_steps
    assert full.n_steps == T + 2 * 48
    for key in ("traffic", "users", "day_of_week", "slot_of_day"):
        np.testing.assert_array_equal(getattr(full, key)[:, :T], getattr(history, key))
    assert full.meta["future_days"] == 2 and "future_days" not in history.meta


def test_forward_forecast_beats_trivial_forecasts_on_the_generated_future(future_city, uomo):
    history, full = future_city
    T, h = history.n_steps, 64
    fc = forward_forecast(uomo, history, h)
    truth = full.traffic[:, T:T + h]
    mae = np.abs(fc.point - truth).mean()
    zeros = np.abs(truth).mean()
    global_mean = np.abs(truth - history.traffic.mean()).mean()
    assert mae < 0.8 * min(zeros, global_mean), (mae, zeros, global_mean)
    q10, q90 = fc.quantiles([0.1, 0.9])
    assert ((truth >= q10) & (truth <= q90)).mean() > 0.4  # rolled calibrated bands of 4 paths (0.53 measured)


def test_frame_columns_shapes_and_timestamps(future_city, uomo):
    history, _ = future_city
    T, h = history.n_steps, 20
    frame = forecast(uomo, history, h, quantiles=(0.1, 0.5, 0.9), samples=True)
    assert list(frame.columns[:10]) == ["unique_id", "ds", "region", "row", "col", "step", "mean",
                                        "q0.1", "q0.5", "q0.9"]
    assert [c for c in frame.columns if c.startswith("sample_")] == [f"sample_{k}" for k in range(4)]
    assert "truth" not in frame
    n_cells = history.n_regions * 16
    assert len(frame) == n_cells * h and frame["unique_id"].nunique() == n_cells
    last_observed = pd.Timestamp(history.start_time[0]) + pd.Timedelta(minutes=30) * (T - 1)
    assert frame["ds"].min() == last_observed + pd.Timedelta(minutes=30)
    one = frame[frame["unique_id"] == frame["unique_id"].iloc[0]]
    assert (one["ds"].diff().dropna() == pd.Timedelta(minutes=30)).all()
    assert one["step"].tolist() == list(range(T, T + h))
    assert (frame["q0.1"] <= frame["q0.9"]).all() and np.isfinite(frame["mean"]).all()


def test_roll_over_beyond_one_window_continues_each_path_from_its_own_values(future_city):
    history, _ = future_city
    fc = forward_forecast(StepPaths(n=3, step=0.01), history, 40, task="short")  # rolls of 16, 16, 8 steps
    assert fc.samples.shape == (3, history.n_regions, 40, 4, 4) and fc.point.shape == (history.n_regions, 40, 4, 4)
    scale = fc.samples[1] - fc.samples[0]  # raw units of one 0.01 step: path 1 - path 0 after each roll
    lead_roll = np.repeat([1, 2, 3], [16, 16, 8])
    np.testing.assert_allclose(fc.samples[2] - fc.samples[0], 2 * scale, rtol=1e-4, atol=1e-3)
    per_step = scale.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(per_step / per_step[0], lead_roll, rtol=1e-4)


class RecordingStepPaths(StepPaths):
    """StepPaths that keeps every window batch it was given and the samples it returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def predict(self, windows, mask):
        pred = super().predict(windows, mask)
        self.calls.append((windows, pred.samples))
        return pred


def test_rolled_windows_carry_the_day_before_from_the_record_and_each_paths_own_forecast(future_city):
    history, _ = future_city
    model = RecordingStepPaths(n=3)
    forward_forecast(model, history, 60, task="long")  # 30-min slots: rolls of 48 steps from origin - 16
    (first, first_samples), (second, _) = model.calls
    origin, R, d = history.n_steps, len(first), 48
    scale = first.scalers.traffic
    expect = scale.transform(history.traffic[first.region, origin - 16 - d:origin - 16])  # (R, 48, H, W): the record
    np.testing.assert_allclose(first.day_before[:, :d], expect, rtol=1e-6)
    assert np.isnan(first.day_before[:, d:]).all()
    # roll 1 starts at origin + 32: one day before its steps 0-15 is the record, 16-47 path p's roll-0 forecast
    day = second.day_before.reshape(3, R, 64, 4, 4)
    np.testing.assert_allclose(day[:, :, :16], np.broadcast_to(first.traffic[:, :16], day[:, :, :16].shape),
                               rtol=1e-6)
    np.testing.assert_allclose(day[:, :, 16:48], first_samples[:, :, 16:48], rtol=1e-6)
    assert not np.allclose(day[0, :, 16:48], day[2, :, 16:48])  # each path its own past


def test_timestamps_continue_the_calendar_across_a_week_boundary(future_city):
    history, full = future_city
    fc = forward_forecast(LastValue(), history, 60)
    T = history.n_steps
    np.testing.assert_array_equal(fc.day_of_week, full.day_of_week[:, T:T + 60])
    np.testing.assert_array_equal(fc.slot_of_day, full.slot_of_day[:, T:T + 60])
    assert fc.samples is None
    frame = fc.frame()
    assert "q0.1" not in frame and "mean" in frame  # a point forecaster: no bands


def test_start_inside_the_history_back_tests_on_what_was_observed(future_city):
    history, _ = future_city
    T = history.n_steps
    frame = forecast(LastValue(), history, 20, start=T - 10)
    assert frame["step"].min() == T - 10
    one = frame[frame["unique_id"] == "0/0/0"]
    np.testing.assert_allclose(one["truth"].to_numpy()[:10], history.traffic[0, T - 10:, 0, 0])
    assert one["truth"].iloc[10:].isna().all()
    same = forecast(LastValue(), history.head(T - 10), 20)  # only the steps before `start` are read
    np.testing.assert_allclose(frame["mean"], same["mean"])
    by_time = forecast(LastValue(), history, 20, start=str(pd.Timestamp(history.start_time[0])
                                                          + pd.Timedelta(minutes=30) * (T - 10)))
    np.testing.assert_allclose(by_time["mean"], frame["mean"])


def test_long_frame_input(future_city):
    history, _ = future_city
    tables = to_long_table(history)
    frame = forecast(LastValue(), tables.traffic, 5, cells=tables.cells)
    assert len(frame) == history.n_regions * 16 * 5
    assert set(frame["unique_id"]) == set(tables.traffic["cell_id"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(horizon=0), "at least one step"),
    (dict(horizon=-3), "at least one step"),
    (dict(horizon="soon"), "neither a number of steps nor a duration"),
    (dict(horizon="45min"), "not a whole number of 30-min steps"),
    (dict(horizon=4, start=10_000), "past the end"),
    (dict(horizon=4, start=0), "no history"),
    (dict(horizon=4, start=20), "need 48"),
    (dict(horizon=4, start="2024-01-03T00:10"), "not on a step boundary"),
    (dict(horizon=4, start="yesterday-ish"), "neither 'end', a step index nor a timestamp"),
    (dict(horizon=4, task="generation"), "rolls 'short'"),
    (dict(horizon=4, regions=[99]), "not regions of"),
])
def test_bad_input_is_refused_with_a_clear_message(future_city, kwargs, message):
    history, _ = future_city
    with pytest.raises(DataError, match=message):
        forward_forecast(LastValue(), history, **kwargs)


def test_a_forecaster_that_does_not_serve_the_task_is_refused(future_city):
    from forecasting.baselines import NeighbourMean

    with pytest.raises(DataError, match="does not forecast the 'short' task"):
        forward_forecast(NeighbourMean(), future_city[0], 4)
    with pytest.raises(DataError, match="City or a long DataFrame"):
        forecast(LastValue(), np.zeros((3, 3)), 4)
    assert isinstance(forward_forecast(LastValue(), future_city[0], 1), ForwardForecast)
