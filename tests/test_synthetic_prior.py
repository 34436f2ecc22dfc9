"""The synthetic prior: presets unchanged, variation knobs, deterministic prior cities, training on a family."""

from dataclasses import fields

import numpy as np
import pytest

from forecasting.data import DataError, concat_windows, load_cities, load_city, make_windows
from forecasting.data.synthetic import SYNTHETIC_PRESETS, SyntheticCityConfig, city_from_name, make_city
from forecasting.data.synthetic_prior import (
    DEFAULT_PRIOR,
    FIRST_PRIOR,
    PRIOR_FAMILY,
    SECOND_PRIOR,
    SyntheticPrior,
    parse_prior_name,
    prior_city,
    prior_config,
)
from forecasting.data.synthetic_profiles import has_day_shape
from forecasting.data.synthetic_variation import has_cell_variation, spells
from forecasting.train import TrainConfig, city_sampling_weights, train

# sums of traffic and users of every preset, computed before the variation knobs were added
PRESET_SUMS = {
    "synthetic": (309805212.4, 2155069.417),
    "synthetic-small": (74740316.74, 262549.3880),
    "synthetic-15min": (311492434.0, 4318785.340),
    "synthetic-10min": (311643207.6, 6463921.476),
    "synthetic-large": (4057128682.0, 27540588.43),
}
SMALL = dict(rows=8, cols=8, days=4, slots_per_day=24, noise=0.0, event_rate=0.0)
LONG = {**SMALL, "days": 14}


@pytest.mark.parametrize("name", sorted(PRESET_SUMS))
def test_presets_are_unchanged(name):
    config = SYNTHETIC_PRESETS[name]
    assert not has_day_shape(config) and not has_cell_variation(config)
    city = city_from_name(name)
    traffic, users = PRESET_SUMS[name]
    assert city.traffic.astype(np.float64).sum() == pytest.approx(traffic, rel=1e-6)
    assert city.users.astype(np.float64).sum() == pytest.approx(users, rel=1e-6)


def test_prior_cities_are_deterministic_in_seed_and_index():
    a, b = prior_city(3, seed=1), prior_city(3, seed=1)
    assert a.name == "synthetic-prior@1#3" and a.meta["family"] == PRIOR_FAMILY
    assert np.array_equal(a.traffic, b.traffic) and np.array_equal(a.split, b.split)
    assert prior_config(3, seed=1) != prior_config(4, seed=1) and prior_config(3, seed=1) != prior_config(3, seed=2)
    assert np.array_equal(load_city("synthetic-prior@1#3").traffic, a.traffic)
    assert [c.name for c in load_cities("synthetic-prior@1:2-4")] == ["synthetic-prior@1#2", "synthetic-prior@1#3"]


def test_the_first_prior_stays_reachable_by_its_versioned_name():
    old = load_cities("synthetic-prior-v1@1:2-4")
    assert [c.name for c in old] == ["synthetic-prior-v1@1#2", "synthetic-prior-v1@1#3"]
    assert old[0].meta["family"] == PRIOR_FAMILY + "-v1"
    assert np.array_equal(old[1].traffic, prior_city(3, seed=1, prior=FIRST_PRIOR, family="x").traffic)
    assert not np.array_equal(old[1].traffic, prior_city(3, seed=1).traffic)  # the present ranges draw other cities
    assert parse_prior_name("synthetic-prior-v1:64") == (0, range(64))
    assert FIRST_PRIOR.noise[1] > DEFAULT_PRIOR.noise[1]


def test_the_present_prior_scales_the_noise_of_coarse_slots_and_the_second_stays_reachable():
    """Same draws as the second prior; the noise of a slot longer than 30 min is x sqrt(30 / minutes)."""
    seen = set()
    for k in range(12):
        new, old = prior_config(k), prior_config(k, prior=SECOND_PRIOR)
        minutes = 1440 / new.slots_per_day
        seen.add(minutes)
        assert new.seed == old.seed and new.event_rate == old.event_rate  # nothing else drawn differently
        assert new.noise == pytest.approx(old.noise * np.sqrt(min(1.0, 30 / minutes)))
    assert {60.0, 10.0} <= seen
    k = next(k for k in range(12) if prior_config(k).slots_per_day == 24)
    v2 = load_city(f"synthetic-prior-v2#{k}")
    assert v2.meta["family"] == PRIOR_FAMILY + "-v2"
    assert np.array_equal(v2.traffic, prior_city(k, prior=SECOND_PRIOR, family="x").traffic)
    assert not np.array_equal(v2.traffic, prior_city(k).traffic)
    with pytest.raises(ValueError, match="noise_reference_minutes"):
        SyntheticPrior(noise_reference_minutes=0)


def test_prior_names_parse_and_a_family_is_not_one_city():
    assert parse_prior_name("synthetic-prior:64") == (0, range(64))
    assert parse_prior_name("synthetic-prior@7:3") == (7, range(3))
    assert parse_prior_name("synthetic-prior#5") == (0, range(5, 6))
    assert parse_prior_name("synthetic") is None and parse_prior_name("synthetic-prior:x") is None
    with pytest.raises(DataError, match="load_cities"):
        load_city("synthetic-prior:2")
    with pytest.raises(DataError, match="synthetic-prior:N"):
        load_city("synthetic-prior:many")
    with pytest.raises(ValueError, match="names no city"):
        parse_prior_name("synthetic-prior:0")


def _drawn(config: SyntheticCityConfig) -> dict:
    """The value each range of the prior was drawn into (peaks unpacked)."""
    values = {f.name: getattr(config, f.name) for f in fields(SyntheticPrior) if hasattr(config, f.name)}
    values["days"] = config.days
    values["n_extra_peaks"] = len(config.extra_peaks)
    return values


def test_draws_span_the_documented_ranges():
    rng = np.random.default_rng(0)
    configs = [DEFAULT_PRIOR.sample_config(rng) for _ in range(200)]
    drawn = [_drawn(c) for c in configs]
    for name in ("days", "water_fraction", "noise", "people_tau_hours", "volume_tau_hours", "event_rate",
                 "event_scale", "day_contrast", "peak_shift_hours", "n_extra_peaks", "weekend_shape",
                 "weekend_level", "level_sigma", "hotspot_share", "hotspot_tail", "level_shift_prob",
                 "level_shift_sigma", "zero_cell_share", "intermittent_share", "intermittent_duty",
                 "intermittent_hours"):
        low, high = getattr(DEFAULT_PRIOR, name)
        values = np.array([d[name] for d in drawn], float)
        assert low <= values.min() and values.max() <= high, name
        margin = 0.1 * (high - low)  # log-uniform ranges are sparse at the top: 200 draws still reach it
        assert values.min() < low + margin and values.max() > high - margin, name
    widths = [w for c in configs for _, w, _ in c.extra_peaks]
    assert min(widths) >= DEFAULT_PRIOR.peak_width_hours[0] and max(widths) <= DEFAULT_PRIOR.peak_width_hours[1]
    assert {c.slots_per_day for c in configs} == set(DEFAULT_PRIOR.slots_per_day)
    assert {c.start_day_of_week for c in configs} == set(range(7))


def test_granularity_varies_across_prior_cities():
    cities = load_cities("synthetic-prior:8")
    assert len({c.slots_per_day for c in cities}) >= 3
    for c in cities:
        config = prior_config(c.meta["prior"]["k"])
        assert c.n_steps == config.days * config.slots_per_day and c.grid == (4, 4) and c.n_regions == 4
        assert sorted(c.split) == ["train", "train", "train", "val"]  # (0.8, 0.2, 0) of four regions


@pytest.mark.parametrize("water", [0.0, 0.1])
def test_zero_inflation_gives_the_requested_share_of_all_zero_cells(water):
    city = make_city(**{**SMALL, "noise": 0.3, "event_rate": 2.0}, water_fraction=water, zero_cell_share=0.3)
    cells = city.traffic.transpose(0, 2, 3, 1).reshape(-1, city.n_steps)
    assert (cells.max(1) == 0).mean() == pytest.approx(round(0.3 * 64) / 64)
    assert city.users[city.traffic.max(1, keepdims=True).repeat(city.n_steps, 1) == 0].max() == 0
    assert len(city.meta["zero_cells"]) == round(0.3 * 64)


def test_intermittent_cells_are_mostly_zero_with_sporadic_traffic():
    city = make_city(**LONG, water_fraction=0.0, intermittent_share=0.5, intermittent_duty=0.2)
    flat = city.meta["intermittent_cells"]
    assert len(flat) == 32
    series = city.traffic.reshape(2, 2, city.n_steps, 4, 4).transpose(2, 0, 3, 1, 4).reshape(city.n_steps, 64)
    zero_share = (series[:, flat] == 0).mean(0)
    assert 0.6 < zero_share.mean() < 0.95 and zero_share.max() < 1  # ~1 - duty, never silent throughout
    others = np.setdiff1d(np.arange(64), flat)
    assert (series[:, others] == 0).mean() == 0
    on = spells(np.random.default_rng(0), 20000, 4, duty=0.2, mean_length=3.0)
    assert on.mean() == pytest.approx(0.2, abs=0.02)
    assert np.isclose((on[1:] & on[:-1]).sum() / on[:-1].sum(), 1 - 1 / 3, atol=0.03)  # P(on -> on)


def test_level_shifts_are_steps():
    base = make_city(**SMALL, seed=1)
    shifted = make_city(**SMALL, seed=1, level_shift_prob=1.0, level_shift_sigma=0.5)
    ratio = shifted.traffic / np.maximum(base.traffic, 1e-30)
    per_cell = ratio.transpose(0, 2, 3, 1).reshape(-1, base.n_steps)[base.traffic.max(1).ravel() > 0]
    changes = (np.abs(np.diff(np.log(per_cell), axis=1)) > 1e-4).sum(1)
    assert changes.max() <= 2 and changes.mean() > 1  # a region step and a cell step, each at one slot


def _night_day(city) -> float:
    hours = city.slot_of_day[0] * 24.0 / city.slots_per_day
    total = city.traffic.sum((0, 2, 3))
    return total[(hours >= 2) & (hours < 5)].mean() / total[(hours >= 10) & (hours < 22)].mean()


def test_day_shape_knobs_move_the_profile_as_documented():
    base = make_city(**LONG)
    sharper = make_city(**LONG, day_contrast=1.5)
    assert _night_day(sharper) < 0.7 * _night_day(base)
    quiet = make_city(**LONG, weekend_level=-0.4)
    weekend = np.isin(base.day_of_week[0], (5, 6)) & (base.slot_of_day[0] >= 6)  # past the 04:00 switch
    ratio = quiet.traffic.sum((0, 2, 3)) / base.traffic.sum((0, 2, 3))
    assert np.allclose(ratio[weekend], np.exp(-0.4), rtol=1e-4)
    assert np.allclose(ratio[~np.isin(base.day_of_week[0], (5, 6, 0))], 1)  # Tuesday-Friday untouched
    late = make_city(**LONG, peak_shift_hours=3.0)
    daily = lambda c: c.traffic.sum((0, 2, 3)).reshape(14, 24).mean(0)  # noqa: E731
    lag = np.argmax([np.dot(np.roll(daily(base), s), daily(late)) for s in range(24)])
    assert lag == 3
    peaked = make_city(**LONG, extra_peaks=((3.5, 0.5, 2.0),))
    assert daily(peaked)[3] > 2 * daily(base)[3]


def test_bad_variation_knobs_are_refused():
    with pytest.raises(ValueError, match="zero_cell_share"):
        SyntheticCityConfig(zero_cell_share=1.5)
    with pytest.raises(ValueError, match="extra_peaks"):
        SyntheticCityConfig(extra_peaks=((12.0, 0.0, 1.0),))
    with pytest.raises(ValueError, match="low"):
        SyntheticPrior(noise=(0.5, 0.1))


def test_a_family_is_weighted_as_one_group():
    family = load_cities("synthetic-prior:4")
    small = city_from_name("synthetic-small")
    w = city_sampling_weights([*family, small], {"synthetic-prior": 0.5})
    assert w == pytest.approx([0.125] * 4 + [1.0])
    w = city_sampling_weights([*family, small], {})
    assert sum(w[:4]) == pytest.approx(1.0)  # a family counts as one city by default
    w = city_sampling_weights([*family, small], {family[0].name: 2.0, "synthetic-small": 0.3})
    assert w == pytest.approx([2.0, 0.25, 0.25, 0.25, 0.3])
    with pytest.raises(ValueError, match="synthetic-priors"):
        city_sampling_weights(family, {"synthetic-priors": 1.0})


def test_training_on_four_prior_cities_runs(tmp_path):
    cfg = TrainConfig(preset="tiny", cities=["synthetic-prior:4", "synthetic-small"], steps=20, batch_size=4,
                      val_every=20, val_max_windows=8, val_samples=2, val_steps=2, diffusion_steps=20, warmup=2,
                      city_weights={"synthetic-prior": 0.5}, out=str(tmp_path / "run"))
    summary = train(cfg, progress=False)
    assert summary["steps"] == 20 and np.isfinite(summary["best_score"])
    keys = set(summary["history"][-1])
    assert {"synthetic-prior/short", "synthetic-prior/long", "synthetic-prior/generation"} <= keys
    assert not any(k.startswith("synthetic-prior@") for k in keys)  # the family is validated as one group


def test_windows_of_a_family_concatenate_by_granularity():
    a, b = make_city(**SMALL, seed=1), make_city(**SMALL, seed=2)
    wa, wb = make_windows(a, split="train", stride=32), make_windows(b, split="val", stride=32)
    joint = concat_windows([wa, wb], "pair")
    assert len(joint) == len(wa) + len(wb) and joint.city == "pair" and joint.scalers is None
    assert np.array_equal(joint.traffic[len(wa):], wb.traffic) and np.array_equal(joint.poi[: len(wa)], wa.poi)
    hourly_half = make_windows(make_city(**{**SMALL, "slots_per_day": 48}), stride=32)
    with pytest.raises(DataError, match="slots_per_day"):
        concat_windows([wa, hourly_half], "mixed")


def test_a_future_needs_a_city_without_cell_level_variation():
    """future_days continues the observed days bit for bit; step 10's variation cannot be continued, so the
    combination is refused with the settings to change, while the prior's other knobs continue fine."""
    small = dict(rows=8, cols=8, days=2, slots_per_day=24, seed=3)
    with pytest.raises(ValueError, match="future_days cannot continue a city with cell-level variation"):
        make_city(SyntheticCityConfig(**small, zero_cell_share=0.2), future_days=1)
    shaped = SyntheticCityConfig(**small, day_contrast=1.3, event_scale=2.0, people_tau_hours=1.0)
    past, longer = make_city(shaped), make_city(shaped, future_days=1)
    np.testing.assert_array_equal(longer.traffic[:, :past.n_steps], past.traffic)
    assert longer.n_steps == past.n_steps + 24
