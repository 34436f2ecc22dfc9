"""Train several `uomo-train` variants side by side on one accelerator within a wall-clock budget.

An accelerator is lent for minutes, not hours, so each variant's step count is sized to the budget:

1. probe: every variant runs `--probe-steps` steps at once (as they will share the device later) and
   reports its training rate r (steps/s, from the run's history) and its overhead o (start-up and one
   validation: the probe's wall time minus its training time);
2. run: every variant is launched again, at once, with

       steps = floor(safety * r * (T - o - n_val * min(o, 20 s)))

   where T is the time left before the deadline and n_val the number of validations (one every
   steps / n_val, each taken to cost at most 20 s on an accelerator); each process is also stopped at
   the deadline, keeping the best.pt of its last validation (written atomically by the trainer).

Each variant's best.pt and history.json are copied to OUT/<name>.pt and OUT/<name>.history.json, and a
summary (steps, rate, best score) to OUT/summary.json. Choose among them on val regions afterwards
(`bench/candidate_val.py`), never on test.

    python bench/accelerator_runs.py --budget 480 --out runs/accel --data-dir DIR --variants fine deep wide
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from forecasting.checkpoint import load_checkpoint

BATCH = 64  # windows per step, every variant but those in BATCH_OF (the probe's windows/s -> steps/s)
PUBLIC = ["--cities", "nanjing", "nanchang", "synthetic", "--city-weight", "synthetic=0.1",
          "--city-weight", "nanchang=2", "--lead-boost", "10"]
# the synthetic cities' static context read by category name (the real cities' unnamed POI are shown no
# static layer), 30% of the windows without it, and the contrastive term
NAMED_CONTEXT = ["--context", "poi", "residents", "--poi-names", "--static-drop", "0.3", "--contrastive-weight", "0.05"]
# the shipped recipe's data and losses: the public cities, the default synthetic city at weight 0.5 and the
# named synthetic prior alongside
NAMES = ["--cities", "nanjing", "nanchang", "synthetic", "synthetic-prior:256", "--city-weight", "synthetic=0.5",
         "--city-weight", "nanchang=2", "--city-weight", "synthetic-prior=1", "--lead-boost", "10", *NAMED_CONTEXT]
WIDE = ["--preset", "cpu-wide", "--carry-channel"]

#: name -> uomo-train arguments (besides --batch-size, --steps, --val-every, --out, --data-dir, --init)
VARIANTS: dict[str, list[str]] = {
    # the shipped public recipe's network, trained longer from scratch (the control of the size lever)
    "fine": ["--preset", "cpu-fine", "--carry-channel", *PUBLIC, "--lr", "1e-3"],
    # the shipped public model, continued
    "cont": ["--init", "uomo-public-cpu", *PUBLIC, "--lr", "3e-4"],
    # the size lever
    "deep": ["--preset", "cpu-deep", "--carry-channel", *PUBLIC, "--lr", "1e-3"],
    "wide": [*WIDE, *PUBLIC, "--lr", "1e-3"],
    # the size lever with the real cities also resampled to coarser slots as extra pre-training cities
    "wide-resampled": [*WIDE, "--cities", "nanjing", "nanchang", "synthetic",
                       "nanjing@30min", "nanjing@60min", "nanchang@60min", "--city-weight", "synthetic=0.1",
                       "--city-weight", "nanchang=2", "--city-weight", "nanjing@30min=0.5",
                       "--city-weight", "nanjing@60min=0.5", "--city-weight", "nanchang@60min=1",
                       "--lead-boost", "10", "--lr", "1e-3"],
    # the size lever with the named static context and the named synthetic prior
    "wide-names": [*WIDE, *NAMES, "--lr", "1e-3"],
    # continuations (need --init NAME=PATH; --init keeps the network, so no network flags): the public cities
    # again after the named stage, static context kept (the synthetic model's names -> names-back route), and
    # the wide network trained further
    "wide-names-back": ["--cities", "nanjing", "nanchang", "synthetic", "--city-weight", "synthetic=0.5",
                        "--city-weight", "nanchang=2", "--lead-boost", "10", *NAMED_CONTEXT, "--lr", "3e-4"],
    "wide-more": [*PUBLIC, "--lr", "5e-4"],
    # the shipped recipe with one lever changed each: two and four times the windows per step (BATCH_OF; the
    # step is bound by Python work, so a larger batch costs little time on an accelerator), Nanchang weighted
    # 3 instead of 2, and the stopped run finished (a continuation: the rest of its schedule, annealed)
    "wide-names-b128": [*WIDE, *NAMES, "--lr", "1e-3"],
    "wide-names-b256": [*WIDE, *NAMES, "--lr", "1e-3"],
    "wide-names-nanchang3": [*WIDE, *(("nanchang=3" if a == "nanchang=2" else a) for a in NAMES), "--lr", "1e-3"],
    "wide-names-finish": [*NAMES, "--lr", "3e-4"],
}
#: variant -> windows per step, where it is not BATCH
BATCH_OF = {"wide-names-b128": 128, "wide-names-b256": 256}


def launch(name: str, extra: list[str], out: Path, data_dir: str | None, init: str | None, log: Path) -> subprocess.Popen:
    """Start `uomo-train` for variant `name` (from checkpoint `init` if given) with `extra` arguments;
    output to `log`."""
    cmd = [sys.executable, "-m", "forecasting.train", *VARIANTS[name], "--batch-size", str(BATCH_OF.get(name, BATCH)),
           "--out", str(out), *extra]
    if init:
        cmd += ["--init", init]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "2"})


def wait_all(procs: dict[str, subprocess.Popen], deadline: float) -> dict[str, float]:
    """Wait for every process, stopping those still running at `deadline`; -> name: wall seconds."""
    start, walls = time.time(), {}
    while len(walls) < len(procs):
        for name, proc in procs.items():
            if name not in walls and proc.poll() is not None:
                walls[name] = time.time() - start
        if time.time() > deadline:
            for name, proc in procs.items():
                if name not in walls:
                    proc.terminate()
                    proc.wait(30)
                    walls[name] = time.time() - start
        time.sleep(0.5)
    return walls


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--budget", type=float, required=True, help="wall-clock seconds for probe and runs together")
    p.add_argument("--out", required=True, help="folder for <variant>.pt, <variant>.history.json, summary.json")
    p.add_argument("--work", default="runs/accel-work", help="folder of the run folders and logs")
    p.add_argument("--data-dir", default=None, help="folder of the real cities' .npz files")
    p.add_argument("--probe-steps", type=int, default=150)
    p.add_argument("--validations", type=int, default=4, help="validations per run (best.pt is the best of them)")
    p.add_argument("--safety", type=float, default=0.85)
    p.add_argument("--init", action="append", default=[], metavar="VARIANT=PATH",
                   help="start VARIANT from this checkpoint (continuations)")
    args = p.parse_args(argv)
    inits = dict(item.partition("=")[::2] for item in args.init)  # variant -> checkpoint
    deadline = time.time() + args.budget
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    probes = {n: launch(n, ["--steps", str(args.probe_steps), "--val-every", str(args.probe_steps)],
                        work / f"probe-{n}", args.data_dir, inits.get(n), work / f"probe-{n}.log")
              for n in args.variants}
    walls = wait_all(probes, deadline)
    plan = {}
    for n in args.variants:
        history_file = work / f"probe-{n}" / "history.json"
        if probes[n].returncode != 0 or not history_file.exists():
            print(f"{n}: probe failed (rc {probes[n].returncode}):\n" + (work / f"probe-{n}.log").read_text()[-3000:])
            continue
        entry = json.loads(history_file.read_text())[-1]
        rate = entry["windows_per_s"] / BATCH_OF.get(n, BATCH)
        overhead = max(walls[n] - args.probe_steps / rate, 1.0)
        plan[n] = {"rate_steps_per_s": rate, "overhead_s": overhead}
        print(f"{n}: probe {walls[n]:.0f} s, {rate:.1f} steps/s, score {entry.get('score')}", flush=True)
    left = deadline - time.time()
    runs = {}
    for n, info in plan.items():
        # start-up once, then each validation (at most 20 s on an accelerator)
        run_time = left - info["overhead_s"] - args.validations * min(info["overhead_s"], 20.0)
        steps = math.floor(args.safety * info["rate_steps_per_s"] * run_time)
        steps = max(args.validations, steps - steps % args.validations)
        info["steps"] = steps
        print(f"{n}: {info['rate_steps_per_s']:.1f} steps/s, overhead {info['overhead_s']:.0f} s -> {steps} steps", flush=True)
        runs[n] = launch(n, ["--steps", str(steps), "--val-every", str(steps // args.validations)],
                         work / n, args.data_dir, inits.get(n), work / f"{n}.log")
    walls = wait_all(runs, deadline)
    for n, info in plan.items():
        info["wall_s"], info["returncode"] = walls[n], runs[n].returncode
        run = work / n
        if (run / "best.pt").exists():
            shutil.copyfile(run / "best.pt", out / f"{n}.pt")
        history = run / "history.json"
        if not history.exists() and (run / "last.pt").exists():  # stopped at the deadline: history is in last.pt
            history_json = load_checkpoint(run / "last.pt")[0].get("history_json")
            if history_json:
                history.write_text(history_json)
        if history.exists():
            shutil.copyfile(history, out / f"{n}.history.json")
            entries = json.loads(history.read_text())
            info["scores"] = [(e.get("step"), e.get("score")) for e in entries]
        info["log_tail"] = (work / f"{n}.log").read_text()[-600:]
    (out / "summary.json").write_text(json.dumps(plan, indent=1))
    print(json.dumps({n: {k: v for k, v in i.items() if k != "log_tail"} for n, i in plan.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
