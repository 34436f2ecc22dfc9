"""What a training run is: `TrainConfig` (stored in every checkpoint) and its checks, the learning-rate
schedule, and the settings a resumed run must keep."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .augment import AUGMENTATIONS
from .encoding import ContextSwitches
from .model import preset


TASK_MIX_DEFAULT = {"short": 0.3, "long": 0.3, "generation": 0.25, "random": 0.15}


@dataclass
class TrainConfig:
    """Everything a run needs; stored in every checkpoint."""

    preset: str = "cpu"
    cities: list[str] = field(default_factory=lambda: ["synthetic"])
    data_dir: str | None = None
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    diffusion_steps: int = 100
    schedule: str = "cosine"
    task_mix: dict = field(default_factory=lambda: dict(TASK_MIX_DEFAULT))
    context: list[str] = field(default_factory=list)  # subset of ["users", "poi", "residents"]
    freeze: str = "none"  # "none", "backbone" (paper 3.3 partial freezing) or "context" (only the context path learns)
    contrastive_weight: float = 0.0
    users_exog: str = "hist"  # users' availability: 'hist' (no peeking) or 'futr' (known for the horizon too)
    loss_weighting: str = "none"  # "none" or "cell_level" (WindowTransform.level_weight)
    augment: str = "none"  # "none" or "dihedral" (forecasting.augment)
    lead_boost: float = 0.0  # extra loss weight of the first hidden steps (encoding.lead_weight); 0 = off
    carry_channel: bool = False  # the network also reads each cell's last observed value (UoMoConfig.carry)
    carry_skip: bool = False  # ... and predicts the change from it (UoMoConfig.carry_skip; implies carry_channel)
    history: bool = False  # the one-day lag is also filled from the day before the window (ContextSwitches.history)
    history_drop: float = 0.2  # with `history`: share of training windows drawn without their day before
    user_tokens: bool = False  # users also enter the token stream (UoMoConfig.user_tokens; added when fine-tuning)
    poi_names: bool = False  # the POI encoder learns the training cities' named categories (UoMoConfig.poi_names)
    static_drop: float = 0.0  # share of training windows shown without their static layers (POI, residents)
    init_from: str | None = None
    train_fraction: float = 1.0  # few-shot: first share of each city's training windows (few_shot_city)
    city_weights: dict = field(default_factory=dict)  # city or family name -> relative weight (city_sampling_weights)
    val_every: int = 1000
    save_every: int = 100  # last.pt is also written every this many steps (a killed run loses less)
    lr_horizon: int | None = None  # steps of the cosine decay; fixed at first launch (None: `steps`)
    val_stride: int = 16
    val_samples: int = 4
    val_steps: int = 10
    val_max_windows: int = 256
    seed: int = 0
    out: str = "runs/uomo"

    def validate(self) -> None:
        preset(self.preset)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.save_every < 1 or self.val_every < 1:
            raise ValueError("save_every and val_every must be >= 1")
        if self.user_tokens and "users" not in self.context:
            raise ValueError("user_tokens feeds the users to the token stream: it needs users in context "
                             "(--context users)")
        if self.freeze not in ("none", "backbone", "context"):
            raise ValueError(f"freeze must be 'none', 'backbone' or 'context', got {self.freeze!r}")
        bad = set(self.context) - {"users", "poi", "residents"}
        if bad:
            raise ValueError(f"unknown context inputs {sorted(bad)}: use 'users', 'poi' and/or 'residents'")
        if "residents" in self.context and "poi" not in self.context:
            raise ValueError("the residents layer is read as one more POI category: --context residents needs poi")
        if self.poi_names and "poi" not in self.context:
            raise ValueError("poi_names teaches the POI encoder category names: it needs poi in context (--context poi)")
        bad = set(self.task_mix) - {"short", "long", "generation", "random"}
        if bad or not self.task_mix or min(self.task_mix.values()) < 0 or sum(self.task_mix.values()) <= 0:
            raise ValueError(f"task_mix must weight short/long/generation/random with non-negative weights, got {self.task_mix}")
        if self.users_exog not in ("hist", "futr"):
            raise ValueError(f"users_exog must be 'hist' or 'futr', got {self.users_exog!r}")
        if self.users_exog == "futr" and "users" not in self.context:
            raise ValueError("users_exog='futr' shows user counts of the horizon: it needs 'users' in context")
        if self.loss_weighting not in ("none", "cell_level"):
            raise ValueError(f"loss_weighting must be 'none' or 'cell_level', got {self.loss_weighting!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if self.lead_boost < 0:
            raise ValueError(f"lead_boost must be >= 0, got {self.lead_boost}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.static_drop <= 1:
            raise ValueError(f"static_drop must lie in [0, 1], got {self.static_drop}")
        if not 0 <= self.history_drop <= 1:
            raise ValueError(f"history_drop must lie in [0, 1], got {self.history_drop}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must lie in (0, 1], got {self.train_fraction}")

    @property
    def context_switches(self) -> ContextSwitches:
        return ContextSwitches(users="users" in self.context, poi="poi" in self.context, users_exog=self.users_exog,
                               history=self.history, residents="residents" in self.context)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over `cfg.lr_horizon` steps (default `steps`),
    then the 10% floor: steps added on --resume past the first launch's horizon run at the floor."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    horizon = cfg.lr_horizon or cfg.steps
    progress = (step - cfg.warmup) / max(1, horizon - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


#: settings that shape the optimisation trajectory: a resumed run must keep them (the CLI flag in brackets)
RESUME_FIXED = {
    "lr": "--lr", "batch_size": "--batch-size", "seed": "--seed", "warmup": None, "weight_decay": "--weight-decay",
    "augment": "--augment", "lead_boost": "--lead-boost",
    "ema_decay": "--ema-decay", "task_mix": "--task-mix", "contrastive_weight": "--contrastive-weight",
    "loss_weighting": "--loss-weighting", "train_fraction": "--train-fraction", "city_weights": "--city-weight",
    "diffusion_steps": "--diffusion-steps", "schedule": None, "context": "--context", "freeze": "--freeze",
    "users_exog": "--users-exog", "static_drop": "--static-drop",
}


def check_resume(cfg: TrainConfig, old: dict, source: str) -> None:
    """Refuse a resume whose trajectory settings differ from the run's first launch (`old`: its TrainConfig).

    A changed --lr, --batch-size, --seed, ... would silently give a run that is neither the old one nor
    a fresh one. --steps may grow: the cosine schedule keeps the first launch's horizon (`lr_horizon`).
    """
    if "future_users" in old and "users_exog" not in old:  # runs started before users_exog (--future-users)
        old = {**old, "users_exog": "futr" if old["future_users"] else "hist"}
    changed = [
        f"{flag or key} {old[key]!r} -> {getattr(cfg, key)!r}"
        for key, flag in RESUME_FIXED.items()
        if key in old and old[key] != getattr(cfg, key)
    ]
    if changed:
        raise ValueError(
            f"--resume: {source} was started with other settings ({'; '.join(changed)}); resume with the "
            "run's own settings, or start a new --out"
        )
