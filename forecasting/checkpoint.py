"""Checkpoints: weights plus the full model/training config, written atomically, loaded without pickle.

A checkpoint is a flat dict of tensors and plain values saved with `torch.save` and read back with
`torch.load(..., weights_only=True)`, so loading a file never executes code from it. The config travels
as a JSON string with a schema version; a file that is corrupt, foreign or of another schema, or whose
weights do not match the network it declares, is refused with a message saying so (strict loading).

This is the one place that resolves a checkpoint name (`resolve_checkpoint`: a shipped model or a
path) and loads weights (`load_checkpoint`, `deployed_weights`, `load_state_strict`); the forecaster
and the trainer both use it. `export_checkpoint` writes the deployable copy that ships (EMA weights,
float16); `average_checkpoints` writes the weighted mean of several checkpoints of one run (a weight
average); `weights_digest` fingerprints a network's weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .files import atomic_write

if TYPE_CHECKING:
    from .data import CityScalers

SCHEMA_VERSION = 1
FORMAT = "uomo-checkpoint"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message says why."""


def save_checkpoint(path: str | Path, state: dict[str, Any], config: dict) -> Path:
    """Write `state` (tensors, state dicts, plain values) and `config` to `path` atomically.

    The file is first written to a temporary file in the same folder and then renamed over `path`,
    so a crash mid-write never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(state)
    payload["format"] = FORMAT
    payload["schema_version"] = SCHEMA_VERSION
    payload["config_json"] = json.dumps(config, sort_keys=True)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a checkpoint safely; returns (state, config). Raises CheckpointError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unusable file
        raise CheckpointError(
            f"{path} is not a loadable UoMo checkpoint: {_refusal_reason(exc)}. The file is refused; "
            "re-create or re-download the checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a UoMo checkpoint (no '{FORMAT}' marker)")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint schema {version}, this toolkit reads schema {SCHEMA_VERSION}: "
            "re-export it with a matching version"
        )
    try:
        config = json.loads(payload.pop("config_json"))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path} has an unreadable config: {exc}") from exc
    return payload, config


def _refusal_reason(exc: Exception) -> str:
    """Why torch's safe reader refused a file, in our words: the offending object's name, or the reader's
    own diagnosis with none of its advice on how to load the file anyway (allow-listing, weights_only)."""
    import re

    text = str(exc)
    found = re.search(r"\bGLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds the Python object {found.group(1)}, which safe loading never executes "
                "(a checkpoint holds only tensors and plain values)")
    advice = re.compile(r"weights_only|safe_globals|allowlist|allow-list|trust|documentation|option", re.I)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not advice.search(ln)]
    first = (lines or [type(exc).__name__])[0].split(". ")[0].rstrip(".")
    return f"it is corrupt or truncated ({first[:200]})"


def load_state_strict(module: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Load weights with strict key and shape checks; explain any mismatch instead of skipping it."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append(f"shape mismatch {wrong[:5]}")
        raise CheckpointError(f"{source}: weights do not match the declared network ({'; '.join(parts)})")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()}, strict=True)


def deployed_weights(state: dict, source: str | Path) -> dict:
    """The weights a checkpoint is used with: its EMA weights, else the raw model weights."""
    weights = state.get("ema") or state.get("model")
    if weights is None:
        raise CheckpointError(f"{source}: holds no model weights")
    return weights


# ----------------------------------------------------------------------------------------------------
# Shipped checkpoints and the scales a checkpoint records
# ----------------------------------------------------------------------------------------------------


def list_pretrained() -> list[str]:
    """Names of the checkpoints shipped with the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A shipped checkpoint name (see `list_pretrained`) or a path to a `.pt` file."""
    p = Path(name_or_path)
    if p.suffix == ".pt" or p.exists():
        if not p.is_file():
            raise CheckpointError(f"checkpoint {p} does not exist")
        return p
    shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    import difflib

    close = difflib.get_close_matches(str(name_or_path), list_pretrained(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise CheckpointError(
        f"unknown checkpoint {str(name_or_path)!r}: give a path to a .pt file or one of the shipped "
        f"models {list_pretrained()}{hint}"
    )


def scalers_to_dict(scalers: CityScalers) -> dict:
    """The per-city scales as stored in a checkpoint's config."""
    return {"traffic": scalers.traffic.scale, "users": None if scalers.users is None else scalers.users.scale}


def scalers_from_dict(d: dict) -> CityScalers:
    """The per-city scalers back from a checkpoint's config."""
    from .data import CityScalers, Scaler

    return CityScalers(Scaler(float(d["traffic"])), None if d.get("users") is None else Scaler(float(d["users"])))


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, float32 bytes): equal weights, equal digest."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def as_half(weights: dict) -> dict:
    """The floating-point tensors of a state dict in float16 (the shipped form; others kept as they are)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}


def export_checkpoint(source: str | Path, target: str | Path, half: bool = True, note: str | None = None) -> Path:
    """Write a deployable copy of `source`: EMA weights only (float16 if `half`), config kept.

    Used to ship small pretrained models; `load_forecaster` restores float32 weights on load.
    """
    state, config = load_checkpoint(source)
    weights = deployed_weights(state, source)
    if half:
        weights = as_half(weights)
    if note:
        config = {**config, "note": note}
    return save_checkpoint(target, {"ema": weights, "step": state.get("step", 0)}, config)


#: config sections that must agree for two checkpoints' weights to be averaged
AVERAGED_SECTIONS = ("model", "diffusion", "context", "scalers")


def average_checkpoints(sources: list[str | Path], target: str | Path, weights: list[float] | None = None,
                        note: str | None = None, half: bool = False) -> Path:
    """Write one checkpoint whose weights are the weighted mean of the sources' deployed (EMA) weights:

        theta = sum_i w_i theta_i,        w_i >= 0,  sum_i w_i = 1   (equal weights by default)

    A weight average ("model soup", stochastic weight averaging) is one network, used like any other. It
    is meaningful for checkpoints that share a loss basin: points of one run, or a run and its continuation
    (`--init` from it); independently initialised runs do not, and their average is usually worse than
    either. The sources must declare the same network, diffusion, context and data scales (else
    CheckpointError); the config is the first source's, with `averaged_from` recording sources and weights.
    Written in float32, or float16 with `half` (the shipped form, as `export_checkpoint` writes it).
    """
    if len(sources) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    w = [1.0 / len(sources)] * len(sources) if weights is None else [float(x) for x in weights]
    if len(w) != len(sources) or any(x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise CheckpointError(f"weights {w} must be one non-negative weight per checkpoint, summing to 1")
    loaded = [load_checkpoint(src) for src in sources]
    first_state, first_config = loaded[0]
    mean = {k: w[0] * v.double() if v.is_floating_point() else v
            for k, v in deployed_weights(first_state, sources[0]).items()}
    for src, (state, config), wi in zip(sources[1:], loaded[1:], w[1:]):
        differ = [s for s in AVERAGED_SECTIONS if config.get(s) != first_config.get(s)]
        if differ:
            raise CheckpointError(f"{src} declares another {', '.join(differ)} than {sources[0]}: only "
                                  "checkpoints of one network (one run and its continuations) can be averaged")
        other = deployed_weights(state, src)
        if set(other) != set(mean) or any(tuple(other[k].shape) != tuple(mean[k].shape) for k in mean):
            raise CheckpointError(f"{src}: weights do not match {sources[0]}'s (names or shapes differ)")
        for k, v in other.items():
            if v.is_floating_point():
                mean[k] = mean[k] + wi * v.double()
    averaged = {k: (v.float() if v.is_floating_point() else v) for k, v in mean.items()}
    if half:
        averaged = as_half(averaged)
    config = {**first_config, "averaged_from": [{"checkpoint": str(src), "weight": wi} for src, wi in zip(sources, w)]}
    if note:
        config["note"] = note
    return save_checkpoint(target, {"ema": averaged, "step": int(first_state.get("step", 0))}, config)
