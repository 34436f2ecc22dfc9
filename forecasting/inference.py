"""Drawing forecast samples from a network: the sampling settings, batched seeded sampling, the device.

`predict_samples` encodes windows, runs the diffusion sampler and decodes, in batches; the forecaster
(`forecasting.forecast`) and the trainer's validation (`forecasting.train`) both call it.
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


def default_device() -> torch.device:
    """CUDA when available, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class SamplingConfig:
    """How forecasts are drawn: sampler, steps, samples per window, stochasticity, point statistic."""

    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = 20
    n_samples: int = 8
    eta: float = 0.0
    point: Literal["median", "mean"] = "median"
    batch_size: int = 128
    seed: int = 0


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
    """(S, N, T, H, W) samples of normalised traffic; observed entries equal the given values."""
    net.eval()
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    S = sampling.n_samples
    out = np.empty((S, *windows.traffic.shape), dtype=np.float32)
    chunk = max(1, sampling.batch_size // S)
    for lo in range(0, len(windows), chunk):
        part = windows.take(slice(lo, lo + chunk))
        _, cond, transform = encode_windows(part, mask[lo : lo + chunk], context=context, device=device)
        cond = repeat_cond(cond, S)
        rep = transform.take(torch.arange(transform.scale.shape[0]).repeat_interleave(S))
        lo_b, hi_b = rep.bounds()
        noise_gen = gen if str(device) == "cpu" else None
        y = sample(
            net, schedule, cond, tuple(cond["observed"].shape), sampler=sampling.sampler,
            steps=sampling.steps, eta=sampling.eta, generator=noise_gen, clamp=(lo_b, hi_b),
        )
        x = rep.from_model(y).clamp(0, 1).cpu().numpy()  # (n*S, T, H, W)
        n = x.shape[0] // S
        observed = np.nan_to_num(part.traffic)
        x = np.where(mask[lo : lo + chunk][:, None], x.reshape(n, S, *x.shape[1:]), observed[:, None])
        out[:, lo : lo + n] = x.transpose(1, 0, 2, 3, 4)
    return out
