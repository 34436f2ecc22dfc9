"""Command line: a full run with figures, options, overrides, exit codes, atomic re-runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from planning.cli import main, sleep_main
from planning.errors import EXIT_BAD_INPUT, EXIT_OK
from planning.scenario.loading import load_scenario

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def scenario(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "cli-test",
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": 7},
        "forecaster": {"model": "neighbour_mean", "fallback": None},
        "deployment": {"horizon": {"days": 2, "slots_per_day": 12}, "capacity": 20, "max_bs": 20, "alpha": 1.0},
        "sleep": {"forecaster": "daily_profile", "horizon": {"days": 1}, "n_rru": 3},
        "output": {"dir": "reports/here"},
    }
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_full_run_writes_every_report_file(tmp_path, capsys):
    path = scenario(tmp_path)
    code, out, err = run([path, "--problem", "all", "--no-progress"], capsys)
    assert code == EXIT_OK, err
    report = tmp_path / "reports" / "here"  # output.dir, relative to the scenario file
    expected = {
        "summary.json", "report.md", "scenario.yaml",
        "deployment/kpi.csv", "deployment/kpi.md", "deployment/plan.geojson", "deployment/map.png",
        "deployment/forecast.png",
        "sleep/kpi.csv", "sleep/kpi.md", "sleep/plan.geojson", "sleep/forecast.png", "sleep/capacity.png",
    }
    assert {str(p.relative_to(report)) for p in report.rglob("*") if p.is_file()} == expected
    for png in report.rglob("*.png"):
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5000
    summary = json.loads((report / "summary.json").read_text())
    assert summary["status"] == "optimal" and set(summary["problems"]) == {"deployment", "sleep"}
    assert set(summary["files"].values()) == expected
    names = [s["name"] for s in summary["problems"]["deployment"]["strategies"]]
    assert names == ["forecast", "poi", "residents", "oracle"]
    # the terminal summary names every strategy and ends with the report path
    for label in ("forecast (neighbour_mean)", "POI", "residents", "oracle (real demand)", "always on", "threshold"):
        assert label in out
    assert f"report: {report}" in out
    # the written scenario is what ran, and it loads again
    again = load_scenario(report / "scenario.yaml")
    assert again.deployment.capacity == 20 and again.city.preset == "synthetic-small"


def test_overrides_out_and_problem_selection(tmp_path, capsys):
    path = scenario(tmp_path)
    out_dir = tmp_path / "elsewhere"
    code, _, err = run([path, "--out", out_dir, "--set", "deployment.max_bs=3", "--set", "deployment.alpha=0",
                        "--no-figures", "--no-progress"], capsys)
    assert code == EXIT_OK, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert list(summary["problems"]) == ["deployment"]  # plan-bs-deploy's default problem
    assert summary["problems"]["deployment"]["params"]["max_bs"] == 3
    assert all(s["kpi"]["n_bs"] <= 3 for s in summary["problems"]["deployment"]["strategies"])
    assert not (tmp_path / "reports").exists()


def test_sleep_entry_point_runs_the_sleep_problem(tmp_path, capsys):
    path = scenario(tmp_path)
    code = sleep_main([str(path), "--out", str(tmp_path / "s"), "--no-figures", "--no-progress", "-q"])
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    assert out.out.strip() == str(tmp_path / "s")  # --quiet prints only the report path
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir()) == ["sleep"]


def test_problem_the_scenario_lacks_is_bad_input(tmp_path, capsys):
    path = scenario(tmp_path, sleep=None)
    code, _, err = run([path, "--problem", "sleep", "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT and "no `sleep:` section" in err


def test_check_validates_without_writing(tmp_path, capsys):
    path = scenario(tmp_path)
    code, out, _ = run([path, "--check"], capsys)
    assert code == EXIT_OK and "is valid" in out and "time_limit: 60.0" in out
    assert not (tmp_path / "reports").exists()
    code, _, err = run([path, "--check", "--set", "solver.name=gurobi"], capsys)
    assert code == EXIT_BAD_INPUT and "solver.name" in err and "'cbc' or 'highs'" in err


def test_rerun_replaces_the_report_atomically(tmp_path, capsys):
    path = scenario(tmp_path)
    out_dir = tmp_path / "r"
    assert run([path, "--out", out_dir, "--no-figures", "--no-progress"], capsys)[0] == EXIT_OK
    (out_dir / "stale.txt").write_text("from an older run")
    assert run([path, "--out", out_dir, "--no-figures", "--no-progress", "--set", "deployment.max_bs=5"], capsys)[0] == 0
    assert not (out_dir / "stale.txt").exists()
    assert json.loads((out_dir / "summary.json").read_text())["problems"]["deployment"]["params"]["max_bs"] == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.")] == []


def test_missing_scenario_and_bad_override_syntax(tmp_path, capsys):
    code, _, err = run([tmp_path / "none.yaml"], capsys)
    assert code == EXIT_BAD_INPUT and "does not exist" in err
    code, _, err = run([scenario(tmp_path), "--set", "deployment.max_bs"], capsys)
    assert code == EXIT_BAD_INPUT and "key.path=value" in err


def test_output_path_that_is_a_file_is_bad_input(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run([scenario(tmp_path), "--out", tmp_path / "file", "--no-figures", "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT and "not a directory" in err


def test_help_documents_options_and_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "planning.cli", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0
    text = proc.stdout
    for option in ("--out", "--set", "--problem", "--check", "--no-figures", "--no-progress", "--quiet"):
        assert option in text
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "130"):
        assert f"\n  {code}" in text
    assert "time_limit" in text and "half-written" in text


@pytest.mark.real_data
@pytest.mark.parametrize("name, problem, baseline", [("nanchang_deploy", "deployment", "poi_regression"),
                                                     ("nanchang_sleep", "sleep", "daily_profile")])
def test_nanchang_scenarios_run_from_the_shared_data(tmp_path, capsys, name, problem, baseline):
    """The shipped scenarios as they are, with a baseline forecaster so the test stays fast."""
    from forecasting.data import default_data_dir

    if not (default_data_dir() / "nanchang.npz").exists():
        pytest.skip(f"needs {default_data_dir() / 'nanchang.npz'}")
    out = tmp_path / name
    code, stdout, err = run([REPO / "scenarios" / f"{name}.yaml", "--problem", problem, "--out", out,
                             "--set", f"forecaster.model={baseline}", "--no-figures", "--no-progress"], capsys)
    assert code == EXIT_OK, err
    summary = json.loads((out / "summary.json").read_text())
    p = summary["problems"][problem]
    assert summary["city"]["regions"] == [32, 33, 34, 35, 36] and p["horizon"]["cells"] == 80
    assert p["forecast"]["model"] == baseline
    oracle = [s for s in p["strategies"] if s["name"] == "oracle"][0]
    assert oracle["kpi"]["regret"] == 0.0 and oracle["status"] == "optimal"


# --- the output folder: checked and locked before any work; SIGTERM is Ctrl-C ---


def _no_computation(monkeypatch):
    import planning.pipeline

    def refuse(*a, **k):
        raise AssertionError("computation started before the output location was checked")

    monkeypatch.setattr(planning.pipeline, "run_scenario", refuse)


def test_output_location_is_checked_before_any_computation(tmp_path, capsys, monkeypatch):
    import errno
    import os

    _no_computation(monkeypatch)
    (tmp_path / "file").write_text("x")
    code, _, err = run([scenario(tmp_path), "--out", tmp_path / "file" / "rep", "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT and "--out " in err and "file is a file, not a folder" in err
    path = scenario(tmp_path, output={"dir": "file/rep"})
    code, _, err = run([path, "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT and "output.dir " in err and "file is a file, not a folder" in err
    code, _, err = run([path, "--check"], capsys)
    assert code == EXIT_BAD_INPUT and "output.dir " in err
    real_open = os.open

    def read_only(p, flags, *a, **k):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(p))
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    code, _, err = run([scenario(tmp_path), "--out", tmp_path / "ro", "--no-progress"], capsys)
    assert code == EXIT_BAD_INPUT, err
    assert f"--out {tmp_path / 'ro'}: cannot write the report there (Read-only file system)" in err
    assert ".lock" not in err and ".tmp" not in err  # the user's key, not our hidden paths


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_bad_input(tmp_path, capsys, monkeypatch):
    _no_computation(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run([scenario(tmp_path), "--out", ro / "rep", "--no-progress"], capsys)
    finally:
        ro.chmod(0o755)
    assert code == EXIT_BAD_INPUT and "is read-only" in err and "--out" in err


HOLD_LOCK = """
import sys, time
from planning.output import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_concurrent_run_on_the_same_out_fails_at_once(tmp_path, capsys, monkeypatch):
    import os

    out = tmp_path / "rep"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with monkeypatch.context() as m:
            _no_computation(m)
            code, _, err = run([scenario(tmp_path), "--out", out, "--no-progress", "--no-figures"], capsys)
        assert code == EXIT_BAD_INPUT
        assert f"--out {out} is being written by another run (pid {holder.pid} holds .rep.lock)" in err
    finally:
        holder.kill()
        holder.wait()
    code, _, err = run([scenario(tmp_path), "--out", out, "--no-progress", "--no-figures"], capsys)
    assert code == EXIT_OK, err  # the dead holder's lock is free again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "scenario.yaml"]


# The real command line, with a long solve inside the run (the hard MILP of test_solve, limit 100 s).
SLOW_CLI = """
import sys
sys.path.insert(0, sys.argv[1])
import planning.pipeline
from planning.cli import main
from planning.milp.deploy import solve_deployment
from test_solve import hard_instance

real = planning.pipeline.run_scenario
def slow(*a, **k):
    d, p = hard_instance()
    solve_deployment(d, p, solver="cbc", time_limit=100)
    return real(*a, **k)
planning.pipeline.run_scenario = slow
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_run_like_ctrl_c(tmp_path, capsys):
    import os
    import signal
    import time

    from test_solve import children, running

    path = scenario(tmp_path)
    out = tmp_path / "rep"
    assert run([path, "--out", out, "--no-progress", "--no-figures"], capsys)[0] == EXIT_OK
    before = (out / "summary.json").read_text()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, str(REPO / "tests"), str(path), "--out", str(out),
                             "--no-progress", "--no-figures"], env=env, stderr=subprocess.PIPE, text=True)
    cbc = []
    try:
        deadline = time.monotonic() + 120
        while not cbc and time.monotonic() < deadline:
            cbc = children(proc.pid)
            time.sleep(0.05)
        assert cbc, "CBC never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        for pid in cbc:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
    assert proc.returncode == 130, err
    assert "error (interrupted, exit 130): stopped by SIGTERM" in err
    assert not any(running(pid) for pid in cbc)
    assert (out / "summary.json").read_text() == before  # the previous report, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "scenario.yaml", "tmp"]  # no lock, no .tmp-
    assert os.listdir(tmp) == []  # no solver files
