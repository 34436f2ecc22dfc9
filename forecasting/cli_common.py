"""Conventions shared by every console script (uomo-train, uomo-bench, plan-bs-deploy, plan-rru-sleep).

One place builds what every command line has in common:

- `make_parser`: an `argparse.ArgumentParser` with `HelpFormatter` (the description and epilog kept as
  written, each option's default appended to its help) and `--version`;
- `package_version`: the installed distribution's version, else the one in `pyproject.toml`;
- `examples`: the "examples:" block of an epilog;
- `progress_bar`: a tqdm bar that is off when its stream is not a terminal, so piped or logged output
  carries no carriage-return fragments (notebooks still get their widget).
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Iterable

#: the distribution that ships the `forecasting` and `planning` packages (pyproject.toml's project.name)
DISTRIBUTION = "uomo-planning"


def package_version() -> str:
    """The installed version of `DISTRIBUTION`; in a source checkout without it, pyproject.toml's; else 'unknown'."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return pyproject_version(Path(__file__).resolve().parents[1] / "pyproject.toml") or "unknown"


def pyproject_version(path: Path) -> str | None:
    """`version` of the `[project]` table of a pyproject.toml (None when the file or the key is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    found = project and re.search(r"""^version\s*=\s*["']([^"']+)["']""", project.group(1), flags=re.M)
    return found.group(1) if found else None


def version_text(prog: str) -> str:
    """What `--version` prints: the command, the distribution and its version, e.g. 'uomo-train (uomo-planning) 0.1.0'."""
    return f"{prog} ({DISTRIBUTION}) {package_version()}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Description and epilog as written (examples, exit-code tables); every option's default shown.

    A default is appended as ' (default: X)' unless the help already states one ('(default' in it),
    the option is a flag (nothing to default), or the default is None (the help must then say in words
    what happens without the option). Lists are shown space-separated, an empty list as 'none'.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or "%(default)" in text or action.nargs == 0 or default in (None, argparse.SUPPRESS):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text  # a required positional has no default
        if isinstance(default, (list, tuple)):
            shown = " ".join(str(v) for v in default) or "none"
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def examples(lines: Iterable[str], title: str = "examples") -> str:
    """An epilog block: 'title:' then each line indented by two spaces (kept as is by `HelpFormatter`)."""
    return "\n".join([f"{title}:", *(f"  {line}" for line in lines)])


def add_version(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `--version` (prints `version_text(parser.prog)` and exits 0); returns the parser."""
    parser.add_argument("--version", action="version", version=version_text(parser.prog),
                        help="print the command, its package and version, and exit")
    return parser


def make_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """The parser every console script starts from: `HelpFormatter` and `--version`."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter)
    return add_version(parser)


def progress_bar(total: int | None, desc: str, leave: bool = True, **kwargs):
    """A tqdm bar (the notebook widget under Jupyter) that is disabled when its stream is not a TTY.

    `disable=None` is tqdm's "off unless the output is a terminal": piped or redirected output then
    gets no '\\r' redraws at all, while `bar.write(...)` lines still come through.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True, disable=None, **kwargs)


class DeprecatedAlias(argparse.Action):
    """A flag kept for old command lines: stores its `const` in `dest` and warns with the flag to use instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        instead = f"--{self.dest.replace('_', '-')} {self.const}"
        warnings.warn(f"{option_string} is deprecated: use {instead}", DeprecationWarning, stacklevel=2)
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {instead}", file=sys.stderr)
        setattr(namespace, self.dest, self.const)
