"""Loading a scenario: YAML -> overrides -> validation, with errors that name the field and the fix."""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Sequence, Union

import yaml
from pydantic import BaseModel, ValidationError

from .fields import _number_text
from .schema import Scenario, ScenarioError


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
