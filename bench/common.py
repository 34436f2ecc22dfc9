"""What the benchmark scripts share: the results folder, the command line a result records, merging
records into an existing result file, Markdown tables, and the rule that picks a setting on val.

Each script under bench/ is one benchmark; it imports this module (run as `python bench/<script>.py`,
the folder of the script is on the import path).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from forecasting.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def command_line(script: str, argv: Sequence[str] | None = None, env: Sequence[str] = ()) -> str:
    """The command that reproduces a run: `[VAR=value ...] python bench/<script> <args>`.

    `argv` defaults to this process's arguments; `env` names environment variables to record when set
    (e.g. OMP_NUM_THREADS, which changes timings).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prefix = "".join(f"{name}={os.environ[name]} " for name in env if os.environ.get(name))
    return f"{prefix}python bench/{script}" + (" " + " ".join(args) if args else "")


def read_records(path: str | Path) -> list[dict]:
    """The records of a result file, or [] when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else []


def merge_records(old: Iterable[dict], new: Sequence[dict], key: Callable[[dict], Any]) -> list[dict]:
    """The old records whose key is not re-run, then the new ones (a `--merge` run)."""
    rerun = {key(r) for r in new}
    return [r for r in old if key(r) not in rerun] + list(new)


def write_text(path: str | Path, text: str) -> Path:
    """`text` at `path` (folders created), replaced atomically: a kill leaves the old file or the new one."""
    return atomic_write_text(path, text, make_folder=True)


def write_json(path: str | Path, obj: Any, indent: int = 1) -> Path:
    """`obj` as JSON at `path` (folders created, replaced atomically)."""
    return write_text(path, json.dumps(obj, indent=indent))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines: `| a | b |`, `| --- | --- |`, then one line per row (cells as given)."""
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"  # noqa: E731
    return [line(header), line(["---"] * len(header)), *(line(row) for row in rows)]


def commands_block(commands: Iterable[str]) -> list[str]:
    """'Commands:' and each distinct command, indented as code."""
    return ["Commands:", "", *(f"    {c}" for c in dict.fromkeys(commands))]


# ----------------------------------------------------------------------------------------------------
# Choosing a setting on the val regions (never on the area that is scored)
# ----------------------------------------------------------------------------------------------------


def choose_on_val(val_regret: Mapping[str, float]) -> str:
    """The setting with the lowest val regret (the first listed wins ties)."""
    order = list(val_regret)
    return min(val_regret, key=lambda k: (val_regret[k], order.index(k)))


def refuse_fit_draws(ap, cities: Sequence[str], seeds: Sequence[int]) -> None:
    """A usage error (`ap.error`, exit 2) when `--fit-draws` names a synthetic preset's own seed among
    `cities`, before any model is loaded or fitted (`forecasting.calibration.refuse_own_draw`)."""
    from forecasting.calibration import CalibrationError, refuse_own_draw

    try:
        for name in cities:
            refuse_own_draw(name, seeds)
    except CalibrationError as exc:
        ap.error(f"--fit-draws: {exc}")


def choose_qos_matched(val_regret: Mapping[str, float], val_qos: Mapping[str, float], qos_cap: float) -> str | None:
    """The lowest val regret among settings whose val QoS is no worse than `qos_cap` (None if none is)."""
    capped = {k: v for k, v in val_regret.items() if val_qos[k] <= qos_cap}
    return choose_on_val(capped) if capped else None


#: the real cities and the default synthetic city: the val scripts' default cities
PUBLIC_CITIES = ("nanchang", "nanjing", "synthetic")


def add_val_sampling_args(ap, tasks: Sequence[str] | None = ("short", "long", "generation")) -> None:
    """The options of the scripts that sample a UoMo checkpoint on val regions: --checkpoint, --cities,
    --tasks (unless `tasks` is None), --steps (DDIM) and --samples (per window)."""
    ap.add_argument("--checkpoint", default="uomo-public-cpu", help="UoMo checkpoint (path or shipped name)")
    ap.add_argument("--cities", nargs="+", default=list(PUBLIC_CITIES))
    if tasks is not None:
        ap.add_argument("--tasks", nargs="+", default=list(tasks))
    ap.add_argument("--steps", type=int, default=3, help="DDIM steps")
    ap.add_argument("--samples", type=int, default=32, help="samples per window")
