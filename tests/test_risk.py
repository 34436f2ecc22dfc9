"""Risk-aware planning: scenario (SAA) deployment, expected-cost and chance-constrained sleep control,
quantile planning and rolling-horizon control, on toys with hand-checkable answers."""

from __future__ import annotations

import numpy as np
import pytest

from planning.demand import Demand, real_demand
from planning.errors import InputError
from planning.milp.deploy import solve_deployment
from planning.milp.sleep import dp_schedule, solve_sleep, threshold_policy
from planning.params import DeployParams, SleepParams
from planning.replay import deploy_objective, sleep_objective


def cube(values, scenarios=None, unit="users") -> Demand:
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    return Demand(values, unit, [f"c{i}" for i in range(N)], np.arange(T) % 24, np.zeros(T, int), 24,
                  grid_index=np.column_stack([np.zeros(N, int), np.zeros(N, int), np.arange(N)]), source="toy",
                  scenarios=None if scenarios is None else np.asarray(scenarios, dtype=float))


# Two-scenario deployment (worked by hand). One cell, one slot, C0 = 10, alpha = 4 (a BS costs 4), beta = 0;
# demand is 0 or 30 with equal probability (mean 15).
#   on the mean 15:  x = 1: 10 - 4 = 6;  x = 2: 15 - 8 = 7;  x = 3: 15 - 12 = 3          -> x = 2
#   on both (SAA):   x = 1: (0 + 10)/2 - 4 = 1;  x = 2: (0 + 20)/2 - 8 = 2;
#                    x = 3: (0 + 30)/2 - 12 = 3; x = 4: (0 + 30)/2 - 16 = -1              -> x = 3, J = 3
#   on quantile 0.9 of {0, 30} (linear interpolation: 27): x = 3 (27 - 12 = 15 beats x = 2: 20 - 8 = 12
#                    and x = 4: 27 - 16 = 11)
def test_two_scenario_deployment_matches_the_hand_worked_optimum():
    d = cube([[15.0]], scenarios=[[[0.0]], [[30.0]]])
    p = DeployParams(capacity=10, max_bs=5, alpha=4, beta=0)
    assert solve_deployment(d, p).x.tolist() == [2]
    for method in ("greedy", "milp", "milp-compact"):
        plan = solve_deployment(d, p, method=method, on="scenarios")
        assert plan.x.tolist() == [3], method
        assert plan.objective == pytest.approx(3.0)
        assert plan.served.shape == (1, 1) and plan.served[0, 0] == pytest.approx(15.0)  # mean of 0 and 30
    assert solve_deployment(d, p, on="quantile", q=0.9).x.tolist() == [3]


def test_scenario_deployment_greedy_equals_milp_on_random_instances():
    rng = np.random.default_rng(4)
    for _ in range(4):
        N, T, K = 5, 6, 3
        sc = rng.gamma(1.5, 10, size=(K, N, T))
        d = cube(sc.mean(0), sc)
        p = DeployParams(capacity=12, max_bs=int(rng.integers(3, 12)), alpha=float(rng.uniform(1, 6)), beta=0.5)
        g = solve_deployment(d, p, method="greedy", on="scenarios")
        m = solve_deployment(d, p, method="milp", on="scenarios")
        assert g.objective == pytest.approx(m.objective, rel=1e-6)
        # the reported objective is the mean over scenarios of the plan's objective on each
        mean_j = np.mean([deploy_objective(g.x, sc[k], p) for k in range(K)])
        assert g.objective == pytest.approx(mean_j, rel=1e-9)


@pytest.mark.parametrize("epsilon", [None, 0.0, 0.34])
def test_scenario_sleep_dp_equals_milp_on_random_instances(epsilon):
    rng = np.random.default_rng(7)
    N, T, K = 3, 7, 4
    sc = rng.uniform(0, 30, size=(K, N, T))
    d = cube(sc.mean(0), sc, unit="traffic")
    p = SleepParams(c0=10.0, n_rru=3, w_qos=10.0, w_switch=1.0, w_energy=1.0)
    dp = solve_sleep(d, p, method="dp", on="scenarios", epsilon=epsilon)
    milp = solve_sleep(d, p, method="milp", on="scenarios", epsilon=epsilon)
    expected = lambda x: np.mean([sleep_objective(x, sc[k], p) for k in range(K)])  # noqa: E731
    assert expected(dp.x) == pytest.approx(expected(milp.x), rel=1e-6)
    _, J = dp_schedule(d.values, p, sc, epsilon)
    assert J.sum() == pytest.approx(expected(dp.x), rel=1e-9)  # the DP's value is the expected objective
    if epsilon is not None:  # the chance constraint holds in every cell-slot (or all K RRUs are on)
        short = (sc > 10.0 * dp.x[None] * (1 + 1e-12)).mean(axis=0)
        assert np.all((short <= epsilon + 1e-12) | (dp.x == 3))


def test_scenario_sleep_hedges_where_the_point_plan_does_not():
    # one slot, load 5 or 25 (mean 15), c0 = 10, K = 3, QoS weighted heavily: the point plan covers 15 with
    # 2 RRUs; the expected cost over scenarios buys the third one (25 would fall short by 20%).
    sc = np.array([[[5.0]], [[25.0]]])
    d = cube([[15.0]], sc, unit="traffic")
    p = SleepParams(c0=10.0, n_rru=3, x0=2, w_qos=50.0, w_switch=0.0, w_energy=1.0)
    assert solve_sleep(d, p).x.tolist() == [[2]]
    assert solve_sleep(d, p, on="scenarios").x.tolist() == [[3]]
    assert solve_sleep(d, p, on="scenarios", epsilon=0.5).x.tolist() == [[3]]


def test_risk_settings_out_of_range_are_refused():
    d = cube([[15.0]], [[[5.0]], [[25.0]]], unit="traffic")
    p = SleepParams(c0=10.0, n_rru=3)
    with pytest.raises(InputError, match="epsilon must lie in"):
        solve_sleep(d, p, on="scenarios", epsilon=1.5)
    with pytest.raises(InputError, match="needs on='scenarios'"):
        solve_sleep(d, p, epsilon=0.1)
    with pytest.raises(InputError, match=">= 2 scenarios"):
        solve_sleep(cube([[15.0]], unit="traffic"), p, on="scenarios")
    with pytest.raises(InputError, match=r"quantile must lie in \(0, 1\)"):
        solve_deployment(cube([[15.0]], [[[5.0]], [[25.0]]]), DeployParams(capacity=10, max_bs=2), on="quantile", q=1.0)


def test_rolling_horizon_with_last_value_forecasts_is_the_threshold_rule():
    """Known answer: re-planning every slot on a last-value forecast with no switching cost and QoS dominant
    keeps ceil(L_{t-1} / c0) RRUs on: the threshold rule at full utilisation (threshold 1)."""
    from forecasting.baselines import BASELINES
    from forecasting.data.synthetic import city_from_name
    from planning.rolling import rolling_forecast, rolling_sleep

    city = city_from_name("synthetic-small")
    first, stop = 50, 90
    truth = real_demand(city, "test", "traffic", steps=slice(first, stop))
    regions = city.regions("test")
    c0 = truth.values.max(axis=1) / 3 + 1e-9
    p = SleepParams(c0=c0, n_rru=3, w_qos=1e6, w_switch=0.0, w_energy=1.0)
    fc = rolling_forecast(BASELINES["last_value"]().fit(city), city, regions, first, stop, every=1)
    plan = rolling_sleep(fc, truth, p)
    history = city.traffic[regions, first - 1].reshape(-1, 1).astype(float)
    rule = threshold_policy(truth, p, threshold=1.0, history=history)
    assert np.array_equal(plan.x, rule.x)
    # committing 4 slots per plan: each block holds the level observed just before it
    fc4 = rolling_forecast(BASELINES["last_value"]().fit(city), city, regions, first, stop, every=4)
    x4 = rolling_sleep(fc4, truth, p).x
    assert np.array_equal(x4[:, 4:8], np.repeat(rule.x[:, 4:5], 4, axis=1))
    with pytest.raises(InputError, match="draws no samples"):
        rolling_sleep(fc, truth, p, on="scenarios")
