"""Training loop: reproducibility, exact resume, safe checkpoints, DDP on CPU (gloo, 2 processes)."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from forecasting.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from forecasting.data import City
from forecasting.forecast import load_forecaster
from forecasting.train import TrainConfig, draw_batch, build_pool, train

REPO = Path(__file__).resolve().parents[1]


def tiny_city(name="toy", regions=4, days=3, spd=24, seed=0) -> City:
    """A small periodic city: 4 regions (2 train, 1 val, 1 test) of 4x4 cells, hourly slots."""
    rng = np.random.default_rng(seed)
    T = days * spd
    t = np.arange(T)
    daily = 1.5 + np.sin(2 * np.pi * t / spd)
    level = rng.lognormal(0, 1, size=(regions, 1, 4, 4))
    traffic = level * daily[None, :, None, None] * rng.lognormal(0, 0.1, size=(regions, T, 4, 4))
    return City(
        name=name,
        traffic=traffic.astype(np.float32),
        users=(traffic * 0.1).astype(np.float32),
        poi=rng.poisson(3, size=(regions, 5, 4, 4)).astype(np.float32),
        day_of_week=np.tile((t // spd) % 7, (regions, 1)),
        slot_of_day=np.tile(t % spd, (regions, 1)),
        slots_per_day=spd,
        split=np.array(["train", "train", "val", "test"][:regions]),
    )


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(preset="tiny", cities=["toy"], steps=6, batch_size=4, val_every=3, val_max_windows=4,
                val_samples=2, val_steps=2, diffusion_steps=20, warmup=2, out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    state, _ = load_checkpoint(path)
    return state["model"]


def test_same_seed_same_weights(tmp_path):
    city = tiny_city()
    train(_cfg(tmp_path / "a"), cities=[city], progress=False)
    train(_cfg(tmp_path / "b"), cities=[city], progress=False)
    wa, wb = _weights(tmp_path / "a/run/last.pt"), _weights(tmp_path / "b/run/last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    """A run killed after step 4 (past the 2-step warm-up, between validations) and resumed from the
    last.pt written on its save interval equals an uninterrupted 6-step run."""
    import forecasting.train as tr

    city = tiny_city()
    train(_cfg(tmp_path / "full", save_every=2), cities=[city], progress=False)
    real, calls = tr.draw_batch, []

    def killed_at_step_5(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # the process dies: nothing after this line of the run happens
        return real(*a, **k)

    monkeypatch.setattr(tr, "draw_batch", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "cut", save_every=2), cities=[city], progress=False)
    monkeypatch.setattr(tr, "draw_batch", real)
    state, _ = load_checkpoint(tmp_path / "cut/run/last.pt")
    assert int(state["step"]) == 4  # written on the save interval, not only at validation (3, 6)
    summary = train(_cfg(tmp_path / "cut", save_every=2), cities=[city], progress=False, resume=True)
    assert summary["steps"] == 6
    wf, wc = _weights(tmp_path / "full/run/last.pt"), _weights(tmp_path / "cut/run/last.pt")
    assert all(torch.allclose(wf[k], wc[k], atol=1e-6) for k in wf)
    assert [h["step"] for h in summary["history"]] == [3, 6]


def test_resume_refuses_changed_trajectory_settings(tmp_path):
    city = tiny_city()
    train(_cfg(tmp_path, steps=2, val_every=2), cities=[city], progress=False)
    for change, flag in ((dict(lr=2e-3), r"--lr 0\.001 -> 0\.002"), (dict(batch_size=8), r"--batch-size 4 -> 8"),
                         (dict(seed=1), r"--seed 0 -> 1")):
        with pytest.raises(ValueError, match=rf"--resume: .*last\.pt was started with other settings \({flag}\)"):
            train(_cfg(tmp_path, steps=4, val_every=2, **change), cities=[city], progress=False, resume=True)
    state, _ = load_checkpoint(tmp_path / "run/last.pt")
    assert int(state["step"]) == 2  # nothing was trained on the refused settings


def test_more_steps_on_resume_keep_the_first_launch_schedule(tmp_path):
    from forecasting.train import lr_at

    city = tiny_city()
    train(_cfg(tmp_path, steps=4, val_every=2), cities=[city], progress=False)
    train(_cfg(tmp_path, steps=6, val_every=2), cities=[city], progress=False, resume=True)
    state, config = load_checkpoint(tmp_path / "run/last.pt")
    assert config["train"]["lr_horizon"] == 4 and config["train"]["steps"] == 6
    lr = state["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.1 * 1e-3)  # step 5: past the first launch's horizon, at the 10% floor
    assert lr == pytest.approx(lr_at(5, _cfg(tmp_path, lr_horizon=4)))


def test_a_run_without_val_regions_warns_and_writes_a_null_best_score(tmp_path, capsys, monkeypatch):
    import dataclasses
    import json

    import forecasting.train as tr

    city = dataclasses.replace(tiny_city(), split=np.array(["train", "train", "test", "test"]))
    with pytest.warns(UserWarning, match="no city has val regions"):
        summary = train(_cfg(tmp_path, steps=2, val_every=2), cities=[city], progress=False)
    assert summary["best_score"] is None and Path(summary["best"]).is_file()

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))

    assert strict((tmp_path / "run/history.json").read_text())[0]["score"] is None
    monkeypatch.setattr(tr, "load_cities", lambda spec, data_dir=None: [city])
    with pytest.warns(UserWarning):
        code = tr.main(["--preset", "tiny", "--cities", "toy", "--steps", "2", "--batch-size", "4", "--val-every", "2",
                        "--diffusion-steps", "20", "--out", str(tmp_path / "cli")])
    assert code == 0
    printed = capsys.readouterr().out
    assert strict(printed[printed.index("{"):])["best_score"] is None, printed  # after the progress lines


def test_best_checkpoint_loads_as_forecaster_and_forecasts(tmp_path):
    city = tiny_city()
    summary = train(_cfg(tmp_path), cities=[city], progress=False)
    model = load_forecaster(summary["best"], device="cpu", n_samples=3, steps=3)
    frame = model.forecast_city(city, task="short", regions=[3])
    assert {"region", "row", "col", "step", "truth", "mean", "q0.1", "q0.9"} <= set(frame.columns)
    assert len(frame) == (city.n_steps // 64) * 16 * 16  # last 16 steps of each window x 16 cells
    assert (frame["q0.1"] <= frame["q0.9"] + 1e-9).all() and (frame["mean"] >= 0).all()


def test_a_history_network_trains_forecasts_and_keeps_reading_the_day_before_when_fine_tuned(tmp_path):
    city = tiny_city()
    summary = train(_cfg(tmp_path / "a", history=True), cities=[city], progress=False)
    model = load_forecaster(summary["best"], device="cpu", n_samples=2, steps=2)
    assert model.context.history
    frame = model.forecast_city(city, task="long", regions=[3])
    assert np.isfinite(frame["mean"]).all()
    tuned = train(_cfg(tmp_path / "b", init_from=summary["best"], steps=2), cities=[city], progress=False)
    _, config = load_checkpoint(tuned["best"] or tuned["last"])
    assert config["context"]["history"] is True  # --init from a history network, no --history given


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"ema": {"w": torch.zeros(2)}}, {"model": {}})
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(tmp_path / "trunc.pt")
    # a pickle that would run code on load is refused by weights_only loading, and nothing runs
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "uomo-checkpoint", "x": Evil()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=True, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a UoMo checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weight_average_is_the_weighted_mean_and_refuses_other_networks(tmp_path):
    """average_checkpoints: theta = sum w_i theta_i over the EMA weights (integer buffers kept), config of the
    first with its sources recorded; different networks, bad weights or a single file are refused."""
    from forecasting.checkpoint import average_checkpoints

    config = {"model": {"dim": 2}, "scalers": {"a": 1}}
    a = save_checkpoint(tmp_path / "a.pt", {"ema": {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor([7])}, "step": 5}, config)
    b = save_checkpoint(tmp_path / "b.pt", {"ema": {"w": torch.tensor([5.0, -1.0]), "n": torch.tensor([7])}}, config)
    out = average_checkpoints([a, b], tmp_path / "avg.pt", [0.25, 0.75], note="soup")
    state, cfg = load_checkpoint(out)
    assert torch.allclose(state["ema"]["w"], torch.tensor([4.0, 0.0])) and state["ema"]["w"].dtype == torch.float32
    assert state["ema"]["n"].tolist() == [7] and state["step"] == 5
    assert cfg["model"] == config["model"] and cfg["note"] == "soup"
    assert [s["weight"] for s in cfg["averaged_from"]] == [0.25, 0.75]
    equal, _ = load_checkpoint(average_checkpoints([a, b], tmp_path / "eq.pt"))
    assert torch.allclose(equal["ema"]["w"], torch.tensor([3.0, 1.0]))
    half, _ = load_checkpoint(average_checkpoints([a, b], tmp_path / "half.pt", [0.25, 0.75], half=True))
    assert half["ema"]["w"].dtype == torch.float16 and half["ema"]["n"].dtype == torch.int64
    assert torch.equal(half["ema"]["w"], torch.tensor([4.0, 0.0], dtype=torch.float16))
    other = save_checkpoint(tmp_path / "c.pt", {"ema": {"w": torch.zeros(2), "n": torch.tensor([7])}},
                            {**config, "model": {"dim": 3}})
    with pytest.raises(CheckpointError, match="another model"):
        average_checkpoints([a, other], tmp_path / "x.pt")
    shape = save_checkpoint(tmp_path / "d.pt", {"ema": {"w": torch.zeros(3), "n": torch.tensor([7])}}, config)
    with pytest.raises(CheckpointError, match="names or shapes"):
        average_checkpoints([a, shape], tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="sum"):
        average_checkpoints([a, b], tmp_path / "x.pt", [0.5, 0.6])
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([a], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_mismatched_weights_are_refused_not_skipped(tmp_path):
    city = tiny_city()
    summary = train(_cfg(tmp_path), cities=[city], progress=False)
    state, config = load_checkpoint(summary["best"])
    state["ema"].pop(next(iter(state["ema"])))
    save_checkpoint(tmp_path / "broken.pt", state, config)
    with pytest.raises(CheckpointError, match="missing"):
        load_forecaster(tmp_path / "broken.pt")


def test_batches_mix_tasks_and_respect_few_shot_fraction():
    city = tiny_city(days=4)
    pool = build_pool(city, fraction=0.1)
    full = build_pool(city)
    assert 0 < len(pool.pairs) <= round(0.1 * len(full.pairs)) + len(city.regions("train"))
    # few-shot windows are the earliest ones: nothing after the cut is seen, not even by the scaler
    assert pool.pairs[:, 1].max() < 0.1 * city.n_steps and pool.city.n_steps < city.n_steps
    batch = draw_batch([full], 64, {"short": 1, "long": 1, "generation": 1, "random": 1}, np.random.default_rng(0))
    hidden_share = batch["mask"].mean(axis=(1, 2, 3))
    assert len(np.unique(np.round(hidden_share, 3))) > 3  # several task types present
    assert batch["users_available"].all() and batch["poi_valid"][:, :5].all()


def test_batches_carry_the_day_before_only_when_asked():
    city = tiny_city(days=4)
    pool = build_pool(city)
    mix = {"short": 1, "long": 1, "generation": 1}
    plain = draw_batch([pool], 64, mix, np.random.default_rng(3))
    assert "day_before" not in plain
    batch = draw_batch([pool], 64, mix, np.random.default_rng(3), history_drop=0.25)
    assert np.array_equal(batch["mask"], plain["mask"]) and np.array_equal(batch["traffic"], plain["traffic"])
    db = batch["day_before"]
    assert np.isnan(db[:, 24:]).all()  # hourly slots: from step 24 on the day before is inside the window
    unrecorded = batch["mask"].all(axis=1)  # (N, H, W) generated cells
    assert np.isnan(db.transpose(0, 2, 3, 1)[unrecorded]).all()
    dropped = np.isnan(db).all(axis=(1, 2, 3))
    assert 0 < dropped.mean() < 0.6  # some windows drawn without their past (and the series' first day)
    kept = np.flatnonzero(~dropped)
    k = kept[0]
    r, s = next((r, s) for r, s in pool.pairs if np.array_equal(pool.traffic[r, s:s + 64], batch["traffic"][k]))
    rows = ~unrecorded[k]
    assert np.allclose(db[k, :24][:, rows], pool.traffic[r, s - 24:s][:, rows])


def test_a_poi_names_run_reads_residents_as_a_named_category_and_forecasts_with_it(tmp_path):
    """--context poi residents --poi-names: batches carry each city's POI plus its residents layer with the
    categories' ids (a city without names or residents as before), the network keeps the names, and the
    forecaster built from the checkpoint reads residents from the windows."""
    import dataclasses as dc

    from forecasting.encoding import ContextSwitches

    named = dc.replace(tiny_city(), poi_categories=["a", "b", "c", "d", "e"],
                       residents=np.arange(64, dtype=np.float32).reshape(4, 4, 4))
    plain = tiny_city("plain", seed=1)
    switches = ContextSwitches(poi=True, residents=True)
    batch = draw_batch([build_pool(named), build_pool(plain)], 32, {"generation": 1}, np.random.default_rng(0),
                       context=switches, poi_names=("a", "c", "residents"))
    from_named = batch["poi_ids"].any(1)
    assert from_named.any() and (~from_named).any()
    assert (batch["poi_ids"][from_named] == [1, 0, 2, 0, 0, 3]).all() and batch["poi_valid"][from_named].all()
    assert not batch["poi_valid"][~from_named].any()  # no category of the plain city is known: none shown
    assert set(np.unique(batch["poi"][from_named, 5])) <= set(range(64))  # the residents layer, last
    dropped = draw_batch([build_pool(named)], 64, {"generation": 1}, np.random.default_rng(0), context=switches,
                         poi_names=("a", "c", "residents"), static_drop=0.5)
    assert 0.2 < (~dropped["poi_valid"].any(1)).mean() < 0.8  # about half the windows without static layers
    summary = train(_cfg(tmp_path, context=["poi", "residents"], poi_names=True, static_drop=0.3), cities=[named, plain],
                    progress=False)
    model = load_forecaster(summary["best"], device="cpu", n_samples=2, steps=2)
    assert model.net.config.poi_names == tuple(sorted("abcde")) + ("residents",) and model.context.residents
    frame = model.forecast_city(named, task="generation", regions=[3])
    assert np.isfinite(frame["mean"]).all()


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="freeze"):
        TrainConfig(freeze="half").validate()
    with pytest.raises(ValueError, match="context"):
        TrainConfig(context=["weather"]).validate()
    with pytest.raises(ValueError, match="train_fraction"):
        TrainConfig(train_fraction=0).validate()
    with pytest.raises(ValueError, match="users_exog"):
        TrainConfig(users_exog="futr", context=["poi"]).validate()
    with pytest.raises(ValueError, match="loss_weighting"):
        TrainConfig(loss_weighting="busy").validate()


def test_cell_level_weighting_trains_and_changes_the_updates(tmp_path):
    plain = train(_cfg(tmp_path / "a", steps=3), cities=[tiny_city()], progress=False)
    weighted = train(_cfg(tmp_path / "b", steps=3, loss_weighting="cell_level"), cities=[tiny_city()], progress=False)
    a, b = _weights(plain["last"]), _weights(weighted["last"])
    assert all(torch.isfinite(v).all() for v in b.values())
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same seed and data: only the weights differ


DDP_SCRIPT = r"""
import os, sys
import torch.distributed as dist
sys.path.insert(0, {repo!r})
from tests.test_train import tiny_city
from forecasting.train import TrainConfig, train
cfg = TrainConfig(preset="tiny", cities=["toy"], steps=3, batch_size=4, val_every=3, val_max_windows=4,
                  val_samples=2, val_steps=2, diffusion_steps=20, warmup=1, out={out!r})
summary = train(cfg, cities=[tiny_city()], progress=False)
# train() created the process group, so it must also have torn it down (gloo threads joined);
# each rank reports in its own file (two processes printing to one pipe can interleave)
with open(os.path.join({out!r}, "rank" + os.environ["RANK"] + ".txt"), "w") as f:
    f.write(" ".join(["DDP-OK", os.environ["RANK"], summary["weights_digest"], str(dist.is_initialized())]))
"""


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(repo=str(REPO), out=str(tmp_path / "ddp")))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [p.read_text().split() for p in sorted((tmp_path / "ddp").glob("rank*.txt"))]
    assert sorted(rank for _, rank, _, _ in lines) == ["0", "1"]
    # gradients were all-reduced: both ranks end with identical weights, and neither left a group behind
    assert lines[0][2] == lines[1][2], "ranks diverged"
    assert all(alive == "False" for *_, alive in lines)


def test_cli_task_mix_and_weights_are_checked_before_training(tmp_path, capsys):
    from forecasting.train import main, parse_weights

    assert parse_weights(["short=0.5", "long=1"], "--task-mix", "") == {"short": 0.5, "long": 1.0}
    out = tmp_path / "run"
    assert main(["--task-mix", "short=half", "--out", str(out)]) == 2
    assert "--task-mix takes NAME=NUMBER" in capsys.readouterr().err
    assert main(["--task-mix", "forecast=1", "--out", str(out)]) == 2
    assert "task_mix must weight short/long/generation/random" in capsys.readouterr().err
    assert main(["--city-weight", "synthetic", "--out", str(out)]) == 2
    assert "--city-weight takes NAME=NUMBER" in capsys.readouterr().err
    assert not out.exists()  # nothing written for a refused command line


def test_cli_task_mix_reaches_the_training_config(tmp_path, monkeypatch):
    import forecasting.train as tr

    seen = {}
    monkeypatch.setattr(tr, "train", lambda cfg, resume=False: seen.setdefault("cfg", cfg) and {"best_score": 0.0})
    assert tr.main(["--task-mix", "short=3", "long=1", "--out", str(tmp_path / "r")]) == 0
    assert seen["cfg"].task_mix == {"short": 3.0, "long": 1.0}
    seen.clear()
    assert tr.main(["--out", str(tmp_path / "r")]) == 0
    assert seen["cfg"].task_mix == tr.TASK_MIX_DEFAULT


def test_dihedral_maps_are_the_grid_symmetries():
    """8 distinct maps of a square grid, 4 of a rectangle; each maps every spatial array the same way."""
    from forecasting.augment import apply_map, augment_batch, dihedral_maps

    grid = np.arange(16).reshape(4, 4)
    images = {apply_map(grid, *m).tobytes() for m in dihedral_maps(4, 4)}
    assert len(images) == 8
    assert len(dihedral_maps(4, 3)) == 4 and all(apply_map(np.zeros((4, 3)), *m).shape == (4, 3) for m in dihedral_maps(4, 3))
    # a quarter turn is among them
    assert np.rot90(grid).tobytes() in images
    rng = np.random.default_rng(0)
    traffic = rng.random((16, 64, 4, 4)).astype(np.float32)
    batch = {"traffic": traffic.copy(), "users": traffic.copy() * 2, "poi": traffic[:, :3].copy(),
             "valid": traffic > 0.5, "day_before": traffic * 3}
    out = augment_batch(batch, "dihedral", np.random.default_rng(1))
    np.testing.assert_array_equal(out["users"], out["traffic"] * 2)
    np.testing.assert_array_equal(out["day_before"], out["traffic"] * 3)
    np.testing.assert_array_equal(out["valid"], out["traffic"] > 0.5)
    np.testing.assert_array_equal(out["poi"], out["traffic"][:, :3])
    assert not np.array_equal(out["traffic"], traffic)  # some windows were mapped
    np.testing.assert_allclose(np.sort(out["traffic"], axis=None), np.sort(traffic, axis=None))
    assert augment_batch(batch, "none", rng) is batch


def test_lead_weight_favours_the_first_hidden_steps():
    """1 + boost at the first hidden step, decaying after it; 1 on observed steps' neighbours without history."""
    import torch

    from forecasting.encoding import lead_weight

    known = torch.ones(1, 8, 1, 2, dtype=torch.bool)
    known[0, 5:, 0, 0] = False  # cell 0: observed 0..4, hidden 5..7
    known[0, :, 0, 1] = False  # cell 1: never observed (generation)
    w = lead_weight(known, boost=3.0, decay=2.0)
    np.testing.assert_allclose(w[0, 5:, 0, 0].numpy(), [4.0, 1 + 3 * np.exp(-0.5), 1 + 3 * np.exp(-1.0)], rtol=1e-6)
    assert torch.all(w[0, :, 0, 1] == 1.0)
    np.testing.assert_allclose(w[0, 1:5, 0, 0].numpy(), 4.0)  # an observed step right after an observed one
