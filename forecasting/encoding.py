"""Windows + masks -> the tensors the network sees, and the per-cell scale that maps back exactly.

Regions differ by orders of magnitude (Nanjing's test area carries ~1.5% of the training mean), and so
do the cells inside one window. Each cell is therefore rescaled by what is *observed* of it (never by
hidden values); a cell with no observation at all (generation) takes the window's observed mean:

    m_w = mean of observed entries of the window                      (B,)
    s_c = mean of observed entries of cell c  if c has any, else m_w   (B, H, W)
    s   = max(s_c, 0.05 m_w, s_min)                                    (floor for all-zero cells)
    y   = (log1p(x / s) - SHIFT) / SPREAD                              (model space)
    x   = s * expm1(SPREAD * y + SHIFT)                                (exact inverse)

so a network output of ~0 already means "the cell's own observed level" (historical average) and the
network learns shapes and corrections. The cell's level relative to the window, log(s / m_w), is given
to the network as an input channel so that no magnitude information is lost by the rescaling.
log1p compresses the heavy upper tail. The valid range x in [0, 1] maps to per-cell bounds used to
clamp x0 predictions while sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from .data import Windows

SHIFT = 0.7  # log1p(1) ~ 0.69: a value equal to the window's observed mean sits near 0
SPREAD = 0.5
MIN_SCALE = 1e-5


@dataclass
class WindowTransform:
    """Per-cell log-affine map between normalised values and model space.

    scale (B, 1, H, W): per-cell scale s; relative (B, H, W): log(s / m_w) where the cell has
    observations, 0 elsewhere.
    """

    scale: torch.Tensor
    relative: torch.Tensor

    @classmethod
    def from_observed(cls, values: torch.Tensor, known: torch.Tensor, per_cell: bool = True) -> "WindowTransform":
        """Scales from the entries of `values` (B, T, H, W) where `known` is True: each cell's own mean
        (`per_cell`), or the window's mean m_w for every cell (relative 0), which keeps the cells' levels
        relative to each other in model space."""
        k = known.float()
        v = torch.nan_to_num(values) * k
        window_mean = (v.flatten(1).sum(1) / k.flatten(1).sum(1).clamp(min=1.0)).clamp(min=MIN_SCALE)  # (B,)
        if not per_cell:
            scale = window_mean.view(-1, 1, 1, 1).expand(-1, 1, *values.shape[2:])  # (B, 1, H, W)
            return cls(scale, torch.zeros_like(scale[:, 0]))
        n_cell = k.sum(1)  # (B, H, W)
        cell_mean = v.sum(1) / n_cell.clamp(min=1.0)  # (B, H, W)
        wm = window_mean.view(-1, 1, 1)
        has = n_cell > 0
        scale = torch.where(has, cell_mean, wm)
        scale = torch.maximum(scale, 0.05 * wm).clamp(min=MIN_SCALE)  # (B, H, W)
        relative = torch.where(has, torch.log(scale / wm), torch.zeros_like(scale))
        return cls(scale[:, None], relative)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.log1p(x.clamp(min=0) / self.scale) - SHIFT) / SPREAD

    def from_model(self, y: torch.Tensor) -> torch.Tensor:
        return (self.scale * torch.expm1(SPREAD * y + SHIFT)).clamp(min=0)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-space images of 0 and 1 (the valid normalised range), broadcastable to (B, T, H, W)."""
        zero = torch.full_like(self.scale, -SHIFT / SPREAD)
        return zero, self.to_model(torch.ones_like(self.scale))

    def take(self, idx) -> "WindowTransform":
        return WindowTransform(self.scale[idx], self.relative[idx])

    def level_weight(self, low: float = 0.05, high: float = 20.0) -> torch.Tensor:
        """Loss weight of each cell: its observed level relative to the window, s_c / m_w. (B, 1, H, W)

        A model-space error dy moves the raw value by dx = SPREAD (s + x) dy ~ s dy, so unweighted
        model-space training treats a quiet and a busy cell of one window alike while a pooled MAE in
        raw units is dominated by the busy ones; weighting by s_c / m_w (clipped to [low, high]) spends
        the network's capacity where the metric is. Cells without observations get weight 1. Built from
        observed entries only, so it never reweights by the hidden truth.
        """
        return torch.exp(self.relative).clamp(low, high)[:, None]


@dataclass(frozen=True)
class ContextSwitches:
    """Which context inputs the network receives (paper 3.3) and when users are known.

    `residents`: where a city has a residents layer, it joins the POI counts as one more static category
    named 'residents' (with `poi`; see `static_layers`).

    `history`: the one-day lag channel is also filled from the record before the window
    (`Windows.day_before`), so a window shorter than a day, or a horizon less than a day after the
    window's start, still sees "yesterday at the same time"; off for networks trained without it.

    `users_exog` declares the users covariate's availability (`forecasting.data.covariates`):
    'hist' (default): known up to the forecast origin, hidden exactly where traffic is (no peeking);
    'futr': known for the horizon too (a mobility forecast, a planned event): user counts are read at the
    hidden steps and cells wherever the caller gives them. It replaces the old `future_users` diagnostic
    switch (`from_dict` maps a stored future_users=True to users_exog='futr').
    """

    users: bool = True
    poi: bool = True
    users_exog: Literal["hist", "futr"] = "hist"
    history: bool = False  # the day before the window fills the one-day lag where the window does not reach back
    residents: bool = False  # a residents layer (census counts per cell) is read as one more static POI category

    def __post_init__(self) -> None:
        if self.users_exog not in ("hist", "futr"):
            raise ValueError(f"users_exog must be 'hist' or 'futr', got {self.users_exog!r}")

    @property
    def future_users(self) -> bool:
        """True when the network reads users at hidden entries (users declared futr)."""
        return self.users and self.users_exog == "futr"

    @property
    def futr_names(self) -> tuple[str, ...]:
        """The covariates read at hidden entries: ('users',) when users are futr, else ()."""
        return ("users",) if self.future_users else ()

    @classmethod
    def from_dict(cls, d: dict) -> "ContextSwitches":
        """The switches stored in a checkpoint's config; an old `future_users: true` means users futr."""
        d = dict(d)
        legacy = d.pop("future_users", None)
        if legacy and "users_exog" not in d:
            d["users_exog"] = "futr"
        return cls(**d)


def encode(
    traffic: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    time_of_day: np.ndarray | torch.Tensor,
    day_of_week: np.ndarray | torch.Tensor,
    users: np.ndarray | torch.Tensor | None = None,
    poi: np.ndarray | torch.Tensor | None = None,
    poi_valid: np.ndarray | torch.Tensor | None = None,
    poi_ids: np.ndarray | torch.Tensor | None = None,
    valid: np.ndarray | torch.Tensor | None = None,
    users_available: np.ndarray | torch.Tensor | None = None,
    slots_per_day: int | np.ndarray | torch.Tensor | None = None,
    context: ContextSwitches = ContextSwitches(),
    device: torch.device | str = "cpu",
    day_before: np.ndarray | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict, WindowTransform]:
    """Build (x0 in model space, cond dict, transform) for a batch of normalised windows.

    traffic/users (B, T, H, W) on the [0, 1] scale; hidden entries may be NaN (they are never read:
    the returned x0 is only meaningful where the caller knows the truth). mask True = hidden.
    Users are hidden exactly where traffic is (no peeking) unless `context.users_exog` is 'futr'
    (then they are read wherever they are given, not NaN); POI is static and always known; `poi_ids` (B, C)
    names each category for a network that knows names (`static_layers`).
    `users_available` (B,) marks windows whose city has user counts at all (default: all).
    `slots_per_day` (int or (B,)) enables the one-day lag channel (see `day_lag`); `day_before` (B, T, H, W),
    the [0, 1] record one day before each step that precedes the window (NaN where unknown; see
    `forecasting.data.cut_day_before`), fills it before the window when `context.history` is on.
    """
    as_t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=dt, device=device)  # noqa: E731
    traffic = as_t(traffic)
    mask = as_t(mask, torch.bool)
    valid_t = None if valid is None else as_t(valid, torch.bool)
    known = ~mask if valid_t is None else (~mask & valid_t)
    transform = WindowTransform.from_observed(traffic, known)
    x0 = transform.to_model(torch.nan_to_num(traffic))
    observed = torch.where(known, x0, torch.zeros_like(x0))
    cond: dict = {
        "observed": observed,
        "mask": mask,
        "time_of_day": as_t(time_of_day),
        "day_of_week": as_t(day_of_week, torch.long),
        "valid": valid_t,
        "cell_scale": transform.relative,
    }
    if slots_per_day is not None:
        spd = torch.as_tensor(np.asarray(slots_per_day), dtype=torch.long, device=device).expand(x0.shape[0])
        before = None
        if context.history and day_before is not None:
            before_raw = as_t(day_before)
            before_known = ~torch.isnan(before_raw) & (valid_t if valid_t is not None else True)
            before = (torch.where(before_known, transform.to_model(torch.nan_to_num(before_raw)), torch.zeros_like(x0)),
                      before_known)
        cond["lag"], cond["lag_known"] = day_lag(observed, known, spd, before)
    cond["carry"], cond["carry_known"] = carry_forward(observed, known)
    if context.users and users is not None:
        users_t = as_t(users)
        users_known = (valid_t if valid_t is not None else torch.ones_like(mask)) if context.users_exog == "futr" else known
        users_known = users_known & ~torch.isnan(users_t)  # whatever the caller hid stays unknown
        if users_available is not None:
            users_known = users_known & as_t(users_available, torch.bool).view(-1, 1, 1, 1)
        # users on one scale per window, not per cell as traffic is (whose levels travel in cell_scale):
        # each cell's user level relative to its neighbours is what says how busy a cell without traffic
        # history is (generation), so it must survive the scaling. The scale is the users' mean over the
        # entries whose traffic is observed (the traffic window mean's entries), so that traffic
        # proportional to users gives equal values in model space; all known users where none is.
        both = users_known & known
        scale_on = torch.where(both.flatten(1).any(1).view(-1, 1, 1, 1), both, users_known)
        u_transform = WindowTransform.from_observed(users_t, scale_on, per_cell=False)
        u_model = u_transform.to_model(torch.nan_to_num(users_t))
        cond["users"] = torch.where(users_known, u_model, torch.zeros_like(users_t))
        cond["users_known"] = users_known
    if context.poi and poi is not None:
        cond["poi"] = as_t(poi)
        cond["poi_valid"] = (
            torch.ones(cond["poi"].shape[:2], dtype=torch.bool, device=device) if poi_valid is None else as_t(poi_valid, torch.bool)
        )
        if poi_ids is not None:
            cond["poi_ids"] = as_t(poi_ids, torch.long)
    return x0, cond, transform


def day_lag(
    values: torch.Tensor,
    known: torch.Tensor,
    slots_per_day: torch.Tensor,
    before: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value one day earlier, where it is observed (a lag feature, cf. LagLlama).

    lag[b, t] = values[b, t - d_b] and lag_known[b, t] = known[b, t - d_b] for t >= d_b (d_b = slots
    per day of window b). For t < d_b the day before lies before the window: it is taken from
    `before` = (values, known) (B, T, H, W), the record one day before each step in model space, when
    given, else left zero/False (a window shorter than a day then has an empty channel, as 64 steps at
    15 min without history). Granularity-aware without any per-city table.
    """
    B, T = values.shape[:2]
    t = torch.arange(T, device=values.device)[None, :]  # (1, T)
    src = t - slots_per_day[:, None]  # (B, T)
    ok = src >= 0
    idx = src.clamp(min=0)[:, :, None, None].expand_as(values)
    lag_known = torch.gather(known, 1, idx) & ok[:, :, None, None]
    lag = torch.where(lag_known, torch.gather(values, 1, idx), torch.zeros_like(values))
    if before is not None:
        early = ~ok[:, :, None, None] & before[1]  # steps whose day before precedes the window, where recorded
        lag = torch.where(early, before[0], lag)
        lag_known = lag_known | early
    return lag, lag_known


def last_known_before(known: torch.Tensor) -> torch.Tensor:
    """before[b, t] = max{s < t : known[b, s]} per cell, -1 where no earlier step is known. (B, T, H, W)"""
    T = known.shape[1]
    steps = torch.arange(T, device=known.device).view(1, T, 1, 1).expand_as(known)
    last = torch.cummax(torch.where(known, steps, torch.full_like(steps, -1)), dim=1).values  # latest s' <= t
    return torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], dim=1)  # latest s' < t


def carry_forward(values: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cell's last observed value *before* each step (the persistence forecast of a hidden step).

    carry[b, t] = values[b, s] with s = max{s' < t : known[b, s']}, and carry_known[b, t] = such s exists;
    zero/False for steps with no earlier observation (a generated cell, the start of a window).
    """
    before = last_known_before(known)
    carry_known = before >= 0
    carry = torch.where(carry_known, torch.gather(values, 1, before.clamp(min=0)), torch.zeros_like(values))
    return carry, carry_known


def lead_weight(known: torch.Tensor, boost: float, decay: float = 2.0) -> torch.Tensor:
    """Loss weight that favours the first hidden steps after an observation. (B, T, H, W)

        w[b, t] = 1 + boost * exp(-(lead - 1) / decay),   lead = t - max{s < t : known[b, s]} >= 1,

    for entries whose cell was observed earlier in the window; w = 1 where it was not (a generated cell).
    The first hidden step gets 1 + boost, the weight halves its excess every decay * ln 2 steps. It
    depends on the mask only (never on the hidden truth), so it reallocates the network's capacity
    towards the steps a rolling planner commits to without moving the optimum of any single entry.
    """
    before = last_known_before(known)
    steps = torch.arange(known.shape[1], device=known.device).view(1, -1, 1, 1).expand_as(known)
    lead = (steps - before).float()
    return torch.where(before >= 0, 1.0 + boost * torch.exp(-(lead - 1.0) / decay), torch.ones_like(lead))


RESIDENTS = "residents"  # the name the residents layer carries among the static categories


def category_ids(names: Sequence[str | None], known: Sequence[str]) -> np.ndarray:
    """(C,) int64: each category's 1-based index in the network's `known` names, 0 where unnamed or unknown."""
    index = {name: i + 1 for i, name in enumerate(known)}
    return np.array([index.get(name, 0) if name is not None else 0 for name in names], dtype=np.int64)


def static_layers(
    poi: np.ndarray | None, names: Sequence[str] | None, residents: np.ndarray | None,
    context: ContextSwitches, known: Sequence[str] = (),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The static context of N windows of one city: (layers (N, C [+1], H, W), valid (N, C [+1]), ids).

    poi (N, C, H, W) counts with category `names` (None: unnamed); with `context.residents` the residents
    layer (N, H, W), where given, joins as one more category named 'residents'. For a network that knows
    category names (`known`, `UoMoConfig.poi_names`), ids (N, C [+1]) are `category_ids`, and a city none of
    whose categories it knows (the real cities' unnamed schemas) is shown no static layer (valid all False:
    what such a network saw for the windows drawn without them, `uomo-train --static-drop`); ids is None for
    a network that knows no names (every category valid, read anonymously). A city with residents but no POI
    shows the residents layer alone (to a network with `context.residents`). Nothing to show, or a network
    without the POI path: (None, None, None).
    """
    with_residents = context.residents and residents is not None
    if not context.poi or (poi is None and not with_residents):
        return None, None, None
    if poi is None:  # residents only: no POI categories, the residents layer appended below
        poi, names = np.zeros((np.shape(residents)[0], 0, *np.shape(residents)[1:]), np.float32), ()
    layers = np.asarray(poi, dtype=np.float32)
    labels: list[str | None] = list(names) if names is not None else [None] * layers.shape[1]
    if len(labels) != layers.shape[1]:
        raise ValueError(f"{len(labels)} POI category names for {layers.shape[1]} POI layers")
    if with_residents:
        layers = np.concatenate([layers, np.asarray(residents, dtype=np.float32)[:, None]], axis=1)
        labels.append(RESIDENTS)
    valid = np.ones(layers.shape[:2], dtype=bool)
    if not known:
        return layers, valid, None
    ids = np.broadcast_to(category_ids(labels, known), layers.shape[:2]).copy()
    if not ids.any():
        valid[:] = False
    return layers, valid, ids


def encode_windows(
    windows: Windows, mask: np.ndarray, context: ContextSwitches = ContextSwitches(), device="cpu",
    poi_names: Sequence[str] = (),
) -> tuple[torch.Tensor, dict, WindowTransform]:
    """`encode` for a `Windows` batch (see forecasting.data); `poi_names`: the categories the network knows
    by name (`UoMoConfig.poi_names`)."""
    poi, poi_valid, poi_ids = static_layers(windows.poi, windows.poi_categories, windows.residents, context, poi_names)
    return encode(
        windows.traffic,
        mask,
        windows.time_of_day,
        windows.day_of_week,
        users=windows.users,
        poi=poi,
        poi_valid=poi_valid,
        poi_ids=poi_ids,
        valid=None if windows.valid is None else np.broadcast_to(windows.valid[:, None], windows.traffic.shape),
        slots_per_day=windows.slots_per_day,
        context=context,
        device=device,
        day_before=windows.day_before,
    )


def repeat_cond(cond: dict, n: int) -> dict:
    """Repeat every tensor of `cond` n times along the batch (for several samples per window)."""
    return {k: (None if v is None else v.repeat_interleave(n, 0)) for k, v in cond.items()}


def roll_context(cond: dict, shift: int = 1) -> dict:
    """Negative pairs for Eq. 11: the same traffic with the context of another block of the batch."""
    out = dict(cond)
    if out.get("users") is not None:
        # the other block's user counts, shown only where this block's counts would be known
        out["users"] = torch.roll(out["users"], shifts=shift, dims=0) * out["users_known"].float()
    for key in ("poi", "poi_valid", "poi_ids"):
        if out.get(key) is not None:
            out[key] = torch.roll(out[key], shifts=shift, dims=0)
    return out
