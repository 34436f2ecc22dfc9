"""Drawing forecast samples from a network: the sampling settings, batched seeded sampling, the device.

`predict_samples` encodes windows, runs the diffusion sampler and decodes, in batches; the forecaster
(`forecasting.forecast`) and the trainer's validation (`forecasting.train`) both call it. Grids other
than the network's 4 x 4 regions are sampled as overlapping 4 x 4 tiles and blended (`forecasting.tiling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .data import Windows
from .diffusion import NoiseSchedule, sample
from .encoding import ContextSwitches, encode_windows, repeat_cond
from .model import UoMoNet
from .tiling import TILE, Blend, TilePlan, blend_tiles, cut_tiles, plan_tiles, tile_windows


def default_device() -> torch.device:
    """CUDA when available, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class SamplingConfig:
    """How forecasts are drawn: sampler, steps, samples per window, stochasticity, point statistic, tiling.

    A grid other than `tile` (rows, cols) is forecast as overlapping tiles of that size, blended
    (`forecasting.tiling`; `tile_stride` None = half the tile, `blend` "mean" or "centre"); `tile=None`
    sends every grid whole through the network (padded to its patch), as before tiling existed.
    """

    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = 20
    n_samples: int = 8
    eta: float = 0.0
    point: Literal["median", "mean"] = "median"
    batch_size: int = 128
    seed: int = 0
    tile: tuple[int, int] | None = TILE
    tile_stride: int | None = None
    blend: Blend = "mean"


def tile_plan(grid: tuple[int, int], sampling: SamplingConfig) -> TilePlan | None:
    """The tiles a grid is forecast in under `sampling`; None when it is sampled whole (one tile, or no tiling)."""
    if sampling.tile is None:
        return None
    plan = plan_tiles(grid, sampling.tile, sampling.tile_stride)
    return None if plan.single else plan


@torch.no_grad()
def predict_samples(
    net: UoMoNet,
    schedule: NoiseSchedule,
    windows: Windows,
    mask: np.ndarray,
    sampling: SamplingConfig = SamplingConfig(),
    context: ContextSwitches = ContextSwitches(),
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """(S, N, T, H, W) samples of normalised traffic; observed entries equal the given values.

    Windows of the tile's size (4 x 4) are sampled whole; other grids tile by tile (`tile_plan`). A batch
    holds about `batch_size` sampled windows (tiles x samples).
    """
    net.eval()
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    plan = tile_plan(windows.traffic.shape[-2:], sampling)
    per_window = sampling.n_samples * (1 if plan is None else plan.n_tiles)
    out = np.empty((sampling.n_samples, *windows.traffic.shape), dtype=np.float32)
    chunk = max(1, sampling.batch_size // per_window)
    for lo in range(0, len(windows), chunk):
        part, part_mask = windows.take(slice(lo, lo + chunk)), mask[lo : lo + chunk]
        if plan is None:
            x = _sample_batch(net, schedule, part, part_mask, sampling, context, device, gen)
        else:
            x = _sample_tiled(net, schedule, part, part_mask, plan, sampling, context, device, gen)
        out[:, lo : lo + len(part)] = x
    return out


def _sample_batch(net, schedule, part: Windows, mask: np.ndarray, sampling: SamplingConfig, context, device,
                  gen: torch.Generator, noise: torch.Tensor | None = None) -> np.ndarray:
    """(S, n, T, H, W) samples of a batch of n windows, each seen whole by the network.

    `noise` (n * S, T, H, W), window-major, is the starting noise (else drawn from `gen` on CPU).
    """
    S = sampling.n_samples
    _, cond, transform = encode_windows(part, mask, context=context, device=device, poi_names=net.config.poi_names)
    cond = repeat_cond(cond, S)
    rep = transform.take(torch.arange(transform.scale.shape[0]).repeat_interleave(S))
    lo_b, hi_b = rep.bounds()
    noise_gen = gen if str(device) == "cpu" else None
    y = sample(
        net, schedule, cond, tuple(cond["observed"].shape), sampler=sampling.sampler,
        steps=sampling.steps, eta=sampling.eta, generator=noise_gen, clamp=(lo_b, hi_b), noise=noise,
    )
    x = rep.from_model(y).clamp(0, 1).cpu().numpy()  # (n*S, T, H, W)
    n = x.shape[0] // S
    observed = np.nan_to_num(part.traffic)
    x = np.where(mask[:, None], x.reshape(n, S, *x.shape[1:]), observed[:, None])  # (n, S, T, H, W)
    return x.transpose(1, 0, 2, 3, 4)


def _sample_tiled(net, schedule, part: Windows, mask: np.ndarray, plan: TilePlan, sampling: SamplingConfig,
                  context, device, gen: torch.Generator) -> np.ndarray:
    """(S, n, T, H, W): every window cut into the plan's tiles, sampled as one batch, blended back.

    The starting noise is drawn once per grid cell and cut like the windows, so overlapping tiles
    start sample j from the same noise where they overlap (see forecasting.tiling).
    """
    n, (T, H, W) = len(part), part.traffic.shape[1:]
    noise = torch.randn((n, sampling.n_samples, T, H, W), generator=gen).numpy()  # (n, S, T, H, W)
    tile_noise = torch.from_numpy(cut_tiles(noise, plan))  # (n * K, S, T, h, w)
    tile_noise = tile_noise.reshape(-1, T, *plan.tile)  # (n * K * S, T, h, w): tile-major, as repeat_cond
    x = _sample_batch(net, schedule, tile_windows(part, plan), cut_tiles(mask, plan), sampling, context,
                      device, gen, noise=tile_noise)  # (S, n * K, T, h, w)
    return blend_tiles(x, plan, sampling.blend, axis=1)  # (S, n, T, H, W)
