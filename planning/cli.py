"""Command line: run a planning scenario (load -> forecast -> plan -> replay -> report).

    plan-bs-deploy SCENARIO.yaml [--out DIR] [--set key.path=value ...] [--problem all]
    plan-rru-sleep SCENARIO.yaml ...            (the same tool; runs the sleep-control problem)
    plan-bs-deploy --version

Parses, loads the scenario, calls `planning.pipeline.run_scenario` and `planning.report.write_report`,
prints a summary table and maps failures to documented exit codes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from .errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECKPOINT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PLAN_FAILED,
    EXIT_TIME_LIMIT,
    exit_code,
)

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    every plan solved to proven optimality; report written
  {EXIT_BAD_INPUT}    bad input: malformed or invalid scenario, missing or invalid data (NaNs, grids that
       do not match, ...), parameters that do not fit the data; nothing written
  {EXIT_PLAN_FAILED}    planning failed: a problem is infeasible (the message names the binding
       requirement) or the solver failed without a usable plan; nothing written
  {EXIT_CHECKPOINT}    the forecaster checkpoint is missing, corrupt or foreign (refused without running
       anything from it); nothing written
  {EXIT_TIME_LIMIT}    a MILP hit solver.time_limit: the complete report is written with the incumbent
       plan, its status 'time_limit' and its optimality gap (summary.json, kpi.md); raise the
       time limit for a proven optimum
  {EXIT_INTERNAL}    an unexpected error (a bug: please report it with the traceback); nothing written
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM); nothing written, the solver stopped

The output location is checked before any work and locked (.<dir>.lock beside it): a second run on
the same output directory fails at once with exit {EXIT_BAD_INPUT}. The report is written to a temporary
folder beside the output directory and swapped into place only when complete (one atomic rename
exchange on Linux), so a failed, interrupted or killed run, or a re-run, never leaves a half-written
report or no report; leftovers of a killed run are removed by the next run."""


#: the examples in each command's --help, by the command's default problem ({prog}: the command's name)
EXAMPLES = {
    "deployment": [
        "{prog} scenarios/demo.yaml                    # BS deployment on the synthetic demo city",
        "{prog} scenarios/demo.yaml --problem all      # both problems of the scenario (= make demo)",
        "{prog} scenarios/nanchang_deploy.yaml         # Nanchang test area, needs ../shared/data",
        "{prog} scenarios/demo.yaml --set deployment.max_bs=80 --set solver.time_limit=30 --out out/demo-80",
        "{prog} scenarios/demo.yaml --check            # validate only, print every default",
        "{prog} scenarios/demo_plan.yaml               # plan past the end of the data (mode: plan)",
        "{prog} scenarios/my_city/plan.yaml --check    # your own CSV/GeoJSON: load and check the data",
    ],
    "sleep": [
        "{prog} scenarios/demo.yaml                    # RRU sleep control on the synthetic demo city",
        "{prog} scenarios/nanchang_sleep.yaml          # Nanchang test area, needs ../shared/data",
        "{prog} scenarios/demo.yaml --set sleep.n_rru=6 --set sleep.w_energy=2 --out out/demo-sleep-6rru",
        "{prog} scenarios/demo.yaml --set sleep.rolling.every=4 --no-figures -q  # re-plan every 4 slots",
        "{prog} scenarios/nanchang_sleep.yaml --check  # validate only, print every default",
        "{prog} scenarios/demo_plan.yaml               # tomorrow's RRU schedule (mode: plan)",
    ],
}

#: a `--set` example per problem (the help of --set)
SET_EXAMPLE = {"deployment": "--set deployment.max_bs=80 --set deployment.forecaster=poi_regression",
               "sleep": "--set sleep.n_rru=6 --set sleep.forecaster=daily_profile"}


def build_parser(prog: str = "plan-bs-deploy", problem: str = "deployment") -> argparse.ArgumentParser:
    """The parser of `prog`, whose default problem is `problem` ('deployment' or 'sleep')."""
    from forecasting.cli_common import examples, make_parser

    what = "base-station deployment" if problem == "deployment" else "RRU sleep control"
    parser = make_parser(
        prog,
        description=(
            f"Plan {what} for a scenario: load the city, forecast demand, solve the plan for every\n"
            "strategy (forecast, proxies, reactive rules, oracle), replay the plans on the real series,\n"
            "and write a report (KPI tables, GeoJSON, figures, summary.json). Scenario fields are\n"
            "documented in scenarios/README.md."
        ),
        epilog=examples(line.format(prog=prog) for line in EXAMPLES[problem]) + "\n\n" + EXIT_CODES,
    )
    parser.add_argument("scenario", type=Path, help="the scenario YAML file (e.g. scenarios/demo.yaml)")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="output directory (default: the scenario's output.dir, relative to the scenario file); "
        "an existing report there is replaced only once the new one is complete",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help=f"override a scenario field before validation, e.g. {SET_EXAMPLE[problem]}; values are read "
        "as YAML (numbers, null, [lists]); repeat for several (default: none, the scenario as written)",
    )
    parser.add_argument(
        "--problem", choices=["deployment", "sleep", "all"], default=problem,
        help=f"which problem of the scenario to run (default: {problem}; 'all' runs every problem the "
        "scenario defines)",
    )
    parser.add_argument("--check", action="store_true",
                        help="only validate the scenario and load its data (files, columns, values, planned "
                        "regions), print it with every default filled in; exit 0 or 2")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures (faster)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are off anyway when stderr is not a terminal)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and the output path")
    return parser


def _error(message: str, code: int) -> int:
    kind = {EXIT_BAD_INPUT: "bad input", EXIT_PLAN_FAILED: "planning failed", EXIT_CHECKPOINT: "checkpoint refused",
            EXIT_INTERRUPTED: "interrupted", EXIT_INTERNAL: "internal error"}[code]
    print(f"error ({kind}, exit {code}): {message}", file=sys.stderr)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run unwinds exactly as on Ctrl-C."""


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises `Terminated` in the main thread (later ones are ignored while it unwinds).

    Outside the main thread (signals cannot be handled there) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: let the clean-up finish
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None, prog: str = "plan-bs-deploy", problem: str = "deployment") -> int:
    """Entry point of `plan-bs-deploy` (and, with problem='sleep', of `plan-rru-sleep`); returns the exit code."""
    args = build_parser(prog, problem).parse_args(argv)
    from .report import summary_table

    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k))
    t0 = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            result, paths = _run(args, say)
        if result is None:
            return EXIT_OK
    except Terminated:
        return _error("stopped by SIGTERM", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _error("stopped by the user", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message and an exit code
        code = exit_code(exc)
        if code == EXIT_INTERNAL:
            traceback.print_exc()
        return _error(str(exc), code)
    out = paths["summary"].parent
    say("")
    if getattr(result, "mode", "backtest") == "plan":
        from .plan_output import plan_summary

        say(plan_summary(result, paths))
    else:
        say(summary_table(result))
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for p in result.problems.values():
        for note in p.notes:
            say(f"note ({p.problem}): {note}")
    say(f"report: {out}  ({time.perf_counter() - t0:.1f} s)")
    if args.quiet:
        print(out)
    if result.status == "time_limit":
        print(f"warning: some plans are time-limited incumbents (see the gaps in {out / 'summary.json'}); "
              f"exit {EXIT_TIME_LIMIT}", file=sys.stderr)
        return EXIT_TIME_LIMIT
    return EXIT_OK


def _run(args, say):
    """Load, (check or) run and report a scenario: (result, report paths), or (None, None) for --check.

    The output location is checked and locked before any computation, so a read-only folder, a file in
    the way or a concurrent run on the same folder fails in a second, not after the solve.
    """
    from .errors import OutputError
    from .output import output_lock, output_problem
    from .report import write_report
    from .pipeline import run_scenario
    from .scenario.loading import dump_scenario, load_scenario

    scenario = load_scenario(args.scenario, overrides=args.overrides)
    out, label = (args.out, "--out") if args.out is not None else (scenario.output.dir, "output.dir")
    if args.check:
        problem = output_problem(Path(out).resolve(), label)
        if problem:
            raise OutputError(problem)
        say(dump_scenario(scenario), end="")
        from .scenario_city import check_data

        for line in check_data(scenario):  # the data too: files, columns, values, planned regions
            print(line, file=sys.stderr) if line.startswith("warning:") else say(line)
        print(f"scenario {args.scenario} is valid (schema and data)")
        return None, None
    problems = scenario.problems if args.problem == "all" else [args.problem]
    with output_lock(out, label), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if scenario.mode == "plan":  # forecast past the end and write the decisions; nothing to replay
            from .plan_mode import run_plan
            from .plan_output import write_plan

            result = run_plan(scenario, problems=problems)
            return result, write_plan(result, out, label=label)
        result = run_scenario(scenario, problems=problems, progress=not (args.no_progress or args.quiet))
        paths = write_report(result, out, figures=False if args.no_figures else None, label=label)
    return result, paths


def sleep_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plan-rru-sleep`: the same tool, running the sleep-control problem by default."""
    return main(argv, prog="plan-rru-sleep", problem="sleep")


def _console() -> None:  # pragma: no cover - thin wrapper for `python -m planning.cli`
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _console()
