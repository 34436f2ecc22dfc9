"""Nixtla-style frames and covariates declared by availability (forecasting.data.covariates, forecasting.exog):
round trips, clear errors, and the no-peeking rule for hist covariates against futr ones."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.data import DataError, load_long_table, to_long_table
from forecasting.data.covariates import Covariates
from forecasting.data.synthetic import make_city
from forecasting.forecast import load_forecaster
from forecasting.forward import forecast, forward_forecast
from forecasting.train import TrainConfig, build_parser, train


@pytest.fixture(scope="module")
def small_city():
    """8 x 8 cells in four regions, 3 days of hourly steps, users; a planned-event covariate added."""
    city = make_city(rows=8, cols=8, days=3, slots_per_day=24, seed=1, split_fractions=(0.5, 0.25, 0.25))
    events = (np.random.default_rng(0).random(city.traffic.shape) < 0.05).astype(np.float32)
    return replace(city, exog={"events": events}, covariates=Covariates(("users",), ("events",), ("poi",)))


def nixtla_frames(city):
    """(traffic frame unique_id, ds, y, users, events; cells GeoDataFrame with unique_id; POI rows)."""
    return to_long_table(city, nixtla=True)


def test_a_nixtla_frame_with_hist_and_futr_covariates_round_trips(small_city):
    frame, cells, poi = nixtla_frames(small_city)
    assert list(frame.columns) == ["unique_id", "ds", "y", "users", "events"]
    city = load_long_table(frame, cells, poi, hist_exog=["users"], futr_exog=["events"])
    assert city.covariates == Covariates(("users",), ("events",), ("poi",))
    assert np.array_equal(city.traffic, small_city.traffic) and np.array_equal(city.users, small_city.users)
    assert np.array_equal(city.exog["events"], small_city.exog["events"])
    back, _, _ = to_long_table(city, nixtla=True)
    key = ["unique_id", "ds"]
    pd.testing.assert_frame_equal(back.sort_values(key).reset_index(drop=True),
                                  frame.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_nixtla_names_are_detected_and_missing_columns_are_named(small_city):
    frame, cells, _ = nixtla_frames(small_city)
    city = load_long_table(frame[["unique_id", "ds", "y"]], cells)  # no covariates: nothing declared
    assert city.users is None and city.covariates == Covariates()
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['traffic'\].*'y' for traffic"):
        load_long_table(frame.drop(columns="y"), cells)
    with pytest.raises(DataError, match=r"futr_exog names \['mobility'\]"):
        load_long_table(frame, cells, futr_exog=["mobility"])
    with pytest.raises(DataError, match="declared both"):
        load_long_table(frame, cells, hist_exog=["users"], futr_exog=["users"])
    renamed = frame.rename(columns={"y": "volume"})  # other names still go through columns=
    assert np.array_equal(load_long_table(renamed, cells, columns={"traffic": "volume"}).traffic, city.traffic)


def test_static_covariates_are_columns_of_the_cell_table(small_city):
    frame, cells, _ = nixtla_frames(small_city)
    cells = cells.assign(schools=np.arange(len(cells)) % 3)
    city = load_long_table(frame[["unique_id", "ds", "y"]], cells, stat_exog=["schools"])
    assert city.poi_categories == ["schools"] and city.poi.shape == (4, 1, 4, 4)
    assert city.poi[0, 0].ravel().tolist() == (np.arange(16) % 3).tolist()
    with pytest.raises(DataError, match="stat_exog names"):
        load_long_table(frame, cells, stat_exog=["parks"])


@pytest.fixture(scope="module")
def futr_model(small_city, tmp_path_factory):
    """A tiny UoMo trained a few steps with users declared futr; weights jittered so that context paths act."""
    cfg = TrainConfig(preset="tiny", cities=["x"], steps=3, batch_size=4, val_every=3, val_max_windows=2,
                      val_samples=1, val_steps=2, diffusion_steps=10, warmup=1, context=["users"], users_exog="futr",
                      out=str(tmp_path_factory.mktemp("futr")))
    model = load_forecaster(train(cfg, cities=[small_city], progress=False)["best"], device="cpu", n_samples=2, steps=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.net.parameters():  # make the (zero-initialised) context paths active
            p.add_(0.05 * torch.randn_like(p))
    return model


def _with_horizon_users(city, origin: int, factor: float):
    """The city with its users from step `origin` on multiplied by `factor` (the horizon of a back-test)."""
    users = city.users.copy()
    users[:, origin:] = users[:, origin:] * factor + 1.0
    return replace(city, users=users)


@pytest.mark.parametrize("availability", ["hist", "futr"])
def test_a_hist_covariate_of_the_horizon_cannot_move_a_forecast_a_futr_one_can(small_city, futr_model, availability):
    declared = Covariates(**{f"{availability}_exog": ("users",)})
    city = replace(small_city, exog=None, covariates=declared)
    origin = 56
    run = lambda c: forward_forecast(futr_model, c, 16, start=origin, seed=0).samples  # noqa: E731
    a, b = run(city), run(_with_horizon_users(city, origin, 3.0))
    if availability == "hist":
        assert np.array_equal(a, b)  # bit-identical: the horizon's users are never shown
    else:
        assert not np.allclose(a, b)  # shown for the horizon, and read
    assert np.array_equal(a, run(city))  # same seed, same samples


def test_futr_users_past_the_end_need_a_future_frame(small_city, futr_model):
    city = replace(small_city, exog=None, covariates=Covariates(futr_exog=("users",)))
    with pytest.raises(DataError, match="futr_df="):
        forward_forecast(futr_model, city, 8)
    frame, cells, _ = nixtla_frames(city)
    last = pd.to_datetime(frame["ds"]).max()
    future = frame[pd.to_datetime(frame["ds"]) > last - pd.Timedelta(hours=8)].copy()
    future["ds"] = pd.to_datetime(future["ds"]) + pd.Timedelta(hours=8)
    out = forecast(futr_model, frame, 8, cells=cells, futr_exog=["users"],
                   futr_df=future[["unique_id", "ds", "users"]])
    assert len(out) == 8 * 64 and np.isfinite(out["mean"]).all()
    assert pd.to_datetime(out["ds"]).min() == last + pd.Timedelta(hours=1)


def test_future_users_flag_is_a_deprecated_alias_of_users_exog_futr():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = build_parser().parse_args(["--context", "users", "--future-users"])
    assert args.users_exog == "futr"
    assert any("--users-exog futr" in str(w.message) for w in caught)
    assert build_parser().parse_args(["--users-exog", "futr"]).users_exog == "futr"


def test_users_are_known_for_the_horizon_only_when_data_and_model_both_say_so(small_city):
    from types import SimpleNamespace

    from forecasting.exog import known_for_horizon

    reads, blind = SimpleNamespace(futr_exog=("users",)), SimpleNamespace(futr_exog=())
    hist = replace(small_city, covariates=Covariates(hist_exog=("users", "events")))
    futr = replace(small_city, covariates=Covariates(hist_exog=("events",), futr_exog=("users",)))
    undeclared = replace(small_city, exog=None, covariates=None)
    assert known_for_horizon(reads, hist) == () and known_for_horizon(blind, futr) == ()
    assert known_for_horizon(reads, futr) == ("users",) and known_for_horizon(reads, undeclared) == ("users",)
