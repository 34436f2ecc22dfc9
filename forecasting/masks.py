"""Task masks of the paper (Eq. 1-3) as pure functions on (T, H, W) windows, plus a registry.

Convention everywhere in the toolkit: a mask is boolean, **True = hidden (to be forecast)**,
False = observed. (The paper writes m = 1 for observed steps in Eq. 1; we use the complement so that
losses and metrics read `error[mask]`.)

- short-term: the first 48 of 64 steps observed, the last 16 hidden (paper: 48 -> 16);
- long-term: the first 16 observed, the last 48 hidden (16 -> 48);
- generation: a subset of cells hidden for all steps (an area with no history), the rest observed;
- random: independent space-time masking of a fraction of entries.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SHORT_OBSERVED = 48
LONG_OBSERVED = 16
GENERATION_FRACTION = 0.25


def horizon_mask(shape: tuple[int, int, int], n_observed: int) -> np.ndarray:
    """Hide every step from `n_observed` on, for all cells. shape = (T, H, W)."""
    T, H, W = shape
    if not 0 < n_observed < T:
        raise ValueError(f"n_observed must lie in 1..{T - 1}, got {n_observed}")
    mask = np.zeros(shape, dtype=bool)
    mask[n_observed:] = True
    return mask


def short_term_mask(shape: tuple[int, int, int] = (64, 4, 4), n_observed: int | None = None) -> np.ndarray:
    """Short-term prediction: observe 3/4 of the window (48 of 64 steps), forecast the rest."""
    return horizon_mask(shape, n_observed if n_observed is not None else shape[0] * SHORT_OBSERVED // 64)


def long_term_mask(shape: tuple[int, int, int] = (64, 4, 4), n_observed: int | None = None) -> np.ndarray:
    """Long-term prediction: observe 1/4 of the window (16 of 64 steps), forecast the rest."""
    return horizon_mask(shape, n_observed if n_observed is not None else shape[0] * LONG_OBSERVED // 64)


def generation_mask(
    shape: tuple[int, int, int] = (64, 4, 4),
    cells: np.ndarray | list[tuple[int, int]] | None = None,
    fraction: float = GENERATION_FRACTION,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Hide whole series of some cells for all T steps (paper Eq. 2).

    `cells` is either an (H, W) boolean map or a list of (row, col); if omitted, round(fraction * H * W)
    cells (at least one, at most H*W - 1) are drawn with `rng` (seeded default for reproducibility).
    """
    T, H, W = shape
    if cells is None:
        rng = rng if rng is not None else np.random.default_rng(0)
        k = int(np.clip(round(fraction * H * W), 1, max(H * W - 1, 1)))
        flat = np.zeros(H * W, dtype=bool)
        flat[rng.choice(H * W, size=k, replace=False)] = True
        cell_map = flat.reshape(H, W)
    else:
        cells_arr = np.asarray(cells)
        if cells_arr.dtype == bool:
            if cells_arr.shape != (H, W):
                raise ValueError(f"cell map must be (H, W) = {(H, W)}, got {cells_arr.shape}")
            cell_map = cells_arr
        else:
            cell_map = np.zeros((H, W), dtype=bool)
            for r, c in cells_arr.reshape(-1, 2):
                if not (0 <= r < H and 0 <= c < W):
                    raise ValueError(f"cell ({r}, {c}) lies outside the {H} x {W} grid")
                cell_map[r, c] = True
        if not cell_map.any():
            raise ValueError("generation needs at least one hidden cell")
    return np.broadcast_to(cell_map[None], shape).copy()


def random_mask(
    shape: tuple[int, int, int] = (64, 4, 4),
    fraction: float = 0.5,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Hide a `fraction` of all space-time entries chosen at random (paper Eq. 3); never none/all."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = int(np.prod(shape))
    k = int(np.clip(round(fraction * n), 1, n - 1))
    flat = np.zeros(n, dtype=bool)
    flat[rng.choice(n, size=k, replace=False)] = True
    return flat.reshape(shape)


TASKS: dict[str, Callable[..., np.ndarray]] = {
    "short": short_term_mask,
    "long": long_term_mask,
    "generation": generation_mask,
    "random": random_mask,
}
EVAL_TASKS = ("short", "long", "generation")


def task_mask(task: str, shape: tuple[int, int, int], **kwargs) -> np.ndarray:
    """The mask of `task` ('short', 'long', 'generation', 'random') for a (T, H, W) window."""
    try:
        fn = TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}: use one of {sorted(TASKS)}") from None
    return fn(shape, **kwargs)


def batch_masks(
    task: str,
    n: int,
    shape: tuple[int, int, int],
    rng: np.random.Generator | None = None,
    **kwargs,
) -> np.ndarray:
    """(n, T, H, W) masks of `task`; generation/random masks are drawn independently per window."""
    if task in ("generation", "random"):
        rng = rng if rng is not None else np.random.default_rng(0)
        return np.stack([task_mask(task, shape, rng=rng, **kwargs) for _ in range(n)])
    return np.broadcast_to(task_mask(task, shape, **kwargs)[None], (n, *shape)).copy()
