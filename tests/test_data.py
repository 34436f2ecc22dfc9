"""Data layer: City validation, scaler, windows, and the loaders (npz, release JSON, long tables, geo)."""

import json

import numpy as np
import pandas as pd
import pytest

from forecasting.data import (
    WINDOW,
    City,
    CityScalers,
    DataError,
    Scaler,
    assign_splits,
    available_real_cities,
    concat_windows,
    default_data_dir,
    few_shot_city,
    from_geodataframe,
    hide_unrecorded,
    infer_slots_per_day,
    load_city,
    load_long_table,
    load_npz,
    load_release_json,
    make_windows,
    region_origins,
    resample_city,
    save_release_json,
    to_geodataframe,
    to_long_table,
    window_multiplicity,
    window_starts,
)

# ----------------------------------------------------------------------------------------------------
# Fixtures: small random cities
# ----------------------------------------------------------------------------------------------------


def random_city(
    R=3, T=80, H=2, W=3, spd=24, seed=0, users=True, poi=True, split=None, start_slot=5, start_day=2, **kw
) -> City:
    """A small heavy-tailed random city with regular time stamps starting at (start_day, start_slot)."""
    rng = np.random.default_rng(seed)
    abs_slot = start_day * spd + start_slot + np.arange(T)
    dow = np.broadcast_to((abs_slot // spd) % 7, (R, T))
    slot = np.broadcast_to(abs_slot % spd, (R, T))
    return City(
        name="toy",
        traffic=rng.gamma(0.5, 10.0, size=(R, T, H, W)).astype(np.float32),
        users=rng.poisson(20, size=(R, T, H, W)).astype(np.float32) if users else None,
        poi=rng.poisson(2, size=(R, 4, H, W)).astype(np.float32) if poi else None,
        day_of_week=dow,
        slot_of_day=slot,
        slots_per_day=spd,
        split=split if split is not None else (["train", "val", "test"] * R)[:R],
        **kw,
    )


def materialised_windows(series: np.ndarray, length: int = WINDOW) -> np.ndarray:
    """All stride-1 windows of (R, T, ...) series as an explicit (R * n, length, ...) array."""
    T = series.shape[1]
    return np.concatenate([series[:, s : s + length] for s in range(T - length + 1)])


# ----------------------------------------------------------------------------------------------------
# Loader 1: the real .npz files
# ----------------------------------------------------------------------------------------------------

REAL = {
    # name: (regions, steps, slots/day, POI categories, (train, val, test))
    "nanjing": (8, 735, 96, 21, (6, 1, 1)),
    "nanchang": (37, 399, 48, 23, (28, 4, 5)),
}


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_npz_shapes_splits_and_slots(name):
    path = default_data_dir() / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    R, T, spd, C, counts = REAL[name]
    city = load_npz(path)
    assert city.traffic.shape == city.users.shape == (R, T, 4, 4)
    assert city.poi.shape == (R, C, 4, 4)
    assert city.slots_per_day == spd
    assert city.slot_of_day.max() == spd - 1 and city.day_of_week.max() <= 6
    assert tuple(len(city.regions(s)) for s in ("train", "val", "test")) == counts
    assert name in available_real_cities()
    assert load_city(name).traffic.shape == city.traffic.shape


def test_load_npz_missing_file_and_missing_keys(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", traffic=np.zeros((1, 70, 2, 2)))
    with pytest.raises(DataError, match="day_of_week"):
        load_npz(tmp_path / "bad.npz")


def test_load_npz_round_trip(tmp_path):
    city = random_city()
    np.savez(
        tmp_path / "toy.npz",
        traffic=city.traffic,
        users=city.users,
        poi=city.poi,
        day_of_week=city.day_of_week,
        slot_of_day=city.slot_of_day,
        split=city.split,
        slots_per_day=city.slots_per_day,
    )
    back = load_npz(tmp_path / "toy.npz")
    assert np.array_equal(back.traffic, city.traffic) and np.array_equal(back.poi, city.poi)
    assert back.split.tolist() == city.split.tolist() and back.name == "toy"


# ----------------------------------------------------------------------------------------------------
# City validation: each bad input gives a DataError naming the problem
# ----------------------------------------------------------------------------------------------------


def _fields(city: City) -> dict:
    return {k: getattr(city, k) for k in ("name", "traffic", "users", "poi", "day_of_week", "slot_of_day", "slots_per_day", "split")}


def _bad(**change) -> dict:
    f = _fields(random_city())
    f.update(change)
    return f


def _with(array_name: str, edit) -> dict:
    f = _fields(random_city())
    a = np.array(f[array_name], copy=True)
    edit(a)
    f[array_name] = a
    return f


@pytest.mark.parametrize(
    "fields, message",
    [
        (_with("traffic", lambda a: a.__setitem__((0, 3, 1, 1), np.nan)), "traffic has 1 NaN"),
        (_with("traffic", lambda a: a.__setitem__((1, 0, 0, 0), -2.0)), "traffic has 1 negative"),
        (_with("users", lambda a: a.__setitem__((0, 0, 0, 0), np.inf)), "users has 1 NaN/inf"),
        (_bad(users=np.zeros((3, 80, 3, 2))), "users shape"),
        (_bad(poi=np.zeros((3, 4, 2, 2))), "POI grid does not match"),
        (_bad(poi=np.zeros((2, 4, 2, 3))), "poi must be"),
        (_with("slot_of_day", lambda a: a.__setitem__((1, slice(40, None)), (a[1, 40:] + 1) % 24)), "irregular time steps in region 1 between steps 39 and 40"),
        (_bad(split=["train", "valid", "test"]), "unknown split labels \\['valid'\\]"),
        (_bad(split=["train", "test"]), "one label per region"),
        (_bad(day_of_week=np.full((3, 80), 7)), "day_of_week must lie in 0..6"),
        (_bad(slots_per_day=7), "slots_per_day=7"),
        (_bad(traffic=np.zeros((3, 80, 2))), "traffic must be \\(regions, time, H, W\\)"),
        (_bad(day_of_week=np.zeros((3, 79), int)), "day_of_week must be \\(regions, time\\)"),
    ],
)
def test_validate_city_rejects_bad_input(fields, message):
    with pytest.raises(DataError, match=message):
        City(**fields)


def test_validate_city_optional_fields_shapes():
    with pytest.raises(DataError, match="residents"):
        random_city(residents=np.ones((3, 3, 2)))
    with pytest.raises(DataError, match="cell_valid"):
        random_city(cell_valid=np.ones((3, 3, 2), bool))
    with pytest.raises(DataError, match="region_origin"):
        random_city(region_origin=np.zeros((2, 2)))
    city = random_city(cell_valid=np.ones((3, 2, 3), bool), region_origin=np.zeros((3, 2)))
    sub = city.subset([2, 0])
    assert sub.cell_valid.shape == (2, 2, 3) and sub.split.tolist() == ["test", "train"]


def test_regions_rejects_unknown_split():
    with pytest.raises(DataError, match="unknown split"):
        random_city().regions("validation")


# ----------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------


def test_window_multiplicity_counts_windows_holding_each_step():
    m = window_multiplicity(70, 64)
    explicit = np.zeros(70, int)
    for s in range(70 - 64 + 1):
        explicit[s : s + 64] += 1
    assert np.array_equal(m, explicit)
    assert window_multiplicity(10, 64).sum() == 0


@pytest.mark.parametrize("q", [99.99, 90.0, 50.0, 3.3])
def test_scaler_percentile_equals_numpy_over_materialised_windows(q):
    series = random_city(R=2, T=83, H=2, W=2, seed=4).traffic
    expected = np.percentile(materialised_windows(series), q)
    assert Scaler.fit(series, q=q).scale == pytest.approx(expected, rel=1e-12)


def test_scaler_leaves_invalid_cells_out():
    series = random_city(R=2, T=70, H=2, W=2, seed=5).traffic
    valid = np.ones((2, 2, 2), bool)
    valid[0, 1, 1] = valid[1, 0, 0] = False
    series[0, :, 1, 1] = 1e6  # a padding cell with absurd values must not matter
    windows = materialised_windows(series)  # (N, L, H, W); region of window i = i % 2
    keep = [windows[i][:, valid[i % 2]] for i in range(windows.shape[0])]
    expected = np.percentile(np.concatenate([k.ravel() for k in keep]), 99.99)
    assert Scaler.fit(series, valid=valid).scale == pytest.approx(expected, rel=1e-12)


def test_scaler_transform_range_and_exact_inverse():
    city = random_city(seed=6)
    scaler = Scaler.fit(city.traffic)
    y = scaler.transform(city.traffic)
    assert y.min() >= 0.0 and y.max() <= 1.0
    below = city.traffic[city.traffic <= scaler.scale]
    assert np.allclose(scaler.inverse(scaler.transform(below)), below, rtol=1e-6, atol=0)
    assert np.all(scaler.transform(np.array([scaler.scale * 3])) == 1.0)  # clipped above the scale
    assert scaler.transform(np.array([scaler.scale * 3]), clip=False)[0] == pytest.approx(3.0)


def test_scaler_errors():
    with pytest.raises(DataError, match="shorter than one 64-step window"):
        Scaler.fit(np.ones((1, 10, 2, 2)))
    with pytest.raises(DataError, match="all zero"):
        Scaler.fit(np.zeros((1, 70, 2, 2)))


def test_city_scalers_fit_on_train_regions_only():
    city = random_city(R=3, split=["train", "test", "test"])
    before = CityScalers.fit(city)
    city.traffic[1:] *= 1000
    after = CityScalers.fit(city)
    assert before.traffic.scale == after.traffic.scale
    assert after.users.scale == Scaler.fit(city.users[:1]).scale
    with pytest.raises(DataError, match="no 'train' regions"):
        CityScalers.fit(random_city(split=["val", "test", "test"]))


# ----------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------


def test_window_starts():
    assert window_starts(70, 64, 1).tolist() == list(range(7))
    assert window_starts(70, 64, 4).tolist() == [0, 4]
    assert window_starts(63, 64).size == 0
    with pytest.raises(DataError, match="stride"):
        window_starts(70, 64, 0)


def test_few_shot_city_keeps_the_first_share_of_windows():
    city = load_city("synthetic-small")
    n = city.n_steps - WINDOW + 1
    few = few_shot_city(city, 0.05)
    k = int(np.ceil(0.05 * n))
    assert few.n_steps == k + WINDOW - 1
    assert window_starts(few.n_steps).size == k
    np.testing.assert_array_equal(few.traffic, city.traffic[:, : few.n_steps])
    np.testing.assert_array_equal(few.slot_of_day, city.slot_of_day[:, : few.n_steps])
    assert few.users is None or few.users.shape == few.traffic.shape
    np.testing.assert_array_equal(few.poi, city.poi)  # static: unchanged
    assert few_shot_city(city, 1.0) is city
    with pytest.raises(DataError, match="fraction"):
        few_shot_city(city, 0.0)
    with pytest.raises(DataError, match="steps"):
        city.head(city.n_steps + 1)


def test_resample_sums_traffic_and_averages_users_over_slots_starting_at_midnight():
    # 15-minute slots starting at slot 5 (01:15): hourly slots start 3 fine steps later, at 02:00
    city = random_city(R=2, T=41, spd=96, start_slot=5, start_day=6)
    hourly = resample_city(city, 60)
    assert hourly.slots_per_day == 24 and hourly.name == "toy@60min"
    assert hourly.n_steps == (41 - 3) // 4
    np.testing.assert_allclose(hourly.traffic[:, 0], city.traffic[:, 3:7].sum(1), rtol=1e-6)
    np.testing.assert_allclose(hourly.users[:, -1], city.users[:, 39 - 4:39].mean(1), rtol=1e-6)
    np.testing.assert_array_equal(hourly.slot_of_day[0, :3], [2, 3, 4])
    np.testing.assert_array_equal(hourly.day_of_week[0, :3], [6, 6, 6])
    np.testing.assert_array_equal(hourly.poi, city.poi)  # static: unchanged
    assert hourly.geography == city.geography  # the same areas
    assert resample_city(city, 15) is city


def test_resample_by_name_and_its_errors():
    half_hourly = load_city("synthetic")
    hourly = load_city("synthetic@60min")
    assert hourly.slots_per_day == half_hourly.slots_per_day // 2
    np.testing.assert_allclose(hourly.traffic, half_hourly.traffic.reshape(
        half_hourly.n_regions, -1, 2, *half_hourly.grid).sum(2), rtol=1e-5)
    with pytest.raises(DataError, match="whole multiple"):
        resample_city(half_hourly, 45)
    with pytest.raises(DataError, match="whole multiple"):
        resample_city(half_hourly, 15)
    with pytest.raises(DataError, match="divide a day"):
        resample_city(half_hourly, 420)


@pytest.mark.parametrize("stride", [1, 5])
def test_make_windows_shapes_and_each_window_equals_its_series_slice(stride):
    city = random_city(R=3, T=80, H=2, W=3, split=["train", "test", "test"])
    w = make_windows(city, split="test", stride=stride)
    starts = np.arange(0, 80 - 64 + 1, stride)
    assert w.traffic.shape == (2 * starts.size, 64, 2, 3) == w.users.shape
    assert w.poi.shape == (2 * starts.size, 4, 2, 3)
    assert w.region.tolist() == [1] * starts.size + [2] * starts.size
    assert w.start.tolist() == starts.tolist() * 2
    sc = w.scalers.traffic
    for k in range(len(w)):
        r, s = w.region[k], w.start[k]
        assert np.array_equal(w.traffic[k], sc.transform(city.traffic[r, s : s + 64]))
        assert np.array_equal(w.users[k], w.scalers.users.transform(city.users[r, s : s + 64]))
        assert np.array_equal(w.slot_of_day[k], city.slot_of_day[r, s : s + 64])
        assert np.array_equal(w.day_of_week[k], city.day_of_week[r, s : s + 64])
        assert np.array_equal(w.poi[k], city.poi[r])
    assert w.traffic.min() >= 0 and w.traffic.max() <= 1
    assert np.allclose(w.time_of_day, w.slot_of_day / 24)
    assert len(w.take(slice(0, 3))) == 3


def test_windows_carry_the_record_one_day_before_their_first_steps():
    """day_before[n, t] = traffic[r, s + t - d] for t < d where that step exists, NaN elsewhere (t >= d is
    inside the window); it follows take/concat and is hidden only at cells hidden throughout a window."""
    city = random_city(R=2, T=100, H=2, W=2, split=["train", "test"])  # 24 slots a day
    w = make_windows(city, split="test", stride=10)
    sc, d = w.scalers.traffic, city.slots_per_day
    assert w.day_before.shape == w.traffic.shape
    for k in range(len(w)):
        s = w.start[k]
        for t in range(64):
            src = s + t - d
            if t < d and src >= 0:
                assert np.allclose(w.day_before[k, t], sc.transform(city.traffic[1, src]))
            else:
                assert np.isnan(w.day_before[k, t]).all()
    assert np.isnan(w.day_before[0]).all() and not np.isnan(w.day_before[3, :d]).any()  # start 0 has no past
    part = w.take(np.array([3, 1]))
    assert np.array_equal(part.day_before, w.day_before[[3, 1]], equal_nan=True)
    both = concat_windows([w, part], "both")
    assert both.day_before.shape[0] == len(w) + 2
    mask = np.zeros(w.traffic.shape, bool)
    mask[:, :, 0, 0] = True  # cell (0, 0) hidden throughout: no record, no past
    mask[:, 40:, 1, 1] = True  # cell (1, 1) observed before 40: its past stays
    hidden = hide_unrecorded(w.day_before, mask)
    assert np.isnan(hidden[:, :, 0, 0]).all()
    assert np.array_equal(hidden[:, :, 1, 1], w.day_before[:, :, 1, 1], equal_nan=True)
    assert hide_unrecorded(None, mask) is None


def test_make_windows_defaults_and_errors():
    city = random_city(R=3, T=70)
    assert len(make_windows(city)) == 3 * 7
    assert make_windows(city, regions=[2]).region.tolist() == [2] * 7
    with pytest.raises(DataError, match="shorter than a 64-step window"):
        make_windows(random_city(T=40), length=64, scalers=CityScalers(Scaler(1.0)))


# ----------------------------------------------------------------------------------------------------
# Loader 2: the paper's release JSON
# ----------------------------------------------------------------------------------------------------


def _write_release_by_hand(directory, city: City, release="TrafficXX", stamp_order=("dow", "slot")):
    """Release files written independently of `save_release_json`, following the release's layout."""
    L = 64
    traffic, users, poi, ts = {}, {}, {}, {}
    for split, key in (("train", "X_train"), ("val", "X_val"), ("test", "X_test")):
        regions = city.regions(split)
        if regions.size == 0:
            continue
        wins, uwins, pwins, stamps = [], [], [], []
        for r in regions:
            for s in range(city.n_steps - L + 1):
                wins.append(city.traffic[r, s : s + L].tolist())
                uwins.append(city.users[r, s : s + L].tolist())
                pwins.append(city.poi[r].tolist())
                pair = {"dow": city.day_of_week[r, s : s + L], "slot": city.slot_of_day[r, s : s + L]}
                stamps.append(np.stack([pair[stamp_order[0]], pair[stamp_order[1]]], -1).tolist())
        traffic[key], users[key], poi[key], ts[split] = [wins], [uwins], pwins, stamps
    traffic["timestamps"] = ts
    (directory / f"24_{release}_short64.json").write_text(json.dumps(traffic))
    (directory / f"{release}_user64.json").write_text(json.dumps(users))
    (directory / f"{release}_poi64.json").write_text(json.dumps(poi))


def _assert_same_city(a: City, b: City):
    for k in ("traffic", "users", "poi", "day_of_week", "slot_of_day"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            assert x.shape == y.shape and np.array_equal(x, y), k
    assert a.split.tolist() == b.split.tolist()
    assert a.slots_per_day == b.slots_per_day


def test_release_json_written_by_hand_round_trips(tmp_path):
    city = random_city(R=4, T=70, H=2, W=2, spd=24, split=["train", "train", "val", "test"])
    _write_release_by_hand(tmp_path, city)
    back = load_release_json(tmp_path, "TrafficXX")
    _assert_same_city(back, city)
    assert back.meta["stride"] == {"train": 1, "val": 1, "test": 1}
    assert back.meta["windows"]["train"] == [(0, 6), (7, 13)]


def test_release_json_reads_time_day_stamp_order(tmp_path):
    city = random_city(R=2, T=66, H=2, W=2, spd=24, split=["train", "test"])
    _write_release_by_hand(tmp_path, city, stamp_order=("slot", "dow"))
    _assert_same_city(load_release_json(tmp_path, "TrafficXX"), city)


@pytest.mark.parametrize("stride", [1, 2, 7])
def test_release_json_round_trip_with_detected_stride(tmp_path, stride):
    T = 64 + 6 * stride  # whole number of strides: the windows cover every step
    city = random_city(R=3, T=T, H=3, W=2, spd=48, split=["train", "val", "test"])
    save_release_json(city, tmp_path, "TrafficYY", stride=stride)
    back = load_release_json(tmp_path, "TrafficYY")
    _assert_same_city(back, city)
    assert back.meta["stride"]["train"] == stride


def test_release_json_regions_separate_even_when_timestamps_wrap_the_week(tmp_path):
    # windows per region = 7 * slots_per_day: the next region's first window starts exactly one slot
    # (mod one week) after the previous region's last window, so only the values tell regions apart
    spd = 12
    city = random_city(R=3, T=7 * spd + 63, H=2, W=2, spd=spd, split=["train", "train", "train"], start_slot=0, start_day=0)
    save_release_json(city, tmp_path, "Wrap")
    back = load_release_json(tmp_path, "Wrap")
    _assert_same_city(back, city)
    assert back.n_regions == 3


def test_release_json_infers_slots_per_day_or_takes_it(tmp_path):
    city = random_city(R=2, T=70, H=2, W=2, spd=96, split=["train", "test"], start_slot=60)
    save_release_json(city, tmp_path, "Z")
    assert load_release_json(tmp_path, "Z").slots_per_day == 96
    assert load_release_json(tmp_path, "Z", slots_per_day=96).slots_per_day == 96
    with pytest.raises(DataError, match="no window crosses midnight"):
        infer_slots_per_day(np.zeros((2, 64), int), np.tile(np.arange(64), (2, 1)))


def _corrupt(path, split_key, window, value=123.456):
    doc = json.loads(path.read_text())
    doc[split_key][0][window][10][0][0] = value
    path.write_text(json.dumps(doc))


def test_release_json_corrupted_window_in_the_middle_is_named(tmp_path):
    city = random_city(R=3, T=72, H=2, W=2, split=["train", "train", "test"])
    paths = save_release_json(city, tmp_path, "C")
    _corrupt(paths["traffic"], "X_train", 4)
    with pytest.raises(DataError, match="split 'train': window 4 .* corrupted"):
        load_release_json(tmp_path, "C")


def test_release_json_corrupted_window_at_a_region_start_is_named(tmp_path):
    city = random_city(R=3, T=72, H=2, W=2, split=["train", "train", "test"])
    paths = save_release_json(city, tmp_path, "C")
    _corrupt(paths["traffic"], "X_train", 9)  # first window of the second train region
    with pytest.raises(DataError, match="split 'train': windows 9..9 .*window 10 does not continue window 9"):
        load_release_json(tmp_path, "C")


def test_release_json_corrupted_users_window_is_detected(tmp_path):
    city = random_city(R=2, T=72, H=2, W=2, split=["train", "test"])
    paths = save_release_json(city, tmp_path, "C")
    doc = json.loads(paths["users"].read_text())
    doc["X_test"][0][3][20][1][1] += 1
    paths["users"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match="split 'test': window 3 .*users differs"):
        load_release_json(tmp_path, "C")


def test_release_json_poi_must_be_static_per_region(tmp_path):
    city = random_city(R=2, T=70, H=2, W=2, split=["train", "test"])
    paths = save_release_json(city, tmp_path, "P")
    doc = json.loads(paths["poi"].read_text())
    doc["X_train"][5][0][0][0] += 1
    paths["poi"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match="POI of window 5 differs from window 0"):
        load_release_json(tmp_path, "P")


def test_release_json_bad_files(tmp_path):
    with pytest.raises(DataError, match="24_Nowhere_short64.json"):
        load_release_json(tmp_path, "Nowhere")
    city = random_city(R=2, T=70, H=2, W=2, split=["train", "test"])
    paths = save_release_json(city, tmp_path, "B")
    with pytest.raises(DataError, match="release cities present there: \\['B'\\]"):
        load_release_json(tmp_path, "Nowhere")
    doc = json.loads(paths["users"].read_text())
    doc["X_train"] = [[w[:, :1].tolist() for w in np.asarray(doc["X_train"][0])]]
    paths["users"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match="users windows .* do not match traffic"):
        load_release_json(tmp_path, "B")
    doc = json.loads(paths["traffic"].read_text())
    del doc["timestamps"]
    paths["traffic"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match="lacks 'timestamps'"):
        load_release_json(tmp_path, "B")
    paths["traffic"].write_text("{not json")
    with pytest.raises(DataError, match="not a readable JSON"):
        load_release_json(tmp_path, "B")


@pytest.mark.real_data
def test_release_json_round_trip_on_real_nanchang_regions(tmp_path):
    path = default_data_dir() / "nanchang.npz"
    if not path.exists():
        pytest.skip(f"{path} absent")
    # 336 = 7 * 48 windows per region: the week-wrap case on real data
    city = load_npz(path).subset([0, 1])  # two train regions: their chains meet at the week wrap
    save_release_json(city, tmp_path, "TrafficNC")
    back = load_release_json(tmp_path, "TrafficNC")
    _assert_same_city(back, city)
    assert back.meta["windows"]["train"] == [(0, 335), (336, 671)]


# ----------------------------------------------------------------------------------------------------
# Loader 3: long tables
# ----------------------------------------------------------------------------------------------------


def long_frames(H=6, W=5, days=2, minutes=10, seed=0, start="2024-03-04 00:00"):
    """A (H x W) grid at `minutes` granularity as long tables, plus the (T, H, W) arrays they hold."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=days * 24 * 60 // minutes, freq=f"{minutes}min")
    T = len(times)
    traffic = rng.gamma(0.5, 10.0, size=(T, H, W)).astype(np.float32)
    users = rng.poisson(15, size=(T, H, W)).astype(np.float32)
    r, c = np.indices((H, W))
    ids = np.array([f"c{i:03d}" for i in range(H * W)]).reshape(H, W)
    tr = pd.DataFrame(
        {
            "cell_id": np.tile(ids.ravel(), T),
            "timestamp": np.repeat(times, H * W),
            "traffic": traffic.reshape(T, -1).ravel(),
            "users": users.reshape(T, -1).ravel(),
        }
    )
    cells = pd.DataFrame({"cell_id": ids.ravel(), "x": 1000 + 250 * (c.ravel() + 0.5), "y": 5000 - 250 * (r.ravel() + 0.5)})
    cats = ["school", "shop", "hospital"]
    poi = pd.DataFrame(
        [(ids[i, j], cat, int(rng.integers(1, 5))) for i in range(H) for j in range(W) for cat in cats if rng.random() < 0.6],
        columns=["cell_id", "category", "count"],
    )
    poi_grid = np.zeros((len(cats), H, W), np.float32)
    idx = {v: (i, j) for (i, j), v in np.ndenumerate(ids)}
    for cid, cat, n in poi.itertuples(index=False):
        poi_grid[sorted(cats).index(cat), idx[cid][0], idx[cid][1]] += n
    return tr, cells, poi, dict(traffic=traffic, users=users, poi=poi_grid, times=times, ids=ids)


def test_long_table_6x5_grid_at_10_minutes_round_trips_through_csv(tmp_path):
    tr, cells, poi, truth = long_frames()
    tr.sample(frac=1.0, random_state=1).to_csv(tmp_path / "traffic.csv", index=False)  # row order irrelevant
    cells.to_csv(tmp_path / "cells.csv", index=False)
    poi.to_csv(tmp_path / "poi.csv", index=False)
    city = load_long_table(tmp_path / "traffic.csv", tmp_path / "cells.csv", tmp_path / "poi.csv")
    assert city.name == "traffic" and city.grid == (6, 5) and city.n_regions == 1
    assert city.slots_per_day == 144 and city.minutes_per_slot == 10
    assert np.array_equal(city.traffic[0], truth["traffic"])
    assert np.array_equal(city.users[0], truth["users"])
    assert city.poi_categories == ["hospital", "school", "shop"]
    assert np.array_equal(city.poi[0], truth["poi"])
    times = truth["times"]
    assert np.array_equal(city.day_of_week[0], times.dayofweek)  # 2024-03-04 is a Monday -> 0
    assert np.array_equal(city.slot_of_day[0], (times.hour * 60 + times.minute) // 10)
    assert city.start_time[0] == np.datetime64("2024-03-04T00:00")
    assert city.cell_size == 250 and city.cell_valid is None
    assert np.allclose(city.region_origin[0], [1000, 5000])
    assert city.cell_ids[0, 2, 3] == truth["ids"][2, 3]
    assert city.split.tolist() == ["train"]


@pytest.mark.parametrize("minutes, spd", [(15, 96), (30, 48), (60, 24)])
def test_long_table_granularities_from_parquet_with_row_col_in_traffic(tmp_path, minutes, spd):
    tr, _, _, truth = long_frames(H=3, W=4, minutes=minutes, start="2024-03-06 06:05")  # off the slot grid
    r, c = np.indices((3, 4))
    where = pd.DataFrame({"cell_id": truth["ids"].ravel(), "row": r.ravel(), "col": c.ravel()})
    tr = tr.merge(where, on="cell_id")
    tr.to_parquet(tmp_path / "t.parquet")
    city = load_long_table(tmp_path / "t.parquet")
    assert city.slots_per_day == spd and city.grid == (3, 4)
    assert np.array_equal(city.traffic[0], truth["traffic"])
    assert city.day_of_week[0, 0] == 2 and city.slot_of_day[0, 0] == (6 * 60 + 5) // minutes  # floor


def test_long_table_time_zones_keep_steps_regular_across_daylight_saving():
    times = pd.date_range("2024-03-30 00:00", periods=3 * 96, freq="15min", tz="Europe/Berlin")  # DST on 31 March
    tr = pd.DataFrame({"cell_id": "a", "timestamp": times, "traffic": 1.0, "row": 0, "col": 0})
    city = load_long_table(tr)
    assert city.n_steps == 3 * 96 and city.meta["timezone"] == "Europe/Berlin"
    assert city.day_of_week[0, 0] == 5 and city.slot_of_day[0, 0] == 0  # Saturday, local midnight
    assert city.start_time[0] == np.datetime64("2024-03-30T00:00")
    text = pd.DataFrame({"cell_id": "a", "timestamp": [f"2024-01-01T{h:02d}:00+08:00" for h in range(24)], "traffic": 1.0, "row": 0, "col": 0})
    city = load_long_table(text)
    assert city.slots_per_day == 24 and city.slot_of_day[0].tolist() == list(range(24))


def test_long_table_column_overrides():
    tr, cells, poi, truth = long_frames(H=2, W=3)
    tr = tr.rename(columns={"cell_id": "cell", "timestamp": "time", "traffic": "dl_bytes"})
    cells = cells.rename(columns={"cell_id": "cell", "x": "easting", "y": "northing"})
    poi = poi.rename(columns={"cell_id": "cell", "category": "kind", "count": "n"})
    cols = {"cell_id": "cell", "timestamp": "time", "traffic": "dl_bytes", "x": "easting", "y": "northing", "category": "kind", "count": "n"}
    city = load_long_table(tr, cells, poi, columns=cols)
    assert np.array_equal(city.traffic[0], truth["traffic"])
    assert np.array_equal(city.poi[0], truth["poi"])
    with pytest.raises(DataError, match="unknown canonical names \\['volume'\\]"):
        load_long_table(tr, cells, columns={"volume": "dl_bytes"})


def test_long_table_geodataframe_cells():
    gpd = pytest.importorskip("geopandas")
    import shapely

    tr, cells, _, truth = long_frames(H=3, W=4)
    x, y = cells["x"].to_numpy(), cells["y"].to_numpy()
    polys = gpd.GeoDataFrame({"cell_id": cells["cell_id"]}, geometry=shapely.box(x - 125, y - 125, x + 125, y + 125), crs="EPSG:32650")
    city = load_long_table(tr, polys)
    assert np.array_equal(city.traffic[0], truth["traffic"])
    assert city.cell_size == pytest.approx(250) and city.crs == "EPSG:32650"
    points = gpd.GeoDataFrame({"cell_id": cells["cell_id"]}, geometry=gpd.points_from_xy(x, y))
    assert np.array_equal(load_long_table(tr, points).traffic, city.traffic)


def test_long_table_region_blocks_pad_partial_blocks():
    tr, cells, poi, truth = long_frames(H=6, W=5)
    city = load_long_table(tr, cells, poi, region_size=(4, 4), seed=3)
    assert city.n_regions == 4 and city.grid == (4, 4)  # blocks (0,0) (0,1) (1,0) (1,1)
    assert city.meta["region_keys"] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    valid = city.cell_valid
    assert valid[0].all() and valid[1].sum() == 4 * 1 and valid[2].sum() == 2 * 4 and valid[3].sum() == 2
    t = truth["traffic"]
    assert np.array_equal(city.traffic[1][:, :, :1], t[:, 0:4, 4:5])
    assert np.array_equal(city.traffic[2][:, :2, :], t[:, 4:6, 0:4])
    assert np.array_equal(city.traffic[3][:, :2, :1], t[:, 4:6, 4:5])
    assert city.traffic[3][:, 2:].max() == 0 and city.traffic[1][:, :, 1:].max() == 0  # padding
    assert np.array_equal(city.poi[2][:, :2, :], truth["poi"][:, 4:6, 0:4])
    assert np.allclose(city.region_origin, [[1000, 5000], [2000, 5000], [1000, 4000], [2000, 4000]])
    assert sorted(city.split.tolist()) == ["test", "train", "train", "val"]
    same = load_long_table(tr, cells, poi, region_size=(4, 4), seed=3)
    assert same.split.tolist() == city.split.tolist()  # seeded rule
    # padding stays out of the scaler: same scale as the percentile over valid cells' windows only
    sc = CityScalers.fit(city)
    assert sc.traffic.scale == Scaler.fit(city.traffic[city.regions("train")], valid=valid[city.regions("train")]).scale


def test_long_table_user_splits_and_holes():
    tr, cells, _, _ = long_frames(H=6, W=5)
    labels = ["train", "test", "train", "val"]
    city = load_long_table(tr, cells, region_size=(4, 4), split=labels)
    assert city.split.tolist() == labels
    city = load_long_table(tr, cells, region_size=(4, 4), split={(0, 0): "train", (0, 1): "val", (1, 0): "test", (1, 1): "train"})
    assert city.split.tolist() == ["train", "val", "test", "train"]
    with pytest.raises(DataError, match="'region' column: drop it or region_size="):
        load_long_table(tr, cells.assign(region=0), region_size=(4, 4))
    with pytest.raises(DataError, match="no label for region \\(1, 1\\)"):
        load_long_table(tr, cells, region_size=(4, 4), split={0: "train", 1: "val", 2: "test"})
    hole = tr[tr["cell_id"] != "c007"]  # cell (1, 2) absent from the traffic table
    city = load_long_table(hole, cells)
    assert city.cell_valid is not None and not city.cell_valid[0, 1, 2] and city.cell_valid.sum() == 29
    assert city.traffic[0, :, 1, 2].max() == 0


def test_assign_splits_rule():
    assert assign_splits(1).tolist() == ["train"]
    assert sorted(assign_splits(2).tolist()) == ["test", "train"]
    assert sorted(assign_splits(3).tolist()) == ["test", "train", "val"]
    labels = assign_splits(20, seed=1)
    assert (labels == "test").sum() == 3 and (labels == "val").sum() == 3
    assert assign_splits(20, seed=1).tolist() == labels.tolist()
    assert assign_splits(20, seed=2).tolist() != labels.tolist()
    with pytest.raises(DataError, match="sum to 1"):
        assign_splits(5, (0.5, 0.2, 0.2))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda tr, c, p: (tr.drop(columns="timestamp"), c, p), "traffic table lacks the column\\(s\\) \\['timestamp'\\].*columns="),
        (lambda tr, c, p: (tr.assign(traffic=tr["traffic"].where(tr.index != 7)), c, p), "traffic has 1 NaN.*row 7"),
        (lambda tr, c, p: (tr.assign(traffic=tr["traffic"].where(tr.index != 9, -1.0)), c, p), "traffic has 1 negative.*row 9"),
        (lambda tr, c, p: (tr.assign(users=tr["users"].where(tr.index != 3)), c, p), "users has 1 NaN"),
        (lambda tr, c, p: (pd.concat([tr, tr.iloc[[40]]]), c, p), "duplicated \\(cell_id, timestamp\\), e.g. cell 'c010' at 2024-03-04 00:20:00 appears 2 times"),
        (lambda tr, c, p: (tr[tr["timestamp"] != pd.Timestamp("2024-03-04 05:00")], c, p), "irregular time steps: the step is 0 days 00:10:00 .* from 2024-03-04 04:50:00 to 2024-03-04 05:10:00"),
        (lambda tr, c, p: (tr, c[c["cell_id"] != "c004"], p), "1 cells appear in the traffic table but not in the cell table, e.g. \\['c004'\\]"),
        (lambda tr, c, p: (tr, c, pd.concat([p, pd.DataFrame({"cell_id": ["zz"], "category": ["shop"], "count": [1]})])), "POI grid mismatch.*\\['zz'\\]"),
        (lambda tr, c, p: (tr, c, p.drop(columns="category")), "POI table lacks the column\\(s\\) \\['category'\\]"),
        (lambda tr, c, p: (tr, c, p.assign(count=-p["count"])), "count has .* negative"),
        (lambda tr, c, p: (tr[~((tr["cell_id"] == "c002") & (tr["timestamp"] == pd.Timestamp("2024-03-04 01:00")))], c, p), "1 \\(cell, timestamp\\) rows are missing, e.g. cell 'c002' at 2024-03-04 01:00:00.*fill_missing"),
        (lambda tr, c, p: (tr, c.drop(columns="y"), p), "has 'x' but not 'y'"),
        (lambda tr, c, p: (tr, c.drop(columns=["x", "y"]), p), "no cell coordinates"),
        (lambda tr, c, p: (tr, c.assign(y=c["y"] * 2), p), "cells are not square"),
        (lambda tr, c, p: (tr, c.assign(x=c["x"] + np.where(c["cell_id"] == "c003", 60.0, 0.0)), p), "not on a regular grid"),
        (lambda tr, c, p: (tr, pd.concat([c, c.iloc[[0]]]), p), "lists cell 'c000' more than once"),
        (lambda tr, c, p: (tr, c.assign(x=np.where(c["cell_id"] == "c001", c["x"] - 250, c["x"])), p), "lie on the same grid position"),
        (lambda tr, c, p: (tr.assign(timestamp="soon"), c, p), "cannot parse the timestamp"),
    ],
)
def test_long_table_bad_input_gives_clear_error(mutate, message):
    tr, cells, poi, _ = long_frames(H=3, W=5, days=1)
    tr, cells, poi = mutate(tr, cells, poi)
    with pytest.raises(DataError, match=message):
        load_long_table(tr.reset_index(drop=True), cells, poi)


def test_long_table_fill_missing_and_step_that_does_not_divide_a_day():
    tr, cells, _, truth = long_frames(H=2, W=2, days=1)
    gap = tr.drop(index=5)
    city = load_long_table(gap, cells, fill_missing=0)
    assert city.traffic.sum() == pytest.approx(truth["traffic"].sum() - tr.loc[5, "traffic"], rel=1e-6)
    times = pd.date_range("2024-01-01", periods=300, freq="7min")
    odd = pd.DataFrame({"cell_id": "a", "timestamp": times, "traffic": 1.0, "row": 0, "col": 0})
    with pytest.raises(DataError, match="does not divide a day"):
        load_long_table(odd)
    with pytest.raises(DataError, match="does not exist"):
        load_long_table("/nonexistent/t.csv")


# ----------------------------------------------------------------------------------------------------
# Geometry: GeoDataFrame and long-table round trips
# ----------------------------------------------------------------------------------------------------


def test_to_geodataframe_cells_and_values():
    city = random_city(R=5, T=70, H=3, W=2, split=["train"] * 3 + ["val", "test"])
    density = np.arange(5 * 3 * 2, dtype=float).reshape(5, 3, 2)
    gdf = to_geodataframe(city, values={"density": density, "shared": np.ones((3, 2))})
    assert len(gdf) == 5 * 3 * 2
    assert list(gdf.columns[:6]) == ["region", "row", "col", "cell_id", "split", "valid"]
    assert np.allclose(gdf.geometry.area, city.cell_size**2)
    assert gdf.geometry.union_all().area == pytest.approx(len(gdf) * city.cell_size**2)  # no overlaps
    row = gdf[(gdf.region == 3) & (gdf.row == 2) & (gdf.col == 1)].iloc[0]
    assert row.density == density[3, 2, 1] and row.split == "val" and row.cell_id == "3/2/1"
    x0, y0 = region_origins(city)[3]
    assert row.geometry.bounds == pytest.approx((x0 + 500, y0 - 1500, x0 + 1000, y0 - 1000))
    with pytest.raises(DataError, match="values\\['bad'\\]"):
        to_geodataframe(city, values={"bad": np.ones((2, 2))})


def test_geodataframe_and_long_table_round_trip():
    city = random_city(R=4, T=70, H=3, W=5, split=["train", "val", "train", "test"])
    tables = to_long_table(city)
    assert set(tables.traffic.columns) == {"cell_id", "timestamp", "traffic", "users"}
    back = from_geodataframe(tables.cells, tables.traffic, tables.poi)
    _assert_same_city(back, city)
    assert np.allclose(back.region_origin, region_origins(city))
    assert back.cell_size == city.cell_size and back.poi_categories == [f"poi_{i}" for i in range(4)]


def test_geodataframe_round_trip_keeps_crs_origins_and_invalid_cells():
    origin = np.array([[0.0, 9000.0], [7000.0, 9000.0]])
    valid = np.ones((2, 2, 3), bool)
    valid[1, 0, 2] = False
    city = random_city(R=2, T=66, H=2, W=3, split=["train", "test"], region_origin=origin, crs="EPSG:3857", cell_size=250.0, cell_valid=valid)
    city.traffic[1, :, 0, 2] = 0
    city.users[1, :, 0, 2] = 0
    tables = to_long_table(city)
    assert len(tables.traffic) == 11 * 66
    back = from_geodataframe(tables.cells, tables.traffic, tables.poi)
    _assert_same_city(back, city)
    assert np.allclose(back.region_origin, origin) and back.crs == "EPSG:3857" and back.cell_size == 250
    assert np.array_equal(back.cell_valid, valid)


def test_long_table_blocks_round_trip_a_side_by_side_city():
    # regions laid out side by side form one grid; cutting it into region-size blocks gives them back
    city = random_city(R=4, T=70, H=2, W=3, split=["train", "train", "val", "test"])
    tables = to_long_table(city)
    cells = tables.cells.drop(columns=["region", "row", "col", "split"])  # geometry only
    back = load_long_table(tables.traffic, cells, tables.poi, region_size=(2, 3), split=list(city.split))
    _assert_same_city(back, city)


# ----------------------------------------------------------------------------------------------------
# load_city
# ----------------------------------------------------------------------------------------------------


def test_load_city_dispatches_by_source(tmp_path):
    city = random_city(R=2, T=70, H=2, W=2, split=["train", "test"])
    np.savez(
        tmp_path / "toy.npz",
        **{k: getattr(city, k) for k in ("traffic", "users", "poi", "day_of_week", "slot_of_day", "split", "slots_per_day")},
    )
    assert np.array_equal(load_city(tmp_path / "toy.npz").traffic, city.traffic)
    rel = tmp_path / "release"
    save_release_json(city, rel, "TrafficQQ")
    assert np.array_equal(load_city(rel).traffic, city.traffic)
    assert np.array_equal(load_city(rel / "24_TrafficQQ_short64.json").traffic, city.traffic)
    tr, cells, _, truth = long_frames(H=2, W=3, days=1)
    tr.to_csv(tmp_path / "t.csv", index=False)
    assert np.array_equal(load_city(tmp_path / "t.csv", cells=cells).traffic[0], truth["traffic"])


def test_load_city_errors_list_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("UOMO_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="needs .*empty/nanchang.npz"):
        load_city("nanchang")
    with pytest.raises(DataError, match="no city at 'paris'.*looked for a file or directory.*nanjing"):
        load_city("paris")
    with pytest.raises(DataError, match="no release traffic file"):
        load_city(tmp_path)
    save_release_json(random_city(R=2, T=70, H=2, W=2, split=["train", "test"]), tmp_path, "A")
    save_release_json(random_city(R=2, T=70, H=2, W=2, split=["train", "test"]), tmp_path, "B")
    with pytest.raises(DataError, match="several release cities \\['A', 'B'\\]: pass city="):
        load_city(tmp_path)
    assert load_city(tmp_path, city="B").name == "B"
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataError, match="unsupported source"):
        load_city(tmp_path / "x.xlsx")
