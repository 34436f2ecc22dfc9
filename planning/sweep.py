"""Sweeps: run many scenarios, or one scenario over a parameter grid, through any `concurrent.futures.Executor`.

    grid = Grid("scenarios/demo.yaml", {"deployment.max_bs": [40, 60, 80], "deployment.alpha": [1, 2]})
    table = run_sweep(grid, out_dir="out/sweep")                     # local processes (default)
    table = run_sweep(grid, executor="dask")                         # dask.distributed (extra: dask)
    table = run_sweep(grid, executor=my_executor)                    # any Executor you own

Each job validates in the caller (a bad grid value fails before anything is submitted), runs
`run_scenario` in a worker, optionally writes its report (atomically) to `out_dir/<job>`, and returns
plain rows; a failed job is a row with its error and exit code, it does not stop the sweep.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

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


def run_job(job: Job, out_dir: str | None = None, problems: Sequence[str] | None = None,
            figures: bool = False, threads: int | None = 1) -> list[dict]:
    """Run one job (in a worker): rows of KPIs per problem and strategy, or one row with the error."""
    from .errors import exit_code
    from .report import kpi_table, write_report
    from .pipeline import run_scenario

    if threads is not None:  # one thread per worker avoids oversubscribing the cores
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        else:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    t0 = time.perf_counter()
    base = {"job": job.name, **job.setting}
    try:
        result = run_scenario(job.scenario, problems=problems)
        report = None
        if out_dir is not None:
            paths = write_report(result, Path(out_dir) / _folder(job.name), figures=figures)
            report = str(paths["summary"].parent)
    except Exception as exc:  # noqa: BLE001 - a failed job is a row, not the end of the sweep
        return [{**base, "status": "failed", "exit_code": exit_code(exc), "error": str(exc),
                 "seconds": time.perf_counter() - t0}]
    rows = []
    for name, p in result.problems.items():
        table = kpi_table(p)
        for rec in table.to_dict("records"):
            rows.append({**base, "problem": name, **rec, "run_status": result.status, "report": report,
                         "seconds_job": time.perf_counter() - t0})
    return rows


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


def make_executor(kind: str, max_workers: int | None = None) -> Executor:
    """'process' (local processes, spawned), 'thread', 'dask' (dask.distributed) or 'ray'."""
    if kind == "process":
        import multiprocessing as mp

        return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("spawn"))
    if kind == "thread":
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=max_workers)
    if kind == "dask":
        try:
            from dask.distributed import Client
        except ImportError:
            raise ImportError(
                "executor='dask' needs dask.distributed: install the extra with pip install 'uomo-planning[dask]' "
                "(or pass your own Executor, e.g. Client(address).get_executor())"
            ) from None
        return Client(n_workers=max_workers, processes=True).get_executor()
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError(
                "executor='ray' needs Ray: install the extra with pip install 'uomo-planning[ray]'"
            ) from None
        return RayExecutor()
    raise ValueError(f"unknown executor {kind!r}: use 'process', 'thread', 'dask', 'ray' or an Executor instance")


def run_sweep(
    scenarios_or_grid,
    executor: Executor | str | None = None,
    out_dir: str | Path | None = None,
    problems: Sequence[str] | None = None,
    max_workers: int | None = None,
    figures: bool = False,
    threads: int | None = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """Run scenarios (paths, Scenario objects, Jobs) or a `Grid` and return one row per job x problem x strategy.

    executor: None -> local processes (`ProcessPoolExecutor`, spawn start method, at most one worker
    per CPU and job); 'process' | 'thread' | 'dask' | 'ray' (optional extras, imported lazily); or an
    Executor you own (it is not shut down). `out_dir`: write each job's report to out_dir/<job> and
    the table to out_dir/sweep.csv. `threads`: torch threads per worker (1 avoids oversubscription).
    Rows of failed jobs carry status 'failed', their exit code (as the CLI's) and the message.
    """
    jobs = _as_jobs(scenarios_or_grid)
    if not jobs:
        raise ValueError("nothing to sweep: no scenarios given")
    from concurrent.futures import ThreadPoolExecutor

    if executor == "thread" or isinstance(executor, ThreadPoolExecutor):
        threads = None  # threads share this process: leave its torch settings alone
    own = not isinstance(executor, Executor)
    if own:
        workers = max_workers or max(1, min(len(jobs), os.cpu_count() or 1))
        executor = make_executor(executor or "process", workers)
    out = None if out_dir is None else str(Path(out_dir).resolve())
    rows: list[dict] = []
    try:
        futures = {executor.submit(run_job, job, out, problems, figures, threads): job for job in jobs}
        bar = None
        if progress:
            from forecasting.cli_common import progress_bar

            bar = progress_bar(len(futures), "sweep")
        for fut in as_completed(futures):
            rows += fut.result()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    finally:
        if own:
            executor.shutdown(wait=True)
    order = {job.name: i for i, job in enumerate(jobs)}
    table = pd.DataFrame(rows)
    table = table.sort_values("job", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(out) / "sweep.csv", index=False)
    return table
