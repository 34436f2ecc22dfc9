"""Tests of the synthetic city generator: determinism, shapes, geometry, realism checks, bad configs."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.data import (
    SPLITS,
    City,
    CityScalers,
    DataError,
    default_data_dir,
    load_npz,
    make_windows,
    validate_city,
)
from forecasting.data.synthetic import (
    LAND_USES,
    OFFICE,
    PARK,
    POI_CATEGORIES,
    RESIDENTIAL,
    SYNTHETIC_PRESETS,
    TRANSPORT,
    WATER,
    SyntheticCityConfig,
    ar1_noise,
    city_from_name,
    component_profiles,
    make_city,
    make_layout,
    region_land_use,
    smooth_field,
)


@pytest.fixture(scope="module")
def city():
    return city_from_name("synthetic")


@pytest.fixture(scope="module")
def big_layout():
    return make_layout(SyntheticCityConfig(rows=48, cols=48, seed=1))


def cells(a: np.ndarray) -> np.ndarray:
    """(R, T, H, W) -> (R*H*W, T)."""
    R, T, H, W = a.shape
    return a.transpose(0, 2, 3, 1).reshape(R * H * W, T)


# ----------------------------------------------------------------------------------------------------
# Determinism, shapes, geometry, splits
# ----------------------------------------------------------------------------------------------------


def test_same_seed_same_city_and_other_seed_differs():
    a, b, c = make_city(rows=8, cols=8, days=3, seed=4), make_city(rows=8, cols=8, days=3, seed=4), make_city(
        rows=8, cols=8, days=3, seed=5
    )
    for key in ("traffic", "users", "poi", "residents", "split", "region_origin"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(a.meta["land_use"], b.meta["land_use"])
    assert not np.array_equal(a.traffic, c.traffic)
    assert not np.array_equal(a.poi, c.poi)
    assert not np.array_equal(a.meta["land_use"], c.meta["land_use"])


def test_layout_depends_only_on_seed_and_grid():
    a = make_city(days=7, slots_per_day=24, seed=2)
    b = make_city(days=3, slots_per_day=96, seed=2)
    np.testing.assert_array_equal(a.meta["land_use"], b.meta["land_use"])
    np.testing.assert_array_equal(a.poi, b.poi)
    np.testing.assert_array_equal(a.residents, b.residents)


@pytest.mark.parametrize(
    "rows, cols, region_size, days, spd",
    [
        (4, 4, (4, 4), 2, 48),  # a single region
        (8, 8, (4, 4), 3, 24),  # 1 h
        (16, 16, (4, 4), 2, 144),  # 10 min
        (8, 12, (4, 4), 2, 96),  # non-square
        (10, 9, (4, 4), 2, 48),  # not multiples of the region: cropped to 8 x 8
        (6, 9, (2, 3), 1, 288),  # non-square regions, 5 min
    ],
)
def test_shapes_and_validity(rows, cols, region_size, days, spd):
    c = make_city(rows=rows, cols=cols, region_size=region_size, days=days, slots_per_day=spd, seed=1)
    rh, rw = region_size
    R, T = (rows // rh) * (cols // rw), days * spd
    assert c.traffic.shape == c.users.shape == (R, T, rh, rw)
    assert c.poi.shape == (R, 15, rh, rw) and c.residents.shape == (R, rh, rw)
    assert c.day_of_week.shape == c.slot_of_day.shape == (R, T)
    assert c.traffic.dtype == np.float32 and c.users.dtype == np.float32
    assert np.all(np.isfinite(c.traffic)) and c.traffic.min() >= 0 and c.traffic.max() > 0
    assert c.slots_per_day == spd and c.slot_of_day.max() == spd - 1
    assert c.region_origin.shape == (R, 2) and c.crs.startswith("EPSG:")
    assert c.poi_categories == list(POI_CATEGORIES)
    assert c.meta["land_use"].shape == (rows, cols)
    assert c.meta["config"]["rows"] == rows
    validate_city(c)


def test_regions_tile_the_city_and_map_to_land_use():
    c = make_city(rows=12, cols=8, days=1, seed=3)
    ox, oy = c.region_origin[:, 0], c.region_origin[:, 1]
    step = 4 * c.cell_size
    assert sorted(set(np.round((ox - ox.min()) / step))) == [0, 1]  # 2 region columns
    assert sorted(set(np.round((oy.max() - oy) / step))) == [0, 1, 2]  # 3 region rows, y decreasing
    assert len({tuple(o) for o in c.region_origin}) == c.n_regions
    lu = region_land_use(c)
    assert lu.shape == (6, 4, 4)
    np.testing.assert_array_equal(lu[1], c.meta["land_use"][0:4, 4:8])  # region 1 = top row, 2nd col
    np.testing.assert_array_equal(region_land_use(c.subset([4, 1])), lu[[4, 1]])
    # water cells carry no residents, POI nor traffic
    water = lu == WATER
    if water.any():
        assert c.residents[water].max() == 0 and c.poi.transpose(0, 2, 3, 1)[water].max() == 0
        assert c.traffic.transpose(0, 2, 3, 1)[water].max() == 0


def test_region_land_use_needs_a_synthetic_city():
    c = make_city(rows=4, cols=4, days=1)
    plain = City(c.name, c.traffic, c.day_of_week, c.slot_of_day, c.slots_per_day, c.split)
    with pytest.raises(DataError, match="land-use map"):
        region_land_use(plain)


def test_splits():
    c = make_city(days=1)
    assert set(c.split) == set(SPLITS)
    for R_rows in (1, 2, 3, 5):
        s = make_city(rows=4 * R_rows, cols=4, days=1, seed=7).split
        assert len(s) == R_rows and "train" in s
        if R_rows >= 3:
            assert {"val", "test"} <= set(s)
    assert list(make_city(rows=8, cols=4, days=1).split).count("test") == 1
    assert set(make_city(days=1, split_fractions=(1.0, 0.0, 0.0)).split) == {"train"}


# ----------------------------------------------------------------------------------------------------
# Realism: cycles, land use, heavy tails, users vs traffic, events
# ----------------------------------------------------------------------------------------------------


def test_daily_cycle(city):
    total = city.traffic.sum(axis=(0, 2, 3)).astype(float)  # city-wide series
    x = total - total.mean()
    lag = city.slots_per_day
    acf = np.dot(x[:-lag], x[lag:]) / np.dot(x, x)
    assert acf > 0.5
    hour = city.slot_of_day[0] * 24 / city.slots_per_day
    night = total[(hour >= 2) & (hour < 5)].mean()
    day = total[(hour >= 10) & (hour < 20)].mean()
    assert night < 0.5 * day
    # per cell too: the median cell's lag-one-day autocorrelation is clearly positive
    xc = cells(city.traffic)
    xc = xc[xc.mean(1) > 0] - xc[xc.mean(1) > 0].mean(1, keepdims=True)
    cell_acf = (xc[:, :-lag] * xc[:, lag:]).sum(1) / (xc * xc).sum(1)
    assert np.median(cell_acf) > 0.3


def test_profiles_same_shape_at_any_granularity():
    quiet = dict(noise=0.0, event_rate=0.0, days=7, seed=6)
    fine, coarse = make_city(slots_per_day=144, **quiet), make_city(slots_per_day=24, **quiet)
    R, T, H, W = coarse.traffic.shape
    np.testing.assert_allclose(fine.users.reshape(R, T, 6, H, W).mean(2), coarse.users, rtol=1e-4, atol=1e-4)
    fine_traffic = fine.traffic.reshape(R, T, 6, H, W).sum(2)
    np.testing.assert_allclose(fine_traffic, coarse.traffic, rtol=1e-4, atol=1e-2)
    # noise-free, event-free series repeat every week exactly
    two_weeks = make_city(slots_per_day=24, noise=0.0, event_rate=0.0, days=14, seed=6)
    np.testing.assert_allclose(two_weeks.traffic[:, :168], two_weeks.traffic[:, 168:], rtol=1e-5)


def daily_profile(c) -> np.ndarray:
    """Mean traffic at each slot of day over all regions, cells and days, divided by its mean."""
    p = np.array([c.traffic[:, c.slot_of_day[0] == k].mean() for k in range(c.slots_per_day)])
    return p / p.mean()


def test_daily_profile_resembles_the_real_city():
    path = default_data_dir() / "nanchang.npz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    real = daily_profile(load_npz(path))
    synthetic = daily_profile(make_city(slots_per_day=48, seed=0))
    assert np.corrcoef(real, synthetic)[0, 1] > 0.85
    assert np.abs(real - synthetic).mean() < 0.25


def test_profiles_are_continuous_over_midnight():
    eps = 1e-6
    for dow in range(7):
        p_end, v_end = component_profiles(np.array([24 - eps]), np.array([dow]))
        p_start, v_start = component_profiles(np.array([0.0]), np.array([dow]))
        np.testing.assert_allclose(p_end, p_start, atol=1e-4)
        np.testing.assert_allclose(v_end, v_start, atol=1e-4)


def test_office_empties_on_weekends_more_than_residential():
    c = make_city(rows=24, cols=24, days=14, seed=2)
    lu = region_land_use(c).ravel()
    x = cells(c.traffic)
    lu, x = lu[x.mean(1) > 0], x[x.mean(1) > 0]  # drop water cells
    weekend = np.isin(c.day_of_week[0], (5, 6))
    hour = c.slot_of_day[0] * 24 / c.slots_per_day
    working = (hour >= 9) & (hour < 17)
    ratio = x[:, weekend & working].mean(1) / x[:, ~weekend & working].mean(1)
    office, residential = np.median(ratio[lu == OFFICE]), np.median(ratio[lu == RESIDENTIAL])
    assert office < 0.6 and residential > 0.8 and office < residential
    park = np.median(ratio[lu == PARK])
    assert park > residential  # parks fill on weekend daytime


def test_poi_and_residents_follow_land_use(big_layout):
    lu, poi = big_layout.land_use, big_layout.poi
    mean = lambda c, z: poi[POI_CATEGORIES.index(c)][lu == z].mean()  # noqa: E731
    assert mean("enterprise", OFFICE) > 3 * mean("enterprise", RESIDENTIAL)
    assert mean("transportation", TRANSPORT) > 3 * mean("transportation", RESIDENTIAL)
    assert mean("scenic spot", PARK) > 3 * mean("scenic spot", OFFICE)
    shopping = [poi[0][lu == z].mean() for z in range(len(LAND_USES) - 1)]
    assert LAND_USES[int(np.argmax(shopping))] == "commercial"
    res = big_layout.residents
    assert res[lu == RESIDENTIAL].mean() > 3 * res[lu == OFFICE].mean()
    assert np.all(res == np.round(res)) and np.all(poi == np.round(poi))


def test_poi_correlates_with_traffic(city):
    traffic = city.traffic.mean(1).ravel()
    poi = city.poi.sum(1).ravel()
    land = traffic > 0
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    assert np.corrcoef(rank(poi[land]), rank(traffic[land]))[0, 1] > 0.4


def test_heavy_tail():
    for seed in range(3):
        c = make_city(seed=seed)
        region_mean = c.traffic.mean(axis=(1, 2, 3))
        assert region_mean.max() / np.median(region_mean) > 2.0
        cell_mean = c.traffic.mean(1).ravel()
        cell_mean = cell_mean[cell_mean > 0]
        assert np.percentile(cell_mean, 99) / np.median(cell_mean) > 5.0


def test_users_correlated_with_traffic_but_not_proportional(city):
    t, u = city.traffic.mean(1).ravel(), city.users.mean(1).ravel()
    assert np.corrcoef(t, u)[0, 1] > 0.7
    ratio = t[u > 1] / u[u > 1]
    assert ratio.std() / ratio.mean() > 0.2
    # over time within a busy cell, too
    xc, uc = cells(city.traffic), cells(city.users)
    busy = np.argmax(uc.mean(1))
    r = np.corrcoef(xc[busy], uc[busy])[0, 1]
    assert 0.5 < r < 0.999


def test_events_are_localised_bursts():
    base = make_city(noise=0.0, event_rate=0.0, days=7, seed=8)
    assert base.meta["events"] == []
    busy = make_city(noise=0.0, event_rate=2.0, days=7, seed=8)
    events = busy.meta["events"]
    assert len(events) > 5
    extra = busy.users - base.users
    assert extra.min() > -1e-3  # events only add people
    frac = (extra > 1e-3).mean()
    assert 0 < frac < 0.1  # few cells, few hours
    for e in events:
        assert 1.5 <= e["duration_hours"] <= 4.5 and 9 <= e["start_hour"] % 24 <= 20
        # the centre cell gains about the peak users in the middle of the event
        r, i, j = e["region"], e["row"] % 4, e["col"] % 4
        middle = int((e["start_hour"] + e["duration_hours"] / 2) * busy.slots_per_day / 24)
        assert extra[r, middle, i, j] > 0.5 * e["peak_users"]


def test_noise_is_ar1_with_unit_variance():
    rho = 0.8
    x = ar1_noise(np.random.default_rng(0), 4000, 50, rho)
    assert abs(x.var() - 1) < 0.1
    lag1 = (x[1:] * x[:-1]).mean() / x.var()
    assert abs(lag1 - rho) < 0.03


def test_smooth_field_is_standardised_and_smooth():
    f = smooth_field(np.random.default_rng(0), (40, 40), 3.0)
    assert abs(f.mean()) < 1e-9 and abs(f.std() - 1) < 1e-9
    assert np.corrcoef(f[:, 1:].ravel(), f[:, :-1].ravel())[0, 1] > 0.8


def test_poi_category_count():
    assert make_city(rows=4, cols=4, days=1, n_poi_categories=10).poi_categories == list(POI_CATEGORIES[:10])
    c = make_city(rows=4, cols=4, days=1, n_poi_categories=21)
    assert c.poi.shape[1] == 21 and len(set(c.poi_categories)) == 21


# ----------------------------------------------------------------------------------------------------
# Integration with the data layer, presets, bad configurations
# ----------------------------------------------------------------------------------------------------


def test_windows_and_scalers(city):
    scalers = CityScalers.fit(city)
    assert scalers.traffic.scale > 0 and scalers.users.scale > 0
    w = make_windows(city, split="test", stride=8, scalers=scalers)
    assert w.traffic.shape[1:] == (64, 4, 4) and len(w) > 0
    assert 0 <= w.traffic.min() and w.traffic.max() <= 1 and w.users.max() <= 1
    assert w.poi.shape == (len(w), 15, 4, 4)


def test_presets():
    for name, config in SYNTHETIC_PRESETS.items():
        assert config.name == name
    small = city_from_name("synthetic-small")
    assert small.traffic.shape == (4, 14 * 24, 4, 4) and small.name == "synthetic-small"
    assert not np.array_equal(city_from_name("synthetic-small", seed=5).traffic, small.traffic)
    assert SYNTHETIC_PRESETS["synthetic"].rows == 16 and SYNTHETIC_PRESETS["synthetic"].slots_per_day == 48
    assert SYNTHETIC_PRESETS["synthetic-15min"].slots_per_day == 96
    assert SYNTHETIC_PRESETS["synthetic-large"].rows == 64


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(rows=3), "smaller than one region"),
        (dict(cols=2, region_size=(4, 4)), "smaller than one region"),
        (dict(slots_per_day=7), "must divide 1440"),
        (dict(days=-1), "days must be >= 1"),
        (dict(days=0), "days must be >= 1"),
        (dict(split_fractions=(0.5, 0.2, 0.2)), "summing to 1"),
        (dict(start_day_of_week=7), "start_day_of_week"),
        (dict(noise=-0.1), ">= 0"),
        (dict(water_fraction=0.9), "water_fraction"),
        (dict(region_size=(0, 4)), "region_size"),
        (dict(colums=8), "unknown SyntheticCityConfig fields"),
    ],
)
def test_bad_config_raises_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_city(**overrides)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="synthetic-small"):
        city_from_name("atlantis")


def test_future_days_continue_the_city_and_leave_its_days_unchanged():
    from forecasting.data.synthetic import make_city

    for kw in (dict(noise=0.0), dict(event_rate=30.0)):
        base = make_city(rows=8, cols=8, slots_per_day=24, days=7, seed=4, **kw)
        longer = make_city(rows=8, cols=8, slots_per_day=24, days=7, seed=4, future_days=3, **kw)
        T = base.n_steps
        assert longer.n_steps == T + 3 * 24
        for key in ("traffic", "users", "day_of_week", "slot_of_day"):
            np.testing.assert_array_equal(getattr(longer, key)[:, :T], getattr(base, key))
        np.testing.assert_array_equal(longer.poi, base.poi)
        assert (longer.traffic[:, T:] > 0).any() and np.isfinite(longer.traffic).all()
        future = [e for e in longer.meta["events"] if e.get("future")]
        assert all(e["start_step"] >= T for e in future)
    with pytest.raises(ValueError, match="future_days"):
        make_city(rows=8, cols=8, future_days=-1)
