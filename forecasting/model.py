"""The UoMo denoising network (paper 3.2-3.3): space-time tokeniser, DiT blocks with adaLN-Zero, context encoders.

The network only maps (noisy masked part, observed part, mask, time, context, diffusion step) to a
prediction of the clean masked part; the diffusion process lives in `diffusion.py` and takes this
network as an argument. Every input is a dense tensor on the (T, H, W) grid of a window, so any grid
size and granularity work: the tokeniser pads to a multiple of the patch, and time enters as
fraction-of-day and day-of-week, never as a per-city table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------
# Configuration and presets
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UoMoConfig:
    """Size and tokenisation of the network (everything needed to rebuild it from a checkpoint)."""

    depth: int = 4
    hidden: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (4, 2, 2)  # (t0, h0, w0) steps x cells per token
    poi_hidden: int = 32  # width of the POI set encoder and of its dynamic features (Eq. 8-9)
    dropout: float = 0.0
    adaln_rank: int | None = None  # low-rank adaLN projections (CPU economy); None = full rank as in DiT
    carry: bool = False  # input channels: each cell's last observed value carried forward (persistence)
    carry_skip: bool = False  # output = that last observed value + the network's correction (needs carry)
    user_tokens: bool = False  # users also enter the token stream (zero-initialised), not only the condition
    # static-layer categories the POI encoder knows by name (e.g. the synthetic cities' POI schema and
    # 'residents'); others (the real cities' unnamed categories) are read as anonymous set elements
    poi_names: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch"] = list(self.patch)
        d["poi_names"] = list(self.poi_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UoMoConfig":
        d = dict(d)
        d["patch"] = tuple(d["patch"])
        d["poi_names"] = tuple(d.get("poi_names", ()))
        return cls(**d)


def _preset(depth: int, hidden: int, heads: int, patch=(4, 2, 2), **kw) -> UoMoConfig:
    return UoMoConfig(depth=depth, hidden=hidden, heads=heads, patch=patch, **kw)


#: Size presets. "cpu" learns in minutes on 2 cores; the others are the paper's Table 6 sizes.
PRESETS: dict[str, UoMoConfig] = {
    "tiny": _preset(2, 64, 4, mlp_ratio=2.0, adaln_rank=16),  # unit tests
    # ~0.9M parameters, 32 tokens per 64 x 4 x 4 window (8 steps x 2 x 2 cells each). Per-token adaLN
    # costs 6 D^2 per token and layer, as much as attention and MLP together at mlp_ratio 2; a rank-32
    # factorisation keeps per-token conditioning at ~1/4 of that. Sized for ~0.2-0.4 s per batch of 32
    # on 2 CPU cores (see bench/README.md for the measured throughput).
    "cpu": _preset(4, 128, 4, patch=(8, 2, 2), mlp_ratio=2.0, adaln_rank=32),
    # the same network with tokens of 4 steps: 64 tokens per window, half the temporal span per token,
    # 0.79M parameters; measured on 2 cores: training 242-262 windows/s (cpu 190-320), sampling ~1.9x
    # the time of "cpu" (bench/README.md)
    "cpu-fine": _preset(4, 128, 4, patch=(4, 2, 2), mlp_ratio=2.0, adaln_rank=32),
    # the size lever (trained on an accelerator, sampled on the CPU): "cpu-fine" 1.5x deeper (1.1M
    # parameters, ~1.5x the sampling time) and 1.5x wider (1.7M, ~2.2x)
    "cpu-deep": _preset(6, 128, 4, patch=(4, 2, 2), mlp_ratio=2.0, adaln_rank=32),
    "cpu-wide": _preset(4, 192, 6, patch=(4, 2, 2), mlp_ratio=2.0, adaln_rank=48),
    "paper-5m": _preset(12, 128, 4, patch=(2, 1, 1)),
    "paper-35m": _preset(16, 256, 8, patch=(2, 1, 1)),
    "paper-200m": _preset(20, 768, 12, patch=(2, 1, 1)),
}


def preset(name: str) -> UoMoConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}: choose one of {sorted(PRESETS)}") from None


# ----------------------------------------------------------------------------------------------------
# Tokeniser: (B, C, T, H, W) grids <-> (B, L, C * t0 * h0 * w0) tokens
# ----------------------------------------------------------------------------------------------------


def pad_to_patch(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad the last three dims (T, H, W) of `x` up to multiples of `patch`."""
    T, H, W = x.shape[-3:]
    pt, ph, pw = (-T) % patch[0], (-H) % patch[1], (-W) % patch[2]
    if pt or ph or pw:
        x = F.pad(x, (0, pw, 0, ph, 0, pt))
    return x


def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) with T, H, W multiples of the patch -> (B, L, C * t0 * h0 * w0)."""
    B, C, T, H, W = x.shape
    t0, h0, w0 = patch
    x = x.reshape(B, C, T // t0, t0, H // h0, h0, W // w0, w0)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, t0, h0, w0)
    return x.reshape(B, (T // t0) * (H // h0) * (W // w0), C * t0 * h0 * w0)


def unpatchify(tokens: torch.Tensor, patch: tuple[int, int, int], grid: tuple[int, int, int]) -> torch.Tensor:
    """(B, L, C * t0 * h0 * w0) -> (B, C, T, H, W) for the padded `grid` = (T, H, W)."""
    B, L, _ = tokens.shape
    t0, h0, w0 = patch
    T, H, W = grid
    x = tokens.reshape(B, T // t0, H // h0, W // w0, -1, t0, h0, w0)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', t0, H', h0, W', w0)
    return x.reshape(B, -1, T, H, W)


def sincos(positions: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of real-valued `positions` (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device) / half)
    args = positions[..., None].float() * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def position_embedding(grid_tokens: tuple[int, int, int], dim: int, device) -> torch.Tensor:
    """Fixed 3-D sin-cos embedding of token positions (t', h', w') -> (L, dim); works for any grid."""
    Tn, Hn, Wn = grid_tokens
    d_t = dim // 2 // 2 * 2
    d_s = (dim - d_t) // 4 * 2
    d_w = dim - d_t - d_s
    t, h, w = torch.meshgrid(
        torch.arange(Tn, device=device), torch.arange(Hn, device=device), torch.arange(Wn, device=device), indexing="ij"
    )
    emb = torch.cat([sincos(t.flatten(), d_t, 1000.0), sincos(h.flatten(), d_s, 100.0), sincos(w.flatten(), d_w, 100.0)], -1)
    return emb  # (L, dim)


# ----------------------------------------------------------------------------------------------------
# Embedders for the diffusion step, time of day and context
# ----------------------------------------------------------------------------------------------------


class StepEmbedder(nn.Module):
    """Diffusion step k -> vector (sinusoidal features through an MLP, as in DiT)."""

    def __init__(self, hidden: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        return self.mlp(sincos(k, self.freq_dim))  # (B, D)


def calendar_harmonics(time_of_day: torch.Tensor, day_of_week: torch.Tensor) -> torch.Tensor:
    """Granularity-free time features per step: harmonics of the day and of the week. (B, T) -> (B, T, 8)."""
    week = (day_of_week.float() + time_of_day) / 7.0
    ang = 2 * math.pi
    return torch.stack(
        [
            torch.sin(ang * time_of_day), torch.cos(ang * time_of_day),
            torch.sin(2 * ang * time_of_day), torch.cos(2 * ang * time_of_day),
            torch.sin(ang * week), torch.cos(ang * week),
            (day_of_week >= 5).float(), torch.ones_like(time_of_day),
        ],
        dim=-1,
    )


class POIEncoder(nn.Module):
    """Static POI counts of any category schema -> dynamic per-step features (paper Eq. 8-9).

    Cities name and number their categories differently, so each category is treated as a set
    element described by how the cell compares with the city on it: u = log1p(count),
    r = count / (mean count of that category over the window's cells + 1). A DeepSets encoder
    phi(u, r) summed over categories gives a width-free vector P; then
        h_s = sigmoid(W_s P + b_s)                         (Eq. 8)
        h_d(t) = sigmoid(W_l [h_s ; tau(day, time)] + b_l)  (Eq. 9)
    with tau an MLP of the day-of-week embedding and time-of-day features.

    Category names (`n_names` > 0): a set encoder cannot tell housing from offices, so categories the
    network knows by name (id k >= 1 in its `poi_names`; 0 = unnamed) add a term that depends on which
    category the element is:  phi(u, r) + (G [u, r]) * e_k,  with e_k a learned vector per name
    (zero-initialised: a network gains the term without changing its output) and G linear without a bias
    (a category absent from a cell, u = r = 0, adds nothing).
    """

    def __init__(self, width: int, n_names: int = 0):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(2, width), nn.SiLU(), nn.Linear(width, width))
        self.name_gain = nn.Linear(2, width, bias=False) if n_names else None
        self.name_embed = nn.Embedding(n_names + 1, width) if n_names else None
        self.static = nn.Linear(width, width)
        self.day = nn.Embedding(7, width)
        self.tod = nn.Linear(8, width)
        self.tau = nn.Sequential(nn.SiLU(), nn.Linear(width, width))
        self.dynamic = nn.Linear(2 * width, width)

    def forward(self, poi, poi_valid, time_of_day, day_of_week, poi_ids=None) -> torch.Tensor:
        # poi: (B, C, H, W) counts (padded categories are zero); poi_valid: (B, C) bool; poi_ids: (B, C) long
        B, C, H, W = poi.shape
        mean = (poi.sum((2, 3)) / (H * W))[:, :, None, None]  # (B, C, 1, 1)
        feats = torch.stack([torch.log1p(poi), poi / (mean + 1.0)], -1)  # (B, C, H, W, 2)
        elem = self.phi(feats)  # (B, C, H, W, P)
        if self.name_embed is not None and poi_ids is not None:
            named = self.name_embed(poi_ids)  # (B, C, P)
            elem = elem + self.name_gain(feats) * named[:, :, None, None, :]  # (B, C, H, W, P)
        elem = elem * poi_valid[:, :, None, None, None].float()  # (B, C, H, W, P)
        n_cat = poi_valid.float().sum(1).clamp(min=1.0)[:, None, None, None]  # (B, 1, 1, 1)
        pooled = elem.sum(1) / n_cat  # (B, H, W, P)
        h_static = torch.sigmoid(self.static(pooled))  # (B, H, W, P)      Eq. 8
        tau = self.tau(self.day(day_of_week.long()) + self.tod(calendar_harmonics(time_of_day, day_of_week)))  # (B, T, P)
        T = tau.shape[1]
        joint = torch.cat(
            [h_static[:, None].expand(B, T, H, W, -1), tau[:, :, None, None].expand(B, T, H, W, -1)], -1
        )  # (B, T, H, W, 2P)
        return torch.sigmoid(self.dynamic(joint)).permute(0, 4, 1, 2, 3)  # (B, P, T, H, W)   Eq. 9


# ----------------------------------------------------------------------------------------------------
# DiT block with adaLN-Zero
# ----------------------------------------------------------------------------------------------------


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused kernels on CPU and GPU)."""

    def __init__(self, hidden: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, d)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (B, h, L, d)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


def adaln_projection(hidden: int, chunks: int, rank: int | None) -> nn.Sequential:
    """SiLU then a (possibly low-rank) linear map from the condition to `chunks` modulation vectors."""
    if rank is None:
        return nn.Sequential(nn.SiLU(), nn.Linear(hidden, chunks * hidden))
    return nn.Sequential(nn.SiLU(), nn.Linear(hidden, rank), nn.Linear(rank, chunks * hidden))


class DiTBlock(nn.Module):
    """Transformer block whose LayerNorms are shifted/scaled/gated by a per-token condition (Eq. 6)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, dropout: float, adaln_rank: int | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads, dropout)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        inner = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))
        self.adaLN_modulation = adaln_projection(hidden, 6, adaln_rank)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        # x, c: (B, L, D); attn_mask: (B, 1, 1, L) True = may attend, or None
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_a * self.attn(modulate(self.norm1(x), shift_a, scale_a), attn_mask)  # (B, L, D)
        x = x + gate_m * self.mlp(modulate(self.norm2(x), shift_m, scale_m))
        return x  # (B, L, D)


class FinalLayer(nn.Module):
    """adaLN-modulated projection of tokens back to patch values."""

    def __init__(self, hidden: int, out_dim: int, adaln_rank: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_dim)
        self.adaLN_modulation = adaln_projection(hidden, 2, adaln_rank)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, L, t0*h0*w0)


# ----------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------

#: Per-entry channels of the main stream: noisy masked part e_k, observed part o, mask m, validity,
#: the observed value one day earlier and its flag (lag feature; empty when the window is under a day).
MAIN_CHANNELS = 6
#: Extra main-stream channels with UoMoConfig.carry: the cell's last observed value before each step and
#: its flag (a hidden step's persistence forecast; see encoding.carry_forward).
CARRY_CHANNELS = 2
#: Per-entry channels of the observation condition: o, 1 - m (observed flag), validity, cell level.
OBS_CHANNELS = 4
#: Per-entry channels of the user context: users (observed entries only), users-known flag.
USER_CHANNELS = 2


class UoMoNet(nn.Module):
    """Masked-diffusion transformer: predicts the clean masked part x0 from its noised version.

    forward(noisy, observed, mask, k, time_of_day, day_of_week, valid=None, users=None,
            users_known=None, poi=None, poi_valid=None) with grids (B, T, H, W):
      noisy     noised values at hidden entries (anything elsewhere; zeroed here)
      observed  clean values at observed entries (anything elsewhere; zeroed here)
      mask      True where hidden (to generate)
      k         (B,) diffusion step
      valid     False at cells padded or absent from the data (never attended as signal)
      cell_scale (B, H, W) log level of each cell relative to its window (see encoding.WindowTransform)
      lag, lag_known (B, T, H, W) observed value one day earlier and its flag (see encoding.day_lag)
      carry, carry_known (B, T, H, W) last observed value before each step and its flag (read only when
                the config has `carry`; see encoding.carry_forward). With `carry_skip` the prediction is
                x0_hat = carry * carry_known + f(...): the network learns the change from the last
                observed value (a persistence skip; with the zero-initialised output layer a new
                network starts as the last-value forecast, and as before where nothing was observed)
    Context (paper 3.3) is optional: users (B, T, H, W) with `users_known` (True where the user count
    would be known when forecasting), POI counts (B, C, H, W) of any width C with `poi_valid` (B, C) and
    `poi_ids` (B, C), each category's 1-based index in `config.poi_names` (0 = a name the network does not know).
    Returns the x0 prediction (B, T, H, W).
    """

    def __init__(self, config: UoMoConfig):
        super().__init__()
        if config.carry_skip and not config.carry:
            raise ValueError("carry_skip adds the carried-forward value to the output: it needs carry=True")
        self.config = config
        D = config.hidden
        t0, h0, w0 = config.patch
        patch_vol = t0 * h0 * w0
        self.main_embed = nn.Linear((MAIN_CHANNELS + CARRY_CHANNELS * config.carry) * patch_vol, D)
        self.obs_embed = nn.Linear(OBS_CHANNELS * patch_vol, D)  # F_theta(o) of Eq. 6
        self.time_embed = nn.Linear(8 * t0, D)
        self.step_embed = StepEmbedder(D)
        self.user_embed = nn.Linear(USER_CHANNELS * patch_vol, D)  # c^u
        # users as token input too: the residual stream carries values to the output directly, which the
        # adaLN condition (shift/scale/gate of each block) does only through the blocks' branches
        self.user_token_embed = nn.Linear(USER_CHANNELS * patch_vol, D) if config.user_tokens else None
        self.poi_encoder = POIEncoder(config.poi_hidden, len(config.poi_names))
        self.poi_embed = nn.Linear(config.poi_hidden * patch_vol, D)  # c^p
        self.blocks = nn.ModuleList(
            [DiTBlock(D, config.heads, config.mlp_ratio, config.dropout, config.adaln_rank) for _ in range(config.depth)]
        )
        self.final = FinalLayer(D, patch_vol, config.adaln_rank)
        self.initialize_weights()

    # -- initialisation ---------------------------------------------------------------------------
    def initialize_weights(self) -> None:
        def _basic(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(_basic)
        nn.init.normal_(self.step_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.step_embed.mlp[2].weight, std=0.02)
        # adaLN-Zero: every block starts as the identity (zero gates), and the output layer at zero,
        # so early training is stable and the prediction starts from "no correction".
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        # context starts switched off: a pre-trained model is unchanged until fine-tuning learns it
        for layer in (self.user_embed, self.poi_embed, self.user_token_embed):
            if layer is None:
                continue
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.poi_encoder.name_embed is not None:
            nn.init.zeros_(self.poi_encoder.name_embed.weight)

    # -- parameter groups for partial freezing (paper 3.3: backbone frozen in fine-tuning) ----------
    def context_parameters(self):
        """The context path (users and POI embeddings, the POI encoder): all that learns under
        `freeze='context'`, so a fine-tuning can only add what the context says to the pre-trained model."""
        for module in (self.user_embed, self.user_token_embed, self.poi_encoder, self.poi_embed):
            if module is not None:
                yield from module.parameters()

    def backbone_parameters(self):
        """Attention and MLP weights of the DiT blocks (frozen in partial fine-tuning)."""
        for block in self.blocks:
            yield from block.attn.parameters()
            yield from block.mlp.parameters()

    # -- forward ------------------------------------------------------------------------------------
    def forward(
        self,
        noisy: torch.Tensor,
        observed: torch.Tensor,
        mask: torch.Tensor,
        k: torch.Tensor,
        time_of_day: torch.Tensor,
        day_of_week: torch.Tensor,
        valid: torch.Tensor | None = None,
        users: torch.Tensor | None = None,
        users_known: torch.Tensor | None = None,
        poi: torch.Tensor | None = None,
        poi_valid: torch.Tensor | None = None,
        poi_ids: torch.Tensor | None = None,
        cell_scale: torch.Tensor | None = None,
        lag: torch.Tensor | None = None,
        lag_known: torch.Tensor | None = None,
        carry: torch.Tensor | None = None,
        carry_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, H, W = noisy.shape
        patch = self.config.patch
        maskf = mask.float()
        validf = torch.ones_like(maskf) if valid is None else valid.float()
        main, obs = self._input_channels(noisy, observed, maskf, validf, cell_scale, lag, lag_known, carry, carry_known)
        main, obs = pad_to_patch(main, patch), pad_to_patch(obs, patch)  # (B, 6 [+2] | 4, T_pad, H_pad, W_pad)
        grid = main.shape[-3:]
        tokens_grid = (grid[0] // patch[0], grid[1] // patch[1], grid[2] // patch[2])

        # time features per step, grouped per temporal patch and broadcast over space
        tf = calendar_harmonics(time_of_day, day_of_week)  # (B, T, 8)
        tf = F.pad(tf, (0, 0, 0, grid[0] - T))  # (B, T_pad, 8)
        tf = tf.reshape(B, tokens_grid[0], -1)  # (B, T', t0 * 8)
        tf = self.time_embed(tf)[:, :, None, None, :].expand(-1, -1, tokens_grid[1], tokens_grid[2], -1)
        tf = tf.reshape(B, -1, self.config.hidden)  # (B, L, D)

        pos = position_embedding(tokens_grid, self.config.hidden, noisy.device)[None]  # (1, L, D)
        x = self.main_embed(patchify(main, patch)) + pos + tf  # (B, L, D)
        u = None if users is None else self._user_patches(users, users_known, mask, validf)  # (B, L, 2 * vol)
        if u is not None and self.user_token_embed is not None:
            x = x + self.user_token_embed(u)  # users in the token stream (B, L, D)

        # per-token condition: diffusion step + observed part (Eq. 6) + time + context y = c^u + c^p
        c = self.obs_embed(patchify(obs, patch)) + tf + pos + self.step_embed(k)[:, None, :]  # (B, L, D)
        c = self._add_context(c, validf, time_of_day, day_of_week, u, poi, poi_valid, poi_ids)

        # tokens made only of padding carry no signal: keep them out of attention
        token_valid = patchify(pad_to_patch(validf[:, None], patch), patch).amax(-1) > 0  # (B, L)
        attn_mask = None if bool(token_valid.all()) else token_valid[:, None, None, :]  # (B, 1, 1, L)
        for block in self.blocks:
            x = block(x, c, attn_mask)  # (B, L, D)
        out = self.final(x, c)  # (B, L, t0*h0*w0)
        out = unpatchify(out, patch, grid)[:, 0, :T, :H, :W]  # (B, T, H, W)
        if self.config.carry_skip and carry is not None and carry_known is not None:
            out = out + carry * carry_known.float() * validf  # persistence skip
        return out

    def _input_channels(self, noisy, observed, maskf, validf, cell_scale, lag, lag_known, carry, carry_known):
        """The token inputs: main = [noised hidden part e_k, observed part o (Eq. 4), mask, valid, one-day lag
        and its availability (+ last observed value and its availability with the carry channel)]
        (B, 6 [+2], T, H, W); obs = [o, observed, valid, cell level] (B, 4, T, H, W) for the condition."""
        B, T, H, W = noisy.shape
        e_k = noisy * maskf * validf  # (B, T, H, W) noised hidden part
        o = observed * (1 - maskf) * validf  # (B, T, H, W) observed part (Eq. 4)
        lag_f = torch.zeros_like(o) if lag_known is None else lag_known.float() * validf
        lag_v = torch.zeros_like(o) if lag is None else lag * lag_f
        channels = [e_k, o, maskf, validf, lag_v, lag_f]
        if self.config.carry:
            carry_f = torch.zeros_like(o) if carry_known is None else carry_known.float() * validf
            channels += [torch.zeros_like(o) if carry is None else carry * carry_f, carry_f]
        main = torch.stack(channels, 1)  # (B, 6 [+2], T, H, W)
        level = torch.zeros_like(o) if cell_scale is None else cell_scale[:, None].expand(B, T, H, W) * validf
        obs = torch.stack([o, (1 - maskf) * validf, validf, level], 1)  # (B, 4, T, H, W)
        return main, obs

    def _user_patches(self, users, users_known, mask, validf) -> torch.Tensor:
        """User counts where known (hidden ones masked out unless `users_known` says otherwise) and the
        known flag, per patch: (B, L, USER_CHANNELS * patch volume)."""
        known = (~mask if users_known is None else users_known).float() * validf
        u = torch.stack([torch.nan_to_num(users) * known, known], 1)  # (B, 2, T, H, W)
        return patchify(pad_to_patch(u, self.config.patch), self.config.patch)

    def _add_context(self, c, validf, time_of_day, day_of_week, user_patches, poi, poi_valid, poi_ids=None):
        """c + y, y = c^u + c^p per token (nothing without context): the users' patches (`_user_patches`)
        and the POI made dynamic (Eq. 8-9), per patch."""
        patch = self.config.patch
        if user_patches is not None:
            c = c + self.user_embed(user_patches)  # + c^u (B, L, D)
        if poi is not None:
            pv = torch.ones(poi.shape[:2], dtype=torch.bool, device=poi.device) if poi_valid is None else poi_valid
            p_dyn = self.poi_encoder(poi, pv, time_of_day, day_of_week, poi_ids) * validf[:, None]  # (B, P, T, H, W)
            c = c + self.poi_embed(patchify(pad_to_patch(p_dyn, patch), patch))  # + c^p (B, L, D)
        return c
