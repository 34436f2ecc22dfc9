"""Task masks: short/long horizons, generation (whole cells), random; registry and batches."""

import numpy as np
import pytest

from forecasting.masks import (
    EVAL_TASKS,
    batch_masks,
    generation_mask,
    horizon_mask,
    long_term_mask,
    random_mask,
    short_term_mask,
    task_mask,
)

SHAPE = (64, 4, 4)


def test_short_term_hides_exactly_the_last_16_of_64():
    m = short_term_mask(SHAPE)
    assert m.shape == SHAPE and m.dtype == bool
    assert not m[:48].any()
    assert m[48:].all()
    assert m.sum() == 16 * 16


def test_long_term_hides_exactly_the_last_48_of_64():
    m = long_term_mask(SHAPE)
    assert not m[:16].any()
    assert m[16:].all()
    assert m.sum() == 48 * 16


def test_horizon_masks_scale_with_window_length_and_accept_n_observed():
    assert short_term_mask((32, 2, 3)).sum(axis=(1, 2)).tolist() == [0] * 24 + [6] * 8
    assert long_term_mask((64, 2, 2), n_observed=10)[:10].sum() == 0
    assert long_term_mask((64, 2, 2), n_observed=10)[10:].all()


@pytest.mark.parametrize("n_observed", [0, 64, -1, 70])
def test_horizon_mask_rejects_observing_nothing_or_everything(n_observed):
    with pytest.raises(ValueError, match="n_observed"):
        horizon_mask(SHAPE, n_observed)


def test_generation_default_hides_a_quarter_of_cells_for_all_steps():
    m = generation_mask(SHAPE)
    cells = m[0]
    assert cells.sum() == 4  # 25% of 16 cells
    assert (m == cells[None]).all()  # whole cells, every step


def test_generation_default_is_reproducible_and_follows_rng():
    assert (generation_mask(SHAPE) == generation_mask(SHAPE)).all()
    draws = {generation_mask(SHAPE, rng=np.random.default_rng(s))[0].tobytes() for s in range(10)}
    assert len(draws) > 1


def test_generation_with_explicit_cells_list_and_map():
    m = generation_mask(SHAPE, cells=[(0, 1), (3, 3)])
    expected = np.zeros((4, 4), bool)
    expected[0, 1] = expected[3, 3] = True
    assert (m == expected[None]).all()
    assert (generation_mask(SHAPE, cells=expected) == m).all()


@pytest.mark.parametrize("fraction, k", [(0.5, 8), (0.1, 2), (0.0, 1), (1.0, 15)])
def test_generation_fraction_hides_round_fraction_of_cells_but_never_none_or_all(fraction, k):
    assert generation_mask(SHAPE, fraction=fraction)[0].sum() == k


def test_generation_rejects_bad_cells():
    with pytest.raises(ValueError, match="outside"):
        generation_mask(SHAPE, cells=[(4, 0)])
    with pytest.raises(ValueError, match="cell map"):
        generation_mask(SHAPE, cells=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="at least one"):
        generation_mask(SHAPE, cells=np.zeros((4, 4), bool))


def test_random_mask_hides_the_fraction_of_entries():
    m = random_mask(SHAPE, fraction=0.3, rng=np.random.default_rng(1))
    assert m.sum() == round(0.3 * m.size)
    assert m.any(axis=0).sum() > 4  # spread over cells, not whole-cell tubes
    assert not (m == m[:1]).all()


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_random_mask_rejects_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="fraction"):
        random_mask(SHAPE, fraction=fraction)


def test_task_mask_registry_and_unknown_task():
    assert (task_mask("short", SHAPE) == short_term_mask(SHAPE)).all()
    assert (task_mask("long", SHAPE) == long_term_mask(SHAPE)).all()
    assert set(EVAL_TASKS) == {"short", "long", "generation"}
    with pytest.raises(ValueError, match="unknown task"):
        task_mask("nowcast", SHAPE)


def test_batch_masks_shapes_and_fixed_tasks_repeat():
    for task in ("short", "long", "generation", "random"):
        b = batch_masks(task, 5, (64, 3, 5))
        assert b.shape == (5, 64, 3, 5) and b.dtype == bool
    b = batch_masks("short", 3, SHAPE)
    assert (b == short_term_mask(SHAPE)[None]).all()
    b[0, 0, 0, 0] = True  # a writable copy, not a view shared between windows
    assert not b[1, 0, 0, 0]


def test_batch_masks_draw_generation_and_random_independently_per_window():
    g = batch_masks("generation", 20, SHAPE, rng=np.random.default_rng(3))
    assert (g.sum(axis=(1, 2, 3)) == 4 * 64).all()
    assert len({w[0].tobytes() for w in g}) > 1
    r = batch_masks("random", 10, SHAPE, rng=np.random.default_rng(3), fraction=0.2)
    assert len({w.tobytes() for w in r}) == 10
