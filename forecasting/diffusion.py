"""Masked diffusion process: noise schedule, training loss (Eq. 7 and Eq. 11) and mask-aware samplers.

Never imports the network: every function takes the denoiser as an argument and the conditioning as
one keyword dict `cond` (observed part, mask, time features, optional context) that is passed through
unchanged, so pre-training and context fine-tuning share this one code path.

Parameterisation: the network predicts the clean masked part x0 (not the noise eps). Forecast targets
are small, strongly structured signals that are mostly conditioned away by the observed part; x0
prediction keeps the regression target on the data scale at every step, makes few-step DDIM accurate
(the prediction at the first step is already the posterior-mean estimate) and lets us clamp it to the
valid range. eps is recovered from x0 when a sampler needs it:  eps = (x_k - sqrt(ab_k) x0) / sqrt(1 - ab_k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch

Denoiser = Callable[..., torch.Tensor]


# ----------------------------------------------------------------------------------------------------
# Schedule
# ----------------------------------------------------------------------------------------------------


@dataclass
class NoiseSchedule:
    """Discrete forward process q(x_k | x_0) = N(sqrt(ab_k) x_0, (1 - ab_k) I), k = 0..K-1."""

    betas: torch.Tensor  # (K,)

    @classmethod
    def cosine(cls, steps: int = 100, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Cosine schedule (Nichol & Dhariwal 2021): ab(k) = cos^2(((k/K) + s) / (1 + s) * pi/2) / ab(0)."""
        if steps < 2:
            raise ValueError(f"a schedule needs at least 2 steps, got {steps}")
        f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        betas = [min(1 - f((i + 1) / steps) / f(i / steps), max_beta) for i in range(steps)]
        return cls(torch.tensor(betas, dtype=torch.float64))

    @classmethod
    def linear(cls, steps: int = 200, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        return cls(torch.linspace(beta_start, beta_end, steps, dtype=torch.float64))

    @property
    def steps(self) -> int:
        return self.betas.shape[0]

    @property
    def alpha_bar(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas, 0)  # (K,)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Forward process (Eq. 5, with the usual sqrt(1 - ab) noise scale): x_k = sqrt(ab_k) x0 + sqrt(1 - ab_k) eps."""
        ab = self.alpha_bar.to(x0.device)[k].float().view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def make_schedule(kind: Literal["cosine", "linear"], steps: int) -> NoiseSchedule:
    if kind == "cosine":
        return NoiseSchedule.cosine(steps)
    if kind == "linear":
        return NoiseSchedule.linear(steps)
    raise ValueError(f"unknown schedule {kind!r}: use 'cosine' or 'linear'")


# ----------------------------------------------------------------------------------------------------
# Training loss
# ----------------------------------------------------------------------------------------------------


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample (weighted) mean squared error over hidden entries. (B,)

    sum(w m (pred - target)^2) / sum(w m), with w = 1 when `weight` is None; `weight` broadcasts
    to pred's shape. Normalising by sum(w m) keeps every sample's loss an average, whatever its weights.
    """
    m = mask.float() if weight is None else mask.float() * weight
    return ((pred - target) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1e-8)


def training_loss(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    cond: dict,
    generator: torch.Generator | None = None,
    negative_cond: dict | None = None,
    contrastive_weight: float = 0.0,
    contrastive_cap: float = 1.0,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """Denoising loss on hidden entries only (Eq. 7, x0 form), optionally with the contrastive term of Eq. 11.

    1. draw k ~ U{0..K-1}, eps ~ N(0, I); x_k = add_noise(x0, eps, k)
    2. positive error  d+ = ||x0 - f(x_k, k | o, y)||^2 on m          (traffic with its own context y)
    3. negative error  d- = ||x0 - f(x_k, k | o, y')||^2 on m         (context y' of another block)
    4. L = mean(d+) - lambda * mean(min(d-, cap))
    The cap bounds the negative term: Eq. 11 as written is unbounded below (the network could push
    d- to infinity); capping keeps the gradient that separates matched from mismatched context while
    training stays stable. `weight` (broadcastable to x0) weights the squared errors of both terms;
    it must depend on the observed part only, so the optimum stays f = E[x0 | x_k, o, y].
    """
    mask = cond["mask"]
    B = x0.shape[0]
    k = torch.randint(0, schedule.steps, (B,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator)
    x_k = schedule.add_noise(x0, noise, k)
    pred = denoiser(x_k, k=k, **cond)
    positive = masked_mse(pred, x0, mask, weight)
    loss = positive.mean()
    stats = {"mse": float(positive.mean().detach())}
    if negative_cond is not None and contrastive_weight > 0:
        pred_neg = denoiser(x_k, k=k, **negative_cond)
        negative = masked_mse(pred_neg, x0, mask, weight).clamp(max=contrastive_cap)
        loss = loss - contrastive_weight * negative.mean()
        stats["mse_negative"] = float(negative.mean().detach())
    return loss, stats


# ----------------------------------------------------------------------------------------------------
# Samplers (mask-aware: observed entries are conditions and are returned exactly as given)
# ----------------------------------------------------------------------------------------------------


def _predict_x0(denoiser, x, k_scalar, cond, clamp):
    k = torch.full((x.shape[0],), k_scalar, device=x.device, dtype=torch.long)
    x0 = denoiser(x, k=k, **cond)
    if clamp is not None:
        x0 = torch.maximum(torch.minimum(x0, clamp[1]), clamp[0])
    return x0


def ddpm_sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cond: dict,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    clamp: tuple[torch.Tensor, torch.Tensor] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral sampling over all K steps (the paper's sampler), posterior q(x_{k-1} | x_k, x0_hat).

    mean = sqrt(ab_{k-1}) beta_k / (1 - ab_k) x0_hat + sqrt(alpha_k) (1 - ab_{k-1}) / (1 - ab_k) x_k
    var  = beta_k (1 - ab_{k-1}) / (1 - ab_k)
    `noise` (shape) is the starting x_K when given (else drawn); the later steps draw their own.
    """
    device = cond["mask"].device
    ab = schedule.alpha_bar.to(device)
    betas = schedule.betas.to(device)
    x = _start_noise(shape, device, generator, noise)
    for k in range(schedule.steps - 1, -1, -1):
        x0 = _predict_x0(denoiser, x, k, cond, clamp)
        if k == 0:
            x = x0
            break
        ab_k, ab_prev, beta = ab[k], ab[k - 1], betas[k]
        mean = (ab_prev.sqrt() * beta / (1 - ab_k)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_k)) * x
        var = beta * (1 - ab_prev) / (1 - ab_k)
        x = (mean + var.sqrt() * torch.randn(shape, device=device, generator=generator)).float()
    return _keep_observed(x, cond)


def ddim_timesteps(total: int, steps: int) -> list[int]:
    """`steps` evenly spaced diffusion steps from K-1 down to 0."""
    if not 1 <= steps <= total:
        raise ValueError(f"DDIM steps must lie in 1..{total}, got {steps}")
    return sorted({round(x) for x in torch.linspace(0, total - 1, steps).tolist()}, reverse=True)


def ddim_sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cond: dict,
    shape: tuple[int, ...],
    steps: int = 20,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clamp: tuple[torch.Tensor, torch.Tensor] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) on a sub-sequence of steps; eta = 0 deterministic, eta = 1 DDPM-like.

    x_{k'} = sqrt(ab_{k'}) x0_hat + sqrt(1 - ab_{k'} - s^2) eps_hat + s z,
    s = eta sqrt((1 - ab_{k'}) / (1 - ab_k)) sqrt(1 - ab_k / ab_{k'})
    `noise` (shape) is the starting x_K when given (else drawn); with eta = 0 it fixes the sample.
    """
    device = cond["mask"].device
    ab = schedule.alpha_bar.to(device).float()
    ks = ddim_timesteps(schedule.steps, steps)
    x = _start_noise(shape, device, generator, noise)
    for i, k in enumerate(ks):
        x0 = _predict_x0(denoiser, x, k, cond, clamp)
        if i == len(ks) - 1:
            x = x0
            break
        k_next = ks[i + 1]
        ab_k, ab_n = ab[k], ab[k_next]
        eps = (x - ab_k.sqrt() * x0) / (1 - ab_k).sqrt()
        sigma = eta * ((1 - ab_n) / (1 - ab_k)).sqrt() * (1 - ab_k / ab_n).sqrt()
        x = ab_n.sqrt() * x0 + (1 - ab_n - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(shape, device=device, generator=generator)
    return _keep_observed(x, cond)


def _start_noise(shape, device, generator, noise: torch.Tensor | None) -> torch.Tensor:
    """x_K: the given starting noise (checked against `shape`) or a fresh standard normal draw."""
    if noise is None:
        return torch.randn(shape, device=device, generator=generator)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"starting noise has shape {tuple(noise.shape)}, the sample {tuple(shape)}")
    return noise.to(device=device, dtype=torch.float32)


def _keep_observed(x: torch.Tensor, cond: dict) -> torch.Tensor:
    """Observed entries exactly as given, generated values at hidden entries."""
    return torch.where(cond["mask"], x, cond["observed"])


SAMPLERS = ("ddim", "ddpm")


def sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cond: dict,
    shape: tuple[int, ...],
    sampler: Literal["ddim", "ddpm"] = "ddim",
    steps: int = 20,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clamp: tuple[torch.Tensor, torch.Tensor] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One sample of the hidden part for every window of the batch; dispatches on `sampler`.

    `noise` (shape) fixes the starting x_K (e.g. shared by overlapping tiles, see forecasting.tiling).
    """
    if sampler == "ddim":
        return ddim_sample(denoiser, schedule, cond, shape, steps, eta, generator, clamp, noise)
    if sampler == "ddpm":
        return ddpm_sample(denoiser, schedule, cond, shape, generator, clamp, noise)
    raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")
