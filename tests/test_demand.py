"""Demand cubes: axes, aggregation, unit conversion, POI/resident calibration, forecast tiling."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.data import City
from forecasting.interface import Forecaster, Prediction
from planning.demand import Demand, UnitConversion, real_demand
from planning.proxy_demand import poi_demand, resident_demand
from planning.errors import InputError
from planning.forecast_demand import forecast_demand, rotation_groups, window_plan


def tiny_city(T: int = 100, spd: int = 8, seed: int = 0, residents: bool = True) -> City:
    """4 regions (2 train, 1 val, 1 test) of 2 x 2 cells whose demand follows exact static laws.

    users = profile[slot] * (2 * poi_0 + 0.5 * poi_2) = profile[slot] * 3 * residents,
    traffic = users / k[slot]: POI, residents and the unit ratio are all exactly recoverable.
    """
    rng = np.random.default_rng(seed)
    R, H, W = 4, 2, 2
    poi = rng.integers(0, 6, size=(R, 3, H, W)).astype(float)
    poi[:, :, 0, 0] += 1  # no all-zero region
    score = 2 * poi[:, 0] + 0.5 * poi[:, 2]  # (R, H, W)
    residents_layer = score / 3.0
    sod = np.arange(T) % spd
    dow = (np.arange(T) // spd) % 7
    profile = 1.0 + np.sin(2 * np.pi * np.arange(spd) / spd) ** 2
    k = np.linspace(0.01, 0.02, spd)  # users per traffic unit by slot of day
    users = profile[sod][None, :, None, None] * score[:, None]
    traffic = users / k[sod][None, :, None, None]
    return City(
        name="tiny", traffic=traffic, users=users, poi=poi,
        residents=residents_layer if residents else None,
        day_of_week=np.broadcast_to(dow, (R, T)), slot_of_day=np.broadcast_to(sod, (R, T)),
        slots_per_day=spd, split=np.array(["train", "train", "val", "test"]),
        region_origin=np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, -1000.0], [1000.0, -1000.0]]),
        cell_size=500.0,
    )


def demand(values, unit="users", spd=4, sod0=0) -> Demand:
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    sod = (sod0 + np.arange(T)) % spd
    return Demand(values, unit, [f"c{i}" for i in range(N)], sod, (sod0 + np.arange(T)) // spd % 7, spd,
                  grid_index=np.column_stack([np.zeros(N, int), np.zeros(N, int), np.arange(N)]), source="real")


# ---------------------------------------------------------------------------------------------------
# The cube
# ---------------------------------------------------------------------------------------------------


def test_real_demand_orders_cells_region_row_col_and_keeps_time_axis():
    city = tiny_city()
    d = real_demand(city, split="test", unit="users")
    assert d.values.shape == (4, 100) and d.unit == "users" and d.source == "real"
    assert d.cell_ids.tolist() == ["r3_0_0", "r3_0_1", "r3_1_0", "r3_1_1"]
    np.testing.assert_allclose(d.values[2], city.users[3, :, 1, 0])  # cell (row 1, col 0)
    np.testing.assert_array_equal(d.slot_of_day, city.slot_of_day[3])
    # region 3 has origin (1000, -1000): centre of (row 1, col 0) = (1250, -1750)
    np.testing.assert_allclose(d.coords[2], [1250.0, -1750.0])
    t = real_demand(city, unit="traffic", steps=slice(10, 20))
    np.testing.assert_allclose(t.values[0], city.traffic[3, 10:20, 0, 0])


def test_aggregate_mean_max_sum_by_hand():
    # 4 slots/day -> 2 slots/day; the series starts at slot 1, so slot 1 (a half period) is dropped
    d = demand([[9, 1, 3, 5, 7, 2]], spd=4, sod0=1)
    mean = d.aggregate(2, "mean")
    np.testing.assert_allclose(mean.values, [[2.0, 6.0]])  # (1+3)/2, (5+7)/2; trailing 2 dropped
    np.testing.assert_array_equal(mean.slot_of_day, [1, 0])  # slots 2-3 -> 1, then next day's 0-1 -> 0
    np.testing.assert_allclose(d.aggregate(2, "max").values, [[3.0, 7.0]])
    np.testing.assert_allclose(d.aggregate(2, "sum").values, [[4.0, 12.0]])
    with pytest.raises(InputError, match="divide"):
        d.aggregate(3)


def test_hourly_week_from_half_hourly():
    d = demand(np.ones((2, 48 * 8)), spd=48)
    week = d.aggregate(24).slots(0, 168)
    assert week.values.shape == (2, 168) and week.slots_per_day == 24


def test_neighbours_rook_and_queen_on_a_2x2_grid():
    d = real_demand(tiny_city(), split="test")
    assert d.neighbours("rook").tolist() == [[0, 1], [0, 2], [1, 3], [2, 3]]
    assert len(d.neighbours("queen")) == 6


@pytest.mark.parametrize(
    "values, message",
    [([[1.0, np.nan]], "NaN"), ([[1.0, -2.0]], "negative"), ([1.0, 2.0], "2-d")],
)
def test_bad_demand_is_rejected(values, message):
    with pytest.raises(InputError, match=message):
        Demand(np.asarray(values), "users", ["a"], [0, 1], [0, 0], 4)


def test_bad_unit_and_ids_rejected():
    with pytest.raises(InputError, match="unit"):
        Demand(np.ones((1, 2)), "erlang", ["a"], [0, 1], [0, 0], 4)
    with pytest.raises(InputError, match="unique"):
        Demand(np.ones((2, 2)), "users", ["a", "a"], [0, 1], [0, 0], 4)


# ---------------------------------------------------------------------------------------------------
# Unit conversion and static proxies
# ---------------------------------------------------------------------------------------------------


def test_unit_conversion_recovers_the_per_slot_ratio_and_round_trips():
    city = tiny_city()
    conv = UnitConversion.fit(city)
    np.testing.assert_allclose(conv.users_per_traffic, np.linspace(0.01, 0.02, 8), rtol=1e-6)
    traffic = real_demand(city, unit="traffic")
    users = traffic.convert("users", conv)
    np.testing.assert_allclose(users.values, real_demand(city, unit="users").values, rtol=1e-5)
    np.testing.assert_allclose(users.convert("traffic", conv).values, traffic.values, rtol=1e-9)
    # on hourly-ised slots (8 -> 4 per day) the ratio of each new slot is the mean of its two
    coarse = conv.convert(np.ones((1, 4)), np.arange(4), "traffic", "users", slots_per_day=4)
    np.testing.assert_allclose(coarse[0], np.linspace(0.01, 0.02, 8).reshape(4, 2).mean(1))
    with pytest.raises(InputError):
        UnitConversion.constant(0.0)


def test_poi_demand_recovers_an_exact_poi_law():
    city = tiny_city()
    d = poi_demand(city, unit="users")  # calibrated on the 2 training regions only
    np.testing.assert_allclose(d.values, real_demand(city, unit="users").values, rtol=1e-6)
    assert d.source == "poi"
    # proportional to the POI total instead: still a valid cube, but no longer exact
    s = poi_demand(city, unit="users", weights="sum")
    assert s.values.shape == d.values.shape and not np.allclose(s.values, d.values)


def test_resident_demand_recovers_an_exact_resident_law_and_needs_a_layer():
    city = tiny_city()
    d = resident_demand(city, unit="traffic")
    np.testing.assert_allclose(d.values, real_demand(city, unit="traffic").values, rtol=1e-6)
    bare = tiny_city(residents=False)
    with pytest.raises(InputError, match="residents"):
        resident_demand(bare)
    layer = tiny_city().residents
    d2 = resident_demand(bare, residents=layer)  # a user-provided layer
    np.testing.assert_allclose(d2.values, d.values * 0 + real_demand(city).values, rtol=1e-6)
    with pytest.raises(InputError, match="residents must be"):
        resident_demand(bare, residents=layer[:2])


# ---------------------------------------------------------------------------------------------------
# Forecast tiling
# ---------------------------------------------------------------------------------------------------


def test_window_plan_by_hand():
    # long-term (16 observed, 48 hidden) over 100 steps from step 16: [0, 64) then the end-aligned [36, 100)
    assert window_plan(100, 16, 16).tolist() == [0, 36]
    # generation (all 64 hidden) over 130 steps: [0, 64), [64, 128), end-aligned [66, 130)
    assert window_plan(130, 0, 0).tolist() == [0, 64, 66]
    with pytest.raises(InputError):
        window_plan(50, 0, 0)  # shorter than a window


def test_rotation_groups_partition_and_isolate_hidden_cells():
    groups = rotation_groups(4, 4)
    assert len(groups) == 4 and np.array_equal(sum(g.astype(int) for g in groups), np.ones((4, 4), int))
    for g in groups:
        r, c = np.nonzero(g)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr or dc:
                    rr, cc = r + dr, c + dc
                    ok = (rr >= 0) & (rr < 4) & (cc >= 0) & (cc < 4)
                    assert not g[rr[ok], cc[ok]].any()  # every neighbour of a hidden cell is observed


class TruthPeeker(Forecaster):
    """Returns the (normalised, unclipped) truth for hidden entries; asserts they arrive hidden."""

    name = "truth"

    def __init__(self, city: City):
        self.city = city
        self.calls = 0

    def predict(self, windows, mask):
        self.calls += 1
        assert np.isnan(windows.traffic[mask]).all() and not np.isnan(windows.traffic[~mask]).any()
        assert np.isnan(windows.users[mask]).all()
        t = windows.start[:, None] + np.arange(windows.traffic.shape[1])[None]
        truth = self.city.traffic[windows.region[:, None], t] / windows.scalers.traffic.scale
        return Prediction(mean=truth)


def test_generation_covers_every_cell_from_its_surroundings():
    city = tiny_city(T=150)
    f = TruthPeeker(city)
    d = forecast_demand(f, city, task="generation", unit="traffic")
    assert f.calls == 4  # one call per rotation group
    np.testing.assert_allclose(d.values, real_demand(city, unit="traffic").values, rtol=1e-5)
    assert d.source == "forecast:truth"
    users = forecast_demand(f, city, task="generation", unit="users")
    np.testing.assert_allclose(users.values, real_demand(city, unit="users").values, rtol=1e-4)


def test_long_term_rolls_16_to_48_windows_over_the_horizon():
    city = tiny_city(T=150)
    d = forecast_demand(TruthPeeker(city), city, task="long", unit="traffic")
    truth = real_demand(city, unit="traffic", steps=slice(16, None))
    assert d.n_slots == 134
    np.testing.assert_allclose(d.values, truth.values, rtol=1e-5)
    np.testing.assert_array_equal(d.slot_of_day, truth.slot_of_day)
    later = forecast_demand(TruthPeeker(city), city, task="long", unit="traffic", first=40)
    assert later.n_slots == 110


class Constant(Forecaster):
    name = "constant"

    def __init__(self, value: float):
        self.value = value

    def predict(self, windows, mask):
        return Prediction(mean=np.full(windows.traffic.shape, self.value))


def test_forecast_is_back_in_raw_units_and_clipped_at_zero():
    from forecasting.data import CityScalers

    city = tiny_city(T=100)
    half = forecast_demand(Constant(0.5), city, task="generation", unit="traffic")
    np.testing.assert_allclose(half.values, 0.5 * CityScalers.fit(city).traffic.scale, rtol=1e-6)
    negative = forecast_demand(Constant(-0.3), city, task="long", unit="traffic")
    assert np.all(negative.values == 0.0)
