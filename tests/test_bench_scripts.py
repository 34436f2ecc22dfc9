"""Helpers of the benchmark scripts in bench/ (imported as the scripts import each other: bench/ on sys.path)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    return importlib.import_module


def test_transfer_bench_scores_a_shipped_model_by_name_and_refuses_a_missing_one(bench, tmp_path, capsys):
    """`--pretrained` takes a shipped name (loaded with its calibration) or a path; a missing one with
    --zero-shot-only is a usage error (exit 2) that names the shipped models, and nothing is written."""
    transfer = bench("transfer_bench")
    assert transfer.pretrained_checkpoint("uomo-synthetic-cpu") == "uomo-synthetic-cpu"
    assert transfer.pretrained_checkpoint(str(tmp_path / "absent.pt")) is None
    assert transfer.pretrained_checkpoint(None) is None
    with pytest.raises(SystemExit) as exc:
        transfer.main(["--zero-shot-only", "--pretrained", "uomo-synthetic", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--pretrained" in err and "uomo-synthetic-cpu" in err
    assert not (tmp_path / "out").exists()


def _dep(city, strategy, setting, regret):
    return {"problem": "deployment", "city": city, "strategy": strategy, "setting": setting, "regret": regret}


def test_seed_summary_counts_each_forecaster_at_its_val_setting_and_leaves_the_oracle_out(bench):
    planning = bench("planning_bench")
    rows = []
    for seed, (point, chosen, res, poi) in {5: (0.30, 0.10, 0.20, 0.40), 6: (0.05, 0.25, 0.15, 0.35)}.items():
        city = f"synthetic seed {seed}"
        rows += [_dep(city, "forecast:uomo", "point", point), _dep(city, "forecast:uomo", "scenarios (val)", chosen),
                 _dep(city, "residents", "point", res), _dep(city, "poi", "point", poi),
                 _dep(city, "oracle", "point", 0.0)]
    rows.append(_dep("synthetic", "residents", "point", 0.01))  # the default draw is not one of the seeds
    lines = planning.seed_summary(rows)
    table = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| ") and "---" not in ln}
    assert set(table) == {"strategy", "forecast:uomo", "residents", "poi"}
    assert table["strategy"].startswith("| strategy | seed 5 | seed 6 | mean")
    # uomo at its val-chosen setting: 0.10 and 0.25 (its point plan's 0.05 on seed 6 does not count)
    assert "| 0.100 | 0.250 | 0.175 | 1 of 2 |" in table["forecast:uomo"]
    assert "| 0.200 | 0.150 | 0.175 | 1 of 2 |" in table["residents"]
    assert table["poi"].endswith("| 0 of 2 |")
    assert planning.seed_summary([r for r in rows if r["city"] == "synthetic"]) == []


def test_planning_bench_refuses_seed_0_as_another_draw(bench, capsys):
    planning = bench("planning_bench")
    with pytest.raises(SystemExit) as exc:
        planning.main(["--synthetic-seeds", "0", "5", "--out", "/nonexistent/never-written"])
    assert exc.value.code == 2 and "--synthetic-seeds" in capsys.readouterr().err


def test_planning_bench_shares_the_calibration_draws_and_refuses_to_score_on_them(bench, tmp_path, capsys):
    """The baselines' recalibration joins the synthetic draws UoMo's file was fitted on (its meta); scoring
    deployment on one of those draws (--synthetic-seeds) is a usage error before anything runs."""
    planning = bench("planning_bench")
    pool = planning.calibration_pool("uomo-synthetic-cpu")
    assert pool.draws == [1, 2, 3, 4] and "synthetic" in [c.name for c in pool.cities]
    assert pool.pool_weights == "entries" and not pool.level_maps and not pool.outer_widths  # the file records no lever
    assert planning.calibration_pool(None) == ([], [], "entries", False, False)
    with pytest.raises(SystemExit) as exc:
        planning.main(["--cities", "synthetic", "--forecaster", "uomo-synthetic-cpu", "--synthetic-seeds", "5", "2",
                       "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "fitted on the test regions of the draws" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_deployment_claim_says_when_the_served_target_is_beyond_the_oracle(bench):
    """The served-ratio claim is 'not met' either way; where 1.25 x POI's served ratio exceeds the oracle's,
    the line says the target is out of reach, and it says nothing of the kind where the oracle could reach it."""
    planning = bench("planning_bench")

    def dep(city, strategy, served, regret):
        return {**_dep(city, strategy, "point", regret), "served_ratio": served, "informative": True}

    rows = [dep("a", "forecast:uomo", 0.78, 0.08), dep("a", "poi", 0.75, 0.10), dep("a", "oracle", 0.91, 0.0),
            dep("b", "forecast:uomo", 0.70, 0.14), dep("b", "poi", 0.25, 0.46), dep("b", "oracle", 0.86, 0.0),
            dep("c", "forecast:uomo", 0.40, 0.30), dep("c", "poi", 0.50, 0.20), dep("c", "oracle", 0.90, 0.0)]
    lines = {ln.split(" ")[0]: ln for ln in planning.claims(rows, "uomo")}
    assert lines["a"].endswith("not met (out of reach: 1.25 x POI's = 0.938 exceeds the oracle's 0.910)")
    assert lines["b"].endswith(": met")
    assert lines["c"].endswith(": not met")


def test_planning_tables_are_replaced_only_when_the_run_is_done(bench, tmp_path):
    """Progress goes to planning.partial.*; the finished tables replace planning.json/.md and the partial
    files go, so a run killed after its first city leaves the previous complete tables untouched."""
    planning = bench("planning_bench")
    (tmp_path / "planning.md").write_text("previous complete table\n")
    (tmp_path / "planning.json").write_text("[]\n")
    rows = [_dep("synthetic", "residents", "point", 0.05), _dep("synthetic", "oracle", "point", 0.0)]
    planning.write_planning(rows[:1], [], [], 1.0, "uomo-x", tmp_path, partial=True)
    assert (tmp_path / "planning.md").read_text() == "previous complete table\n"
    assert "residents" in (tmp_path / "planning.partial.md").read_text()
    assert len(json.loads((tmp_path / "planning.partial.json").read_text())) == 1
    text = planning.write_planning(rows, [], [], 2.0, "uomo-x", tmp_path)
    assert (tmp_path / "planning.md").read_text() == text and "oracle" in text
    assert not list(tmp_path.glob("planning.partial.*"))


@pytest.mark.parametrize("positions", ["rank", "hazen"])
def test_pit_of_a_calibrated_ensemble_covers_its_nominal_bands(bench, positions):
    """A truth drawn from the forecast distribution has uniform PIT under the rule that matches how the S
    samples were made: exchangeable draws (rank) or the quantiles at the levels (k + 1/2) / S (hazen); the
    rank rule on such quantiles over-covers (its end bins hold half a bin's mass)."""
    from scipy.stats import norm

    cal = bench("calibration_bench")
    rng = np.random.default_rng(1)
    S, n = 16, 200_000
    truth = rng.normal(size=(1, n))
    mask = np.ones((1, n), dtype=bool)
    if positions == "rank":
        samples = rng.normal(size=(S, 1, n))
    else:
        samples = np.broadcast_to(norm.ppf((np.arange(S) + 0.5) / S)[:, None, None], (S, 1, n)).copy()
    u = cal.pit_values(samples, truth, mask, positions=positions)
    for nominal in (0.5, 0.8, 0.9):
        assert abs(cal.pit_coverage(u, nominal) - nominal) < 0.005
    if positions == "hazen":
        assert cal.pit_coverage(cal.pit_values(samples, truth, mask, positions="rank"), 0.8) > 0.84


def test_pit_spreads_an_atom_over_its_level_range(bench):
    """Truths equal to tied quantiles (an idle cell's zeros) get u uniform over the atom's levels; a truth
    under every quantile lies in the lowest half bin; an unknown rule is refused."""
    cal = bench("calibration_bench")
    S, n = 8, 50_000
    samples = np.zeros((S, 1, n))
    samples[3:] = np.arange(1, S - 2)[:, None, None]  # three quantiles at 0, then 1 .. 5
    mask = np.ones((1, n), dtype=bool)
    u = cal.pit_values(samples, np.zeros((1, n)), mask, positions="hazen")
    assert u.min() >= 0 and u.max() <= 3 / S and abs(u.mean() - 1.5 / S) < 0.005
    u = cal.pit_values(samples, np.full((1, n), -1.0), mask, positions="hazen")
    assert u.max() <= 0.5 / S
    with pytest.raises(ValueError, match="positions"):
        cal.pit_values(samples, np.zeros((1, n)), mask, positions="ranks")


def test_region_lines_print_each_test_regions_calibrated_coverage_in_region_order(bench):
    """The per-region table of calibration.md: calibrated rows only, regions in numeric order, one line per
    city x task; nothing when no row carries regions (records written before the breakdown)."""
    cal = bench("calibration_bench")
    rows = [dict(city="c", task="short", calibrated=True, nominal=n,
                 region_pit_coverage={"10": n - 0.1, "9": n + 0.02}) for n in cal.NOMINAL]
    rows += [dict(r, calibrated=False, region_pit_coverage={"10": 0.0, "9": 0.0}) for r in rows]
    lines = cal.region_lines(rows)
    assert lines[-2] == "| c | short | 9: 52% / 82% / 92%; 10: 40% / 70% / 80% |"
    assert cal.region_lines([{k: v for k, v in r.items() if k != "region_pit_coverage"} for r in rows]) == []


def test_deployment_setting_is_chosen_on_the_mean_over_own_val_and_the_draws_regrets(bench):
    """With `draws` (regrets per setting on other draws' region sets) a forecaster's deployment setting is the
    lowest mean of its own val regret and those; without, its own val regret alone decides."""
    from forecasting.data.synthetic import city_from_name

    planning = bench("planning_bench")
    city = city_from_name("synthetic-small")
    models = {"neighbour_mean": planning.calibrated("neighbour_mean", city, [])}  # samples for the quantiles
    labels = [planning.setting_label(on, kw) for on, kw in planning.DEPLOY_SETTINGS]
    own = [r for r in planning.deployment_rows(city, models, []) if r["setting"].endswith("(val)")]
    favoured = next(label for label in labels if f"{label} (val)" != own[0]["setting"])
    draws = {"neighbour_mean": {label: [-5.0 if label == favoured else 5.0] * 9 for label in labels}}
    chosen = [r for r in planning.deployment_rows(city, models, [], draws) if r["setting"].endswith("(val)")]
    assert chosen[0]["setting"] == f"{favoured} (val)"
    assert chosen[0]["val_regret"] == pytest.approx((own_regret(planning, city, models, favoured) - 45.0) / 10)


def own_regret(planning, city, models, label):
    """`label`'s regret on the city's own val regions (as deployment_rows computes it)."""
    from planning.demand import real_demand
    from planning.milp.deploy import solve_deployment

    truth = planning.hourly_week(real_demand(city, "val", "users"))
    params = planning.deploy_params(city, truth.n_cells)
    return planning.setting_regrets(models["neighbour_mean"], city, "val", truth, params,
                                    solve_deployment(truth, params))[label][2]


def test_planning_bench_refuses_selection_draws_that_are_scored_or_the_default(bench, tmp_path):
    """--select-draws may not name seed 0 or a --synthetic-seeds seed: a usage error before anything runs."""
    planning = bench("planning_bench")
    for argv in (["--select-draws", "0"], ["--select-draws", "3", "--synthetic-seeds", "3"]):
        with pytest.raises(SystemExit) as exc:
            planning.main(["--cities", "synthetic", *argv, "--out", str(tmp_path / "out")])
        assert exc.value.code == 2
    assert not (tmp_path / "out").exists()


def test_one_val_region_check_prefers_own_bands_when_the_other_city_is_noisier_and_borrows_others_widths(bench):
    """bench/one_val_region.py: calibrated on one of a city's val regions, its own table covers its other
    regions near nominal while the table pooled with a three times noisier city over-covers them, unless
    narrowed; the width a one-region city borrows is the one the other cities' held-out regions ask for."""
    from forecasting.calibration import Residuals

    one_val_region = bench("one_val_region")
    rng = np.random.default_rng(0)

    def residuals(sigma, regions, n=4000):
        size = n * len(regions)
        return Residuals(numer=sigma * rng.standard_normal(size), spread=np.ones(size), bucket=np.zeros(size, int),
                         group=np.zeros(size, int), point=np.full(size, 0.5), is_zero=np.zeros(size, bool),
                         pull=np.zeros(size), lead=np.zeros(size, int), region=np.repeat(regions, n))

    fitted = {("a", "generation"): residuals(0.1, [0, 1, 2]), ("b", "generation"): residuals(0.3, [0, 1])}
    errors = one_val_region.one_region_errors(fitted, "a", "generation", {"a": "a", "b": "b"})
    assert len(errors["own"]) == 3
    assert max(errors["own"]) < 0.03 and min(errors["pooled"]) > 0.1
    assert errors["own x c"] == errors["own"] and errors["pooled x c"] == errors["pooled"]  # width 1 borrowed
    narrowed = one_val_region.one_region_errors(fitted, "a", "generation", {"a": "a", "b": "b"}, widths=(1.0, 0.3))
    assert np.mean(narrowed["pooled x c"]) < np.mean(narrowed["pooled"])  # a third of b's spread fits a's
    from forecasting.calibration import WIDTHS

    def curve(own_best, pooled_best):  # (2, len(WIDTHS)) held-out errors, lowest at the given widths
        k = np.arange(len(WIDTHS))
        return np.stack([np.abs(k - WIDTHS.index(own_best)), np.abs(k - WIDTHS.index(pooled_best))]).astype(float)

    width_errors = {("b", "generation"): curve(1.2, 0.8), ("c", "generation"): curve(1.2, 0.8),
                    ("a", "generation"): 5 * curve(0.7, 1.5)}
    assert one_val_region.borrowed_widths(width_errors, "a", "generation") == (1.2, 0.8)  # never a's own curve
    assert one_val_region.borrowed_widths(width_errors, "a", "long") == (1.0, 1.0)


def test_calibration_bench_refuses_a_presets_own_seed_as_a_draw(bench, tmp_path, capsys):
    """--fit-draws 0 with the synthetic city: a usage error naming the flag before any model loads; nothing
    is written."""
    cal = bench("calibration_bench")
    with pytest.raises(SystemExit) as exc:
        cal.main(["--cities", "synthetic", "--fit-draws", "0", "3", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "--fit-draws" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exc:  # two ways to reshape the bands at once: refused before any model loads
        cal.main(["--cities", "synthetic", "--level-maps", "--outer-widths", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "choose one" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # scoring the saved file while asking to fit (and save) another
        cal.main(["--cities", "synthetic", "--score-saved", "--save", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "--score-saved scores the saved file as it is" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_accelerator_variants_are_valid_uomo_train_arguments(bench):
    """Every variant of bench/accelerator_runs.py parses with uomo-train's own parser (a typo would only show
    on the lent accelerator, minutes of its time later); the continuations set no network flags (--init keeps
    the network) and the one-lever variants differ from their recipe in that lever only."""
    from forecasting.train import build_parser

    runs = bench("accelerator_runs")
    parser = build_parser()
    for name, arguments in runs.VARIANTS.items():
        batch = runs.BATCH_OF.get(name, runs.BATCH)
        parsed = parser.parse_args([*arguments, "--batch-size", str(batch), "--out", "x"])
        assert parsed.batch_size == batch, name
    recipe = vars(parser.parse_args(runs.VARIANTS["wide-names"]))
    finish = vars(parser.parse_args(runs.VARIANTS["wide-names-finish"]))
    assert "--preset" not in runs.VARIANTS["wide-names-finish"]
    assert {k for k in recipe if recipe[k] != finish[k]} == {"preset", "carry_channel", "lr"}
    nanchang3 = vars(parser.parse_args(runs.VARIANTS["wide-names-nanchang3"]))
    assert {k for k in recipe if recipe[k] != nanchang3[k]} == {"city_weights"}


def test_anchored_baselines_refuses_a_presets_own_seed_as_a_draw(bench, tmp_path, capsys):
    """--fit-draws 0 on the synthetic city (its own draw, whose test regions are scored) is a usage error
    before any baseline is fitted, not a baseline silently left uncalibrated; nothing is written."""
    anchored = bench("anchored_baselines")
    with pytest.raises(SystemExit) as exc:
        anchored.main(["--cities", "synthetic", "--fit-draws", "0", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "own draw" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_calibration_levers_caches_residuals_and_scores_every_variant_from_them(bench, tmp_path, capsys):
    """The val residuals are written once (plain arrays, loaded without pickle) and read back only under the
    same settings; every variant (pool weights x level maps) is fitted from them and reported."""
    from forecasting.calibration import Residuals

    levers = bench("calibration_levers")
    rng = np.random.default_rng(3)

    def city(sigmas, n=600):
        k = len(sigmas)
        numer = np.concatenate([s * rng.standard_normal(n) for s in sigmas])
        zi, zf = np.zeros(n * k, dtype=np.int64), np.zeros(n * k)
        season = np.where(rng.uniform(size=n * k) < 0.5, np.nan, 0.1)
        return Residuals(numer, np.ones(n * k), zi, zi, zf + 0.5, np.zeros(n * k, dtype=bool), zf, zi - 1,
                         np.repeat(np.arange(k), n), season)

    fitted = {("a", "generation"): city([0.5, 1.0, 2.0]), ("b", "generation"): city([1.0, 1.0, 1.0, 1.0])}
    settings = {"checkpoint": "x", "draws": [1]}
    path = tmp_path / "res.npz"
    levers.save_residuals(path, fitted, {"a": "a", "b": "b"}, settings)
    back, geo = levers.load_residuals(path, settings)
    assert geo == {"a": "a", "b": "b"} and back.keys() == fitted.keys()
    assert np.array_equal(back[("a", "generation")].season, fitted[("a", "generation")].season, equal_nan=True)
    with pytest.raises(SystemExit, match="other settings"):
        levers.load_residuals(path, {"checkpoint": "y", "draws": [1]})
    with np.load(path) as z:  # a cache written before the residuals kept the cells' scales loads without them
        older = {k: z[k] for k in z.files if not k.endswith("|scale")}
    np.savez(tmp_path / "old.npz", **older)
    old, _ = levers.load_residuals(tmp_path / "old.npz", settings)
    assert np.isnan(old[("a", "generation")].scale).all()
    np.savez(tmp_path / "broken.npz", **{k: v for k, v in older.items() if not k.endswith("|numer")})
    with pytest.raises(SystemExit, match="without numer"):
        levers.load_residuals(tmp_path / "broken.npz", settings)
    from forecasting.calibration import calibration_from_residuals

    for level_maps in (False, True):
        pooling = calibration_from_residuals(back, geographies=geo, level_maps=level_maps).meta["pooling"]
        errors = levers.variant_errors(pooling)
        assert set(errors) == {"a/generation", "b/generation"} and all(0 <= e < 0.5 for e in errors.values())
        assert all(("level_map" in v) == level_maps for v in pooling.values())
    cal = calibration_from_residuals(back, geographies=geo)
    regions = levers.region_coverages(back, cal, geo)
    assert {k: len(v) for k, v in regions.items()} == {"a/generation": 3, "b/generation": 4}
    assert all(0 <= x <= 1 for c in regions.values() for r in c for x in r)


def test_dead_zone_per_city_is_chosen_on_the_citys_own_entries_and_scored_on_held_out_regions(bench):
    """A city whose unobserved cells fall idle below 5% of their scale takes that dead zone from its own
    entries, while the pooled rule follows the larger city whose cells never idle; the held-out Brier score
    of P(y = 0) shows the gain, and every held-out task is scored under both rules."""
    from forecasting.calibration import Residuals, calibration_from_residuals
    from forecasting.calibration.tables import zero_level

    levers = bench("calibration_levers")
    rng = np.random.default_rng(5)

    def city(regions, idle_below, n=800):
        m = n * regions
        point = np.full(m, zero_level(0.05))
        numer = 0.3 * rng.standard_normal(m)
        is_zero = (point + numer <= zero_level(idle_below)) if idle_below else np.zeros(m, dtype=bool)
        zi, zf = np.zeros(m, dtype=np.int64), np.zeros(m)
        return Residuals(numer, np.ones(m), zi, zi + 2, point, is_zero, zf, zi, np.repeat(np.arange(regions), n))

    fitted = {("a", "generation"): city(3, 0.05), ("b", "generation"): city(6, 0.0)}
    geo = {"a": "a", "b": "b"}
    cal = calibration_from_residuals(fitted, geographies=geo, anchor=False)
    zones = levers.city_dead_zones(fitted, cal, geo)
    assert zones["chosen"]["a"][2] >= 0.03 and zones["chosen"]["b"][2] == 0.0
    assert cal.zero_share[2] < zones["chosen"]["a"][2]
    assert zones["brier"]["a"]["city"][2] < zones["brier"]["a"]["pooled"][2]
    assert set(zones["tasks"]) == {"a/generation", "b/generation"}
    assert all(0 <= rec["error"] < 0.5 for v in zones["tasks"].values() for rec in v.values())
    shipped = {k: v["error"] for k, v in cal.meta["pooling"].items()}  # the pooled rule redoes the fit's choice
    assert {k: v["pooled"]["error"] for k, v in zones["tasks"].items()} == shipped
    lines = "\n".join(levers.dead_zone_lines(zones))
    assert "| a/generation |" in lines and "a 0 / 0 / " in lines


def test_zero_shot_calibration_sources_leave_out_the_targets_areas_and_match_its_time_step(bench):
    """`--zero-shot-calibration other-cities`: a source covering the target's areas (the same city at another
    step) never calibrates it; the others are summed to the target's step where it is a whole multiple."""
    import argparse

    from forecasting.data import load_city

    transfer = bench("transfer_bench")
    small = load_city("synthetic-small")  # 8 x 8 cells, 1-hour slots: other areas than the 16 x 16 presets
    sources = transfer.calibration_sources(small, ["synthetic", "synthetic-15min", "synthetic-small"])
    assert [(c.name, c.minutes_per_slot) for c in sources] == [("synthetic@60min", 60.0),
                                                                ("synthetic-15min@60min", 60.0)]
    quarter = load_city("synthetic-15min")
    assert [(c.name, c.minutes_per_slot) for c in transfer.calibration_sources(quarter, ["synthetic-small"])] == [
        ("synthetic-small", 60.0)]  # a coarser source cannot be split: it stays at its own step
    assert transfer.calibration_sources(load_city("synthetic"), ["synthetic-15min"]) == []
    args = argparse.Namespace(zero_shot_calibration="other-cities", calibration_cities=["synthetic-15min"])
    with pytest.raises(SystemExit, match="all cover synthetic's areas"):
        transfer.zero_shot_model(object(), load_city("synthetic"), args)
    shipped = object()
    assert transfer.zero_shot_model(shipped, small, argparse.Namespace(zero_shot_calibration="shipped")) is shipped


def test_anchor_criterion_holds_val_regions_out_and_scores_both_criteria_in_normalised_units(bench):
    """Toy val residuals of three regions, each a busy cell whose truth is its last observation and quiet
    cells whose truth is the point: the normalised-unit fit copies the last observation (w0 = 1) where the
    model-space fit does not, and its held-out error is the lower; a city with one region is in sample."""
    from forecasting.calibration import Residuals

    crit = bench("anchor_criterion")

    def region_block(k, n_busy=200, n_quiet=600):
        n = n_busy + n_quiet
        busy = np.arange(n) < n_busy
        pull = np.full(n, 0.4)
        zi = np.zeros(n, dtype=np.int64)
        return Residuals(np.where(busy, pull, 0.0), np.ones(n), zi, zi, np.zeros(n), np.zeros(n, dtype=bool), pull,
                         np.arange(n) % 16, np.full(n, k), None, np.where(busy, 0.5, 0.001))

    rec = crit.held_out(Residuals.concat([region_block(k) for k in range(3)]))
    assert rec["regions"] == [0, 1, 2] and rec["value"]["w0"] == 1.0 and rec["model"]["w0"] == 0.0
    assert rec["value"]["held_out"] < 0.1 * rec["model"]["held_out"] and len(rec["value"]["per_region"]) == 3
    assert rec["model"]["held_out"] == pytest.approx(rec["raw"])  # no anchor: the raw point's error
    one = crit.held_out(region_block(0))
    assert "held_out" not in one["value"] and one["value"]["in_sample"] < one["model"]["in_sample"]
    text = crit.markdown([{"city": "toy", "task": "short", **rec}, {"city": "one", "task": "long", **one}], "cmd", 1.0)
    assert "held out" in text and "in sample" in text and "Mean held-out ratio value / model over 1 cells" in text
