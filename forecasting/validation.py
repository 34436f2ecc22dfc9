"""Validation during training with the real task metric: MAE of sampled forecasts on val regions.

`train.py` calls `validate_model` every `val_every` steps and keeps the best checkpoint by its score.
Cities are validated in groups (`city_group`): a city alone, or a family of cities (the synthetic
prior's) that counts as one city.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .data import City, Windows, concat_windows, make_windows
from .inference import SamplingConfig, predict_samples
from .interface import hide
from .masks import EVAL_TASKS, batch_masks

if TYPE_CHECKING:  # train.py imports this module
    from .train_config import TrainConfig
    from .train_pool import CityPool


def city_group(city: City) -> str:
    """The group a city is weighted and validated in: its family (`meta["family"]`, e.g. the synthetic
    prior's cities) or else the city itself."""
    return str(city.meta.get("family", city.name))


def validate_model(net, schedule, pools: Sequence[CityPool], cfg: TrainConfig, device) -> dict:
    """MAE of sampled point forecasts on val windows of each city group x task; 'score' is their mean
    (None when no city has val regions).

    A group is a city, or a family of cities (`city_group`, e.g. 64 prior cities) that counts as one:
    its members share the `val_max_windows` budget and their windows are scored together, in one
    batch per granularity."""
    groups: dict[str, list[CityPool]] = {}
    for pool in pools:
        if pool.city.regions("val").size:
            groups.setdefault(city_group(pool.city), []).append(pool)
    results = {}
    for name, members in groups.items():
        budget = max(1, cfg.val_max_windows // len(members))
        by_granularity: dict[int, list] = {}
        for pool in members:
            by_granularity.setdefault(pool.city.slots_per_day, []).append(_val_windows(pool, cfg, budget))
        batches = [concat_windows(parts, name) if len(parts) > 1 else parts[0] for parts in by_granularity.values()]
        errors = [_val_errors(net, schedule, win, cfg, device) for win in batches]
        for task in EVAL_TASKS:
            joint = errors[0][task] if len(errors) == 1 else np.concatenate([e[task] for e in errors])
            results[f"{name}/{task}"] = float(joint.mean())
    results["score"] = float(np.mean(list(results.values()))) if results else None  # None: no val regions
    return results


def _val_windows(pool: CityPool, cfg: TrainConfig, max_windows: int) -> Windows:
    """The val windows of `pool` every `val_stride` steps, thinned evenly to at most `max_windows`."""
    win = make_windows(pool.city, split="val", stride=cfg.val_stride, scalers=pool.scalers)
    if len(win) > max_windows:
        win = win.take(np.linspace(0, len(win) - 1, max_windows).astype(int))
    return win


def _val_errors(net, schedule, win: Windows, cfg: TrainConfig, device) -> dict:
    """Absolute errors of the sampled median at every scored entry of `win`, per task."""
    sampling = SamplingConfig(steps=cfg.val_steps, n_samples=cfg.val_samples, seed=cfg.seed)
    errors = {}
    for task in EVAL_TASKS:
        mask = batch_masks(task, len(win), win.traffic.shape[1:], rng=np.random.default_rng(cfg.seed))
        samples = predict_samples(net, schedule, hide(win, mask, futr_exog=cfg.context_switches.futr_names), mask, sampling,
                                  cfg.context_switches, device)
        errors[task] = np.abs(np.median(samples, 0) - win.traffic)[mask]
    return errors
