"""The training pool: each city's normalised windows, the cities' batch shares, and batches with task masks.

`build_pool` turns a city's training regions into (region, start) pairs over its normalised series;
`city_sampling_weights` gives each city its share of a batch (a family of cities counts as one);
`draw_batch` draws a batch of one grid shape with a task mask per window (short, long, generation,
random, in the run's task mix), deterministic in its random generator. Used by `forecasting.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .augment import augment_batch
from .data import City, CityScalers, cut_day_before, few_shot_city, hide_unrecorded, window_starts
from .encoding import ContextSwitches, static_layers
from .masks import batch_masks
from .validation import city_group


@dataclass
class CityPool:
    """One city's normalised training material: arrays plus the (region, start) pairs to sample."""

    city: City
    scalers: CityScalers
    traffic: np.ndarray  # (R, T, H, W) in [0, 1]
    users: np.ndarray | None
    pairs: np.ndarray  # (N, 2) region, start
    weight: float = 1.0  # relative share of batch samples drawn from this city


def build_pool(city: City, length: int = 64, fraction: float = 1.0, weight: float = 1.0) -> CityPool:
    """The training windows of `city` (all of them, or its first `fraction`: see `few_shot_city`)."""
    city = few_shot_city(city, fraction, length)
    scalers = CityScalers.fit(city, length)
    train = city.regions("train")
    starts = window_starts(city.n_steps, length)
    pairs = np.array([(r, s) for r in train for s in starts], dtype=np.int64).reshape(-1, 2)
    users = None if city.users is None or scalers.users is None else scalers.users.transform(city.users)
    return CityPool(city, scalers, scalers.traffic.transform(city.traffic), users, pairs, weight)


def city_sampling_weights(cities: Sequence[City], weights: dict) -> list[float]:
    """Relative batch share of each city: `weights[name]` if given, else its group's weight
    (`weights[group]`, default 1) shared evenly by the group's cities, so a family of N cities counts
    as one city: w_c = W_g / N_g. A key naming neither a city nor a group is refused (a typo)."""
    sizes: dict[str, int] = {}
    for c in cities:
        sizes[city_group(c)] = sizes.get(city_group(c), 0) + 1
    unknown = sorted(set(weights) - sizes.keys() - {c.name for c in cities})
    if unknown:
        raise ValueError(f"--city-weight names no city or family of this run: {unknown} "
                         f"(cities/families: {sorted(sizes)})")
    return [float(weights[c.name]) if c.name in weights
            else float(weights.get(city_group(c), 1.0)) / sizes[city_group(c)] for c in cities]


def draw_batch(pools: Sequence[CityPool], size: int, task_mix: dict, rng: np.random.Generator,
               augment: str = "none", history_drop: float | None = None,
               context: ContextSwitches | None = None, poi_names: Sequence[str] = (), static_drop: float = 0.0) -> dict:
    """A batch of windows (one grid shape) with a task mask each; numpy arrays, deterministic in rng.

    augment: 'dihedral' maps each window by a random grid symmetry before the masks are drawn.
    history_drop: with a share in [0, 1], the batch also carries `day_before` (each window's record one
    day before its steps that precede it, `cut_day_before`; NaN at cells the mask hides throughout), and
    that share of the windows, drawn at random, go without it (so the network also serves windows cut
    without their past). None (default): no `day_before`, and no extra random draw.
    context, poi_names: the static layers as the network reads them (`static_layers`: POI, and residents
    with `context.residents`), with `poi_ids` (size, C) when the network knows `poi_names`; None (default):
    each city's POI counts as they are, no ids. static_drop: share of the windows, drawn at random, shown
    without their static layers (`poi_valid` False), as a network that knows names sees a city whose
    categories it does not know; 0 (default): no extra random draw.
    """
    shapes = sorted({p.traffic.shape[2:] for p in pools})
    shape = shapes[rng.integers(len(shapes))]
    group = [p for p in pools if p.traffic.shape[2:] == shape]
    weights = np.array([p.weight for p in group], float)
    which = rng.choice(len(group), size=size, p=weights / weights.sum())
    T = 64
    H, W = shape

    def static(city: City) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """The city's static layers for all its regions (R, C [+1], H, W), their valid flags and ids."""
        if context is None:
            return city.poi, None, None
        return static_layers(city.poi, city.poi_categories, city.residents, context, poi_names)

    statics = {g: static(group[g].city) for g in np.unique(which)}  # each drawn city once, indexed by region below
    max_poi = max((layers.shape[1] for layers, _, _ in statics.values() if layers is not None), default=1)
    out = {
        "traffic": np.zeros((size, T, H, W), np.float32),
        "users": np.zeros((size, T, H, W), np.float32),
        "users_available": np.zeros(size, bool),
        "poi": np.zeros((size, max_poi, H, W), np.float32),
        "poi_valid": np.zeros((size, max_poi), bool),
        **({"poi_ids": np.zeros((size, max_poi), np.int64)} if poi_names and context is not None else {}),
        "time_of_day": np.zeros((size, T), np.float32),
        "day_of_week": np.zeros((size, T), np.int64),
        "valid": np.ones((size, T, H, W), bool),
        "slots_per_day": np.zeros(size, np.int64),
    }
    if history_drop is not None:
        out["day_before"] = np.full((size, T, H, W), np.nan, np.float32)
    for i, g in enumerate(which):
        pool = group[g]
        r, s = pool.pairs[rng.integers(len(pool.pairs))]
        sl = slice(s, s + T)
        out["traffic"][i] = pool.traffic[r, sl]
        if pool.users is not None:
            out["users"][i] = pool.users[r, sl]
            out["users_available"][i] = True
        layers, valid, ids = statics[g]
        if layers is not None:
            C = layers.shape[1]
            out["poi"][i, :C] = layers[r]
            out["poi_valid"][i, :C] = True if valid is None else valid[r]
            if ids is not None:
                out["poi_ids"][i, :C] = ids[r]
        out["time_of_day"][i] = pool.city.slot_of_day[r, sl] / pool.city.slots_per_day
        out["day_of_week"][i] = pool.city.day_of_week[r, sl]
        out["slots_per_day"][i] = pool.city.slots_per_day
        if history_drop is not None:
            d = pool.city.slots_per_day
            out["day_before"][i] = cut_day_before(pool.traffic, np.array([r]), np.array([s]), T, d)[0]
        if pool.city.cell_valid is not None:
            out["valid"][i] = pool.city.cell_valid[r][None]
    out = augment_batch(out, augment, rng)
    names = list(task_mix)
    probs = np.array([task_mix[n] for n in names], float)
    tasks = rng.choice(len(names), size=size, p=probs / probs.sum())
    masks = np.zeros((size, T, H, W), bool)
    for j, name in enumerate(names):
        idx = np.flatnonzero(tasks == j)
        if idx.size == 0:
            continue
        if name == "generation":
            masks[idx] = np.stack([
                batch_masks("generation", 1, (T, H, W), rng=rng, fraction=float(rng.uniform(0.1, 0.5)))[0] for _ in idx
            ])
        elif name == "random":
            masks[idx] = np.stack([
                batch_masks("random", 1, (T, H, W), rng=rng, fraction=float(rng.uniform(0.2, 0.8)))[0] for _ in idx
            ])
        else:
            masks[idx] = batch_masks(name, idx.size, (T, H, W))
    out["mask"] = masks & out["valid"]  # padded cells are neither forecast nor scored
    if static_drop > 0:
        out["poi_valid"][rng.random(size) < static_drop] = False
    if history_drop is not None:
        out["day_before"] = hide_unrecorded(out["day_before"], out["mask"])
        out["day_before"][rng.random(size) < history_drop] = np.nan
    return out
