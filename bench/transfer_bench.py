"""Zero-shot and few-shot transfer (paper Table 4 / Figure 5): leave one real city out.

For each held-out (target) city:

1. **source model** - UoMo trained on the other real city plus the synthetic cities (optionally with
   users/POI context and the contrastive term: `--context users poi`), starting from `--init` (default: the shipped synthetic-only
   checkpoint, which has never seen a real city). The target is never seen.
2. **zero-shot** (shots 0) - the source model on the target's test regions, against the baselines that
   need no target data (historical average, last value, seasonal naive, neighbour mean) and the daily
   profile fitted on the source cities (their average shape).
3. **few-shot** (shots 0.05, 0.10, ...) - the target seen only for its first share of training windows
   (`forecasting.data.few_shot_city`: a time prefix, e.g. its first ~1-2 days): the source model is
   fine-tuned on it, and every baseline is fitted on exactly the same data. The test windows are
   normalised with the scale fitted on that same data (what a planner would have).

Also zero-shot from `--pretrained` (a model that has seen none of them) to the cities of
`--zero-shot-targets` (synthetic cities of another granularity and grid size, or real cities and their
resamplings such as `nanchang@60min` for a model trained on the synthetic prior), against baselines fitted
on each of those cities' own training regions (the stricter comparison). `--zero-shot-only` skips the
leave-one-out part:

    OMP_NUM_THREADS=2 python bench/transfer_bench.py --zero-shot-only --pretrained runs/prior12k/best.pt \
        --zero-shot-targets nanchang nanjing nanchang@60min nanjing@60min --label uomo_prior --merge

The zero-shot model's recalibration (persistence anchor, seasonal term, bands; `forecasting.calibration`)
is by default the one it ships with (fitted on its own training cities' val regions). With
`--zero-shot-calibration other-cities` it is fitted for each target on the val regions of the
`--calibration-cities` that cover other areas than the target (never the target or a resampling of it),
each at the target's time step where it can be summed to it (`nanjing` for `nanchang@60min` is
`nanjing@60min`): a real city's calibration carries how a real city's traffic leans on its last value and
on the day before, which a synthetic city's does not. `--eval-split val` scores the zero-shot targets on
their val regions instead of test, to choose between the two without touching test.

    OMP_NUM_THREADS=2 python bench/transfer_bench.py --targets nanjing nanchang \
        --source-steps 3000 --finetune-steps 400 --shots 0 0.05 0.10 --stride 4 \
        --pretrained runs/pretrained-cpu.pt

Records go to bench/results/transfer.json with keys city, task, variant ('uomo' or a baseline's name),
shots, baselines_fit_on ('sources': the leave-one-out zero-shot; 'target': the zero-shot targets' own
training regions; 'prefix': the few-shot prefix), mae, rmse, jsd (+ crps, mae_raw, windows, stride) and a
Markdown table beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

from common import RESULTS, command_line, merge_records, read_records, write_json, write_text
from forecasting.calibration import fit_calibration
from forecasting.checkpoint import CheckpointError, list_pretrained, resolve_checkpoint
from forecasting.data import City, CityScalers, few_shot_city, load_city, make_windows, resample_city
from forecasting.evaluate import evaluate_forecaster, make_model, window_masks
from forecasting.forecast import load_forecaster
from forecasting.masks import EVAL_TASKS
from forecasting.train import TrainConfig, train


#: baselines scored in every setting; those needing no fit are the same at every shots level
BASELINE_NAMES = ("historical_average", "last_value", "seasonal_naive", "daily_profile", "neighbour_mean", "poi_regression")


def train_source(target: str, sources: list[City], synthetic: list[str], init: str, steps: int, context: list[str],
                 lam: float, runs: Path, seed: int, loss_weighting: str = "none") -> str:
    """Train the leave-`target`-out source model on the `sources` cities; returns its best checkpoint path."""
    cfg = TrainConfig(
        preset="cpu", cities=[c.name for c in sources], steps=steps, batch_size=32, lr=5e-4, warmup=100,
        context=context, contrastive_weight=lam if context else 0.0, init_from=init, val_every=max(steps // 2, 1),
        city_weights={s: 0.25 for s in synthetic}, seed=seed, out=str(runs / f"without_{target}"),
        loss_weighting=loss_weighting,
    )
    return train(cfg, cities=sources)["best"]


def finetune_few_shot(source_ckpt: str, few: City, steps: int, context: list[str], lam: float, freeze: str,
                      runs: Path, seed: int, shots: float, label: str = "uomo", loss_weighting: str = "none",
                      select: bool = False) -> str:
    """Fine-tune the source model on the few-shot city; returns the last checkpoint, or with `select`
    the best of six validations on the target's val regions *within the same time prefix* (areas not
    trained on, data a planner would have at that time; nothing beyond the prefix is read)."""
    cfg = TrainConfig(
        preset="cpu", cities=[few.name], steps=steps, batch_size=32, lr=3e-4, warmup=min(50, steps // 4),
        context=context, contrastive_weight=lam if context else 0.0, freeze=freeze, init_from=source_ckpt,
        val_every=max(steps // 6, 1) if select else steps, val_stride=2 if select else 16, seed=seed, out=str(runs / f"{few.name}_shots{shots:g}_{label}"),
        loss_weighting=loss_weighting,
    )
    summary = train(cfg, cities=[few])
    return summary["best"] if select else summary["last"]


def score(model, windows, masks, task, variant, shots, stride, seed) -> dict:
    rec = evaluate_forecaster(model, windows, task, seed, masks[task], model_name=variant)
    return {"city": windows.city, "task": task, "variant": variant, "shots": shots,
            "mae": rec["mae"], "rmse": rec["rmse"], "jsd": rec["jsd"], "crps": rec["crps"],
            "mae_raw": rec["mae_raw"], "windows": rec["windows"], "stride": stride,
            "status": rec["status"], "note": rec["note"]}  # fmt: skip


#: what the baselines of a setting were fitted on (see the module docstring)
FIT_ON = ("sources", "target", "prefix")


def score_setting(city: City, fit_on: list[City], uomo, shots: float, args, fitted: str,
                  scalers=None, split: str = "test") -> list[dict]:
    """UoMo (as given) and every baseline (fitted on `fit_on`, described by `fitted`, one of FIT_ON) on
    the `split` windows of `city`."""
    windows = make_windows(city, split=split, stride=args.stride, scalers=scalers)
    masks = {task: window_masks(windows, task, args.seed) for task in EVAL_TASKS}
    records = []
    models = [(args.label, uomo)]
    for name in BASELINE_NAMES:
        model = make_model(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # daily_profile's "not fitted on this city" fallback is intended
            model.fit(fit_on)
        models.append((name, model))
    for name, model in models:
        for task in EVAL_TASKS:
            if task not in model.tasks:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = score(model, windows, masks, task, name, shots, args.stride, args.seed)
            if rec["status"] == "ok":
                records.append({**rec, "baselines_fit_on": fitted, **({} if split == "test" else {"split": split})})
                print(f"  {rec['city']:<16} {task:<10} shots={shots:<5g} {name:<20} MAE {rec['mae']:.5f}", flush=True)
    return records


FIT_ON_TITLE = {"sources": "", "target": ", baselines fitted on the city itself", "prefix": ""}


def markdown(records: list[dict], header: list[str]) -> str:
    lines = [*header, ""]
    groups = sorted({(r["city"], r["shots"], r["baselines_fit_on"]) for r in records},
                    key=lambda k: (k[0], k[1], FIT_ON.index(k[2])))
    for city, shots, fitted in groups:
        rows = [r for r in records if (r["city"], r["shots"], r["baselines_fit_on"]) == (city, shots, fitted)]
        lines += [f"## {city}, shots = {shots:g}{FIT_ON_TITLE[fitted]}", "",
                  "| task | UoMo run | MAE | best baseline | its MAE | ratio | RMSE | JSD |", "|---|---|---|---|---|---|---|---|"]
        for task in EVAL_TASKS:
            uomos = [r for r in rows if r["task"] == task and r["variant"].startswith("uomo")]
            base = [r for r in rows if r["task"] == task and not r["variant"].startswith("uomo")]
            if not uomos or not base:
                continue
            best = min(base, key=lambda r: r["mae"])
            for u in uomos:
                jsd = "" if u["jsd"] is None else f"{u['jsd']:.4f}"
                lines.append(f"| {task} | {u['variant']} | {u['mae']:.5f} | {best['variant']} | {best['mae']:.5f} | "
                             f"{u['mae'] / best['mae']:.3f} | {u['rmse']:.5f} | {jsd} |")
        lines.append("")
    return "\n".join(lines)


def calibration_sources(target: City, names: list[str]) -> list[City]:
    """The cities whose val regions calibrate a zero-shot model for `target`: each of `names` that covers
    other areas than the target (`City.geography`), resampled to the target's time step when that is a
    whole multiple of its own (else at its own step). Empty when every one covers the target's areas."""
    out = []
    for name in names:
        city = load_city(name)
        if city.geography == target.geography:
            continue
        ratio = target.minutes_per_slot / city.minutes_per_slot
        if ratio > 1 and ratio == int(ratio):
            city = resample_city(city, int(target.minutes_per_slot))
        out.append(city)
    return out


def zero_shot_model(uomo, target: City, args):
    """The zero-shot model for `target`: as loaded (its shipped calibration), or with
    `--zero-shot-calibration other-cities` a copy calibrated on `calibration_sources` (SystemExit naming
    the option when none is left)."""
    if args.zero_shot_calibration == "shipped":
        return uomo
    sources = calibration_sources(target, args.calibration_cities)
    if not sources:
        raise SystemExit(f"--calibration-cities {args.calibration_cities} all cover {target.name}'s areas: "
                         "name a city that does not")
    model = copy.copy(uomo)
    model.calibration = fit_calibration(uomo, sources, split="val", stride=8)
    print(f"[transfer] {target.name}: calibrated on the val regions of {[c.name for c in sources]}", flush=True)
    return model


def describe(args: argparse.Namespace) -> str:
    """One line of the UoMo settings of a run (for the table header)."""
    if args.zero_shot_only:
        shipped = args.pretrained in list_pretrained()
        how = " with its shipped calibration (fitted on its own val regions; tables pooled over them)" if shipped else ""
        if args.zero_shot_calibration == "other-cities":
            how = (f", calibrated for each target on the val regions of {', '.join(args.calibration_cities)} except "
                   "the target's own areas (at the target's time step where they sum to it)")
        if args.eval_split != "test":
            how += f"; scored on the {args.eval_split} regions"
        return (f"zero-shot from `{args.pretrained}`{how} on {', '.join(args.zero_shot_targets)} (baselines fitted on "
                f"each city's own training regions); {args.samples} samples x DDIM-{args.sampling_steps}")
    source = (f"source reused from `{args.runs}`" if args.reuse_sources else
              f"source = `{args.init}` + {args.source_steps} steps on the other real city + {args.synthetic}")
    few = (f"few-shot: {args.finetune_steps} steps, freeze = {args.freeze}"
           + (", best of 6 on the prefix's val regions" if args.select_on_prefix_val else ", last checkpoint"))
    extra = [f"context {args.context}, lambda {args.contrastive_weight}"] if args.context else []
    extra += [f"loss weighting {args.loss_weighting}"] if args.loss_weighting != "none" else []
    held_out = f"held out: {', '.join(args.only or args.targets)}"
    return "; ".join([held_out, source, few, *extra, f"{args.samples} samples x DDIM-{args.sampling_steps}"])


def write_markdown(records: list[dict], path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """Write the Markdown tables of `records` to `path`, the header naming each UoMo run's settings as
    read back from its recorded command; returns the header lines."""
    commands = list(dict.fromkeys(r["command"] for r in records if r.get("command")))
    parsed = [parser.parse_args(c.split("transfer_bench.py", 1)[1].split()) for c in commands]
    pretrained = [a.pretrained for a in parsed if a.pretrained]
    strides = sorted({r["stride"] for r in records})
    splits = sorted({r.get("split", "test") for r in records})
    header = [
        f"# Zero-shot and few-shot transfer ({' and '.join(splits)} regions, leave one real city out)", "",
        "Few-shot = the target's first share of training windows (a time prefix); every baseline is fitted on "
        f"the same data. {' and '.join(splits).capitalize()} windows every {'/'.join(map(str, strides))} steps; UoMo point forecast = median of its samples. "
        "Ratio = UoMo MAE / best baseline MAE on the same windows. Sections marked 'baselines fitted on the city "
        "itself': zero-shot from `--pretrained` (a model that has never seen the city: "
        f"{', '.join(f'`{x}`' for x in dict.fromkeys(pretrained)) or 'none'}) against baselines fitted on the "
        "city's own training regions.", "",
        "UoMo runs (settings read back from each command):", "",
        *[f"- `{a.label}`: {describe(a)}" for a in parsed], "",
        "Commands:", "", *[f"    {c}" for c in commands], "",
    ]
    write_text(path, markdown(records, header) + "\n")
    return header


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["nanjing", "nanchang"], help="real cities held out in turn")
    p.add_argument("--only", nargs="+", default=None,
                   help="hold out only these of --targets (the sources still use every other --targets city)")
    p.add_argument("--synthetic", nargs="+", default=["synthetic"], help="synthetic cities added to every source")
    p.add_argument("--init", default="uomo-synthetic-cpu", help="starting point of the source models (must not have seen a target)")
    p.add_argument("--source-steps", type=int, default=3000)
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--freeze", default="backbone", choices=["none", "backbone", "context"],
                   help="few-shot fine-tuning: partial freezing (backbone), none, or all but the context path")
    p.add_argument("--context", nargs="*", default=[], choices=["users", "poi"], help="context inputs of all UoMo runs")
    p.add_argument("--contrastive-weight", type=float, default=0.05, help="lambda of Eq. 11 (used with --context)")
    p.add_argument("--loss-weighting", default="none", choices=["none", "cell_level"],
                   help="loss weighting of the source and few-shot training (see forecasting.train)")
    p.add_argument("--select-on-prefix-val", action="store_true",
                   help="few-shot: keep the best of 6 checkpoints scored on the val regions' part of the same prefix")
    p.add_argument("--shots", nargs="+", type=float, default=[0.0, 0.05, 0.10])
    p.add_argument("--pretrained", default=None,
                   help="model scored zero-shot on --zero-shot-targets (skipped if absent); it must not have seen them")
    p.add_argument("--zero-shot-targets", "--synthetic-targets", dest="zero_shot_targets", nargs="+",
                   default=["synthetic-small"],
                   help="cities for --pretrained, baselines fitted on each of them (default: 8 x 8 cells, 1-hour slots)")
    p.add_argument("--zero-shot-only", action="store_true",
                   help="skip the leave-one-out source models: score --pretrained on --zero-shot-targets only")
    p.add_argument("--zero-shot-calibration", choices=["shipped", "other-cities"], default="shipped",
                   help="recalibration of the zero-shot model: the one it ships with, or fitted per target on the val "
                        "regions of --calibration-cities other than the target's areas")
    p.add_argument("--calibration-cities", nargs="+", default=["nanjing", "nanchang"],
                   help="cities for --zero-shot-calibration other-cities")
    p.add_argument("--eval-split", choices=["test", "val"], default="test",
                   help="regions the zero-shot targets are scored on (val: to choose settings without touching test)")
    p.add_argument("--stride", type=int, default=4, help="test window stride of the evaluation")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--sampling-steps", type=int, default=3, help="DDIM steps (see bench/sampler_selection.py)")
    p.add_argument("--runs", default="runs/transfer")
    p.add_argument("--reuse-sources", action="store_true",
                   help="use RUNS/without_<target>/best.pt when it exists instead of training the source again")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--label", default="uomo", help="variant name of this run's UoMo records (must start with 'uomo')")
    p.add_argument("--merge", action="store_true",
                   help="keep the records of OUT/transfer.json that this run does not redo (e.g. another --label)")
    p.add_argument("--render-only", action="store_true", help="rewrite OUT/transfer.md from OUT/transfer.json and stop")
    return p


def pretrained_checkpoint(name_or_path: str | None) -> str | None:
    """`--pretrained` as load_forecaster takes it, or None when absent (then zero-shot is skipped).

    A shipped model's name loads it with its calibration file (fitted on its own val regions only, so the
    zero-shot cities stay unseen); a path loads the raw checkpoint (no calibration unless one lies beside it).
    """
    if not name_or_path:
        return None
    try:
        resolve_checkpoint(name_or_path)
    except CheckpointError:
        return None
    return name_or_path


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.render_only:
        write_markdown(json.loads((Path(args.out) / "transfer.json").read_text()), Path(args.out) / "transfer.md", p)
        return 0
    if args.only and not set(args.only) <= set(args.targets):
        p.error(f"--only {args.only} must name cities of --targets {args.targets}")
    if not args.label.startswith("uomo"):
        p.error(f"--label must start with 'uomo', got {args.label!r}")
    for s in args.shots:
        if not 0 <= s < 1:
            p.error(f"--shots must lie in [0, 1), got {s}")

    pretrained = pretrained_checkpoint(args.pretrained)
    if args.zero_shot_only and pretrained is None:
        p.error(f"--zero-shot-only needs --pretrained naming an existing checkpoint or a shipped model "
                f"{list_pretrained()}, got {args.pretrained!r}")
    if args.eval_split != "test" and not args.zero_shot_only:
        p.error("--eval-split val scores the zero-shot targets only: add --zero-shot-only")
    overlap = set() if args.zero_shot_only else set(args.targets) & set(args.zero_shot_targets + args.synthetic)
    if overlap:
        p.error(f"{sorted(overlap)} cannot be both a held-out target and a source/synthetic target")
    sampling = dict(n_samples=args.samples, steps=args.sampling_steps)
    runs = Path(args.runs)
    records: list[dict] = []
    for target in [] if args.zero_shot_only else args.only or args.targets:
        t0 = time.perf_counter()
        city = load_city(target)
        sources = [load_city(c) for c in args.targets if c != target] + [load_city(s) for s in args.synthetic]
        reuse = runs / f"without_{target}" / "best.pt"
        if args.reuse_sources and reuse.is_file():
            print(f"[transfer] {target}: reusing the source model {reuse} (trained by an earlier run)", flush=True)
            source_ckpt = str(reuse)
        else:
            print(f"[transfer] {target}: training the source model on {[c.name for c in sources]}", flush=True)
            source_ckpt = train_source(target, sources, args.synthetic, args.init, args.source_steps,
                                       args.context, args.contrastive_weight, runs, args.seed, args.loss_weighting)
        for shots in args.shots:
            if shots == 0:
                uomo = load_forecaster(source_ckpt, device="cpu", **sampling)
                records += score_setting(city, sources, uomo, 0.0, args, "sources")
            else:
                few = few_shot_city(city, shots)
                print(f"[transfer] {target}: few-shot {shots:g} = first {few.n_steps} of {city.n_steps} steps", flush=True)
                ckpt = finetune_few_shot(source_ckpt, few, args.finetune_steps, args.context, args.contrastive_weight,
                                         args.freeze, runs, args.seed, shots, args.label, args.loss_weighting,
                                         args.select_on_prefix_val)
                uomo = load_forecaster(ckpt, device="cpu", **sampling)
                records += score_setting(city, [few], uomo, shots, args, "prefix", scalers=CityScalers.fit(few))
        print(f"[transfer] {target}: {time.perf_counter() - t0:.0f} s", flush=True)

    if pretrained is not None:
        uomo = load_forecaster(pretrained, device="cpu", **sampling)
        for name in args.zero_shot_targets:
            city = load_city(name)
            records += score_setting(city, [city], zero_shot_model(uomo, city, args), 0.0, args, "target",
                                     split=args.eval_split)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = command_line("transfer_bench.py", argv, env=("OMP_NUM_THREADS",))
    for r in records:
        r["command"] = command
    if args.merge:
        records = merge_records(read_records(out / "transfer.json"), records,
                                key=lambda r: (r["city"], r["task"], r["variant"], r["shots"], r["baselines_fit_on"],
                                               r.get("split", "test")))
    write_json(out / "transfer.json", records)
    header = write_markdown(records, out / "transfer.md", p)
    print(markdown(records, header[:1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
