"""Context ablation (paper Table 5): fine-tune a pre-trained UoMo with/without each context input and
with/without the contrastive term, then score every variant on the test regions.

    python bench/ablation_bench.py --pretrained runs/pre/best.pt --cities nanjing nanchang \
        --steps 1000 --stride 4

Variants: full (users + POI, backbone frozen, contrastive lambda), no_poi, no_users, no_contrastive,
full_unfrozen (full fine-tuning instead of partial freezing), pretrain_only (the checkpoint as is).
`--users-exog hist futr` runs the variants that read users twice: users as a hist covariate (known up to
the forecast origin, hidden with the traffic) and as a futr covariate (known for the horizon too, e.g. a
mobility forecast; labelled `<variant>@futr`); pretrain_only and no_users read no users and run once.
`full_future_users` is the old name of `full@futr`. `--merge` adds variants to an existing table.
Records go to bench/results/ablation.json with keys city, task, variant, shots, mae, rmse, jsd
(+ crps, windows, stride, steps) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


from common import RESULTS, command_line, commands_block, merge_records, read_records, write_json
from forecasting.data import load_city, make_windows
from forecasting.evaluate import evaluate_forecaster
from forecasting.forecast import load_forecaster
from forecasting.train import TrainConfig, train


VARIANTS = {
    "full": dict(context=["users", "poi"], freeze="backbone", contrastive=True),
    "no_poi": dict(context=["users"], freeze="backbone", contrastive=True),
    "no_users": dict(context=["poi"], freeze="backbone", contrastive=True),
    "no_contrastive": dict(context=["users", "poi"], freeze="backbone", contrastive=False),
    "full_unfrozen": dict(context=["users", "poi"], freeze="none", contrastive=True),
    # the old name of full@futr (users known for the horizon), kept so that its committed command still runs
    "full_future_users": dict(context=["users", "poi"], freeze="backbone", contrastive=True, users_exog="futr"),
}


def runs(variants: list[str], availabilities: list[str]) -> list[tuple[str, str, str]]:
    """(label, variant, users_exog) to run: each variant per users availability, once if it reads no users."""
    out = []
    for ue in availabilities:
        for v in variants:
            reads_users = v != "pretrain_only" and "users" in VARIANTS[v]["context"]
            if ue != availabilities[0] and not reads_users:
                continue  # identical to its first run
            fixed = VARIANTS.get(v, {}).get("users_exog")
            ue_run = fixed or (ue if reads_users else "hist")
            out.append((v if ue_run == "hist" or fixed else f"{v}@{ue_run}", v, ue_run))
    return list(dict.fromkeys(out))


def finetune(variant: str, pretrained: str, cities: list[str], steps: int, lam: float, out: Path, seed: int,
             users_exog: str = "hist", label: str | None = None, lr: float = 5e-4, lead_boost: float = 0.0,
             freeze: str | None = None, user_tokens: bool = False) -> str:
    """Fine-tune `pretrained` as `variant` says (context inputs, freezing, contrastive term); its best.pt.
    `freeze` overrides the variant's freezing (e.g. 'context': only the context path learns)."""
    spec = VARIANTS[variant]
    cfg = TrainConfig(
        preset=_preset_of(pretrained), cities=cities, steps=steps, batch_size=32, lr=lr, lead_boost=lead_boost,
        context=spec["context"], freeze=freeze or spec["freeze"], contrastive_weight=lam if spec["contrastive"] else 0.0,
        users_exog=users_exog, user_tokens=user_tokens and "users" in spec["context"], init_from=pretrained,
        val_every=steps, warmup=min(50, steps // 4), seed=seed,
        out=str(out / (label or variant)),
    )
    return train(cfg)["best"]


def _preset_of(checkpoint: str) -> str:
    from forecasting.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)[1]["train"]["preset"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", required=True)
    p.add_argument("--cities", nargs="+", default=["nanjing", "nanchang"])
    p.add_argument("--variants", nargs="+", default=["pretrain_only", *VARIANTS])
    p.add_argument("--users-exog", nargs="+", default=["hist"], choices=["hist", "futr"],
                   help="availability of the users covariate: hist (no peeking), futr (known for the horizon); "
                        "both: the two-way table")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--contrastive-weight", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate")
    p.add_argument("--freeze", choices=["backbone", "context", "none"], default=None,
                   help="freezing of every fine-tuned variant (default: each variant's own, backbone except "
                   "full_unfrozen; context = only the users/POI path learns)")
    p.add_argument("--lead-boost", type=float, default=0.0,
                   help="lead weighting of the fine-tuning loss (uomo-train --lead-boost); 0 = off")
    p.add_argument("--user-tokens", action="store_true",
                   help="variants that read users also get them in the token stream (uomo-train --user-tokens)")
    p.add_argument("--stride", type=int, default=4, help="window stride of the evaluation")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="regions the variants are scored on: test (the table), or val (to choose the recipe)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--sampling-steps", type=int, default=10)
    p.add_argument("--runs", default="runs/ablation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--merge", action="store_true",
                   help="keep the records of other variants already in OUT/ablation.json (same windows and sampler)")
    args = p.parse_args(argv)
    command = command_line("ablation_bench.py", argv, env=("OMP_NUM_THREADS",))

    cities = {name: load_city(name) for name in args.cities}
    records = []
    bad = [v for v in args.variants if v != "pretrain_only" and v not in VARIANTS]
    if bad:
        p.error(f"unknown variants {bad}: use pretrain_only or {list(VARIANTS)}")
    for label, variant, users_exog in runs(args.variants, args.users_exog):
        t0 = time.perf_counter()
        ckpt = args.pretrained if variant == "pretrain_only" else finetune(
            variant, args.pretrained, args.cities, args.steps, args.contrastive_weight, Path(args.runs), args.seed,
            users_exog, label, args.lr, args.lead_boost, args.freeze, args.user_tokens)
        model = load_forecaster(ckpt, device="cpu", n_samples=args.samples, steps=args.sampling_steps)
        # raw samples for every variant: a shipped checkpoint's calibration file would otherwise recalibrate
        # pretrain_only alone, and the table would measure the recalibration, not the context
        model.calibration = None
        for name, city in cities.items():
            windows = make_windows(city, split=args.split, stride=args.stride)
            for task in ("short", "long", "generation"):
                rec = evaluate_forecaster(model, windows, task, seed=args.seed)
                records.append({"city": name, "task": task, "variant": label, "users_exog": users_exog, "shots": 0,
                                "mae": rec["mae"], "rmse": rec["rmse"], "jsd": rec.get("jsd"), "crps": rec.get("crps"),
                                "windows": rec["windows"], "stride": args.stride, "split": args.split,
                                "finetune_steps": 0 if variant == "pretrain_only" else args.steps, "command": command})
                print(records[-1], flush=True)
        print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        records = merge_records(read_records(out / "ablation.json"), records, key=lambda r: r["variant"])
    write_json(out / "ablation.json", records)
    header = [
        f"# Context ablation ({args.split} regions)", "",
        f"Fine-tuning {args.steps} steps from `{args.pretrained}` (lr {args.lr:g}, lead boost {args.lead_boost:g}), "
        f"lambda = {args.contrastive_weight}; "
        f"{args.split} windows every {args.stride} steps; {args.samples} samples x DDIM-{args.sampling_steps}, median of the raw "
        "(uncalibrated) samples for every variant.", "",
        *commands_block(r["command"] for r in records if r.get("command")),
    ]
    (out / "ablation.md").write_text(render(records, header))
    return 0


def render(records: list[dict], header: list[str]) -> str:
    """Markdown: MAE per variant x (city, task), each with its change against `pretrain_only`, then JSD."""
    columns = sorted({(r["city"], r["task"]) for r in records}, key=lambda k: (k[0], ("short", "long", "generation").index(k[1])))
    variants = list(dict.fromkeys(r["variant"] for r in records))
    value = {(r["variant"], r["city"], r["task"]): r for r in records}
    lines = [*header, "", "MAE (normalised scale); in brackets the change against `pretrain_only` on the same windows.", "",
             "| variant | " + " | ".join(f"{c} {t}" for c, t in columns) + " |", "|---|" + "---|" * len(columns)]
    for v in variants:
        cells = []
        for c, t in columns:
            r, ref = value.get((v, c, t)), value.get(("pretrain_only", c, t))
            if r is None:
                cells.append("")
            elif ref is None or v == "pretrain_only":
                cells.append(f"{r['mae']:.3g}")
            else:
                cells.append(f"{r['mae']:.3g} ({100 * (r['mae'] / ref['mae'] - 1):+.1f}%)")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    gen = [(c, t) for c, t in columns if t == "generation"]
    if gen:
        lines += ["", "Generation JSD:", "", "| variant | " + " | ".join(c for c, _ in gen) + " |", "|---|" + "---|" * len(gen)]
        for v in variants:
            lines.append(f"| {v} | " + " | ".join(
                "" if value.get((v, c, t)) is None else f"{value[(v, c, t)]['jsd']:.4f}" for c, t in gen) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
