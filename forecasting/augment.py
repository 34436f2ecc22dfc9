"""Training-time augmentation of window batches (the `--augment` option of `uomo-train`).

A city grid has no preferred orientation: the traffic of a 4 x 4 region mirrored left-right or
rotated by a quarter turn is as plausible a region as the original. The dihedral augmentation maps
each window through one of the symmetries of its grid, drawn uniformly:

    D4 = {identity, 3 rotations, 4 reflections}  when H == W  (8 maps),
    {identity, flip H, flip W, flip both}        when H != W  (4 maps: a transpose would change the shape).

Every spatial array of the window (traffic, users, POI, valid cells) goes through the same map, so a
window stays self-consistent; time features are untouched. Task masks are drawn after augmentation.
"""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("none", "dihedral")

#: batch keys whose last two axes are the grid (H, W)
SPATIAL_KEYS = ("traffic", "users", "poi", "valid", "day_before")


def dihedral_maps(height: int, width: int) -> list[tuple[bool, bool, bool]]:
    """The grid's symmetries as (transpose, flip rows, flip columns), applied in that order."""
    transposes = (False, True) if height == width else (False,)
    return [(t, fh, fw) for t in transposes for fh in (False, True) for fw in (False, True)]


def apply_map(a: np.ndarray, transpose: bool, flip_h: bool, flip_w: bool) -> np.ndarray:
    """`a` (..., H, W) mapped by one symmetry (a copy)."""
    if transpose:
        a = np.swapaxes(a, -1, -2)
    if flip_h:
        a = a[..., ::-1, :]
    if flip_w:
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def augment_batch(batch: dict, kind: str, rng: np.random.Generator) -> dict:
    """`batch` (arrays with a leading window axis) with every window mapped by a random symmetry.

    kind: 'none' (returned unchanged, no random draw) or 'dihedral'. Deterministic in `rng`.
    """
    if kind == "none":
        return batch
    if kind != "dihedral":
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {kind!r}")
    height, width = batch["traffic"].shape[-2:]
    maps = dihedral_maps(height, width)
    picks = rng.integers(len(maps), size=batch["traffic"].shape[0])
    for key in (k for k in SPATIAL_KEYS if k in batch):  # e.g. no day_before in a batch drawn without history
        arr = batch[key]
        for i, pick in enumerate(picks):
            arr[i] = apply_map(arr[i], *maps[pick])
    return batch
