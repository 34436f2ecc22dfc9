"""Metrics on hand-computed examples, the benchmark harness on a tiny city, and the paper's Nanchang numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecasting import evaluate as ev
from forecasting import records as results_io
from forecasting import metrics
from forecasting.baselines import BASELINES
from forecasting.data import City, available_real_cities, load_npz, make_windows
from forecasting.interface import Forecaster, NotApplicable, Prediction


def tiny_city(name: str = "tiny", slots_per_day: int = 24, days: int = 4) -> City:
    """4 regions of 2 x 2 cells (2 train, 1 val, 1 test) with a daily cycle and POI-driven levels."""
    rng = np.random.default_rng(0)
    R, T, H, W = 4, slots_per_day * days, 2, 2
    t = np.arange(T)
    poi = rng.integers(0, 10, size=(R, 3, H, W)).astype(np.float32)
    cycle = 1.0 + 0.6 * np.sin(2 * np.pi * t / slots_per_day)
    traffic = (5.0 + poi.sum(axis=1))[:, None] * cycle[None, :, None, None] * rng.uniform(0.9, 1.1, (R, T, H, W))
    return City(
        name=name, traffic=traffic, poi=poi, slots_per_day=slots_per_day,
        day_of_week=np.broadcast_to((t // slots_per_day) % 7, (R, T)),
        slot_of_day=np.broadcast_to(t % slots_per_day, (R, T)),
        split=np.array(["train", "train", "val", "test"]),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------


def test_rmse_and_mae_count_only_hidden_entries():
    truth = np.array([0.0, 0.5, 1.0, 0.2])
    pred = np.array([0.1, 0.5, 0.7, 99.0])
    mask = np.array([True, True, True, False])
    assert metrics.mae(pred, truth, mask) == pytest.approx((0.1 + 0.0 + 0.3) / 3)
    assert metrics.rmse(pred, truth, mask) == pytest.approx(np.sqrt((0.01 + 0.09) / 3))
    with pytest.raises(ValueError, match="hides no entry"):
        metrics.mae(pred, truth, np.zeros(4, dtype=bool))


def test_jsd_identical_is_zero_disjoint_is_one_and_a_hand_case():
    x = np.random.default_rng(0).uniform(size=1000)
    assert metrics.jsd(x, x) == 0.0
    assert metrics.jsd(np.full(10, 0.05), np.full(7, 0.95)) == pytest.approx(1.0)
    # P = (1, 0), Q = (1/2, 1/2): M = (3/4, 1/4); JSD = 1/2 log2(4/3) + 1/4 log2(2/3) + 1/4 log2(2)
    expected = 0.5 * np.log2(4 / 3) + 0.25 * np.log2(2 / 3) + 0.25
    assert metrics.jsd_from_counts([2, 0], [1, 1]) == pytest.approx(expected)
    # values outside [0, 1] land in the edge bins
    assert metrics.jsd(np.array([-0.5, 1.5]), np.array([0.0, 1.0])) == 0.0


def test_crps_of_a_point_mass_is_the_absolute_error_and_matches_the_pair_formula():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(5, 3))
    mask = np.ones_like(truth, dtype=bool)
    point = rng.uniform(size=(5, 3))
    assert metrics.crps(np.repeat(point[None], 7, axis=0), truth, mask) == pytest.approx(metrics.mae(point, truth, mask))
    assert metrics.crps(point[None], truth, mask) == pytest.approx(metrics.mae(point, truth, mask))
    # two samples {0, 1} against y = 0: E|X - y| = 1/2, unbiased E|X - X'| = 1 -> 1/2 - 1/2 = 0
    assert metrics.crps(np.array([[0.0], [1.0]]), np.array([0.0]), np.array([True])) == pytest.approx(0.0)
    samples = rng.uniform(size=(6, 5, 3))
    brute = np.mean(
        np.abs(samples - truth).mean(0)
        - np.abs(samples[:, None] - samples[None]).sum((0, 1)) / (2 * 6 * 5)
    )  # fmt: skip
    assert metrics.crps(samples, truth, mask) == pytest.approx(brute)


def test_subsample_is_seeded_evenly_spaced_and_in_range():
    idx = ev.subsample_indices(100, 10, seed=3)
    assert idx.size == 10 and np.all(np.diff(idx) >= 9) and np.all(np.diff(idx) <= 11) and idx.max() < 100
    assert np.array_equal(idx, ev.subsample_indices(100, 10, seed=3))
    assert np.array_equal(ev.subsample_indices(5, 10), np.arange(5))


def test_generation_masks_are_fixed_per_window_whatever_the_subset():
    w = make_windows(tiny_city(), split="test")
    full = ev.window_masks(w, "generation", seed=0)
    part = ev.window_masks(w.take(slice(5, 9)), "generation", seed=0)
    assert np.array_equal(full[5:9], part)
    assert full[:, 0].sum(axis=(1, 2)).tolist() == [1] * len(w)  # 25% of 4 cells, all steps
    assert not all(np.array_equal(full[0], m) for m in full)  # drawn per window
    assert not np.array_equal(full, ev.window_masks(w, "generation", seed=1))


# ----------------------------------------------------------------------------------------------------
# Harness
# ----------------------------------------------------------------------------------------------------


class Spy(Forecaster):
    """Checks that hidden entries arrive as NaN (and only those) and forecasts zero (+ optional samples)."""

    name = "spy"

    def __init__(self, samples: int = 0) -> None:
        self.samples = samples
        self.calls = 0

    def predict(self, windows, mask):
        self.calls += 1
        assert np.isnan(windows.traffic[mask]).all() and np.isfinite(windows.traffic[~mask]).all()
        if windows.users is not None:
            assert np.isnan(windows.users[mask]).all()
        zeros = np.zeros(mask.shape, dtype=np.float32)
        return Prediction(zeros, np.repeat(zeros[None], self.samples, 0) if self.samples else None)


def test_evaluate_forecaster_hides_entries_chunks_and_pools_metrics():
    city = tiny_city()
    city.users = city.traffic / 3
    w = make_windows(city, split="test")
    spy = Spy(samples=3)
    rec = ev.evaluate_forecaster(spy, w, "short", chunk_size=10)
    assert spy.calls == -(-len(w) // 10)
    truth = w.traffic[:, 48:]
    assert rec["mae"] == pytest.approx(truth.mean(), rel=1e-6)
    assert rec["rmse"] == pytest.approx(np.sqrt((truth.astype(np.float64) ** 2).mean()), rel=1e-6)
    assert rec["crps"] == pytest.approx(rec["mae"])  # identical samples: CRPS = MAE
    assert rec["jsd"] is None  # only for generation
    assert rec["mae_raw"] == pytest.approx(rec["mae"] * w.scalers.traffic.scale)
    assert rec["windows"] == len(w) and not rec["subsampled"]
    gen = ev.evaluate_forecaster(Spy(), w, "generation", max_windows=5)
    assert gen["windows"] == 5 and gen["subsampled"] and 0 < gen["jsd"] <= 1 and gen["crps"] is None


class FutureUsersSpy(Forecaster):
    """A forecaster that declares users known for the horizon (futr_exog)."""

    name = "future_users_spy"
    futr_exog = ("users",)

    def predict(self, windows, mask):
        assert np.isnan(windows.traffic[mask]).all()  # traffic stays hidden ...
        assert np.isfinite(windows.users).all()  # ... users do not
        return Prediction(np.zeros(mask.shape, dtype=np.float32))


def test_only_a_forecaster_declaring_it_sees_future_users_gets_them():
    city = tiny_city()
    city.users = city.traffic / 3
    w = make_windows(city, split="test")
    assert ev.evaluate_forecaster(FutureUsersSpy(), w, "short")["status"] == "ok"
    assert ev.evaluate_forecaster(Spy(), w, "short")["status"] == "ok"  # Spy asserts users hidden


def test_evaluate_forecaster_records_not_applicable_and_rejects_nan_forecasts():
    w = make_windows(tiny_city(), split="test")

    class Refuses(Spy):
        def predict(self, windows, mask):
            raise NotApplicable("no")

    class Broken(Spy):
        def predict(self, windows, mask):
            return Prediction(np.full(mask.shape, np.nan, dtype=np.float32))

    rec = ev.evaluate_forecaster(Refuses(), w, "long")
    assert rec["status"] == "skipped" and rec["mae"] is None and rec["windows"] == 0
    with pytest.raises(ValueError, match="non-finite"):
        ev.evaluate_forecaster(Broken(), w, "long")


def test_run_benchmark_writes_exact_keys_and_merge_keeps_foreign_records(tmp_path):
    city = tiny_city()
    out = tmp_path / "results"
    out.mkdir()
    foreign = {k: None for k in results_io.RECORD_KEYS} | {"city": "tiny", "task": "short", "model": "uomo", "mae": 0.001}
    stale = {k: None for k in results_io.RECORD_KEYS} | {"city": "tiny", "task": "short", "model": "last_value", "mae": 9.0}
    (out / "forecast.json").write_text(json.dumps([foreign, stale]))
    records = ev.run_benchmark([city], models=list(BASELINES), quick=True, out=out, arima_max_windows=1, verbose=False)
    saved = json.loads((out / "forecast.json").read_text())
    assert all(set(results_io.RECORD_KEYS) <= set(r) for r in saved)
    assert foreign in saved  # another model's record survives
    assert [r["mae"] for r in saved if r["model"] == "last_value" and r["task"] == "short"] != [9.0]
    assert len({(r["city"], r["task"], r["model"]) for r in saved}) == len(saved)  # no duplicates
    served = {(r["model"], r["task"]) for r in records}
    assert ("neighbour_mean", "generation") in served and ("neighbour_mean", "short") not in served
    arima = next(r for r in records if r["model"] == "arima" and r["task"] == "short")
    assert arima["windows"] == 1 and arima["subsampled"]
    # its ratio is taken against the best fast baseline on that same single window
    w = make_windows(city, split="test", stride=ev.QUICK_STRIDE)
    same = {
        name: ev.evaluate_forecaster(BASELINES[name]().fit(city), w, "short", max_windows=1)["mae"]
        for name in ("historical_average", "last_value", "seasonal_naive", "daily_profile")
    }
    assert arima["ref_mae"] == pytest.approx(min(same.values())) and same[arima["ref_model"]] == arima["ref_mae"]
    assert results_io.ratio_to_best(arima, {})[0] == pytest.approx(arima["mae"] / arima["ref_mae"])
    assert "| short | uomo |" in (out / "forecast.md").read_text()
    # re-running one model replaces only its records
    ev.run_benchmark([city], models=["historical_average"], tasks=["short"], quick=True, out=out, verbose=False)
    again = json.loads((out / "forecast.json").read_text())
    assert len(again) == len(saved) and foreign in again


def test_bad_results_file_gets_a_clear_error(tmp_path):
    (tmp_path / "forecast.json").write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="list of benchmark records"):
        results_io.write_results([], tmp_path)


def test_cli_runs_on_a_synthetic_preset_and_accepts_uomo(tmp_path, capsys):
    code = ev.main(
        ["--quick", "--cities", "synthetic-small", "--models", "historical_average", "uomo",
         "--tasks", "short", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    saved = json.loads((tmp_path / "forecast.json").read_text())
    assert [(r["city"], r["model"]) for r in saved] == [("synthetic-small", "historical_average")]
    assert "skipping 'uomo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ev.main(["--models", "nonsense", "--out", str(tmp_path)])


def test_cli_uomo_label_names_the_records_and_refuses_a_baseline_name(tmp_path):
    args = ["--quick", "--cities", "synthetic-small", "--models", "uomo", "--tasks", "short", "--checkpoint",
            "uomo-synthetic-cpu", "--uomo-steps", "2", "--uomo-samples", "1", "--max-windows", "2", "--out", str(tmp_path)]
    assert ev.main([*args, "--uomo-label", "uomo_city_ft"]) == 0
    saved = json.loads((tmp_path / "forecast.json").read_text())
    assert [(r["model"], r["windows"]) for r in saved] == [("uomo_city_ft", 2)]
    with pytest.raises(SystemExit):
        ev.main([*args, "--uomo-label", "daily_profile"])


# ----------------------------------------------------------------------------------------------------
# The reference numbers on Nanchang (real data; skipped when ../shared/data is absent)
# ----------------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_nanchang_baselines_reproduce_the_reference_numbers():
    real = available_real_cities()
    if "nanchang" not in real:
        pytest.skip("nanchang.npz not found (../shared/data or $UOMO_DATA_DIR)")
    city = load_npz(real["nanchang"])
    windows = make_windows(city, split="test")  # all stride-1 test windows
    assert len(windows) == 5 * (399 - 64 + 1)
    reference = {  # (model, task): (RMSE, MAE)
        ("daily_profile", "short"): (0.0155, 0.0079),
        ("daily_profile", "long"): (0.0188, 0.0092),
        ("seasonal_naive", "short"): (0.0148, 0.0075),
        ("historical_average", "short"): (0.0246, 0.0127),
    }
    for (name, task), (ref_rmse, ref_mae) in reference.items():
        model = BASELINES[name]().fit(city)
        rec = ev.evaluate_forecaster(model, windows, task)
        assert rec["rmse"] == pytest.approx(ref_rmse, rel=0.03), (name, task)
        assert rec["mae"] == pytest.approx(ref_mae, rel=0.03), (name, task)


def test_cli_fails_when_the_only_requested_model_is_refused(tmp_path, capsys):
    (tmp_path / "evil.pt").write_bytes(b"PK\x03\x04 not a checkpoint" * 8)
    code = ev.main(["--quick", "--cities", "synthetic-small", "--models", "uomo", "--tasks", "short",
                    "--checkpoint", str(tmp_path / "evil.pt"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "no requested model could run" in err and "evil.pt is not a loadable UoMo checkpoint" in err
    saved = tmp_path / "forecast.json"
    assert not saved.exists() or json.loads(saved.read_text()) == []


def test_registry_resolves_every_kind_of_name(tmp_path):
    """Baselines by name (fitted when a city is given), the shipped UoMo model by 'uomo' or its name,
    a clear error for an unknown checkpoint; evaluate.make_model goes through the same resolver."""
    from forecasting.checkpoint import CheckpointError
    from forecasting.data import load_city
    from forecasting.evaluate import make_model
    from forecasting.registry import is_baseline, make_forecaster

    city = load_city("synthetic-small")
    fitted = make_forecaster("daily_profile", city=city)
    assert fitted.name == "daily_profile" and is_baseline("daily_profile") and not is_baseline("uomo")
    assert type(make_model("daily_profile")) is type(fitted)
    uomo = make_forecaster("uomo", sampling={"n_samples": 2, "steps": 2})
    assert uomo.sampling.n_samples == 2 and "short" in uomo.tasks
    with pytest.raises(CheckpointError):
        make_forecaster(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown model"):
        make_model("no_such_model")
