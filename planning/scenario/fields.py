"""Field types of the scenario schema: paths relative to the scenario file, scalars-or-lists with one clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo, model_validator

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
