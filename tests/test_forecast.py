"""Forecaster API: the shipped checkpoint on a foreign grid/granularity, no peeking, quantiles, contract."""

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.checkpoint import list_pretrained
from forecasting.data import load_long_table, make_windows
from forecasting.data.synthetic import make_city
from forecasting.forecast import load_forecaster
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.train import TrainConfig, train


def _long_table_city(rows=6, cols=5, spd=144, days=2):
    """A 6 x 5-cell city at 10-minute granularity, passed through the long-table loader."""
    src = make_city(rows=rows, cols=cols, region_size=(rows, cols), days=days, slots_per_day=spd, seed=3)
    T = src.n_steps
    times = pd.date_range("2024-03-04", periods=T, freq=f"{1440 // spd}min")
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    frame = pd.DataFrame({
        "cell_id": np.repeat([f"c{r}-{c}" for r, c in zip(rr.ravel(), cc.ravel())], T),
        "timestamp": np.tile(times, rows * cols),
        "traffic": src.traffic[0].transpose(1, 2, 0).reshape(-1),
    })
    cells = pd.DataFrame({"cell_id": [f"c{r}-{c}" for r, c in zip(rr.ravel(), cc.ravel())],
                          "row": rr.ravel(), "col": cc.ravel()})
    return load_long_table(frame, cells, name="foreign", split="test")


def test_shipped_checkpoint_is_listed_and_small():
    assert {"uomo-synthetic-cpu", "uomo-public-cpu"} <= set(list_pretrained())


def test_public_checkpoint_forecasts_a_synthetic_slice_in_traffic_units():
    """The benchmark's model loads by name with its calibration and forecasts a few windows of a city it
    reads static context from (the synthetic POI by name): finite, non-negative, observed entries kept."""
    city = make_city(rows=4, cols=4, days=3, slots_per_day=48, seed=2)
    win = make_windows(city, stride=64).take(slice(0, 2))
    model = load_forecaster("uomo-public-cpu", device="cpu", n_samples=4, steps=3)
    assert model.calibration is not None
    for task in ("short", "generation"):
        mask = batch_masks(task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
        pred = model.predict(hide(win, mask), mask)
        assert pred.samples.shape == (4, *win.traffic.shape)
        assert np.isfinite(pred.samples).all() and (pred.samples >= 0).all()
        assert np.array_equal(pred.samples[:, ~mask], np.broadcast_to(win.traffic[~mask], pred.samples[:, ~mask].shape))
        assert np.isfinite(pred.mean).all()
        if task == "short":  # a sensible forecast: closer to the truth than zero everywhere
            assert np.abs(pred.mean - win.traffic)[mask].mean() < np.abs(win.traffic[mask]).mean()


def test_shipped_checkpoint_forecasts_a_foreign_long_table_city():
    city = _long_table_city()
    assert city.grid == (6, 5) and city.slots_per_day == 144
    model = load_forecaster("uomo-synthetic-cpu", device="cpu", n_samples=3, steps=4)
    frame = model.forecast_city(city, task="short", regions=[0])
    n_windows = city.n_steps // 64
    assert len(frame) == n_windows * 16 * 30  # 16 hidden steps x 30 cells per window
    assert np.isfinite(frame[["mean", "q0.1", "q0.5", "q0.9"]].to_numpy()).all()
    assert (frame["q0.1"] <= frame["q0.9"] + 1e-9).all()
    assert (frame["mean"] >= 0).all()
    assert "cell_id" in frame.columns and frame["cell_id"].iloc[0].startswith("c")
    # a sensible forecast: closer to the truth than forecasting zero everywhere
    assert (frame["mean"] - frame["truth"]).abs().mean() < frame["truth"].abs().mean()
    gen = model.forecast_city(city, task="generation", regions=[0], cells=[(0, 0), (5, 4)])
    assert set(zip(gen["row"], gen["col"])) == {(0, 0), (5, 4)}


def test_observed_entries_are_returned_exactly():
    city = make_city(rows=4, cols=4, days=3, slots_per_day=48, seed=0)
    win = make_windows(city, stride=64).take(slice(0, 4))
    mask = batch_masks("long", len(win), win.traffic.shape[1:])
    model = load_forecaster("uomo-synthetic-cpu", device="cpu", n_samples=2, steps=3)
    pred = model.predict(hide(win, mask), mask)
    assert np.array_equal(pred.samples[:, ~mask], np.broadcast_to(win.traffic[~mask], pred.samples[:, ~mask].shape))
    assert pred.quantiles([0.1, 0.9]).shape == (2, *win.traffic.shape)


def test_hidden_context_cannot_change_a_context_model_forecast(tmp_path):
    """No peeking at the forecaster level: users of hidden steps/cells do not move the forecast."""
    city = make_city(rows=8, cols=8, days=3, slots_per_day=24, seed=1, split_fractions=(0.5, 0.25, 0.25))
    cfg = TrainConfig(preset="tiny", cities=["x"], steps=4, batch_size=4, val_every=4, val_max_windows=2,
                      val_samples=1, val_steps=2, diffusion_steps=10, warmup=1, context=["users", "poi"],
                      contrastive_weight=0.1, out=str(tmp_path / "ctx"))
    summary = train(cfg, cities=[city], progress=False)
    model = load_forecaster(summary["best"], device="cpu", n_samples=2, steps=3)
    with torch.no_grad():
        for p in model.net.parameters():  # make the (zero-initialised) context paths active
            p.add_(0.05 * torch.randn_like(p))
    win = make_windows(city, stride=8).take(slice(0, 3))
    for task in ("short", "generation"):
        mask = batch_masks(task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
        a = model.predict(hide(win, mask), mask).samples
        altered = hide(win, mask)
        altered.users = np.where(mask, 123.0, altered.users)  # what a leaky model could see
        b = model.predict(altered, mask).samples
        assert np.allclose(a, b), task
        moved = hide(win, mask)
        moved.users = np.where(mask, moved.users, moved.users * 3 + 0.1)  # known users do matter
        assert not np.allclose(a, model.predict(moved, mask).samples), task


def test_users_declared_futr_are_stored_and_read_at_hidden_entries(tmp_path):
    city = make_city(rows=8, cols=8, days=3, slots_per_day=24, seed=1, split_fractions=(0.5, 0.25, 0.25))
    cfg = TrainConfig(preset="tiny", cities=["x"], steps=2, batch_size=4, val_every=2, val_max_windows=2,
                      val_samples=1, val_steps=2, diffusion_steps=10, warmup=1, context=["users"],
                      users_exog="futr", out=str(tmp_path / "fu"))
    model = load_forecaster(train(cfg, cities=[city], progress=False)["best"], device="cpu", n_samples=1, steps=2)
    assert model.futr_exog == ("users",) and model.context.users_exog == "futr"
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    win = make_windows(city, stride=8).take(slice(0, 2))
    mask = batch_masks("short", len(win), win.traffic.shape[1:])
    a = model.predict(hide(win, mask, futr_exog=("users",)), mask).samples
    altered = hide(win, mask, futr_exog=("users",))
    altered.users = np.where(mask, altered.users * 3 + 0.1, altered.users)  # only the hidden steps' users
    assert not np.allclose(a, model.predict(altered, mask).samples)


def test_an_old_future_users_checkpoint_loads_as_users_futr():
    from forecasting.encoding import ContextSwitches

    old = ContextSwitches.from_dict({"users": True, "poi": False, "future_users": True})
    assert old == ContextSwitches(users=True, poi=False, users_exog="futr") and old.futr_names == ("users",)
    assert ContextSwitches.from_dict({"users": True, "poi": True, "future_users": False}).users_exog == "hist"


def test_unknown_checkpoint_name_lists_the_shipped_ones():
    from forecasting.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="uomo-synthetic-cpu"):
        load_forecaster("no-such-model")


def test_ensemble_pools_the_members_samples(tmp_path):
    """Two checkpoints as one forecaster: member m's samples are its own forecast with seed + m."""
    from forecasting.forecast import UoMoEnsemble
    from forecasting.inference import SamplingConfig, predict_samples

    city = make_city(rows=4, cols=4, days=3, slots_per_day=48, seed=0)
    shipped = load_forecaster("uomo-synthetic-cpu", device="cpu")
    context = [name for name in ("users", "poi", "residents") if getattr(shipped.context, name)]  # members must match
    cfg = TrainConfig(preset="cpu", cities=["x"], steps=2, batch_size=4, val_every=2, val_max_windows=2, context=context,
                      val_samples=1, val_steps=2, warmup=1, init_from="uomo-synthetic-cpu", out=str(tmp_path / "o"))
    other = train(cfg, cities=[city], progress=False)["best"]
    ens = load_forecaster(["uomo-synthetic-cpu", other], device="cpu", n_samples=2, steps=3, seed=5)
    assert isinstance(ens, UoMoEnsemble) and len(ens.members) == 2
    win = make_windows(city, stride=64).take(slice(0, 3))
    mask = batch_masks("short", len(win), win.traffic.shape[1:])
    pred = ens.predict(hide(win, mask), mask)
    assert pred.samples.shape == (4, *win.traffic.shape)
    for m, member in enumerate(ens.members):
        own = predict_samples(member.net, member.schedule, hide(win, mask), mask,
                              SamplingConfig(steps=3, n_samples=2, seed=5 + m), member.context, "cpu")
        assert np.allclose(pred.samples[2 * m : 2 * m + 2], own)
    assert not np.allclose(pred.samples[:2], pred.samples[2:])  # two different networks
    assert np.allclose(pred.mean, np.median(pred.samples, 0))
    frame = ens.forecast_city(city, task="short", regions=[0])
    assert np.isfinite(frame[["mean", "q0.1", "q0.9"]].to_numpy()).all()
    assert load_forecaster([other], device="cpu").__class__.__name__ == "UoMoForecaster"
    with pytest.raises(ValueError, match="at least two members"):
        UoMoEnsemble([ens.members[0]])
    from forecasting.encoding import ContextSwitches
    from forecasting.forecast import UoMoForecaster

    a = ens.members[0]
    with_users = UoMoForecaster(a.net, a.schedule, context=ContextSwitches(users=True, poi=False), device="cpu")
    with pytest.raises(ValueError, match="different context inputs"):
        UoMoEnsemble([a, with_users])
