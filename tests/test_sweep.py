"""Sweeps: grids, the local process executor, any Executor, failed jobs as rows, optional extras;
the scale-out path (a Dask LocalCluster of worker processes), result files written as jobs finish,
and resuming a sweep whose worker was SIGKILLed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from planning.output import atomic_write_text
from planning.scenario.loading import scenario_from_dict
from planning.scenario.schema import ScenarioError
from planning.sweep import RESULT_FILE, Grid, Job, job_key, make_executor, read_result, run_job, run_sweep


def base():
    return scenario_from_dict({
        "name": "sweep-base",
        "city": {"source": "synthetic", "preset": "synthetic-small", "days": 7},
        "forecaster": {"model": "neighbour_mean"},
        "deployment": {"horizon": {"days": 1}, "capacity": 20, "max_bs": 20, "alpha": 1.0,
                       "strategies": ["forecast", "poi"]},
    })


def test_grid_is_the_product_validated_before_anything_runs():
    jobs = Grid(base(), {"deployment.max_bs": [2, 4], "deployment.alpha": [0.0, 1.0]}).jobs()
    assert [j.name for j in jobs] == ["max_bs=2,alpha=0.0", "max_bs=2,alpha=1.0", "max_bs=4,alpha=0.0",
                                      "max_bs=4,alpha=1.0"]
    assert [j.scenario.deployment.max_bs for j in jobs] == [2, 2, 4, 4]
    assert jobs[1].setting == {"deployment.max_bs": 2, "deployment.alpha": 1.0}
    with pytest.raises(ScenarioError, match="deployment.max_bs"):
        Grid(base(), {"deployment.max_bs": [2, -1]}).jobs()
    with pytest.raises(ValueError, match="non-empty list"):
        Grid(base(), {"deployment.max_bs": 3}).jobs()


def test_small_sweep_with_the_local_process_executor(tmp_path):
    grid = Grid(base(), {"deployment.max_bs": [2, 6]})
    table = run_sweep(grid, out_dir=tmp_path, max_workers=2)  # default: spawned local processes
    assert table["job"].unique().tolist() == ["max_bs=2", "max_bs=6"]
    assert table["strategy"].tolist() == ["forecast", "poi", "oracle"] * 2
    assert (table["status"] == "optimal").all()
    by_job = table.groupby("job")["n_bs"].max()
    assert by_job["max_bs=2"] <= 2 < by_job["max_bs=6"] <= 6
    assert table["deployment.max_bs"].tolist() == [2] * 3 + [6] * 3
    assert (tmp_path / "sweep.csv").exists()
    for job in ("max_bs=2", "max_bs=6"):
        assert (tmp_path / job / "summary.json").exists()
        assert (tmp_path / job / "deployment" / "kpi.csv").exists()


def test_any_executor_and_failed_jobs_become_rows():
    ok = Job("ok", base())
    bad = Job("infeasible", scenario_from_dict({**base().model_dump(mode="json"),
                                                "deployment": {"capacity": 20, "max_bs": 1, "min_served": 1.0}}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        table = run_sweep([ok, bad], executor=pool)
        assert not pool._shutdown  # an Executor we pass in is ours to close
    failed = table[table["job"] == "infeasible"]
    assert len(failed) == 1 and failed["status"].item() == "failed" and failed["exit_code"].item() == 3
    assert "service-" in failed["error"].item()
    assert table[table["job"] == "ok"]["strategy"].tolist() == ["forecast", "poi", "oracle"]


def test_duplicate_scenarios_get_distinct_names():
    table = run_sweep([base(), base()], executor="thread", max_workers=1)
    assert table["job"].unique().tolist() == ["sweep-base-1", "sweep-base-2"]


@pytest.mark.parametrize("kind, modules", [("dask", ["dask.distributed", "distributed"]), ("ray", ["ray"])])
def test_a_missing_cluster_library_says_what_to_install(kind, modules, monkeypatch):
    for module in modules:  # as if not installed, whether it is or not
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"executor='{kind}' needs .*pip install 'uomo-planning\[{kind}\]'"):
        run_sweep([base()], executor=kind, quiet=True)


def test_the_dask_cluster_a_sweep_starts_is_closed_with_it(monkeypatch):
    pytest.importorskip("dask.distributed")
    made = []

    class FakeClient:  # records how the cluster is asked for and whether it is closed
        def __init__(self, **kwargs):
            self.kwargs, self.closed = kwargs, False
            made.append(self)

        def get_executor(self):
            return ThreadPoolExecutor(max_workers=1)

        def close(self):
            self.closed = True

    monkeypatch.setattr("dask.distributed.Client", FakeClient)
    executor = make_executor("dask", max_workers=2)
    assert made[0].kwargs == {"n_workers": 2, "threads_per_worker": 1, "processes": True} and not made[0].closed
    executor.shutdown(wait=True)
    assert made[0].closed


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="unknown executor"):
        run_sweep([base()], executor="mpi")


# --- result files, resuming, the scale-out path ---------------------------------------------------------

TIMINGS = ["seconds", "seconds_job", "report"]  # differ between runs and output folders


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without timings and report paths, in job order: what two runs of a sweep must share."""
    return table.drop(columns=[c for c in TIMINGS if c in table]).reset_index(drop=True)


def small_grid() -> Grid:
    return Grid(base(), {"deployment.max_bs": [2, 4, 6]})


class Recording(Executor):
    """Delegates to `inner`, records the jobs submitted, and runs the job named `victim` through `_killed_saving`."""

    def __init__(self, inner: Executor, victim: str | None = None, once: Path | None = None):
        self.inner, self.victim, self.once, self.submitted = inner, victim, once, []

    def submit(self, fn, job, *args):
        self.submitted.append(job.name)
        if job.name == self.victim:
            return self.inner.submit(_killed_saving, str(self.once) if self.once else None, job, *args)
        return self.inner.submit(fn, job, *args)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.inner.shutdown(wait=wait)


def _sigkill_me(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_saving(once: str | None, job: Job, *args):
    """In a worker: run `job`, but the process is SIGKILLed as it moves its complete result file into place
    (report written, temporary result file written and synced). With `once` (a file path), only on the first
    attempt, whose pid goes into that file; later attempts run normally."""
    if once is None or not os.path.exists(once):
        if once is not None:
            Path(once).write_text(str(os.getpid()))
        os.replace = _sigkill_me  # this worker process only; it does not outlive the kill
    return run_job(job, *args)


def spawned_pool(workers: int = 1) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def result_bytes(out: Path, jobs) -> dict[str, bytes]:
    return {j: (out / j / RESULT_FILE).read_bytes() for j in jobs}


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    """The small grid swept with the default local executor (spawned processes), into its own folder."""
    table = run_sweep(small_grid(), out_dir=tmp_path_factory.mktemp("local"), max_workers=2, quiet=True)
    assert (table["status"] == "optimal").all()
    return table


@pytest.fixture
def dask_client():
    """A Dask LocalCluster of two single-threaded worker processes, with generous timeouts for a loaded machine."""
    distributed = pytest.importorskip("distributed")
    import dask

    slow = {"distributed.comm.timeouts.connect": "120s", "distributed.comm.timeouts.tcp": "300s"}
    with dask.config.set(slow):
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        try:
            client = distributed.Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def test_a_dask_cluster_gives_the_local_results(tmp_path, local_table, dask_client, capsys):
    executor = Recording(dask_client.get_executor())
    table = run_sweep(small_grid(), executor=executor, out_dir=tmp_path)
    assert executor.submitted == ["max_bs=2", "max_bs=4", "max_bs=6"]
    pd.testing.assert_frame_equal(comparable(table), comparable(local_table), check_exact=True)
    assert "ran 3 (0 failed), skipped 0 finished" in capsys.readouterr().out
    for job in small_grid().jobs():  # each job's result file holds its rows of the table
        stored = read_result(tmp_path / job.name, job, job_key(job, None, False))
        assert stored == table[table["job"] == job.name].to_dict("records")
    assert pd.read_csv(tmp_path / "sweep.csv")["job"].tolist() == table["job"].tolist()


def test_a_killed_worker_keeps_finished_results_and_a_rerun_completes_the_rest(tmp_path, local_table, capsys):
    names = ["max_bs=2", "max_bs=4", "max_bs=6"]
    # one worker: the jobs run in order; the second is SIGKILLed while saving its result, which breaks the pool
    with spawned_pool() as pool:
        first = run_sweep(small_grid(), executor=Recording(pool, victim="max_bs=4"), out_dir=tmp_path)
    assert capsys.readouterr().out.startswith("sweep: 3 jobs: ran 3 (2 failed), skipped 0 finished")
    assert (first[first["job"] == "max_bs=2"]["status"] == "optimal").all()
    lost = first[first["job"] != "max_bs=2"]
    assert lost["job"].tolist() == names[1:] and (lost["status"] == "failed").all()
    assert lost["error"].str.contains("BrokenProcessPool").all() and (lost["exit_code"] == 1).all()
    victim = tmp_path / "max_bs=4"
    assert (victim / "summary.json").exists() and not (victim / RESULT_FILE).exists()  # report in, result not
    assert list(victim.glob(f".{RESULT_FILE}.tmp-*"))  # the kill came after its temporary result was written
    assert not (tmp_path / "max_bs=6").exists()
    kept = result_bytes(tmp_path, names[:1])

    with spawned_pool() as pool:
        again = Recording(pool)
        second = run_sweep(small_grid(), executor=again, out_dir=tmp_path)
    assert again.submitted == names[1:]  # the finished job is not run again
    assert second.attrs["skipped"] == names[:1]
    assert capsys.readouterr().out.startswith("sweep: 3 jobs: ran 2 (0 failed), skipped 1 finished")
    assert result_bytes(tmp_path, names[:1]) == kept  # untouched
    pd.testing.assert_frame_equal(comparable(second), comparable(local_table), check_exact=True)
    read_back = second[second["job"] == "max_bs=2"].reset_index(drop=True)
    returned = first.loc[first["job"] == "max_bs=2", second.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(read_back, returned, check_exact=True, check_dtype=False)  # (NaN rows aside)
    assert not list(victim.glob(f".{RESULT_FILE}.tmp-*"))  # the victim's folder was replaced whole
    for job in small_grid().jobs():
        assert read_result(tmp_path / job.name, job, job_key(job, None, False)) is not None


def test_a_dask_worker_killed_mid_job_is_replaced_and_nothing_is_lost(tmp_path, local_table, dask_client, capsys):
    once = tmp_path / "killed.pid"
    out = tmp_path / "out"
    # the first job submitted starts first on its worker, so that worker holds no finished result when it dies
    executor = Recording(dask_client.get_executor(), victim="max_bs=2", once=once)
    table = run_sweep(small_grid(), executor=executor, out_dir=out)
    assert once.exists() and int(once.read_text()) not in dask_client.run(os.getpid).values()  # it was killed
    pd.testing.assert_frame_equal(comparable(table), comparable(local_table), check_exact=True)
    assert "ran 3 (0 failed)" in capsys.readouterr().out
    finished = result_bytes(out, table["job"].unique())

    again = Recording(dask_client.get_executor())
    second = run_sweep(small_grid(), executor=again, out_dir=out)
    assert again.submitted == [] and "skipped 3 finished" in capsys.readouterr().out
    pd.testing.assert_frame_equal(second, table, check_exact=True)
    assert result_bytes(out, table["job"].unique()) == finished


def test_a_rerun_skips_only_complete_matching_results(tmp_path, capsys):
    bad = Job("infeasible", scenario_from_dict({**base().model_dump(mode="json"),
                                                "deployment": {"capacity": 20, "max_bs": 1, "min_served": 1.0}}))
    jobs = [*Grid(base(), {"deployment.max_bs": [2, 6]}).jobs(), bad]

    def sweep(jobs):
        executor = Recording(ThreadPoolExecutor(max_workers=2))
        table = run_sweep(jobs, executor=executor, out_dir=tmp_path, threads=None)
        return table, executor.submitted, capsys.readouterr().out

    first, ran, said = sweep(jobs)
    assert ran == ["max_bs=2", "max_bs=6", "infeasible"] and "ran 3 (1 failed), skipped 0 finished" in said
    assert not (tmp_path / "infeasible" / RESULT_FILE).exists()  # a failed job is not finished: tried again

    second, ran, said = sweep(jobs)
    assert ran == ["infeasible"] and "ran 1 (1 failed), skipped 2 finished" in said
    pd.testing.assert_frame_equal(second.drop(columns="seconds"), first.drop(columns="seconds"), check_exact=True)

    path = tmp_path / "max_bs=2" / RESULT_FILE  # a damaged result file is not a finished job
    path.write_bytes(path.read_bytes()[:100])
    third, ran, said = sweep(jobs[:2])
    assert ran == ["max_bs=2"] and "skipped 1 finished (1 result files out of date or unreadable" in said

    other = Grid(scenario_from_dict({**base().model_dump(mode="json"), "name": "other"}),
                 {"deployment.max_bs": [2, 6]}).jobs()  # same job names, another scenario
    fourth, ran, said = sweep(other)
    assert ran == ["max_bs=2", "max_bs=6"] and "skipped 0 finished" in said


def test_grid_values_a_result_file_cannot_hold_are_refused_before_running(tmp_path):
    job = Job("odd", base(), {"deployment.max_bs": object()})
    with pytest.raises(ValueError, match="job 'odd': its grid values cannot be stored"):
        run_sweep([job], executor="thread", out_dir=tmp_path, quiet=True)
    assert not tmp_path.joinpath("odd").exists()


def test_atomic_write_text_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "a.json", "old")
    assert path.read_text() == "old" and (path.stat().st_mode & 0o777) == 0o666 & ~_umask()

    def fail(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    monkeypatch.undo()
    assert atomic_write_text(path, "new").read_text() == "new"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
