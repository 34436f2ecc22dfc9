"""Tiling any grid into overlapping 4 x 4 tiles: positions, exact blends, the unchanged 4 x 4 path, and
a 5 x 5 / 6 x 5 grid forecast held to the forecasts of its 4 x 4 crops."""

from dataclasses import replace

import numpy as np
import pytest

from forecasting.data import make_windows
from forecasting.data.synthetic import make_city
from forecasting.forecast import forecast_scalers, load_forecaster
from forecasting.inference import SamplingConfig, predict_samples, tile_plan
from forecasting.interface import hide
from forecasting.masks import batch_masks
from forecasting.tiling import (
    all_crops,
    blend_tiles,
    blend_weights,
    crop_forecast_mae,
    cut_tiles,
    mae_on_crops,
    plan_tiles,
    tile_starts,
    tile_windows,
)

# grid -> (start rows, start cols) with the default stride (half the tile: 2)
PLANS = {
    (4, 4): ((0,), (0,)),
    (5, 5): ((0, 1), (0, 1)),
    (6, 5): ((0, 2), (0, 1)),
    (8, 8): ((0, 2, 4), (0, 2, 4)),
    (9, 4): ((0, 2, 4, 5), (0,)),
}


@pytest.mark.parametrize("grid", list(PLANS))
def test_tiles_cover_every_cell_as_documented(grid):
    plan = plan_tiles(grid)
    assert (plan.rows, plan.cols) == PLANS[grid]
    assert plan.tile == (4, 4) and plan.n_tiles == len(plan.rows) * len(plan.cols)
    assert plan.coverage().min() >= 1  # every cell in at least one tile
    assert plan.rows[-1] + 4 == grid[0] and plan.cols[-1] + 4 == grid[1]  # last tile flush with the edge
    assert plan.single == (grid == (4, 4))


def test_narrow_grids_and_strides():
    plan = plan_tiles((3, 6))  # narrower than a tile: tiles of the grid's extent there
    assert plan.tile == (3, 4) and (plan.rows, plan.cols) == ((0,), (0, 2))
    assert plan_tiles((3, 3)).single  # one tile equal to the grid: sampled whole, as before
    assert all_crops((6, 5)).n_tiles == 3 * 2  # every 4 x 4 crop
    assert tile_starts(9, 4, stride=3).tolist() == [0, 3, 5]
    with pytest.raises(ValueError, match="stride"):
        tile_starts(9, 4, stride=5)  # would leave cells uncovered


def test_blend_weights_favour_cells_away_from_cuts():
    plan = plan_tiles((4, 5))  # two tiles side by side, at columns 0 and 1
    w = blend_weights(plan, "centre")
    # along the rows both tile edges are the grid's border: no cut, equal weights
    assert w[0].tolist() == [[4, 3, 2, 1]] * 4 and w[1].tolist() == [[1, 2, 3, 4]] * 4
    assert np.all(blend_weights(plan_tiles((4, 4)), "centre") == blend_weights(plan_tiles((4, 4)), "centre")[0, 0, 0])
    assert np.all(blend_weights(plan, "mean") == 1)


def test_blend_by_hand():
    plan = plan_tiles((1, 5))  # tiles (1 x 4) at columns 0 and 1
    tiles = np.array([[[[2.0, 2.0, 2.0, 2.0]]], [[[6.0, 6.0, 6.0, 6.0]]]])  # (N * K = 2, 1, 1, 4)
    assert blend_tiles(tiles, plan, "mean")[0, 0, 0].tolist() == [2, 4, 4, 4, 6]
    # centre: cell 1 is 3 cells inside tile 0 (weight 3) and on tile 1's cut edge (weight 1)
    assert blend_tiles(tiles, plan, "centre")[0, 0, 0].tolist() == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("grid", list(PLANS) + [(3, 6), (7, 10)])
@pytest.mark.parametrize("blend", ["centre", "mean"])
def test_blend_of_identical_tiles_reproduces_them_exactly(grid, blend):
    rng = np.random.default_rng(0)
    samples = (rng.random((3, 2, 5, *grid)) * rng.choice([1e-4, 1.0, 1e3], (3, 2, 5, *grid))).astype(np.float32)
    plan = plan_tiles(grid)
    tiles = np.stack([cut_tiles(s, plan) for s in samples])  # (S, N * K, T, h, w): every tile the same values
    out = blend_tiles(tiles, plan, blend, axis=1)
    assert out.dtype == np.float32 and np.array_equal(out, samples)


def test_tile_windows_cut_every_array_and_repeat_the_rest():
    city = make_city(rows=6, cols=5, region_size=(6, 5), days=2, slots_per_day=48, seed=1)
    win = make_windows(city, stride=32)
    plan = plan_tiles(city.grid)
    tiles = tile_windows(win, plan)
    assert len(tiles) == len(win) * plan.n_tiles and tiles.traffic.shape[1:] == (64, 4, 4)
    k, (r, c) = 3, plan.origins[3]
    assert np.array_equal(tiles.traffic[k], win.traffic[0, :, r : r + 4, c : c + 4])
    assert np.array_equal(tiles.poi[plan.n_tiles + k], win.poi[1, :, r : r + 4, c : c + 4])
    assert np.array_equal(tiles.users[k], win.users[0, :, r : r + 4, c : c + 4])
    assert (tiles.region == np.repeat(win.region, plan.n_tiles)).all()
    assert (tiles.start == np.repeat(win.start, plan.n_tiles)).all()


def _model(**sampling):
    return load_forecaster("uomo-synthetic-cpu", device="cpu", **sampling)


def test_four_by_four_windows_take_the_untiled_path_bit_for_bit():
    city = make_city(rows=8, cols=8, days=3, slots_per_day=48, seed=0)
    win = make_windows(city, stride=64).take(slice(0, 5))
    mask = batch_masks("short", len(win), win.traffic.shape[1:])
    model = _model()
    assert tile_plan((4, 4), model.sampling) is None
    cfg = SamplingConfig(n_samples=2, steps=3, seed=4)
    run = lambda c: predict_samples(model.net, model.schedule, hide(win, mask), mask, c, model.context)  # noqa: E731
    assert np.array_equal(run(cfg), run(replace(cfg, tile=None)))


def test_tiled_forecast_is_seeded_and_keeps_observed_entries():
    city = make_city(rows=6, cols=5, region_size=(6, 5), days=2, slots_per_day=48, seed=2)
    win = make_windows(city, stride=64)
    mask = batch_masks("long", len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
    model = _model(n_samples=3, steps=3, batch_size=8)  # 3 samples x 4 tiles: one window per batch
    assert tile_plan(city.grid, model.sampling).n_tiles == 4
    a = model.predict(hide(win, mask), mask, calibrated=False).samples
    b = model.predict(hide(win, mask), mask, calibrated=False).samples
    assert a.shape == (3, *win.traffic.shape) and np.array_equal(a, b)
    assert np.array_equal(a[:, ~mask], np.broadcast_to(win.traffic[~mask], a[:, ~mask].shape))
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    whole = replace(model.sampling, tile=None)  # the padding path is still there
    assert not np.array_equal(model.sample(hide(win, mask), mask, whole), a)


# Measured with exactly these settings over city seeds 0..7 (tiled grid MAE / the crops' MAE, short task):
# 5 x 5: 0.940-0.973 (seed 3: 0.960); 6 x 5: 0.957-1.007 (seed 3: 0.978). The worst seed leaves 4.3% of
# the 5% bound; the test runs seed 3, and everything in it is seeded, so it cannot flake.
@pytest.mark.parametrize("grid", [(5, 5), (6, 5)])
def test_grid_forecast_is_no_worse_than_its_crops(grid):
    """Tiled forecast of a 5 x 5 / 6 x 5 grid vs every 4 x 4 crop forecast alone, MAE on the same cells."""
    city = make_city(rows=2 * grid[0], cols=2 * grid[1], region_size=grid, days=4, slots_per_day=48, seed=3)
    win = make_windows(city, stride=16, scalers=forecast_scalers(city))  # 4 regions x 9 windows
    mask = batch_masks("short", len(win), win.traffic.shape[1:], rng=np.random.default_rng(0))
    model = _model(n_samples=4, steps=5)
    model.calibration = None  # the network's own median: what tiling changes
    crops = all_crops(grid)
    tiled = mae_on_crops(model.predict(hide(win, mask), mask).mean, win, mask, crops)
    alone = crop_forecast_mae(model, win, mask, crops)
    assert tiled <= 1.05 * alone, (tiled, alone)


def test_a_grid_narrower_than_a_tile_is_tiled_along_its_long_side():
    city = make_city(rows=3, cols=6, region_size=(3, 6), days=2, slots_per_day=48, seed=4)
    win = make_windows(city, stride=64)
    mask = batch_masks("short", len(win), win.traffic.shape[1:])
    model = _model(n_samples=2, steps=2)
    plan = tile_plan(city.grid, model.sampling)
    assert plan.tile == (3, 4) and plan.n_tiles == 2  # 3 x 4 tiles at columns 0 and 2, padded by the network
    pred = model.predict(hide(win, mask), mask)
    assert pred.samples.shape == (2, *win.traffic.shape) and np.isfinite(pred.mean).all()
