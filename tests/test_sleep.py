"""RRU sleep control: hand-worked toys, MILP == DP on random instances, baselines and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from planning.demand import Demand
from planning.errors import InputError
from planning.milp.sleep import always_on, build_sleep_model, dp_schedule, solve_sleep, threshold_policy
from planning.milp.solve import constraints_of
from planning.params import SleepParams
from planning.replay import sleep_objective


def load(values, unit="traffic", ids=None) -> Demand:
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    return Demand(values, unit, ids or [f"c{i}" for i in range(N)], np.arange(T) % 24, np.zeros(T, int), 24,
                  source="real")


# Toy (worked by hand). One cell, K = 2 RRUs of c0 = 10, x0 = 2, loads L = (15, 2, 15), alpha = 0
# (energy = beta x only, beta = 1), w_q = 10, w_e = 1. E_on = 3 slots * 2 RRUs = 6.
#   (2, 2, 2): energy 6/6 = 1, no shortfall, no switch                       J = 1
#   (2, 1, 2): energy 5/6, slot 2 carries 2 <= 10, two switches: J = 5/6 + w_s * 2/3
#   (2, 0, 2): slot 2 loses all of 2 users: QoS 10/3 * 1 -> worse than always on
#   (1, . , .) or (., ., 1): 15 > 10, QoS 10/3 * 5/15 = 10/9 alone -> worse
#   w_s = 0.1: J(2,1,2) = 0.8333 + 0.0667 = 0.9 < 1   -> sleep one RRU in slot 2
#   w_s = 0.5: J(2,1,2) = 0.8333 + 0.3333 = 1.1667 > 1 -> keep both on
@pytest.mark.parametrize("w_switch, x, J", [(0.1, [2, 1, 2], 0.9), (0.5, [2, 2, 2], 1.0)])
@pytest.mark.parametrize("method, solver", [("dp", None), ("milp", "cbc"), ("milp", "highs")])
def test_toy_sleep_by_hand(w_switch, x, J, method, solver):
    p = SleepParams(c0=10.0, n_rru=2, x0=2, beta=1.0, alpha=0.0, w_qos=10.0, w_switch=w_switch, w_energy=1.0)
    plan = solve_sleep(load([[15.0, 2.0, 15.0]]), p, method=method, solver=solver or "cbc")
    assert plan.x.tolist() == [x]
    assert plan.objective == pytest.approx(J, abs=1e-9)


# Toy where the binary is needed (worked by hand). K = 1, c0 = 10, L = 5, alpha = beta = 1, w_q = 0.1,
# w_s = 0. E_on = alpha * 5 + beta * 1 = 6. On: energy 6/6 = 1, J = 1. Off: energy 0, QoS 0.1 * 5/5,
# J = 0.1 -> optimum off. The coefficient of q is w_q/(T L) - w_e alpha/E_on = 0.02 - 1/6 < 0, so
# without the binary the model could claim a shortfall q = 5 with the RRU on (J = 0.267, not real).
@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_served_min_is_exact_when_the_weights_need_a_binary(solver):
    p = SleepParams(c0=10.0, n_rru=1, x0=1, beta=1.0, alpha=1.0, w_qos=0.1, w_switch=0.0)
    plan = solve_sleep(load([[5.0]]), p, method="milp", solver=solver)
    assert plan.n_binaries == 1
    assert plan.x.tolist() == [[0]] and plan.objective == pytest.approx(0.1)
    x, J = dp_schedule(np.array([[5.0]]), p)
    assert x.tolist() == [[0]] and J[0] == pytest.approx(0.1)
    # default weights keep q's coefficient >= 0: no binaries at all
    q = SleepParams(c0=10.0, n_rru=3)
    assert solve_sleep(load([[5.0, 25.0, 12.0]]), q, method="milp").n_binaries == 0


def random_case(rng: np.random.Generator):
    N, T = int(rng.integers(1, 4)), int(rng.integers(4, 14))
    K = rng.integers(1, 4, size=N)
    c0 = rng.uniform(5, 20, size=N)
    L = rng.uniform(0, 1, size=(N, T)) * (c0 * K)[:, None] * rng.uniform(0.6, 1.3)
    L[rng.random((N, T)) < 0.1] = 0.0
    p = SleepParams(
        c0=c0, n_rru=K, x0=rng.integers(0, K + 1), beta=1.0,
        alpha=float(rng.choice([0.0, 0.05, 0.5])),
        w_qos=float(rng.choice([0.05, 1.0, 10.0])), w_switch=float(rng.choice([0.0, 0.3, 2.0])),
        w_energy=float(rng.choice([0.5, 1.0])), min_active=int(rng.integers(0, 2)) if K.min() >= 1 else 0,
    )
    return load(L), p


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_dp_on_random_instances(seed):
    d, p = random_case(np.random.default_rng(seed))
    x_dp, J_dp = dp_schedule(d.values, p)
    assert sleep_objective(x_dp, d.values, p) == pytest.approx(J_dp.sum(), abs=1e-9)
    groups = ("cell", "all")[seed % 2]
    m = solve_sleep(d, p, method="milp", solver="highs" if seed % 3 == 0 else "cbc", groups=groups)
    # the MILP's schedule, re-scored exactly, is as good as the DP's (optimal up to ties)
    assert sleep_objective(m.x, d.values, p) == pytest.approx(J_dp.sum(), abs=1e-7)
    assert np.all(m.x >= p.min_active)


def test_per_bs_models_and_constraint_names():
    d = load(np.random.default_rng(3).uniform(0, 30, size=(6, 8)), ids=[f"bs{i // 3}s{i % 3}" for i in range(6)])
    p = SleepParams(c0=10.0, n_rru=3)
    by_bs = solve_sleep(d, p, method="milp", groups=np.repeat([0, 1], 3))
    assert by_bs.n_models == 2
    assert by_bs.objective == pytest.approx(solve_sleep(d, p).objective, abs=1e-7)
    names = {c.name for c in constraints_of(build_sleep_model(d, p, cells=[0]).prob)}
    assert {"qos_bs0s0_0", "switch_up_bs0s0_0", "switch_down_bs0s0_7"} <= names


def test_always_on_and_threshold_policies():
    p = SleepParams(c0=10.0, n_rru=3, x0=3)
    d = load([[5.0, 25.0, 12.0, 0.0]])
    assert always_on(d, p).x.tolist() == [[3, 3, 3, 3]]
    # react to the previous slot's load at 80% utilisation: ceil(5/8) = 1, ceil(25/8) = 4 -> 3, ceil(12/8) = 2
    assert threshold_policy(d, p).x.tolist() == [[3, 1, 3, 2]]
    assert threshold_policy(d, p, history=np.array([[20.0]])).x.tolist() == [[3, 1, 3, 2]]
    assert threshold_policy(d, p, history=np.array([[7.0]])).x[0, 0] == 1
    with pytest.raises(InputError, match="threshold"):
        threshold_policy(d, p, threshold=0.0)


def test_dp_beats_or_ties_every_baseline():
    d, p = random_case(np.random.default_rng(42))
    best = solve_sleep(d, p).objective
    for plan in (always_on(d, p), threshold_policy(d, p)):
        assert best <= plan.objective + 1e-12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c0=0.0), "c0"),
        (dict(c0=-1.0), "c0"),
        (dict(c0=10.0, n_rru=0), "n_rru"),
        (dict(c0=10.0, x0=5), "x0"),
        (dict(c0=10.0, min_active=4), "min_active"),
        (dict(c0=[10.0, 10.0]), "one value per cell"),
    ],
)
def test_bad_sleep_parameters_are_rejected(kwargs, match):
    with pytest.raises(InputError, match=match):
        solve_sleep(load([[1.0, 2.0]]), SleepParams(**kwargs))


def test_bad_weights_and_units_are_rejected():
    with pytest.raises(InputError, match="beta"):
        SleepParams(c0=1.0, beta=0.0)
    with pytest.raises(InputError, match="w_qos"):
        SleepParams(c0=1.0, w_qos=-1.0)
    with pytest.raises(InputError, match="'users' but the RRU capacity c0 is in 'traffic'"):
        solve_sleep(load([[1.0]], unit="users"), SleepParams(c0=1.0))
