"""Command-line conventions of every console script in pyproject.toml (issue 14, section 5).

`--version`, defaults and a help text for every option, each command's own examples, uomo-bench's
scratch output folder, and no carriage-return progress fragments in piped output.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from forecasting import cli_common
from forecasting.cli_common import HelpFormatter, package_version, progress_bar, pyproject_version

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml: command -> 'module:function'."""
    text = (REPO / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S).group(1)
    return dict(re.findall(r'^([\w.-]+)\s*=\s*"([\w.]+:\w+)"', section, flags=re.M))


SCRIPTS = console_scripts()


def entry_point(name: str):
    module, func = SCRIPTS[name].split(":")
    return getattr(importlib.import_module(module), func)


class _Captured(Exception):
    pass


def parser_of(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser the entry point `name` really parses with (caught at parse_args, before any work)."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured):
        entry_point(name)([])
    return seen["parser"]


def help_of(name: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        entry_point(name)(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_every_known_command_is_a_console_script():
    assert {"uomo-train", "uomo-bench", "plan-bs-deploy", "plan-rru-sleep"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_version_prints_package_and_version_and_exits_0(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        entry_point(name)(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{name} (uomo-planning) {package_version()}"
    assert re.fullmatch(r"\d+(\.\d+)+\S*", package_version())


def test_version_falls_back_to_pyproject_when_not_installed(monkeypatch):
    def missing(name):
        raise cli_common.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli_common.metadata, "version", missing)
    assert package_version() == pyproject_version(REPO / "pyproject.toml")
    assert re.search(rf'^version = "{re.escape(package_version())}"', (REPO / "pyproject.toml").read_text(), re.M)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_option_has_a_help_text_and_shows_its_default(name, monkeypatch):
    parser = parser_of(name, monkeypatch)
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    formatter = parser.formatter_class(parser.prog)
    for action in parser._actions:
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{name} {label} has no help text"
        takes_value = action.option_strings and action.nargs != 0
        if takes_value:
            text = formatter._expand_help(action)
            assert "(default:" in text, f"{name} {label}: the help does not show the default: {text!r}"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_output_shows_defaults_version_and_examples(name, capsys):
    text = help_of(name, capsys)
    assert "(default:" in text and "--version" in text
    assert f"  {name} " in text, f"{name} --help shows no example of {name}"


def test_sleep_help_shows_sleep_examples_not_deployment_ones(capsys):
    text = help_of("plan-rru-sleep", capsys)
    examples = text[text.index("examples:"):text.index("exit codes:")]
    assert "plan-rru-sleep scenarios/nanchang_sleep.yaml" in examples and "--set sleep." in examples
    assert "deployment" not in examples and "plan-bs-deploy" not in examples
    assert "deployment.max_bs" not in text and "(default: sleep;" in text


def test_deploy_help_shows_deployment_examples(capsys):
    text = help_of("plan-bs-deploy", capsys)
    examples = text[text.index("examples:"):text.index("exit codes:")]
    assert "plan-bs-deploy scenarios/nanchang_deploy.yaml" in examples and "--set deployment." in examples
    assert "plan-rru-sleep" not in examples


def test_train_presets_come_from_the_registry(monkeypatch):
    from forecasting.model import PRESETS

    preset = next(a for a in parser_of("uomo-train", monkeypatch)._actions if "--preset" in a.option_strings)
    assert list(preset.choices) == list(PRESETS) and "cpu-fine" in preset.choices


def test_bench_writes_to_an_ignored_scratch_folder_by_default(tmp_path, monkeypatch, capsys):
    from forecasting import evaluate

    out = next(a for a in parser_of("uomo-bench", monkeypatch)._actions if "--out" in a.option_strings).default
    assert Path(out).parts[0] == "runs" and "bench/results" not in Path(out).as_posix()
    assert "runs/" in (REPO / ".gitignore").read_text().split()
    monkeypatch.undo()
    committed = (REPO / "bench/results/forecast.json").stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    assert evaluate.main(["--quick", "--cities", "synthetic-small", "--models", "last_value", "--tasks", "short"]) == 0
    assert (tmp_path / out / "forecast.json").is_file() and (tmp_path / out / "forecast.md").is_file()
    assert f"results in {out}" in capsys.readouterr().out
    assert (REPO / "bench/results/forecast.json").stat().st_mtime_ns == committed


def test_help_formatter_shows_defaults_of_values_only():
    parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter, description="keep\n  this")
    parser.add_argument("--n", type=int, default=3, help="a number")
    parser.add_argument("--items", nargs="+", default=["a", "b"], help="some items")
    parser.add_argument("--none", default=None, help="unset")
    parser.add_argument("--said", default=5, help="stated (default: five)")
    parser.add_argument("--flag", action="store_true", help="a switch")
    text = parser.format_help()
    assert "a number (default: 3)" in text and "some items (default: a b)" in text
    assert "unset\n" in text and "(default: five)" in text and "(default: 5)" not in text
    assert "a switch\n" in text and "keep\n  this" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_off_unless_its_stream_is_a_terminal():
    piped, terminal = io.StringIO(), _Terminal()
    for stream in (piped, terminal):
        bar = progress_bar(3, "x", file=stream)
        bar.update(3)
        bar.close()
    assert piped.getvalue() == "" and "\r" in terminal.getvalue()


def _piped(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `python ARGS` with stdout and stderr into one pipe (as `2>&1 | cat`); output as str, '\r' kept.

    (text=True would translate '\r' into '\n' and hide exactly what is tested.)
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          cwd=tmp_path, env=env, timeout=300)
    proc.stdout = proc.stdout.decode("utf-8", errors="replace")
    return proc


def test_piped_planning_run_has_no_carriage_returns(tmp_path):
    from test_cli import scenario

    scenario(tmp_path, name="piped", output={"dir": "rep"})
    proc = _piped(["-m", "planning.cli", "scenario.yaml", "--problem", "all", "--no-figures", "--out", "rep"], tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "report:" in proc.stdout and "\r" not in proc.stdout


def test_piped_training_run_has_no_carriage_returns(tmp_path):
    proc = _piped(["-m", "forecasting.train", "--preset", "tiny", "--cities", "synthetic-small", "--steps", "2",
                   "--batch-size", "2", "--val-every", "2", "--diffusion-steps", "20", "--out", "run"], tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "step 2: val score" in proc.stdout and "\r" not in proc.stdout
