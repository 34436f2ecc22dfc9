"""Replay: hand-computed scores on real demand, regret, guards, and no solver import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from planning.demand import Demand
from planning.errors import InputError
from planning.params import DeployParams, SleepParams
from planning.replay import replay_deployment, replay_sleep, sleep_terms


def cube(values, unit="users", source="real", spd=24) -> Demand:
    values = np.asarray(values, dtype=float)
    N, T = values.shape
    return Demand(values, unit, [f"c{i}" for i in range(N)], np.arange(T) % spd, np.zeros(T, int), spd,
                  source=source)


def test_deployment_scores_by_hand():
    # x = (1, 0), C0 = 10, real R = [[15, 5], [8, 0]]
    #   served = min(10, 15) + min(10, 5) + 0 + 0 = 15 of 28 -> 15/28
    #   deficit: loaded cell-slots (0,0) 15 > 10, (0,1) 5 <= 10, (1,0) 8 > 0 -> 2 of 3
    #   idle: installed 10 per slot in cell 0 over 2 slots = 20; unused (10-5) = 5 -> 0.25
    #   cost 1 new BS of M = 4 allowed -> 0.25;  J = 15 - 1 * 2 * 1 = 13 (alpha = 1, T = 2, beta = 0)
    p = DeployParams(capacity=10, max_bs=4, alpha=1.0)
    s = replay_deployment(np.array([1, 0]), cube([[15, 5], [8, 0]]), p)
    assert s.served_ratio == pytest.approx(15 / 28)
    assert s.deficit == pytest.approx(2 / 3)
    assert s.idle == pytest.approx(0.25)
    assert s.cost == 1 and s.cost_ratio == pytest.approx(0.25) and s.n_bs == 1
    assert s.objective == pytest.approx(13.0) and s.regret is None
    # the oracle (1, 1): J = 15 + 8 - 4 = 19 -> regret (19 - 13) / ((1 + beta) * 28) = 6 / 28
    r = replay_deployment(np.array([1, 0]), cube([[15, 5], [8, 0]]), p, oracle=np.array([1, 1]))
    assert r.regret == pytest.approx(6 / 28)


def test_existing_sites_are_free_in_cost():
    p = DeployParams(capacity=10, max_bs=4, alpha=1.0, existing=[1, 0])
    s = replay_deployment(np.array([2, 1]), cube([[15, 5], [8, 0]]), p)
    assert s.cost == 2 and s.cost_ratio == pytest.approx(2 / 3)  # 2 new of the 3 still allowed


def test_replay_refuses_a_forecast_as_truth_and_mismatched_cells():
    p = DeployParams(capacity=10, max_bs=2)
    with pytest.raises(InputError, match="real demand"):
        replay_deployment(np.array([1, 0]), cube([[1, 2], [3, 4]], source="forecast:x"), p)
    s = replay_deployment(np.array([1, 0]), cube([[1, 2], [3, 4]], source="poi"), p, allow_any_source=True)
    assert s.served_ratio == pytest.approx(3 / 10)

    class Plan:
        x = np.array([1, 0])
        cell_ids = np.array(["c1", "c0"])

    with pytest.raises(InputError, match="cells differ"):
        replay_deployment(Plan(), cube([[1, 2], [3, 4]]), p)
    with pytest.raises(InputError, match="BS counts"):
        replay_deployment(np.array([1, 0, 2]), cube([[1, 2], [3, 4]]), p)


def test_sleep_scores_by_hand():
    # one cell, K = 2, c0 = 10, x0 = 2, alpha = 0, beta = 1, two days of 2 slots (slots_per_day = 2)
    # real L = (15, 2, 15, 0), schedule x = (1, 1, 2, 0)
    #   relative shortfall: (15-10)/15 = 1/3, 0, 0, 0 (no load) -> qos = (1/3) / 4 slots
    #   switches |1-2| + 0 + |2-1| + |0-2| = 4 over 1 cell x 2 days -> 2 per cell per day
    #   energy sum x = 4 vs always on 2 * 4 = 8 -> 0.5
    p = SleepParams(c0=10.0, n_rru=2, x0=2, alpha=0.0, beta=1.0, w_qos=10, w_switch=1, w_energy=1)
    real = cube([[15, 2, 15, 0]], unit="traffic", spd=2)
    s = replay_sleep(np.array([[1, 1, 2, 0]]), real, p)
    assert s.qos == pytest.approx(1 / 12)
    assert s.shortfall_ratio == pytest.approx(5 / 32)
    assert s.switches == 4 and s.switching == pytest.approx(2.0)
    assert s.energy == pytest.approx(4.0) and s.energy_ratio == pytest.approx(0.5)
    # J = 10 * (1/3) / 4 + 1 * 4 / 4 + 4 / 8 = 0.8333 + 1 + 0.5
    assert s.objective == pytest.approx(10 / 12 + 1.0 + 0.5)
    on = replay_sleep(np.full((1, 4), 2), real, p)
    assert on.qos == 0 and on.switches == 0 and on.energy_ratio == 1.0 and on.objective == pytest.approx(1.0)
    r = replay_sleep(np.array([[1, 1, 2, 0]]), real, p, oracle=np.full((1, 4), 2))
    assert r.regret == pytest.approx(10 / 12 + 1.5 - 1.0)


def test_sleep_terms_reject_impossible_schedules():
    p = SleepParams(c0=10.0, n_rru=2)
    with pytest.raises(InputError, match="n_rru"):
        sleep_terms(np.array([[3]]), np.array([[1.0]]), p)
    with pytest.raises(InputError, match="shape"):
        sleep_terms(np.array([[1, 1]]), np.array([[1.0]]), p)


def test_replay_never_imports_the_solver():
    code = "import sys, planning.replay; sys.exit(1 if 'pulp' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
