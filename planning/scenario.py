"""Planning scenarios: the YAML schema (pydantic), loading with overrides, and running one end to end.

    scenario = load_scenario("scenarios/demo.yaml", overrides=["deployment.max_bs=80"])
    result = run_scenario(scenario)              # load -> forecast -> plan -> replay; writes nothing
    planning.report.write_report(result, "out/demo")

Every field, its default and its meaning is listed in `scenarios/README.md` (generated from this
schema by `schema_markdown`). Unknown keys are rejected; every error names the field path and what to
change; relative paths are read from the folder of the YAML file.
"""

from __future__ import annotations

import difflib
import math
import os
import time
import types
import typing
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Sequence, Union

import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

if TYPE_CHECKING:
    from forecasting.data import City

    from .demand import Demand
    from .params import DeployParams, SleepParams

PROBLEMS: tuple[str, ...] = ("deployment", "sleep")
DEPLOY_STRATEGIES = ("forecast", "poi", "residents")
SLEEP_STRATEGIES = ("forecast", "always_on", "threshold")  # "rolling" on request (native slots, traffic)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; `problems` lists (field path, message) pairs."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.problems = list(problems)


# ----------------------------------------------------------------------------------------------------
# Field types: paths relative to the scenario file, scalars-or-lists with one clear error
# ----------------------------------------------------------------------------------------------------


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A path as written in the scenario, made absolute against the scenario file's folder."""
    p = Path(os.path.expandvars(str(value))).expanduser()
    return p if p.is_absolute() else (_base_dir(info) / p).resolve()


def _must_exist(value: Path, info: ValidationInfo) -> Path:
    if not value.exists():
        raise ValueError(
            f"{value} does not exist (relative paths are read from the scenario's folder {_base_dir(info)})"
        )
    return value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
ExistingPath = Annotated[Path, AfterValidator(_resolve_path), AfterValidator(_must_exist)]


def _number_text(v: float) -> str:
    """A non-finite number as the scenario spells it (YAML .inf / -.inf / .nan)."""
    return "not a number (.nan)" if v != v else ("infinity (.inf)" if v > 0 else "minus infinity (-.inf)")


def _per_cell(kind: type, low: float, strict: bool, high: float | None = None):
    """Validator of 'a number, or a list of numbers (one per planned cell)' with one readable error."""
    bound = f"> {low:g}" if strict else f">= {low:g}"
    if high is not None:
        bound += f" and <= {high:g}"
    what = "a whole number" if kind is int else "a number"

    def check_one(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be {what} {bound} or a list of them (one per cell), got {v!r}")
        if kind is int and float(v) != int(v):
            raise ValueError(f"must hold whole numbers, got {v!r}")
        if not np.isfinite(v):
            raise ValueError(f"must be a finite number {bound}, got {_number_text(v)}")
        ok = (v > low if strict else v >= low) and (high is None or v <= high)
        if not ok:
            raise ValueError(f"must be {bound}, got {v!r}")
        return kind(v)

    def check(v):
        if isinstance(v, (list, tuple)):
            if not v:
                raise ValueError("an empty list: give one number, or one per cell")
            return [check_one(x) for x in v]
        return check_one(v)

    return BeforeValidator(check)


PositiveOrList = Annotated[Union[float, list[float]], _per_cell(float, 0, True)]
NonNegativeOrList = Annotated[Union[float, list[float]], _per_cell(float, 0, False)]
CountOrList = Annotated[Union[int, list[int]], _per_cell(int, 0, False)]
PositiveCountOrList = Annotated[Union[int, list[int]], _per_cell(int, 1, False)]
ShareOrList = Annotated[Union[float, list[float]], _per_cell(float, 0, False, 1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """`capacity: true` is a slip, not 1.0: booleans only where a field is a yes/no switch."""
        if isinstance(data, dict):
            for key, v in data.items():
                field = cls.model_fields.get(key)
                if isinstance(v, bool) and field is not None and "bool" not in str(field.annotation):
                    raise ValueError(f"{key}: got the yes/no value {v!r}; give a number (or the text the field asks for)")
        return data


# ----------------------------------------------------------------------------------------------------
# Schema: the city
# ----------------------------------------------------------------------------------------------------


class SyntheticCity(_Strict):
    """A seeded synthetic city (forecasting.data.synthetic); unset fields take the preset's values."""

    source: Literal["synthetic"] = Field("synthetic", description="`synthetic`: generate a seeded city")
    preset: str = Field("synthetic", description="a preset of `forecasting.data.synthetic.SYNTHETIC_PRESETS` "
                        "(synthetic, synthetic-small, synthetic-15min, synthetic-10min, synthetic-large)")
    rows: int | None = Field(None, description="grid rows (cropped to whole regions)")
    cols: int | None = Field(None, description="grid columns")
    region_size: tuple[int, int] | None = Field(None, description="cells per region [rows, cols]")
    days: int | None = Field(None, description="length of the series in days")
    slots_per_day: int | None = Field(None, description="time slots per day (must divide 1440 minutes)")
    start_day_of_week: int | None = Field(None, description="0 = Monday .. 6 = Sunday")
    split_fractions: tuple[float, float, float] | None = Field(None, description="train/val/test shares of the regions")
    n_poi_categories: int | None = Field(None, description="POI categories")
    event_rate: float | None = Field(None, description="expected events per region per week")
    noise: float | None = Field(None, description="scale of the multiplicative noise (0 = noise-free)")
    seed: int | None = Field(None, description="city seed (default: the scenario's `seed`)")
    cell_size: float | None = Field(None, description="cell side in metres")
    water_fraction: float | None = Field(None, description="share of cells under the river")

    @model_validator(mode="after")
    def _check_config(self) -> "SyntheticCity":
        self.config(0)  # the generator's own checks, reported at city.synthetic
        return self

    def config(self, default_seed: int):
        """The generator config: the preset with the fields given here."""
        from forecasting.data.synthetic import SYNTHETIC_PRESETS

        if self.preset not in SYNTHETIC_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: use one of {sorted(SYNTHETIC_PRESETS)}")
        given = self.model_dump(exclude={"source", "preset"}, exclude_none=True)
        given.setdefault("seed", default_seed)
        return replace(SYNTHETIC_PRESETS[self.preset], **given)


class NpzCity(_Strict):
    """A city in the `.npz` format of `../shared/data/README.md`."""

    source: Literal["npz"] = Field("npz", description="`npz`: a file in the format of ../shared/data/README.md")
    path: ExistingPath = Field(description="the .npz file (relative to the scenario file)")
    name: str | None = Field(None, description="city name (default: the file name)")


class RealCity(_Strict):
    """A real city by name, read from the shared data folder (`../shared/data` or $UOMO_DATA_DIR)."""

    source: Literal["real"] = Field("real", description="`real`: nanjing or nanchang from the shared data folder")
    name: Literal["nanjing", "nanchang"] = Field(description="which real city")
    data_dir: ResolvedPath | None = Field(
        None, description="folder holding <name>.npz (default: $UOMO_DATA_DIR, else ../shared/data beside the repository)"
    )


class ReleaseCity(_Strict):
    """The paper's public release (64-step windows in JSON), stitched back into series."""

    source: Literal["release_json"] = Field("release_json", description="`release_json`: a directory of the paper's release files")
    dir: ExistingPath = Field(description="directory holding 24_<City>_short64.json (+ user64/poi64)")
    city: str | None = Field(None, description="release city name, e.g. TrafficNC (needed if the folder holds several)")
    slots_per_day: int | None = Field(None, description="slots per day (default: inferred from the timestamps)")
    stride: int | None = Field(None, description="stride between consecutive windows (default: detected)")


class TableCity(_Strict):
    """Long tables: one row per (cell, timestamp); cells and POI as optional tables or GeoJSON."""

    source: Literal["long_table"] = Field("long_table", description="`long_table`: CSV/Parquet rows of (cell_id, timestamp, traffic[, users])")
    traffic: ExistingPath = Field(description="the traffic table (CSV/Parquet)")
    cells: ExistingPath | None = Field(None, description="cell table: CSV/Parquet with row/col or x/y, or GeoJSON/GeoPackage polygons")
    poi: ExistingPath | None = Field(None, description="POI table: rows of (cell_id, category, count)")
    region_size: tuple[int, int] | None = Field(None, description="cut the grid into regions of [rows, cols] cells")
    split: Union[str, list[str], dict[str, str], None] = Field(
        None, description="split label(s) of the regions: one label, one per region, or {region: label}"
    )
    columns: dict[str, str] | None = Field(None, description="rename columns: {expected name: name in your table}")
    cell_size: float | None = Field(None, description="cell side in CRS units (default: from the coordinates)")
    crs: str | None = Field(None, description="CRS of the coordinates, e.g. EPSG:32650")
    fill_missing: float | None = Field(None, description="value for missing (cell, timestamp) rows (default: refuse them)")
    split_fractions: tuple[float, float, float] = Field((0.7, 0.15, 0.15), description="train/val/test shares when no split is given")
    name: str | None = Field(None, description="city name (default: the file name)")


CitySpec = Annotated[Union[SyntheticCity, NpzCity, RealCity, ReleaseCity, TableCity], Field(discriminator="source")]


class Area(_Strict):
    """Which cells to plan: regions of a split (or listed), optionally narrowed to some cell ids."""

    split: Literal["train", "val", "test"] = Field("test", description="plan the regions of this split (areas the forecaster never saw)")
    regions: list[Annotated[int, Field(ge=0)]] | None = Field(None, description="region indices to plan instead of a split")
    cells: list[str] | None = Field(
        None, description="keep only these cell ids (default ids: r<region>_<row>_<col>); forecasting still uses whole regions"
    )


# ----------------------------------------------------------------------------------------------------
# Schema: forecaster, horizon, problems, solver, output
# ----------------------------------------------------------------------------------------------------


class Sampling(_Strict):
    """How a UoMo checkpoint draws its forecasts (ignored by baselines)."""

    sampler: Literal["ddim", "ddpm"] = Field("ddim", description="reverse-diffusion sampler")
    steps: int = Field(20, ge=1, le=1000, description="denoising steps per sample")
    n_samples: int = Field(8, ge=1, le=256, description="samples per window (quantile bands need >= 2)")
    eta: float = Field(0.0, ge=0.0, le=1.0, description="DDIM stochasticity (0 = deterministic)")
    point: Literal["median", "mean"] = Field("median", description="point forecast statistic of the samples")
    batch_size: int = Field(128, ge=1, description="windows x samples per network call")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith(".pt")


def _resolve_checkpoint(value: Any, info: ValidationInfo) -> Any:
    """A forecaster name that is a checkpoint path, made absolute against the scenario file's folder."""
    if isinstance(value, str) and _looks_like_path(value):
        p = Path(os.path.expandvars(value)).expanduser()
        return str(p if p.is_absolute() else (_base_dir(info) / p).resolve())
    return value


#: a per-problem forecaster: a baseline, a shipped checkpoint name or a checkpoint path (relative to the scenario)
ProblemForecaster = Annotated[Union[str, None], BeforeValidator(_resolve_checkpoint)]


class ForecasterSpec(_Strict):
    """The forecaster: a shipped checkpoint name, a checkpoint path, or a baseline name."""

    model: str = Field(
        "uomo-synthetic-cpu",
        description="shipped UoMo checkpoint name (see forecasting.forecast.list_pretrained), a path to a .pt "
        "checkpoint (relative to the scenario file), or a baseline of forecasting.baselines.BASELINES",
    )
    fallback: dict[Literal["generation", "long"], str] | None = Field(
        None,
        description="baseline per task used only when the forecaster does not serve that task (the report says "
        "so); a checkpoint that cannot be found is an error, not a fallback; e.g. {generation: poi_regression, "
        "long: daily_profile}",
    )
    device: str | None = Field(None, description="torch device for UoMo: cpu, cuda, mps (default: the best available)")
    sampling: Sampling = Field(default_factory=Sampling, description="UoMo sampling settings")
    quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [0.1, 0.5, 0.9], description="forecast quantiles drawn as bands in the report (needs a sampling forecaster)"
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_model_path(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            data = {**data, "model": _resolve_checkpoint(data["model"], info)}
        return data

    @model_validator(mode="after")
    def _check(self) -> "ForecasterSpec":
        from forecasting.baselines import BASELINES

        if _looks_like_path(self.model) and not Path(self.model).is_file():
            raise ValueError(f"model: checkpoint file {self.model} does not exist")
        for task, name in (self.fallback or {}).items():
            if name not in BASELINES:
                raise ValueError(f"fallback.{task}: {name!r} is not a baseline; use one of {sorted(BASELINES)}")
        return self


class Horizon(_Strict):
    """The planned period: a slice of the series, optionally aggregated to coarser slots."""

    days: float | None = Field(None, gt=0, description="length of the planned period in days (default: all that can be forecast)")
    start_day: float | None = Field(
        None, ge=0, description="start, in days from the first step of the series (default: the period ends at the last step)"
    )
    slots_per_day: int | None = Field(None, ge=1, description="aggregate to this many slots per day (must divide the city's)")
    aggregate: Literal["mean", "max", "sum"] | None = Field(
        None, description="how slots are combined when aggregating (default: mean for users, sum for traffic)"
    )


def _forecaster_override(name: str | None, task: str, where: str) -> str | None:
    """Check a per-problem forecaster name: baselines must serve the task."""
    if name is None:
        return None
    from forecasting.baselines import BASELINES

    if _looks_like_path(name) and not Path(name).is_file():
        raise ValueError(f"{where}: checkpoint file {name} does not exist (relative paths are read from the "
                         "scenario's folder)")
    if name in BASELINES and task not in BASELINES[name].tasks:
        good = sorted(k for k, v in BASELINES.items() if task in v.tasks)
        raise ValueError(
            f"{where}: baseline {name!r} cannot forecast the {task!r} task (it serves {list(BASELINES[name].tasks)}); "
            f"use one of {good} or a UoMo checkpoint"
        )
    return name


class RiskSpec(_Strict):
    """What a forecast-based plan is made on: the point forecast, a quantile of the forecast, or its scenarios."""

    on: Literal["point", "quantile", "scenarios"] = Field(
        "point", description="point: the point forecast; quantile: the forecast's q-quantile; scenarios: the "
        "expected objective over the forecast's samples (calibrated on val regions)")
    q: float | None = Field(None, gt=0, lt=1, description="the planning quantile (with on: quantile), in (0, 1)")
    epsilon: float | None = Field(None, ge=0, le=1, description="sleep only, with on: scenarios: a chance "
                                  "constraint P(shortfall in a cell-slot) <= epsilon, in [0, 1]")

    @model_validator(mode="after")
    def _check(self) -> "RiskSpec":
        if self.on == "quantile" and self.q is None:
            raise ValueError("on: quantile needs q, a planning quantile in (0, 1), e.g. q: 0.8")
        if self.on != "quantile" and self.q is not None:
            raise ValueError(f"q is used only with on: quantile (on is {self.on!r}); remove q or set on: quantile")
        if self.epsilon is not None and self.on != "scenarios":
            raise ValueError("epsilon (a chance constraint) needs on: scenarios")
        return self

    @property
    def label(self) -> str:
        if self.on == "quantile":
            return f"q{self.q:g}"
        if self.on == "scenarios":
            return "scenarios" + (f", eps {self.epsilon:g}" if self.epsilon is not None else "")
        return "point"


class RollingSpec(_Strict):
    """Rolling-horizon sleep control: re-plan every R slots on short-term forecasts of the observed load."""

    every: int = Field(4, ge=1, description="R: slots committed per re-plan (>= 1)")
    lookahead: int = Field(16, ge=1, le=64, description="slots each re-plan looks ahead (the short-term task's 16)")


class DeploymentSpec(_Strict):
    """BS deployment (planning.deploy, paper Eq. 12): BSs per cell from forecast demand."""

    task: Literal["generation", "long"] = Field(
        "generation", description="how demand is forecast: generation (areas without history, the paper's setting) or long (16 -> 48 steps)"
    )
    forecaster: ProblemForecaster = Field(None, description="model for this problem instead of forecaster.model "
                                          "(a checkpoint path is read relative to the scenario file)")
    unit: Literal["users", "traffic"] = Field("users", description="unit of demand and capacity")
    horizon: Horizon = Field(default_factory=Horizon, description="planned period")
    capacity: float = Field(gt=0, description="C0: users (or traffic) one BS serves per slot")
    max_bs: int = Field(ge=0, description="M: BSs allowed in total, existing ones included")
    alpha: float = Field(0.0, ge=0, description="cost of one new BS per slot, in served-user units")
    beta: float = Field(0.0, ge=0, description="penalty per unserved user-slot")
    site_cost: PositiveOrList = Field(1.0, description="relative cost of a new BS per cell (one number or one per cell)")
    max_bs_per_cell: CountOrList | None = Field(None, description="site limit per cell (default: only max_bs limits)")
    existing: CountOrList | None = Field(None, description="BSs already in place per cell (they cost nothing)")
    budget: float | None = Field(None, ge=0, description="limit on the total cost of new BSs")
    exact_count: bool = Field(False, description="deploy exactly max_bs BSs (the paper's sum x = M)")
    min_served: ShareOrList | None = Field(None, description="service obligation per cell: share of its demand that must be served")
    neighbour_share: float = Field(0.0, ge=0, le=1, description="> 0 lets a BS serve adjacent cells with up to this share of its capacity (MILP)")
    method: Literal["auto", "milp", "greedy"] = Field("auto", description="auto: the exact greedy when valid, else the MILP")
    risk: RiskSpec = Field(default_factory=RiskSpec, description="what the forecast strategy plans on")
    strategies: list[Literal["forecast", "poi", "residents"]] = Field(
        list(DEPLOY_STRATEGIES), description="demand sources compared against the oracle (real demand), which is always planned"
    )

    @model_validator(mode="after")
    def _check(self) -> "DeploymentSpec":
        _forecaster_override(self.forecaster, self.task, "forecaster")
        if self.risk.epsilon is not None:
            raise ValueError("risk.epsilon is a sleep-control chance constraint; deployment plans on point, "
                             "quantile or scenarios only")
        return self

    def params(self) -> "DeployParams":
        """The planning parameters (per-cell lists are checked against the planned cells later)."""
        from .params import DeployParams

        return DeployParams(
            capacity=self.capacity, max_bs=self.max_bs, alpha=self.alpha, beta=self.beta,
            site_cost=np.asarray(self.site_cost, dtype=float), x_max=_array_or_none(self.max_bs_per_cell),
            existing=_array_or_none(self.existing), budget=self.budget, exact_count=self.exact_count,
            min_served=_array_or_none(self.min_served), neighbour_share=self.neighbour_share, unit=self.unit,
        )


class CapacityRule(_Strict):
    """Size c0 from the history before the planned period: c0 = headroom * quantile(load) / n_rru."""

    rule: Literal["history_peak"] = Field("history_peak", description="the only rule: per-cell history quantile")
    quantile: float = Field(1.0, gt=0, le=1, description="quantile of the cell's past load (1 = its peak)")
    headroom: float = Field(1.0, gt=0, description="factor on that load (1.2 = 20% spare capacity)")


class SleepSpec(_Strict):
    """RRU sleep control (planning.sleep, paper Eq. 13): active RRUs per cell and slot."""

    task: Literal["long", "generation"] = Field("long", description="how load is forecast (long: 16 observed -> 48 forecast steps)")
    forecaster: ProblemForecaster = Field(None, description="model for this problem instead of forecaster.model "
                                          "(a checkpoint path is read relative to the scenario file)")
    unit: Literal["users", "traffic"] = Field("traffic", description="unit of the load and of c0")
    horizon: Horizon = Field(default_factory=Horizon, description="planned period")
    c0: Union[PositiveOrList, CapacityRule] = Field(
        default_factory=CapacityRule,
        description="load one RRU carries per slot: a number, one per cell, or a rule {rule: history_peak, quantile, headroom}",
    )
    n_rru: PositiveCountOrList = Field(3, description="K: RRUs per cell")
    x0: CountOrList | None = Field(None, description="RRUs active before the first slot (default: all)")
    beta: float = Field(1.0, gt=0, description="energy of one active RRU per slot (static power)")
    alpha: NonNegativeOrList | None = Field(None, description="energy per unit of served load (default 0.5 beta / c0)")
    w_qos: float = Field(10.0, ge=0, description="weight of the QoS term (mean relative shortfall)")
    w_switch: float = Field(1.0, ge=0, description="weight of the switching term")
    w_energy: float = Field(1.0, ge=0, description="weight of the energy term (relative to always-on)")
    min_active: int = Field(0, ge=0, description="RRUs that stay on in every slot")
    method: Literal["dp", "milp"] = Field("dp", description="dp: exact dynamic program; milp: PuLP model per group")
    groups: Literal["cell", "all"] = Field("cell", description="MILP grouping: one model per cell, or one for all")
    threshold: float = Field(0.8, gt=0, le=1, description="utilisation target of the reactive threshold baseline")
    lag: int = Field(1, ge=1, description="slots between observing the load and reacting (threshold baseline)")
    risk: RiskSpec = Field(default_factory=RiskSpec, description="what the forecast and rolling strategies plan on")
    rolling: RollingSpec = Field(default_factory=RollingSpec, description="settings of the rolling strategy")
    strategies: list[Literal["forecast", "rolling", "always_on", "threshold"]] = Field(
        list(SLEEP_STRATEGIES), description="schedules compared against the oracle (planned on the real load), which is always planned"
    )

    @model_validator(mode="after")
    def _check(self) -> "SleepSpec":
        _forecaster_override(self.forecaster, self.task, "forecaster")
        if isinstance(self.n_rru, int) and self.min_active > self.n_rru:
            raise ValueError(f"min_active={self.min_active} exceeds n_rru={self.n_rru}")
        return self

    def params(self, c0) -> "SleepParams":
        """The planning parameters with RRU capacity `c0` (a number or one per cell)."""
        from .params import SleepParams

        return SleepParams(
            c0=np.asarray(c0, dtype=float), n_rru=np.asarray(self.n_rru), x0=_array_or_none(self.x0), beta=self.beta,
            alpha=_array_or_none(self.alpha), w_qos=self.w_qos, w_switch=self.w_switch, w_energy=self.w_energy,
            min_active=self.min_active, unit=self.unit,
        )


class SolverSpec(_Strict):
    """The MILP solver (used by deployment method milp/auto-without-greedy and sleep method milp)."""

    name: Literal["cbc", "highs"] = Field("cbc", description="cbc (bundled with PuLP) or highs (highspy)")
    time_limit: float | None = Field(60.0, gt=0, description="seconds per MILP; at the limit the incumbent is kept with its gap")
    gap: float = Field(1e-9, ge=0, lt=1, description="relative MIP gap counted as optimal")
    threads: int | None = Field(None, ge=1, description="solver threads (default: the solver's choice)")


class OutputSpec(_Strict):
    """Where and what to write."""

    dir: ResolvedPath = Field(Path("out"), description="output directory (relative to the scenario file; --out overrides)")
    figures: bool = Field(True, description="write PNG figures")
    sample_cells: int = Field(4, ge=1, le=16, description="cells shown in the forecast and load figures")


class Scenario(_Strict):
    """One planning study: a city, an area, a forecaster, one or two problems, a solver, an output."""

    name: str = Field("scenario", description="label used in reports (default: the file name)")
    description: str = Field("", description="free text copied into the report")
    seed: int = Field(0, description="seed of the synthetic city, of UoMo sampling and of random splits")
    city: CitySpec = Field(description="where the data comes from (`source` picks the kind)")
    area: Area = Field(default_factory=Area, description="which cells to plan")
    forecaster: ForecasterSpec = Field(default_factory=ForecasterSpec, description="the forecaster")
    deployment: DeploymentSpec | None = Field(None, description="BS deployment problem (omit to skip)")
    sleep: SleepSpec | None = Field(None, description="RRU sleep-control problem (omit to skip)")
    solver: SolverSpec = Field(default_factory=SolverSpec, description="MILP solver settings")
    output: OutputSpec = Field(default_factory=OutputSpec, description="output settings")

    _base_dir: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        if self.deployment is None and self.sleep is None:
            raise ValueError("the scenario defines no problem: add a `deployment:` and/or a `sleep:` section")
        from forecasting.baselines import BASELINES

        for problem in self.problems:
            spec = getattr(self, problem)
            if spec.risk.on != "point" and self.forecaster.model not in BASELINES \
                    and self.forecaster.sampling.n_samples < 2:
                raise ValueError(f"{problem}.risk.on: {spec.risk.on} plans on the forecast's samples: set "
                                 "forecaster.sampling.n_samples >= 2")
            if spec.forecaster is None and self.forecaster.model in BASELINES:
                try:
                    _forecaster_override(self.forecaster.model, spec.task, f"forecaster.model (for {problem})")
                except ValueError as exc:
                    raise ValueError(f"{exc}; or set {problem}.forecaster") from None
        return self

    @property
    def problems(self) -> list[str]:
        return [p for p in PROBLEMS if getattr(self, p) is not None]

    @property
    def base_dir(self) -> Path:
        return self._base_dir or Path.cwd()


def _array_or_none(v):
    return None if v is None else np.asarray(v)


# ----------------------------------------------------------------------------------------------------
# Loading: YAML -> overrides -> validation with readable errors
# ----------------------------------------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file (safe loader), or a ScenarioError saying where it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {path} does not exist", [("", "file not found")])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(
            f"{path}: malformed YAML{where}: {problem} (check indentation, colons and quotes there)",
            [("", f"malformed YAML{where}")],
        ) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a text file ({exc})") from None
    if data is None:
        raise ScenarioError(f"{path} is empty: a scenario needs at least `city:` and a problem section")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping of keys (city:, deployment:, ...), got a {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a', 'b', 'c'], value parsed as YAML: 80, 0.5, null, [1, 2], text)."""
    if "=" not in text:
        raise ScenarioError(f"override {text!r} must look like key.path=value, e.g. deployment.max_bs=80")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ScenarioError(f"override {text!r}: empty key path")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: Sequence[str] | dict | None) -> dict:
    """A copy of `data` with `overrides` ('key.path=value' strings, or a {key.path: value} dict) set."""
    import copy

    out = copy.deepcopy(data)
    if not overrides:
        return out
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    for key, value in items:
        parts = key.split(".") if isinstance(key, str) else list(key)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ScenarioError(
                    f"override {'.'.join(parts)}: {'.'.join(parts[: i + 1])} is a value, not a section",
                    [(".".join(parts), "not a section")],
                )
            node = nxt
        node[parts[-1]] = value
    return out


def scenario_from_dict(data: dict, base_dir: str | Path | None = None, name: str | None = None,
                       source: str = "scenario") -> Scenario:
    """Validate a scenario mapping; relative paths are read from `base_dir` (default: the working directory)."""
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    data = dict(data)
    if name and "name" not in data:
        data["name"] = name
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": base})
    except ValidationError as exc:
        problems = [_explain(e) for e in _union_errors_resolved(exc.errors())]
        lines = "\n".join(f"  - {p}: {m}" for p, m in problems)
        raise ScenarioError(f"{source}: {len(problems)} problem(s) in the scenario:\n{lines}", problems) from None
    scenario._base_dir = base
    return scenario


def load_scenario(path: str | Path, overrides: Sequence[str] | dict | None = None) -> Scenario:
    """Read, override and validate a scenario YAML file (see scenarios/README.md)."""
    path = Path(path)
    data = apply_overrides(read_yaml(path), overrides)
    return scenario_from_dict(data, base_dir=path.resolve().parent, name=path.stem, source=str(path))


def with_overrides(scenario: Scenario, overrides: Sequence[str] | dict) -> Scenario:
    """A validated copy of `scenario` with `overrides` applied (used by sweeps)."""
    data = apply_overrides(scenario.model_dump(mode="json"), overrides)
    return scenario_from_dict(data, base_dir=scenario.base_dir, source=f"scenario {scenario.name!r}")


def dump_scenario(scenario: Scenario) -> str:
    """The validated scenario as YAML (absolute paths, every default filled in): what was run."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


CITY_SOURCES = ("synthetic", "npz", "real", "release_json", "long_table")


def _path_text(loc: Sequence) -> str:
    """'deployment.site_cost[1]'; the city's union tag becomes a suffix: 'city.path [source: npz]'."""
    loc = list(loc)
    suffix = ""
    if len(loc) >= 2 and loc[0] == "city" and loc[1] in CITY_SOURCES:
        suffix = f" [source: {loc.pop(1)}]"
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return (out or "(top level)") + suffix


def _unwrap(annotation) -> list[type]:
    """The pydantic model classes inside an annotation (Optional, Union, Annotated, list)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, dict, tuple):
        return [m for a in typing.get_args(annotation) for m in _unwrap(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(loc: Sequence) -> tuple[type[BaseModel] | None, Any]:
    """Walk Scenario's schema along an error location: (the model reached, the last field's info).

    Locations of the city carry the `source` tag after `city` (pydantic's discriminated union), which
    selects the city kind; list indices are skipped.
    """
    node: Any = Scenario
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(node, dict):  # a tagged union: the part is the tag
            node = node.get(part)
            continue
        if node is None or part not in node.model_fields:
            return None, None
        info = node.model_fields[part]
        inner = _unwrap(info.annotation)
        if len(inner) > 1 and all("source" in m.model_fields for m in inner):
            node = {m.model_fields["source"].default: m for m in inner}
        else:
            node = inner[0] if len(inner) == 1 else None
    return (node if not isinstance(node, dict) else None), info


def _is_union_tag(part) -> bool:
    """A loc part naming a union member (pydantic's 'function-before[check(), ...]', 'CapacityRule'), not a key."""
    return isinstance(part, str) and (any(c in part for c in "[](), -") or part[:1].isupper())


def _union_errors_resolved(errors: Sequence[dict]) -> list[dict]:
    """Pydantic's errors with union-member tags taken out of their locations, keeping per field only the
    complaints of the member the input was meant for (a number for a number, a mapping for a section)."""
    items = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        clean = tuple(p for p in loc if not _is_union_tag(p))
        items.append(({**e, "loc": clean}, len(clean) != len(loc)))
    kept = []
    for e, in_union in items:
        if in_union:
            same = [o for o, u in items if u and o is not e and o["loc"][:len(e["loc"])] == e["loc"]]
            if e["type"] in ("model_type", "dict_type", "model_attributes_type") and same:
                continue  # the input is not a mapping: the section member's complaint is noise
            if isinstance(e.get("input"), dict) and any(len(o["loc"]) > len(e["loc"]) for o in same):
                continue  # the input is a mapping: report what is wrong inside it
        kept.append(e)
    return kept


def _explain(err: dict) -> tuple[str, str]:
    """(field path, message saying what to change) for one pydantic error."""
    loc = list(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        parent, _ = _model_at(loc[:-1])
        key = str(loc[-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return _path_text(loc), f"unknown key {key!r}{hint} (allowed here: {', '.join(allowed)})"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return _path_text(loc), "set `source:` to one of synthetic, npz, real, release_json, long_table"
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    _, info = _model_at(loc)
    hint = f" ({info.description})" if info is not None and info.description else ""
    if kind == "missing":
        return _path_text(loc), f"required field missing{hint}"
    got = err.get("input")
    text = _number_text(got) if isinstance(got, float) and not math.isfinite(got) else repr(got)
    shown = "" if isinstance(got, dict) or kind.startswith("value_error") else f", got {text}"
    return _path_text(loc), f"{msg}{shown}{hint}"


# ----------------------------------------------------------------------------------------------------
# Documentation of the schema
# ----------------------------------------------------------------------------------------------------


def _type_text(annotation) -> str:
    """A short readable type: 'number or list of numbers', 'one of: cbc, highs', 'path', 'section'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin in (Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return text + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin is list:
        inner = _type_text(args[0]) if args else ""
        if inner.startswith("one of: "):
            return "list of: " + inner[len("one of: "):]
        return f"list of {inner}s" if args else "list"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a) for a in args) + "]"
    if origin is dict:
        return f"mapping of {_type_text(args[0])} to {_type_text(args[1])}" if args else "mapping"
    names = {int: "integer", float: "number", str: "text", bool: "true/false", Path: "path"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return str(annotation)


def _default_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, str) else (value or "''")


def schema_fields(model: type[BaseModel] = Scenario, prefix: str = "", tag: str = "") -> list[tuple[str, str, str, str]]:
    """(path, type, default, description) of every field of the schema, nested sections expanded.

    Fields of the city kinds carry their `source` in the description, e.g. "[npz] the .npz file".
    """
    rows = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        models = _unwrap(info.annotation)
        default = "required" if info.is_required() else (
            "(defaults)" if info.default_factory is not None else _default_text(info.default)
        )
        desc = (f"[{tag}] " if tag else "") + (info.description or "")
        tagged = [m for m in models if "source" in m.model_fields]
        if len(models) > 1 and len(tagged) == len(models):  # the city: one table of every kind's fields
            kinds = ", ".join(m.model_fields["source"].default for m in models)
            rows.append((path, f"section, `source` one of: {kinds}", default, desc))
            for m in models:
                rows += [r for r in schema_fields(m, f"{path}.", m.model_fields["source"].default)]
            continue
        only_model = len(models) == 1 and typing.get_origin(info.annotation) is not list and all(
            a is type(None) or (isinstance(a, type) and issubclass(a, BaseModel))
            for a in (typing.get_args(info.annotation) or (info.annotation,))
        )
        rows.append((path, "section" if only_model else _type_text(info.annotation), default, desc))
        if len(models) == 1:
            rows += schema_fields(models[0], f"{path}.", tag)
    return rows


def schema_markdown() -> str:
    """Markdown tables of every field, one table per top-level section (pasted into scenarios/README.md)."""
    out, section = [], None
    sections = {name for name, info in Scenario.model_fields.items() if _unwrap(info.annotation)}
    for path, kind, default, desc in schema_fields():
        top = path.split(".")[0]
        top = top if top in sections else "top level"
        if top != section:
            section = top
            title = f"`{top}`" if top in sections else top
            out += ["", f"### {title}", "", "| field | type | default | meaning |", "| --- | --- | --- | --- |"]
        out.append(f"| `{path}` | {kind.replace('|', '/')} | {default.replace('|', '/')} | {desc.replace('|', '/')} |")
    return "\n".join(out).strip() + "\n"


# ----------------------------------------------------------------------------------------------------
# Running: load -> forecast -> plan -> replay (no files; planning.report writes them)
# ----------------------------------------------------------------------------------------------------


@dataclass
class StrategyRun:
    """One strategy of a problem: its plan, the plan's replay on real demand, what it was planned from."""

    name: str  # 'forecast' | 'poi' | 'residents' | 'oracle' | 'always_on' | 'threshold'
    label: str  # e.g. 'forecast (uomo)'
    plan: Any  # DeployPlan | SleepPlan
    score: Any  # DeployScore | SleepScore
    demand: Any | None  # the Demand it was planned from (None for reactive rules)
    seconds: float


@dataclass
class ForecastRun:
    """The forecast used by a problem, on the planned cells and slots (mean and quantile cubes)."""

    model: str  # the model actually used
    requested: str  # what the scenario asked for
    task: str
    mean: Any  # Demand
    quantiles: dict  # {q: Demand}; empty when the forecaster draws no samples
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class ProblemRun:
    """A solved and replayed problem: what the report reads."""

    problem: str  # 'deployment' | 'sleep'
    real: Any  # Demand on the planned cells and slots (the replay truth)
    params: Any  # DeployParams | SleepParams
    strategies: list[StrategyRun]
    forecast: ForecastRun | None
    horizon: dict
    notes: list[str] = field(default_factory=list)

    def strategy(self, name: str) -> StrategyRun:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(f"{self.problem} has no strategy {name!r} (has {[s.name for s in self.strategies]})")

    @property
    def status(self) -> str:
        """'optimal', or 'time_limit' when some plan is a time-limited incumbent."""
        return "time_limit" if any(s.plan.status == "time_limit" for s in self.strategies) else "optimal"


@dataclass
class ScenarioResult:
    """Everything a run produced, in memory."""

    scenario: Scenario
    city: str
    crs: str | None
    problems: dict[str, ProblemRun]
    timings: dict[str, float]
    warnings: list[str]
    city_info: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "time_limit" if any(p.status == "time_limit" for p in self.problems.values()) else "optimal"


class _Progress:
    """A tqdm bar when enabled, a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, desc: str, leave: bool = True):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True)

    def step(self, desc: str | None = None, n: int = 1) -> None:
        if self.bar is not None:
            if desc:
                self.bar.set_postfix_str(desc)
            self.bar.update(n)

    def describe(self, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(desc)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def load_scenario_city(scenario: Scenario) -> "City":
    """The scenario's city (a `forecasting.data.City`) with cell geometry filled in.

    A synthetic city is generated from its (possibly overridden) preset; `npz` and `long_table` name
    their format, so their loader is called directly; a real city's name and a release folder are
    resolved by `forecasting.data.load_city`, the one resolver of a city from a name or a path.
    """
    from forecasting.data import load_city, load_long_table, load_npz, region_origins
    from forecasting.data.synthetic import make_city

    spec = scenario.city
    if isinstance(spec, SyntheticCity):
        city = make_city(spec.config(scenario.seed))
    elif isinstance(spec, NpzCity):
        city = load_npz(spec.path, name=spec.name)
    elif isinstance(spec, RealCity):
        city = load_city(spec.name, data_dir=spec.data_dir, name=spec.name)
    elif isinstance(spec, ReleaseCity):
        kw = {k: v for k, v in {"slots_per_day": spec.slots_per_day, "stride": spec.stride}.items() if v is not None}
        city = load_city(spec.dir, city=spec.city, **kw)
    else:
        city = load_long_table(
            spec.traffic, cells=spec.cells, poi=spec.poi, region_size=spec.region_size, split=spec.split,
            name=spec.name, columns=spec.columns, cell_size=spec.cell_size, crs=spec.crs,
            fill_missing=spec.fill_missing, split_fractions=spec.split_fractions, seed=scenario.seed,
        )
    if city.region_origin is None:  # regions laid side by side so maps and GeoJSON still work
        city = replace(city, region_origin=region_origins(city))
    return city


def crop_steps(city: "City", start: int, stop: int) -> "City":
    """The city restricted to steps [start, stop) (calendar features and start times follow)."""
    from forecasting.data import DataError

    if not 0 <= start < stop <= city.n_steps:
        raise DataError(f"{city.name}: steps [{start}, {stop}) are outside 0..{city.n_steps}")
    sl = slice(start, stop)
    pick = lambda a: None if a is None else a[:, sl]  # noqa: E731
    start_time = None
    if city.start_time is not None:
        start_time = np.asarray(city.start_time) + np.timedelta64(int(round(start * city.minutes_per_slot)), "m")
    return replace(city, traffic=city.traffic[:, sl], users=pick(city.users), day_of_week=city.day_of_week[:, sl],
                   slot_of_day=city.slot_of_day[:, sl], start_time=start_time, meta=dict(city.meta))


def horizon_steps(city: "City", horizon: Horizon, task: str) -> tuple[int, int]:
    """[start, stop) steps of the planned period; a long-term forecast needs 16 observed steps first."""
    from forecasting.masks import LONG_OBSERVED
    from .errors import InputError

    spd, T = city.slots_per_day, city.n_steps
    earliest = LONG_OBSERVED if task == "long" else 0
    length = int(round(horizon.days * spd)) if horizon.days is not None else None
    if horizon.start_day is not None:
        start = int(round(horizon.start_day * spd))
        stop = T if length is None else start + length
    else:
        stop = T
        start = earliest if length is None else T - length
    if length is not None and length < 1:
        raise InputError(f"horizon.days={horizon.days} is shorter than one slot ({1 / spd:.3g} days)")
    if start < earliest:
        raise InputError(
            f"horizon starts at step {start} but the {task!r} forecast needs {earliest} observed steps before it: "
            f"set horizon.start_day >= {earliest / spd:.3g} or shorten horizon.days"
        )
    if stop > T:
        raise InputError(
            f"horizon [{start}, {stop}) steps runs past the series ({T} steps = {T / spd:.3g} days of {city.name}): "
            "shorten horizon.days or move horizon.start_day earlier"
        )
    return start, stop


def _select_cells(d, cells: list[str] | None):
    from .errors import InputError

    if cells is None:
        return d
    index = {c: i for i, c in enumerate(d.cell_ids.tolist())}
    missing = [c for c in cells if c not in index]
    if missing:
        raise InputError(
            f"area.cells: {missing[:5]} are not cells of the planned regions (ids look like {d.cell_ids[:3].tolist()})"
        )
    return d.cells([index[c] for c in cells])


def _shape(d, horizon: Horizon, cells: list[str] | None):
    """Restrict to the planned cells, then aggregate slots as the horizon asks."""
    d = _select_cells(d, cells)
    if horizon.slots_per_day is not None and horizon.slots_per_day != d.slots_per_day:
        how = horizon.aggregate or ("mean" if d.unit == "users" else "sum")
        d = d.aggregate(horizon.slots_per_day, how)
    return d


class _ProgressTap:
    """Wraps a forecaster and advances a progress bar once per `predict` call."""

    def __init__(self, inner, progress: _Progress):
        self.inner, self.progress = inner, progress
        self.name, self.tasks = inner.name, inner.tasks
        self.sees_future_users = inner.sees_future_users

    def predict(self, windows, mask):
        pred = self.inner.predict(windows, mask)
        self.progress.step()
        return pred


def _forecaster(scenario: Scenario, name: str, task: str, city, cache: dict, notes: list[str]):
    """(fitted forecaster, name used): a baseline fitted on the city, or a UoMo checkpoint.

    A checkpoint that cannot be found is an error (`CheckpointError`), fallback or not: `forecaster.fallback`
    stands in only for a forecaster that loads but does not serve `task` (the notes say so).
    """
    from forecasting.baselines import BASELINES

    model = _load_model(scenario, name, task, city, cache, notes)
    fallback = (scenario.forecaster.fallback or {}).get(task)
    if task not in model.tasks and fallback is not None:
        notes.append(f"{_display_name(name)} does not serve the {task!r} task (it serves {list(model.tasks)}); "
                     f"used the fallback baseline {fallback!r}")
        return _load_model(scenario, fallback, task, city, cache, notes), fallback
    if name in BASELINES or task in model.tasks:
        return model, _display_name(name)
    from .errors import InputError

    raise InputError(f"{_display_name(name)} cannot forecast the {task!r} task (it serves {list(model.tasks)}): "
                     f"set forecaster.fallback.{task} to a baseline, or pick another forecaster")


def _load_model(scenario: Scenario, name: str, task: str, city, cache: dict, notes: list[str]):
    """The forecaster named `name`, loaded once per run (`cache`): a fitted baseline or a UoMo checkpoint."""
    from forecasting.baselines import BASELINES

    spec = scenario.forecaster
    if name in cache:
        return cache[name]
    if name in BASELINES:
        model = BASELINES[name]()
        if task not in model.tasks:
            from .errors import InputError

            raise InputError(f"baseline {name!r} cannot forecast the {task!r} task (it serves {list(model.tasks)})")
        model.fit(city)
        if any(getattr(scenario, p).risk.on != "point" for p in scenario.problems):
            model = _calibrated_baseline(model, city, spec.sampling.n_samples, notes)
    else:
        from forecasting.forecast import load_forecaster

        s = spec.sampling
        model = load_forecaster(name, device=spec.device, sampler=s.sampler, steps=s.steps, n_samples=s.n_samples,
                                eta=s.eta, point=s.point, batch_size=s.batch_size, seed=scenario.seed)
        if getattr(model, "calibration", None) is None:
            notes.append(f"{_display_name(name)} has no calibration file: its raw samples are used "
                         "(fit one with bench/calibration_bench.py --save)")
    cache[name] = model
    return model


def _calibrated_baseline(model, city, n_samples: int, notes: list[str]):
    """A point baseline with samples from a split-conformal calibration fitted on the city's val regions."""
    from forecasting.calibration import CalibratedForecaster, fit_calibration
    from .errors import InputError

    if city.regions("val").size == 0:
        raise InputError(f"planning on a baseline's quantiles or scenarios calibrates it on val regions, and "
                         f"{city.name} has none: set risk.on: point, or give the city val regions")
    tasks = [t for t in ("short", "long", "generation") if t in model.tasks]
    cal = fit_calibration(model, [city], tasks=tasks, split="val")
    notes.append(f"{model.name}: intervals from a split-conformal calibration on {city.name}'s val regions")
    return CalibratedForecaster(model, cal, n_samples=max(2, n_samples))




def _display_name(model: str) -> str:
    """A checkpoint path shows as its file name; names and baselines as they are."""
    return Path(model).name if _looks_like_path(model) else model


def shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape):
    """The forecast of `spec`'s task over [start, stop), its mean and quantile cubes passed through `shape`."""
    fc = forecast_horizon(scenario, city, regions, spec.task, spec.unit, start, stop,
                          spec.forecaster or scenario.forecaster.model, cache, progress)
    fc.mean = shape(fc.mean)
    fc.quantiles = {q: shape(d) for q, d in fc.quantiles.items()}
    return fc


def forecast_horizon(scenario: Scenario, city: "City", regions: np.ndarray, task: str, unit: str, start: int, stop: int,
                     model_name: str, cache: dict, progress: bool = False) -> ForecastRun:
    """Forecast `regions` over steps [start, stop) with the scenario's forecaster, mean and quantiles.

    The city is cropped to the period plus the context the task needs (16 observed steps for 'long';
    at least one 64-step window), so the forecaster only works on what is planned.
    """
    from forecasting.data import WINDOW
    from forecasting.masks import LONG_OBSERVED

    from .demand import UnitConversion, forecast_demand, rotation_groups
    from .errors import InputError

    notes: list[str] = []
    t0 = time.perf_counter()
    model, used = _forecaster(scenario, model_name, task, city, cache, notes)
    if city.n_steps < WINDOW:
        raise InputError(f"{city.name} has {city.n_steps} steps; forecasting needs at least one {WINDOW}-step window")
    context = LONG_OBSERVED if task == "long" else 0
    lo = max(0, min(start - context, stop - WINDOW))
    hi = max(stop, lo + WINDOW)
    cropped = crop_steps(city, lo, hi)
    conversion = UnitConversion.fit(city) if unit == "users" else None
    calls = len(rotation_groups(*city.grid)) if task == "generation" else 1
    bar = _Progress(progress, calls, f"forecast ({used}, {task})", leave=False)
    try:
        mean = forecast_demand(_ProgressTap(model, bar), cropped, task=task, split=None, unit=unit, regions=regions,
                               first=start - lo, conversion=conversion, name=used)
    finally:
        bar.close()
    mean = mean.slots(0, stop - start)
    quantiles = {float(q): mean.quantile(q) for q in scenario.forecaster.quantiles} if mean.n_scenarios >= 2 else {}
    return ForecastRun(model=used, requested=model_name, task=task, mean=mean, quantiles=quantiles,
                       seconds=time.perf_counter() - t0, notes=notes)


def _planned_regions(scenario: Scenario, city) -> np.ndarray:
    from .errors import InputError

    area = scenario.area
    if area.regions is not None:
        idx = np.asarray(area.regions, dtype=int)
        bad = idx[(idx < 0) | (idx >= city.n_regions)]
        if bad.size:
            raise InputError(f"area.regions: {bad.tolist()} are not regions of {city.name} (0..{city.n_regions - 1})")
        return idx
    idx = city.regions(area.split)
    if idx.size == 0:
        raise InputError(f"area.split: {city.name} has no {area.split!r} regions; pick another split or list area.regions")
    return idx


def _recorded(fn, sink: list[str]):
    """Call fn() collecting PlanningWarnings (time-limited incumbents) into `sink` instead of printing."""
    from .errors import PlanningWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlanningWarning)
        out = fn()
    for w in caught:
        if issubclass(w.category, PlanningWarning):
            sink.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_deployment(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str],
                   progress: bool = False) -> ProblemRun:
    """Forecast demand, plan BSs for every strategy and the oracle, replay all plans on real demand."""
    from .demand import poi_demand, real_demand, resident_demand
    from .deploy import solve_deployment
    from .replay import replay_deployment

    spec, sol = scenario.deployment, scenario.solver
    start, stop = horizon_steps(city, spec.horizon, spec.task)
    steps = slice(start, stop)
    shape = lambda d: _shape(d, spec.horizon, scenario.area.cells)  # noqa: E731
    real = shape(real_demand(city, None, spec.unit, regions=regions, steps=steps))
    params = spec.params()
    _check_per_cell(params, real, "deployment")
    notes: list[str] = []
    sources: list[tuple[str, str, Any]] = []  # (name, label, demand)
    forecast = None
    risk_kw: dict[str, dict] = {}
    if "forecast" in spec.strategies:
        fc = forecast = shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape)
        notes += fc.notes
        if spec.risk.on != "point":  # the point plan beside it: their replay gap is the value of the hedging
            sources.append(("forecast_point", f"forecast ({fc.model}, point)", fc.mean))
        sources.append(("forecast", _forecast_label(fc.model, spec.risk), fc.mean))
        risk_kw["forecast"] = dict(on=spec.risk.on, q=spec.risk.q)
    if "poi" in spec.strategies:
        if city.poi is None:
            notes.append(f"strategy 'poi' skipped: {city.name} has no POI layer")
        else:
            sources.append(("poi", "POI", shape(poi_demand(city, None, spec.unit, regions=regions, steps=steps))))
    if "residents" in spec.strategies:
        if city.residents is None:
            notes.append(f"strategy 'residents' skipped: {city.name} has no residents layer")
        else:
            sources.append(("residents", "residents",
                            shape(resident_demand(city, None, spec.unit, regions=regions, steps=steps))))
    sources.append(("oracle", "oracle (real demand)", real))
    solve_kw = dict(method=spec.method, solver=sol.name, time_limit=sol.time_limit, gap_rel=sol.gap, threads=sol.threads)
    bar = _Progress(progress, len(sources), "deployment plans", leave=False)
    plans = {}
    try:
        for name, label, demand in sources:
            bar.describe(name)
            kw = {**solve_kw, **risk_kw.get(name, {})}
            plans[name] = _recorded(lambda: _timed(lambda: solve_deployment(demand, params, **kw)), sink)
            bar.step()
    finally:
        bar.close()
    oracle = plans["oracle"][0]
    runs = [
        StrategyRun(name, label, plans[name][0], replay_deployment(plans[name][0], real, params, oracle=oracle),
                    demand, plans[name][1])
        for name, label, demand in sources
    ]
    return ProblemRun("deployment", real, params, runs, forecast,
                      _horizon_info(city, start, stop, real, spec.horizon), notes)


def _check_per_cell(params, real, problem: str) -> None:
    """Per-cell lists of the scenario checked against the planned cells before anything is solved."""
    from .errors import InputError

    try:
        params.resolve(real.n_cells)
    except InputError as exc:
        raise InputError(
            f"{problem}: {exc} (the plan covers {real.n_cells} cells, ordered as {real.cell_ids[:3].tolist()}...; "
            "give one value, or one per cell in that order)"
        ) from None


def size_rru_capacity(history: np.ndarray, n_rru, quantile: float = 1.0, headroom: float = 1.0) -> np.ndarray:
    """c0_m = headroom * Q_quantile(history load of cell m) / K_m, per cell. history (cells, slots).

    An operator sizes a cell's RRUs to its past load: K RRUs of capacity c0 carry the chosen quantile
    (1 = the peak) with the given headroom. Cells with no past load get the median c0 of the others.
    """
    from .errors import InputError

    h = np.asarray(history, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] == 0:
        raise InputError("sizing c0 from history needs at least one slot before the planned period")
    K = np.broadcast_to(np.asarray(n_rru, dtype=np.float64), (h.shape[0],))
    c0 = headroom * np.quantile(h, quantile, axis=1) / K
    positive = c0 > 0
    if not positive.any():
        raise InputError("the history before the planned period has no load at all: give sleep.c0 as a number")
    c0[~positive] = float(np.median(c0[positive]))
    return c0


def run_sleep(scenario: Scenario, city: "City", regions: np.ndarray, cache: dict, sink: list[str],
              progress: bool = False) -> ProblemRun:
    """Forecast load, schedule RRUs from it, compare with always-on, threshold and the oracle on real load."""
    from .demand import real_demand
    from .errors import InputError
    from .replay import replay_sleep
    from .sleep import always_on, solve_sleep, threshold_policy

    spec, sol = scenario.sleep, scenario.solver
    start, stop = horizon_steps(city, spec.horizon, spec.task)
    shape = lambda d: _shape(d, spec.horizon, scenario.area.cells)  # noqa: E731
    real = shape(real_demand(city, None, spec.unit, regions=regions, steps=slice(start, stop)))
    notes: list[str] = []
    if isinstance(spec.c0, CapacityRule):
        if start == 0:
            raise InputError("sleep.c0 rule history_peak needs history before the planned period: set "
                             "sleep.horizon.start_day > 0 (or shorten horizon.days), or give sleep.c0 as a number")
        try:
            hist = shape(real_demand(city, None, spec.unit, regions=regions, steps=slice(0, start)))
        except InputError as exc:
            raise InputError(f"sleep.c0 history_peak: the history before the planned period is unusable ({exc}); "
                             "give sleep.c0 as a number or start the horizon later") from None
        c0 = size_rru_capacity(hist.values, spec.n_rru, spec.c0.quantile, spec.c0.headroom)
        notes.append(f"c0 sized per cell from {hist.n_slots} past slots: {spec.c0.headroom:g} x q{spec.c0.quantile:g} "
                     f"load / n_rru (median {np.median(c0):.4g} {spec.unit} per RRU per slot)")
    else:
        c0 = spec.c0
    params = spec.params(c0)
    _check_per_cell(params, real, "sleep")
    kw = dict(method=spec.method, groups=spec.groups, solver=sol.name, time_limit=sol.time_limit, gap_rel=sol.gap,
              threads=sol.threads)
    jobs: list[tuple[str, str, Any, Any]] = []
    forecast = None
    risk = spec.risk
    if "forecast" in spec.strategies:
        fc = forecast = shaped_forecast(scenario, city, regions, spec, start, stop, cache, progress, shape)
        notes += fc.notes
        if risk.on != "point":  # the point plan beside it: their replay gap is the value of the hedging
            jobs.append(("forecast_point", f"forecast ({fc.model}, point)", fc.mean,
                         lambda d=fc.mean: solve_sleep(d, params, **kw)))
        planned = fc.mean.quantile(risk.q) if risk.on == "quantile" else fc.mean
        on = "scenarios" if risk.on == "scenarios" else "point"
        jobs.append(("forecast", _forecast_label(fc.model, risk), planned,
                     lambda d=planned: solve_sleep(d, params, **kw, on=on, epsilon=risk.epsilon)))
    if "rolling" in spec.strategies:
        label, fn = _rolling_job(scenario, city, regions, spec, params, real, start, stop, cache, notes)
        jobs.append(("rolling", label, None, fn))
    if "always_on" in spec.strategies:
        jobs.append(("always_on", "always on", None, lambda: always_on(real, params)))
    if "threshold" in spec.strategies:
        jobs.append(("threshold", f"threshold {spec.threshold:g} (lag {spec.lag})", None,
                     lambda: threshold_policy(real, params, spec.threshold, spec.lag)))
    jobs.append(("oracle", "oracle (real load)", real, lambda: solve_sleep(real, params, **kw)))
    bar = _Progress(progress, len(jobs), "sleep schedules", leave=False)
    plans = {}
    try:
        for name, _, _, fn in jobs:
            bar.describe(name)
            plans[name] = _recorded(lambda: _timed(fn), sink)
            bar.step()
    finally:
        bar.close()
    oracle = plans["oracle"][0]
    runs = [StrategyRun(name, label, plans[name][0], replay_sleep(plans[name][0], real, params, oracle=oracle),
                        demand, plans[name][1]) for name, label, demand, _ in jobs]
    return ProblemRun("sleep", real, params, runs, forecast, _horizon_info(city, start, stop, real, spec.horizon), notes)


def _forecast_label(model: str, risk: RiskSpec) -> str:
    return f"forecast ({model})" if risk.on == "point" else f"forecast ({model}, {risk.label})"


def _rolling_job(scenario: Scenario, city, regions, spec: SleepSpec, params, real, start: int, stop: int,
                 cache: dict, notes: list[str]):
    """(label, plan function) of model-predictive sleep control over [start, stop) on native slots."""
    from .errors import InputError
    from .rolling import rolling_forecast, rolling_sleep

    if spec.horizon.slots_per_day not in (None, city.slots_per_day):
        raise InputError("sleep.rolling re-plans on the city's own slots: remove sleep.horizon.slots_per_day, "
                         "or drop 'rolling' from sleep.strategies")
    if spec.unit != "traffic":
        raise InputError("sleep.rolling forecasts traffic: set sleep.unit: traffic, or drop 'rolling' from sleep.strategies")
    name = spec.forecaster or scenario.forecaster.model
    model, used = _forecaster(scenario, name, "short", city, cache, notes)
    if "short" not in model.tasks:
        raise InputError(f"sleep.rolling needs a short-term forecaster; {used!r} serves {list(model.tasks)}")
    fc = rolling_forecast(model, city, regions, start, stop, every=spec.rolling.every, lookahead=spec.rolling.lookahead)
    full = [str(c) for c in _planned_cell_ids(city, regions)]
    if scenario.area.cells is not None:  # the planned cells, in the truth's order
        keep = [full.index(c) for c in real.cell_ids.tolist()]
        fc.point = fc.point[:, keep]
        fc.samples = None if fc.samples is None else fc.samples[:, :, keep]
    risk = spec.risk
    label = f"rolling ({used}, R {spec.rolling.every}, {risk.label})"
    return label, lambda: rolling_sleep(fc, real, params, on=risk.on, q=risk.q, epsilon=risk.epsilon)


def _planned_cell_ids(city, regions) -> np.ndarray:
    from .demand import real_demand

    return real_demand(city, None, "traffic", regions=regions, steps=slice(0, 1)).cell_ids


def _horizon_info(city, start: int, stop: int, real, horizon: Horizon) -> dict:
    return {
        "start_step": start, "stop_step": stop, "days": (stop - start) / city.slots_per_day,
        "slots_per_day": real.slots_per_day, "slots": real.n_slots, "cells": real.n_cells,
        "aggregate": horizon.aggregate or (None if horizon.slots_per_day in (None, city.slots_per_day)
                                           else ("mean" if real.unit == "users" else "sum")),
    }


def run_scenario(scenario: Scenario, problems: Sequence[str] | None = None, progress: bool = False) -> ScenarioResult:
    """Load the city, then forecast -> plan -> replay each problem; returns everything in memory.

    `problems`: which of the scenario's problems to run (default: all it defines). Raises
    `forecasting.data.DataError` / `planning.errors.InputError` (bad data or parameters),
    `InfeasibleError` / `SolverError` (planning failed) and `CheckpointError` (unusable checkpoint).
    Time-limited MILP incumbents do not raise: their warnings are in `result.warnings` and the plans'
    status is 'time_limit'.
    """
    wanted = list(problems) if problems is not None else scenario.problems
    for p in wanted:
        if p not in PROBLEMS:
            raise ScenarioError(f"unknown problem {p!r}: use {PROBLEMS}")
        if getattr(scenario, p) is None:
            raise ScenarioError(f"the scenario {scenario.name!r} has no `{p}:` section; add one or run another problem",
                                [(p, "section missing")])
    timings: dict[str, float] = {}
    sink: list[str] = []
    stages = _Progress(progress, 1 + len(wanted), f"{scenario.name}")
    try:
        stages.describe("load city")
        city, timings["load"] = _timed(lambda: load_scenario_city(scenario))
        stages.step()
        regions = _planned_regions(scenario, city)
        cache: dict = {}
        runs = {}
        for p in wanted:
            stages.describe(p)
            fn = run_deployment if p == "deployment" else run_sleep
            runs[p], timings[p] = _timed(lambda: fn(scenario, city, regions, cache, sink, progress))
            stages.step()
    finally:
        stages.close()
    info = {"name": city.name, "regions": [int(r) for r in regions], "grid": list(city.grid),
            "slots_per_day": city.slots_per_day, "steps": city.n_steps, "cell_size": city.cell_size}
    return ScenarioResult(scenario, city.name, city.crs, runs, timings, sink, info)
