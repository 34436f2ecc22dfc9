"""Documentation of the scenario schema: the field table of `scenarios/README.md`."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel

from .loading import _unwrap
from .schema import Scenario


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
