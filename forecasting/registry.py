"""The one place a forecaster is made from its name.

    make_forecaster("daily_profile")               # a baseline (fit it on a city before use)
    make_forecaster("daily_profile", city=city)    # ... already fitted on the city's training regions
    make_forecaster("uomo-public-cpu", sampling={"n_samples": 32})   # a shipped checkpoint or a path
    make_forecaster(["a.pt", "b.pt"])              # several checkpoints: one pooled ensemble

Names resolve in this order: the reference baselines (`forecasting.baselines.BASELINES`), the optional
ones that need an extra package (`OPTIONAL_BASELINES`: PatchTST needs neuralforecast), then UoMo
checkpoints (a shipped name, a path, or "uomo" for the default shipped model; see
`forecasting.checkpoint.resolve_checkpoint`). The scenario pipeline, the forecast benchmark and the
planning benchmark all come through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .data import City
from .interface import Forecaster


class ForecasterUnavailable(RuntimeError):
    """A known forecaster that cannot be made on this machine (a missing optional package)."""


def baseline_names() -> list[str]:
    """Every baseline name, optional ones included (sorted)."""
    from .baselines import BASELINES, OPTIONAL_BASELINES

    return sorted([*BASELINES, *OPTIONAL_BASELINES])


def is_baseline(name: str | Path | Sequence) -> bool:
    """True for a registry name of a (reference or optional) baseline."""
    return isinstance(name, str) and name in baseline_names()


def make_forecaster(
    name: str | Path | Sequence[str | Path],
    city: City | None = None,
    sampling: dict | None = None,
    device=None,
) -> Forecaster:
    """The forecaster called `name`: a baseline (fitted on `city` when given) or a UoMo checkpoint.

    sampling: `SamplingConfig` fields for a UoMo checkpoint (ignored by baselines); device: its torch
    device. Raises ForecasterUnavailable for an optional baseline whose package is missing, and
    `forecasting.checkpoint.CheckpointError` for a checkpoint name or path that does not resolve.
    """
    from .baselines import BASELINES, OPTIONAL_BASELINES, neuralforecast_available

    if is_baseline(name):
        if name in OPTIONAL_BASELINES and not neuralforecast_available():
            raise ForecasterUnavailable(f"{name!r} needs the optional package neuralforecast")
        model = (BASELINES.get(name) or OPTIONAL_BASELINES[name])()
        return model.fit(city) if city is not None else model
    from .forecast import load_forecaster

    sampling = dict(sampling or {})
    if name == "uomo":
        return load_forecaster(device=device, **sampling)
    return load_forecaster(name, device=device, **sampling)
