"""Forecast with a trained UoMo model: samples, point forecasts and quantiles, in the benchmark API or as tidy frames.

    model = load_forecaster("uomo-synthetic-cpu")                 # shipped checkpoint, or a path
    pred = model.predict(hide(windows, mask), mask)               # Forecaster interface (normalised)
    frame = model.forecast_city(city, task="long", regions=[0])   # tidy frame in raw units
"""

from __future__ import annotations

import warnings

from dataclasses import replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import torch

from .calibration import Calibration, OutdatedCalibration, calibration_path
from .checkpoint import (
    CheckpointError,
    deployed_weights,
    load_checkpoint,
    load_state_strict,
    resolve_checkpoint,
    scalers_from_dict,
    weights_digest,
)
from .data import City, CityScalers, Windows, make_windows
from .diffusion import NoiseSchedule, make_schedule
from .encoding import ContextSwitches
from .exog import known_for_horizon
from .inference import SamplingConfig, default_device, predict_samples
from .interface import Forecaster, Prediction, hide
from .masks import batch_masks
from .model import UoMoConfig, UoMoNet

def forecast_scalers(city: City) -> CityScalers:
    """The city's scalers: fitted on its training regions, or on all its regions when it has none.

    UoMo rescales every cell by its own observed level, so the city scale only sets the clipping range;
    a city given only for forecasting (all regions 'test') is scaled by its whole history.
    """
    if city.regions("train").size:
        return CityScalers.fit(city)
    return CityScalers.fit(replace(city, split=np.full(city.n_regions, "train")))


class UoMoForecaster(Forecaster):
    """UoMo behind the common Forecaster interface (fit = nothing: train with `forecasting.train`)."""

    name = "uomo"
    tasks = ("short", "long", "generation")

    def __init__(
        self,
        net: UoMoNet,
        schedule: NoiseSchedule,
        sampling: SamplingConfig | None = None,
        context: ContextSwitches = ContextSwitches(),
        scalers: dict[str, CityScalers] | None = None,
        device: torch.device | str | None = None,
        meta: dict | None = None,
        calibration: "Calibration | None" = None,
    ):
        self.calibration = calibration
        self.device = torch.device(device) if device is not None else default_device()
        self.net = net.to(self.device).eval()
        self.schedule = schedule
        self.sampling = sampling or SamplingConfig()
        self.context = context
        self.scalers = dict(scalers or {})
        self.meta = dict(meta or {})

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device=None, sampling: SamplingConfig | None = None) -> "UoMoForecaster":
        state, config = load_checkpoint(path)
        try:
            model_cfg = UoMoConfig.from_dict(config["model"])
            diffusion_cfg = config["diffusion"]
            context_cfg = config.get("context", {"users": True, "poi": True})
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: config lacks the model/diffusion sections ({exc})") from exc
        net = UoMoNet(model_cfg)
        load_state_strict(net, deployed_weights(state, path), str(path))
        schedule = make_schedule(diffusion_cfg["schedule"], int(diffusion_cfg["steps"]))
        scalers = {name: scalers_from_dict(d) for name, d in config.get("scalers", {}).items()}
        cal_file = calibration_path(path)
        calibration = None
        if cal_file.is_file():
            try:
                calibration = Calibration.load(cal_file)
            except OutdatedCalibration as exc:  # the network is fine: serve raw samples and say how to re-fit
                warnings.warn(f"{exc}; using the raw samples until then", stacklevel=2)
            fitted_on = calibration.meta.get("weights_digest") if calibration is not None else None
            if fitted_on is not None and fitted_on != weights_digest(net):
                warnings.warn(f"{cal_file} was fitted on other weights than {path} holds: re-fit it (python "
                              "bench/calibration_bench.py --checkpoint ... --save); using the raw samples until then",
                              stacklevel=2)
                calibration = None
        return cls(net, schedule, sampling, ContextSwitches.from_dict(context_cfg), scalers, device, meta=config,
                   calibration=calibration)

    @property
    def futr_exog(self) -> tuple[str, ...]:  # type: ignore[override]
        """('users',) when the network reads users at hidden entries (trained with users declared futr)."""
        return self.context.futr_names

    # -- Forecaster interface ------------------------------------------------------------------------
    def sample(self, windows: Windows, mask: np.ndarray, sampling: SamplingConfig | None = None) -> np.ndarray:
        """(S, N, T, H, W) normalised samples for `windows` whose hidden entries (`mask`) are NaN.

        `sampling` overrides this forecaster's own SamplingConfig for one call; a grid other than its
        `tile` (4 x 4) is sampled as overlapping tiles and blended (`forecasting.tiling`).
        """
        return predict_samples(self.net, self.schedule, windows, mask, sampling or self.sampling, self.context, self.device)

    def predict(self, windows: Windows, mask: np.ndarray, calibrated: bool = True) -> Prediction:
        """Point forecast (median or mean of the raw samples) and samples, recalibrated when this model
        has a calibration (`<checkpoint>.calibration.json`) unless `calibrated=False` (then both raw)."""
        samples = self.sample(windows, mask)
        point = np.median(samples, 0) if self.sampling.point == "median" else samples.mean(0)
        pred = Prediction(mean=point.astype(np.float32), samples=samples)
        if calibrated and self.calibration is not None:
            pred = self.calibration.calibrate(pred, windows, mask)
        return pred

    # -- user-facing ---------------------------------------------------------------------------------
    def forecast_city(
        self,
        city: City,
        task: Literal["short", "long", "generation"] = "short",
        regions: Sequence[int] | None = None,
        cells: Sequence[tuple[int, int]] | None = None,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        stride: int | None = None,
    ) -> pd.DataFrame:
        """Forecast the hidden part of consecutive 64-step windows of `city` and return a tidy frame.

        Columns: region, row, col, cell_id, step, day_of_week, slot_of_day, window_start, truth,
        mean, q<quantile>... in raw traffic units. For 'generation', `cells` (row, col) are the areas
        forecast with no history (default: 25% of cells drawn with a fixed seed).
        """
        from .masks import task_mask

        scalers = self.scalers.get(city.name) or forecast_scalers(city)
        regions = list(range(city.n_regions)) if regions is None else list(regions)
        win = make_windows(city, regions=regions, stride=stride or 64, scalers=scalers)
        shape = win.traffic.shape[1:]
        if task == "generation" and cells is not None:
            mask = np.broadcast_to(task_mask("generation", shape, cells=cells)[None], win.traffic.shape).copy()
        else:
            mask = batch_masks(task, len(win), shape, rng=np.random.default_rng(self.sampling.seed))
        samples = self.predict(hide(win, mask, futr_exog=known_for_horizon(self, city)), mask).samples
        raw = scalers.traffic.inverse(samples)  # (S, N, T, H, W), calibrated when the model has a calibration
        truth = scalers.traffic.inverse(win.traffic)
        n, T, H, W = win.traffic.shape
        idx = np.argwhere(mask)  # (K, 4): window, t, row, col
        w, t, r, c = idx.T
        frame = pd.DataFrame(
            {
                "region": win.region[w],
                "row": r,
                "col": c,
                "step": win.start[w] + t,
                "window_start": win.start[w],
                "day_of_week": win.day_of_week[w, t],
                "slot_of_day": win.slot_of_day[w, t],
                "truth": truth[w, t, r, c],
                "mean": raw.mean(0)[w, t, r, c],
            }
        )
        for q in quantiles:
            frame[f"q{q:g}"] = np.quantile(raw, q, axis=0)[w, t, r, c]
        if city.cell_ids is not None:
            frame.insert(3, "cell_id", city.cell_ids[frame["region"], frame["row"], frame["col"]])
        return frame


class UoMoEnsemble(UoMoForecaster):
    """Several trained UoMo networks as one forecaster: their predictive samples pooled (a mixture).

    Member m draws `sampling.n_samples` samples with seed `sampling.seed + m`, so the pooled
    predictive distribution holds M x n_samples samples and the point forecast is their median (or
    mean). Averaging networks trained with other tokenisations or seeds lowers the variance that one
    checkpoint carries; the cost is M times the sampling time of one member at the same n_samples.
    Members must share their context switches (what they are allowed to see); city scalers, used only
    to return raw units in `forecast_city`, are the first member's.
    """

    def __init__(self, members: Sequence[UoMoForecaster], sampling: SamplingConfig | None = None):
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        contexts = {m.context for m in members}
        if len(contexts) > 1:
            raise ValueError(f"ensemble members see different context inputs {sorted(map(str, contexts))}: "
                             "combine only models trained with the same --context")
        self.members = members
        first = members[0]
        self.device, self.context, self.scalers = first.device, first.context, dict(first.scalers)
        self.sampling = sampling or first.sampling
        self.meta = {"members": [m.meta for m in members]}
        self.calibration = None  # a pooled mixture is calibrated as a whole (fit_calibration on the ensemble)

    def sample(self, windows: Windows, mask: np.ndarray, sampling: SamplingConfig | None = None) -> np.ndarray:
        """(M * S, N, T, H, W): each member's S samples, member m seeded with `sampling.seed + m`."""
        sampling = sampling or self.sampling
        return np.concatenate([
            m.sample(windows, mask, replace(sampling, seed=sampling.seed + i)) for i, m in enumerate(self.members)
        ])


def load_forecaster(
    name_or_path: str | Path | Sequence[str | Path] = "uomo-synthetic-cpu", device=None, **sampling
) -> UoMoForecaster:
    """Load a UoMo forecaster by shipped name or checkpoint path; keyword args set SamplingConfig fields.

    A list of two or more names/paths loads a `UoMoEnsemble` (n_samples is then per member).
    """
    config = SamplingConfig(**sampling)
    names = list(name_or_path) if isinstance(name_or_path, (list, tuple)) else [name_or_path]
    members = [UoMoForecaster.from_checkpoint(resolve_checkpoint(n), device=device, sampling=config) for n in names]
    return members[0] if len(members) == 1 else UoMoEnsemble(members, config)
