"""Sweeps: run many scenarios, or one scenario over a parameter grid, through any `concurrent.futures.Executor`.

    grid = Grid("scenarios/demo.yaml", {"deployment.max_bs": [40, 60, 80], "deployment.alpha": [1, 2]})
    table = run_sweep(grid, out_dir="out/sweep")                     # local processes (default)
    table = run_sweep(grid, executor="dask")                         # dask.distributed (extra: dask)
    table = run_sweep(grid, executor=my_executor)                    # any Executor you own

Each job validates in the caller (a bad grid value fails before anything is submitted), runs
`run_scenario` in a worker, optionally writes its report (atomically) to `out_dir/<job>`, and returns
plain rows; a failed job is a row with its error and exit code, it does not stop the sweep.

Resuming: with `out_dir`, each job that finishes writes its rows to `out_dir/<job>/sweep-job.json` (atomically,
after its report), so a sweep killed half-way (a worker SIGKILLed, the machine lost) keeps every finished
job. Running the same sweep again skips the jobs whose result file is there and matches (same job name,
validated scenario, problems and figures setting), reads their rows back, and runs only the rest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .output import atomic_write_text
from .scenario.loading import load_scenario, with_overrides
from .scenario.schema import Scenario


@dataclass
class Grid:
    """The product of parameter values over a base scenario: {dotted field path: [values]}."""

    base: Scenario | str | Path
    params: dict[str, Sequence[Any]]

    def jobs(self) -> list["Job"]:
        """One validated job per combination, named 'key=value,key=value' (short keys)."""
        base = self.base if isinstance(self.base, Scenario) else load_scenario(self.base)
        if not self.params:
            return [Job(base.name, base, {})]
        keys = list(self.params)
        for k in keys:
            values = self.params[k]
            if isinstance(values, (str, bytes, dict)) or not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"grid values of {k!r} must be a non-empty list, got {values!r}")
        out = []
        for combo in itertools.product(*(self.params[k] for k in keys)):
            setting = dict(zip(keys, combo))
            name = ",".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items())
            out.append(Job(name, with_overrides(base, setting), setting))
        return out


@dataclass
class Job:
    """One scenario to run; `setting` records the grid values that made it (columns of the result)."""

    name: str
    scenario: Scenario
    setting: dict = field(default_factory=dict)


def _as_jobs(scenarios_or_grid) -> list[Job]:
    if isinstance(scenarios_or_grid, Grid):
        return scenarios_or_grid.jobs()
    items = [scenarios_or_grid] if isinstance(scenarios_or_grid, (Scenario, str, Path, Job)) else list(scenarios_or_grid)
    jobs = []
    for item in items:
        if isinstance(item, Job):
            jobs.append(item)
        elif isinstance(item, Grid):
            jobs += item.jobs()
        else:
            sc = item if isinstance(item, Scenario) else load_scenario(item)
            jobs.append(Job(sc.name, sc, {}))
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:  # keep report folders apart
        seen: dict[str, int] = {}
        for j in jobs:
            if j.name in dup:
                seen[j.name] = seen.get(j.name, 0) + 1
                j.name = f"{j.name}-{seen[j.name]}"
    return jobs


def _folder(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "_", name)[:120] or "job"


RESULT_FILE = "sweep-job.json"  # in out_dir/<job>/, written last: the job's rows, the mark of a finished job
RESULT_FORMAT = "uomo-sweep-job/1"


def job_key(job: Job, problems: Sequence[str] | None, figures: bool) -> str:
    """What a finished job's result is valid for: a hash of its validated scenario, problems and figures flag."""
    spec = {"scenario": job.scenario.model_dump(mode="json"), "problems": None if problems is None else list(problems),
            "figures": bool(figures)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _json_value(value):
    """JSON for the numpy scalars and paths a row may hold; anything else is refused (no silent str())."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a sweep row holds a {type(value).__name__}, which cannot be stored as JSON: {value!r}")


def write_result(folder: Path, job: Job, key: str, rows: list[dict]) -> Path:
    """Store the rows of the finished `job` in `folder`/sweep-job.json, atomically (whole or absent)."""
    doc = {"format": RESULT_FORMAT, "job": job.name, "key": key, "rows": rows}
    return atomic_write_text(Path(folder) / RESULT_FILE, json.dumps(doc, indent=1, default=_json_value))


def read_result(folder: Path, job: Job, key: str) -> list[dict] | None:
    """The rows of `job` if `folder` holds its complete, matching result file; None if missing or not valid.

    Not valid: unreadable or not JSON, another format, another job's name, another scenario, problems
    or figures setting (`key`), rows that are not a list of records. The rows' report path becomes
    `folder` as it is now.
    """
    try:
        doc = json.loads((Path(folder) / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != RESULT_FORMAT or doc.get("job") != job.name \
            or doc.get("key") != key:
        return None
    rows = doc.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    return [{**r, "report": str(folder)} for r in rows]


def _result_rows(job: Job, result, report: str | None, t0: float) -> list[dict]:
    """One row per problem and strategy of a finished run: the grid setting, then the KPI table's columns."""
    from .report import kpi_table

    base = {"job": job.name, **job.setting}
    rows = []
    for name, p in result.problems.items():
        for rec in kpi_table(p).to_dict("records"):
            rows.append({**base, "problem": name, **rec, "run_status": result.status, "report": report,
                         "seconds_job": time.perf_counter() - t0})
    return rows


def run_job(job: Job, out_dir: str | None = None, problems: Sequence[str] | None = None,
            figures: bool = False, threads: int | None = 1) -> list[dict]:
    """Run one job (in a worker): rows of KPIs per problem and strategy, or one row with the error.

    With `out_dir`, the report goes to out_dir/<job> and then the rows to its sweep-job.json (both
    atomic, under the folder's lock), so the result file exists only once the job is complete.
    """
    from .errors import exit_code
    from .output import output_lock
    from .report import write_report
    from .pipeline import run_scenario

    if threads is not None:  # one thread per worker avoids oversubscribing the cores
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        else:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    t0 = time.perf_counter()
    try:
        result = run_scenario(job.scenario, problems=problems)
        if out_dir is None:
            return _result_rows(job, result, None, t0)
        folder = Path(out_dir) / _folder(job.name)
        with output_lock(folder):
            paths = write_report(result, folder, figures=figures)
            rows = _result_rows(job, result, str(paths["summary"].parent), t0)
            write_result(paths["summary"].parent, job, job_key(job, problems, figures), rows)
        return rows
    except Exception as exc:  # noqa: BLE001 - a failed job is a row, not the end of the sweep
        return [{"job": job.name, **job.setting, "status": "failed", "exit_code": exit_code(exc), "error": str(exc),
                 "seconds": time.perf_counter() - t0}]


class RayExecutor(Executor):
    """A minimal `concurrent.futures.Executor` over Ray tasks (`ObjectRef.future()`)."""

    def __init__(self, **init_kwargs):
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(**init_kwargs)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._ray.remote(fn).remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass  # the Ray runtime is shared; call ray.shutdown() yourself when done


class _ClosingExecutor(Executor):
    """An executor that also closes what it runs on (e.g. the Dask client and its local cluster) at shutdown."""

    def __init__(self, inner: Executor, close):
        self._inner, self._close = inner, close

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait)
        finally:
            self._close()


def _dask_executor(max_workers: int | None) -> Executor:
    """A local dask.distributed cluster (worker processes, one thread each), closed with the executor."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError(
            "executor='dask' needs dask.distributed: install the extra with pip install 'uomo-planning[dask]' "
            "(or pass your own Executor, e.g. Client(address).get_executor())"
        ) from None
    client = Client(n_workers=max_workers, threads_per_worker=1, processes=True)
    return _ClosingExecutor(client.get_executor(), client.close)


EXECUTOR_KINDS = ("process", "thread", "dask", "ray")


def _unknown_executor(kind) -> ValueError:
    """The error for an executor name that is not one of EXECUTOR_KINDS."""
    return ValueError(f"unknown executor {kind!r}: use 'process', 'thread', 'dask', 'ray' or an Executor instance")


def make_executor(kind: str, max_workers: int | None = None) -> Executor:
    """'process' (local processes, spawned), 'thread', 'dask' (dask.distributed) or 'ray'."""
    if kind == "process":
        import multiprocessing as mp

        return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn"))
    if kind == "thread":
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=max_workers)
    if kind == "dask":
        return _dask_executor(max_workers)
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError(
                "executor='ray' needs Ray: install the extra with pip install 'uomo-planning[ray]'"
            ) from None
        return RayExecutor()
    raise _unknown_executor(kind)


def _check_storable(jobs: list[Job]) -> None:
    """Refuse, before anything runs, grid values that a job's result file could not hold."""
    for job in jobs:
        try:
            json.dumps(job.setting, default=_json_value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job {job.name!r}: its grid values cannot be stored with its result ({exc})") from None


def _finished(jobs: list[Job], out: str, problems, figures: bool) -> tuple[dict[str, list[dict]], int]:
    """The rows of the jobs already finished in `out` ({name: rows}), and how many result files did not match."""
    done, stale = {}, 0
    for job in jobs:
        folder = Path(out) / _folder(job.name)
        rows = read_result(folder, job, job_key(job, problems, figures))
        if rows is not None:
            done[job.name] = rows
        elif (folder / RESULT_FILE).exists():
            stale += 1
    return done, stale


def _lost_rows(job: Job, exc: Exception, out: str | None) -> list[dict]:
    """The row of a job whose future raised (its worker died, the executor broke): failed, with the reason."""
    from .errors import exit_code

    again = "re-run the same sweep to run it (finished jobs are skipped)" if out else "re-run the sweep"
    error = f"the job returned no result ({type(exc).__name__}: {exc}; did its worker die?): {again}"
    return [{"job": job.name, **job.setting, "status": "failed", "exit_code": exit_code(exc), "error": error}]


def _run_jobs(jobs: list[Job], executor: Executor, out: str | None, problems, figures: bool,
              threads: int | None, progress: bool) -> list[dict]:
    """Submit every job to `executor` and gather their rows as they complete (a lost job becomes a failed row)."""
    futures = {executor.submit(run_job, job, out, problems, figures, threads): job for job in jobs}
    bar = None
    if progress:
        from forecasting.cli_common import progress_bar

        bar = progress_bar(len(futures), "sweep")
    rows: list[dict] = []
    for fut in as_completed(futures):
        try:
            rows += fut.result()
        except Exception as exc:  # noqa: BLE001 - the other jobs' results still count
            rows += _lost_rows(futures[fut], exc, out)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rows


def _summary(table: pd.DataFrame, ran: int, skipped: int, stale: int, csv: Path | None) -> str:
    """One line: jobs run, failed, skipped as finished, and where the table is."""
    failed = table.loc[table["status"] == "failed", "job"].nunique() if "status" in table else 0
    text = f"sweep: {ran + skipped} jobs: ran {ran} ({failed} failed), skipped {skipped} finished"
    if stale:
        text += f" ({stale} result files out of date or unreadable: re-ran those)"
    return text + (f"; table {csv}" if csv is not None else "")


def _run_todo(jobs: list[Job], executor, out: str | None, problems, max_workers: int | None, figures: bool,
              threads: int | None, progress: bool) -> list[dict]:
    """Run `jobs` on `executor` (made here, and shut down after, when it is a name or None)."""
    from concurrent.futures import ThreadPoolExecutor

    if executor == "thread" or isinstance(executor, ThreadPoolExecutor):
        threads = None  # threads share this process: leave its torch settings alone
    own = not isinstance(executor, Executor)
    if own:
        workers = max_workers or max(1, min(len(jobs), os.cpu_count() or 1))
        executor = make_executor(executor or "process", workers)
    try:
        return _run_jobs(jobs, executor, out, problems, figures, threads, progress)
    finally:
        if own:
            executor.shutdown(wait=True)


def run_sweep(
    scenarios_or_grid,
    executor: Executor | str | None = None,
    out_dir: str | Path | None = None,
    problems: Sequence[str] | None = None,
    max_workers: int | None = None,
    figures: bool = False,
    threads: int | None = 1,
    progress: bool = False,
    quiet: bool = False,
) -> pd.DataFrame:
    """Run scenarios (paths, Scenario objects, Jobs) or a `Grid` and return one row per job x problem x strategy.

    executor: None -> local processes (`ProcessPoolExecutor`, spawn start method, at most one worker
    per CPU and job); 'process' | 'thread' | 'dask' | 'ray' (optional extras, imported lazily); or an
    Executor you own (it is not shut down). `out_dir`: write each job's report to out_dir/<job>, its rows
    to out_dir/<job>/sweep-job.json, and the table to out_dir/sweep.csv, each atomically; a job already
    finished there (same scenario, problems, figures) is not run again, its rows are read back.
    `threads`: torch threads per worker (1 avoids oversubscription). Rows of failed jobs carry status
    'failed', their exit code (as the CLI's) and the message; so does a job whose worker died. Prints a
    one-line summary unless `quiet`; `table.attrs['skipped']` names the jobs read back instead of run.
    """
    if not isinstance(executor, Executor) and executor is not None and executor not in EXECUTOR_KINDS:
        raise _unknown_executor(executor)  # before anything runs, even when every job is already finished
    jobs = _as_jobs(scenarios_or_grid)
    if not jobs:
        raise ValueError("nothing to sweep: no scenarios given")
    out = None if out_dir is None else str(Path(out_dir).resolve())
    done, stale = {}, 0
    if out is not None:
        _check_storable(jobs)
        done, stale = _finished(jobs, out, problems, figures)
    todo = [job for job in jobs if job.name not in done]
    rows = [row for job in jobs for row in done.get(job.name, [])]
    if todo:
        rows += _run_todo(todo, executor, out, problems, max_workers, figures, threads, progress)
    order = {job.name: i for i, job in enumerate(jobs)}
    table = pd.DataFrame(rows)
    table = table.sort_values("job", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    table.attrs["skipped"] = [job.name for job in jobs if job.name in done]
    csv = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        csv = atomic_write_text(Path(out) / "sweep.csv", table.to_csv(index=False))
    if not quiet:
        print(_summary(table, len(todo), len(done), stale, csv))
    return table

