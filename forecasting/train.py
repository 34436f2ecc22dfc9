"""Pre-training and context fine-tuning of UoMo: one loop, one network, one diffusion code path.

    uomo-train --preset cpu --cities synthetic nanjing nanchang --steps 6000 --out runs/pretrain
    uomo-train --init runs/pretrain/best.pt --context users poi --freeze backbone \\
               --contrastive-weight 0.05 --steps 2000 --out runs/finetune

Pre-training (paper 3.2) mixes the four task masks across the training regions of several cities;
fine-tuning (paper 3.3) is the same loop with context inputs switched on, the backbone frozen and the
contrastive term of Eq. 11. Validation uses the real task metric (MAE of sampled forecasts on the val
regions), keeps the best checkpoint, and `--resume` continues a killed run exactly where it stopped
(batches and noise are derived from (seed, step, rank), so a resumed run equals an uninterrupted one).
Multi-GPU / multi-node: launch with `torchrun --nproc_per_node N -m forecasting.train ...` (DDP;
gloo on CPU, NCCL on CUDA). The progress bar is off when stderr is not a terminal (logs, pipes).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import (  # noqa: F401 (export_checkpoint: documented as forecasting.train.export_checkpoint)
    CheckpointError,
    deployed_weights,
    export_checkpoint,
    load_checkpoint,
    load_state_strict,
    resolve_checkpoint,
    save_checkpoint,
    scalers_to_dict,
    weights_digest,
)
from .augment import AUGMENTATIONS
from .data import City, DataError, load_cities
from .diffusion import make_schedule, training_loss
from .encoding import RESIDENTS, encode, lead_weight, roll_context
from .inference import default_device
from .model import PRESETS, UoMoConfig, UoMoNet, preset
from .train_config import RESUME_FIXED, TASK_MIX_DEFAULT, TrainConfig, check_resume, lr_at  # noqa: F401 (public here too)
from .train_pool import CityPool, build_pool, city_sampling_weights, draw_batch  # noqa: F401 (public here too)
from .validation import validate_model

# ----------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------


def loss_weight(cfg: TrainConfig, transform, batch: dict) -> torch.Tensor | None:
    """The per-entry loss weight of a batch: cell level and/or lead weighting (None when both are off)."""
    weight = transform.level_weight() if cfg.loss_weighting == "cell_level" else None
    if cfg.lead_boost > 0:
        known = torch.as_tensor(~batch["mask"] & batch["valid"])
        lead = lead_weight(known, cfg.lead_boost).to(transform.relative.device)
        weight = lead if weight is None else weight * lead
    return weight


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(cfg: TrainConfig, resume: bool = False, cities: Sequence[City] | None = None, progress: bool = True) -> dict:
    """Run (or resume) training; returns a summary with the best validation score and paths.

    Under torchrun (WORLD_SIZE > 1) the process group is created here unless the caller already made one,
    and whatever is created here is destroyed here, after the DDP wrapper is gone: the wrapper's reducer
    holds the group, and gloo threads still alive at interpreter exit abort the process.
    """
    cfg.validate()
    rank, world = _dist_info()
    device = default_device()
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    finished = False
    try:
        summary = _train_loop(cfg, resume, cities, progress, rank, world, device)
        finished = True
        return summary
    finally:
        if owns_group:
            gc.collect()  # the DDP wrapper (and its reducer) died with _train_loop's frame; collect any cycle
            if finished:
                dist.barrier()  # no rank tears down while another still talks to it
            dist.destroy_process_group()


def _training_pools(cfg: TrainConfig, cities: Sequence[City] | None) -> list[CityPool]:
    """The cities' training pools weighted by `cfg.city_weights` (a family name such as 'synthetic-prior:64'
    stands for several cities); cities without a training window are dropped."""
    if cities is not None:
        city_objs = list(cities)
    else:
        city_objs = [c for name in cfg.cities for c in load_cities(name, cfg.data_dir)]
    weights = city_sampling_weights(city_objs, cfg.city_weights or {})
    pools = [build_pool(c, fraction=cfg.train_fraction, weight=w) for c, w in zip(city_objs, weights)]
    if not any(len(p.pairs) for p in pools):
        raise DataError("no training windows: every city needs 'train' regions of at least 64 steps")
    return [p for p in pools if len(p.pairs)]


def poi_vocabulary(cfg: TrainConfig, cities: Sequence[City]) -> tuple[str, ...]:
    """The static categories a `--poi-names` network learns by name: the sorted union of the training cities'
    POI category names, and 'residents' when the run reads residents (`--context residents`) and a city has them."""
    if not cfg.poi_names:
        return ()
    names = {n for c in cities if c.poi is not None and c.poi_categories is not None for n in c.poi_categories}
    if "residents" in cfg.context and any(c.residents is not None for c in cities):
        names.add(RESIDENTS)
    if not names:
        raise DataError("--poi-names: no training city names its POI categories (City.poi_categories) or has residents")
    return tuple(sorted(names))


def _network(cfg: TrainConfig, device: torch.device, poi_names: tuple[str, ...] = ()) -> tuple[UoMoNet, UoMoConfig]:
    """The network to train and its config: the preset's (with the carry channel / carry skip when asked)
    or, when fine-tuning, the checkpoint's own network and weights (--preset, --carry-channel and
    --carry-skip do not apply then; --user-tokens adds a zero-initialised user token path; `poi_names`, when
    the checkpoint knows none, add zero-initialised category names to its POI encoder; a network trained
    with the day before (`--history`) keeps reading it: `cfg.history` is set); the backbone frozen when
    `cfg.freeze == 'backbone'`, everything but the context path when it is 'context'."""
    model_cfg = preset(cfg.preset)
    if cfg.carry_channel or cfg.carry_skip:
        model_cfg = dataclasses.replace(model_cfg, carry=True, carry_skip=cfg.carry_skip)
    init_state = None
    if cfg.init_from:
        init_state, init_config = load_checkpoint(resolve_checkpoint(cfg.init_from))
        model_cfg = UoMoConfig.from_dict(init_config["model"])
        cfg.history = cfg.history or bool(init_config.get("context", {}).get("history", False))
    added = cfg.user_tokens and not model_cfg.user_tokens  # a new, zero-initialised user token path
    if cfg.user_tokens:
        model_cfg = dataclasses.replace(model_cfg, user_tokens=True)
    if poi_names and model_cfg.poi_names and model_cfg.poi_names != poi_names:
        raise CheckpointError(f"{cfg.init_from} knows the POI categories {list(model_cfg.poi_names)}; this run's "
                              f"cities name {list(poi_names)}: fine-tune on cities with the same names")
    named = bool(poi_names) and not model_cfg.poi_names  # new, zero-initialised category names
    if poi_names:
        model_cfg = dataclasses.replace(model_cfg, poi_names=poi_names)
    net = UoMoNet(model_cfg).to(device)
    if init_state is not None:
        weights = dict(deployed_weights(init_state, cfg.init_from))
        # new paths start as the network's own zero-initialised ones: the pre-trained network is unchanged
        # until fine-tuning teaches them
        new = (("user_token_embed.",) if added else ()) + (("poi_encoder.name_",) if named else ())
        weights.update({k: v for k, v in net.state_dict().items() if k.startswith(new)})  # () matches nothing
        load_state_strict(net, weights, cfg.init_from)
    if cfg.freeze == "backbone":
        for p in net.backbone_parameters():
            p.requires_grad_(False)
    elif cfg.freeze == "context":  # everything but the context path
        context = {id(p) for p in net.context_parameters()}
        for p in net.parameters():
            p.requires_grad_(id(p) in context)
    return net, model_cfg


def _resume(cfg: TrainConfig, config: dict, last_path: Path, net: UoMoNet, ema: UoMoNet,
            optimizer: torch.optim.Optimizer) -> tuple[int, float, list[dict]]:
    """Restore `last.pt` into the network, its EMA and the optimiser; returns (step, best score, history).

    The learning-rate horizon stays the one the run started with (`cfg` and `config['train']` updated)."""
    state, old = load_checkpoint(last_path)
    if old["model"] != config["model"]:
        raise CheckpointError(f"{last_path} was trained with another network ({old['model']}); start a new --out")
    old_train = old.get("train", {})
    check_resume(cfg, old_train, str(last_path))
    cfg.lr_horizon = old_train.get("lr_horizon") or old_train.get("steps") or cfg.steps
    config["train"] = asdict(cfg)
    load_state_strict(net, state["model"], str(last_path))
    load_state_strict(ema, state["ema"], str(last_path))
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state["best"]), json.loads(state.get("history_json", "[]"))


def _optimisation_step(step: int, rank: int, cfg: TrainConfig, pools: list[CityPool], model, net: UoMoNet,
                       ema: UoMoNet, optimizer: torch.optim.Optimizer, trainable: list, schedule,
                       device: torch.device) -> dict:
    """One step, seeded by (seed, step, rank): draw a batch with task masks, encode it, the diffusion loss
    (+ lambda * contrastive term when fine-tuning with context), AdamW on the clipped gradients (norm 1),
    then the EMA update  ema <- ema + (1 - d)(net - ema),  d = min(ema_decay, (1 + step) / (10 + step)).
    Returns the loss statistics."""
    switches = cfg.context_switches
    rng = np.random.default_rng([cfg.seed, step, rank])
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**62)))
    batch = draw_batch(pools, cfg.batch_size, cfg.task_mix, rng, cfg.augment,
                       history_drop=cfg.history_drop if cfg.history else None,
                       context=switches, poi_names=net.config.poi_names, static_drop=cfg.static_drop)
    x0, cond, transform = encode(
        batch["traffic"], batch["mask"], batch["time_of_day"], batch["day_of_week"],
        users=batch["users"], poi=batch["poi"], poi_valid=batch["poi_valid"], poi_ids=batch.get("poi_ids"),
        users_available=batch["users_available"], valid=batch["valid"], slots_per_day=batch["slots_per_day"],
        context=switches, device=device, day_before=batch.get("day_before"),
    )
    negative = roll_context(cond) if cfg.contrastive_weight > 0 and (switches.users or switches.poi) else None
    net.train()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        loss, stats = training_loss(
            model, schedule, x0.to(device), cond, generator=gen if device.type == "cpu" else None,
            negative_cond=negative, contrastive_weight=cfg.contrastive_weight,
            weight=loss_weight(cfg, transform, batch),
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    with torch.no_grad():
        # EMA with warm-up: early averages must not stay anchored to the random initialisation
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        for pe, pn in zip(ema.parameters(), net.parameters()):
            pe.lerp_(pn, 1 - decay)
    return stats


def _run_config(cfg: TrainConfig, model_cfg: UoMoConfig, pools: list[CityPool]) -> dict:
    """What every checkpoint of the run stores beside its weights: the network, the diffusion process, the
    context switches, each city's scalers and the training config."""
    return {
        "model": model_cfg.to_dict(),
        "diffusion": {"schedule": cfg.schedule, "steps": cfg.diffusion_steps, "prediction": "x0"},
        "context": asdict(cfg.context_switches),
        "scalers": {p.city.name: scalers_to_dict(p.scalers) for p in pools},
        "train": asdict(cfg),
    }


def _validate(ema: UoMoNet, schedule, pools: list[CityPool], cfg: TrainConfig, device: torch.device, step: int,
              best: float, config: dict, best_path: Path, history: list[dict], entry: dict) -> tuple[float, str]:
    """Score the EMA network on the val regions (appended to `history` with `entry`); write best.pt when the
    score improves on `best` (always when there are no val regions: nothing to select on, the latest
    weights are the best). Returns (best score, progress line)."""
    val = validate_model(ema, schedule, pools, cfg, device)
    history.append({"step": step, **entry, **val})
    improved = val["score"] is None or val["score"] < best
    if improved:
        best = best if val["score"] is None else val["score"]
        save_checkpoint(best_path, {"ema": ema.state_dict(), "step": step}, {**config, "validation": val})
    score = "none (no val regions)" if val["score"] is None else f"{val['score']:.5f}"
    return best, f"step {step}: val score {score}{' (best)' if improved else ''} | {entry['windows_per_s']:.1f} windows/s"


def _progress(cfg: TrainConfig, pools: list[CityPool], step: int, rank: int, progress: bool):
    """The main process warns when no city has val regions to select the best checkpoint on, and returns its
    progress bar (None elsewhere or when `progress` is off; the bar is off when stderr is not a terminal)."""
    if rank != 0:
        return None
    if not any(p.city.regions("val").size for p in pools):
        warnings.warn("no city has val regions: nothing to select the best checkpoint on; best.pt holds the "
                      "latest weights and best_score is null", UserWarning, stacklevel=4)
    if not progress:
        return None
    from .cli_common import progress_bar

    return progress_bar(cfg.steps, "uomo-train", initial=step)


def _train_loop(cfg: TrainConfig, resume: bool, cities: Sequence[City] | None, progress: bool,
                rank: int, world: int, device: torch.device) -> dict:
    """The training loop of `train` (process group already set up by the caller)."""
    cfg = dataclasses.replace(cfg)  # lr_horizon is settled below: leave the caller's config as it was
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    pools = _training_pools(cfg, cities)
    schedule = make_schedule(cfg.schedule, cfg.diffusion_steps)
    net, model_cfg = _network(cfg, device, poi_vocabulary(cfg, [p.city for p in pools]))
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    if cfg.lr_horizon is None:
        cfg.lr_horizon = cfg.steps  # fixed now: a later --resume with more --steps keeps this schedule
    config = _run_config(cfg, model_cfg, pools)
    step, best, history = 0, float("inf"), []
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and last_path.exists():
        step, best, history = _resume(cfg, config, last_path, net, ema, optimizer)

    model = net
    if world > 1:
        # context encoders are idle in pre-training (and frozen weights in fine-tuning): let DDP skip them
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    bar = _progress(cfg, pools, step, rank, progress)

    def save_last() -> None:
        """last.pt: everything a resume needs, written atomically (a temporary file renamed into place)."""
        save_checkpoint(last_path, {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                                    "step": step, "best": best, "history_json": json.dumps(history)}, config)

    t_start, windows_seen = time.perf_counter(), 0
    while step < cfg.steps:
        stats = _optimisation_step(step, rank, cfg, pools, model, net, ema, optimizer, trainable, schedule, device)
        step += 1
        windows_seen += cfg.batch_size
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{stats['mse']:.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            if rank == 0:
                rate = windows_seen / (time.perf_counter() - t_start)
                best, line = _validate(ema, schedule, pools, cfg, device, step, best, config, best_path,
                                       history, {"loss": stats["mse"], "windows_per_s": rate})
                save_last()
                if bar is not None:
                    bar.write(line)
            if world > 1:
                dist.barrier()
        elif step % cfg.save_every == 0 and rank == 0:
            save_last()
    if bar is not None:
        bar.close()
    if rank == 0:
        (out / "history.json").write_text(json.dumps(history, indent=1))
    return {"best_score": best if math.isfinite(best) else None, "best": str(best_path), "last": str(last_path),
            "steps": step, "history": history, "weights_digest": weights_digest(net)}


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `uomo-train` parser: every option documented, defaults from `TrainConfig`, presets from `PRESETS`."""
    from .cli_common import DeprecatedAlias, make_parser

    d = TrainConfig()
    p = make_parser("uomo-train", description=__doc__)
    p.add_argument("--preset", default=d.preset, choices=list(PRESETS),
                   help="model size preset (forecasting.model.PRESETS)")
    p.add_argument("--cities", nargs="+", default=d.cities,
                   help="synthetic presets, real city names in --data-dir, .npz paths, or N cities of the synthetic "
                        "prior: synthetic-prior:N (synthetic-prior@SEED:N for another family; "
                        "forecasting.data.synthetic_prior)")
    p.add_argument("--data-dir", default=None, help="folder of real-city .npz files (default: $UOMO_DATA_DIR or ../shared/data)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps in total")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per optimisation step (per process)")
    p.add_argument("--lr", type=float, default=d.lr,
                   help=f"peak learning rate (AdamW; linear warm-up over {d.warmup} steps, then cosine decay to 10%%)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="decay of the weights' exponential moving average (the EMA weights are validated and saved)")
    p.add_argument("--diffusion-steps", type=int, default=d.diffusion_steps, help="steps of the diffusion noise schedule")
    p.add_argument("--context", nargs="*", default=d.context, choices=["users", "poi", "residents"],
                   help="context inputs to use: users poi residents (residents: a city's residents layer read as "
                        "one more POI category; needs poi) (default: none)")
    p.add_argument("--users-exog", default=d.users_exog, choices=["hist", "futr"],
                   help="availability of the users covariate: hist = known up to the forecast origin (hidden with "
                        "the traffic, no peeking); futr = known for the horizon too (e.g. a mobility forecast)")
    p.add_argument("--future-users", dest="users_exog", action=DeprecatedAlias, nargs=0, const="futr",
                   help="deprecated alias of --users-exog futr")
    p.add_argument("--freeze", default=d.freeze, choices=["none", "backbone", "context"],
                   help="partial freezing for fine-tuning: backbone = the blocks' attention and MLP weights (paper "
                   "3.3); context = everything but the context path (users/POI embeddings)")
    p.add_argument("--contrastive-weight", type=float, default=d.contrastive_weight, help="lambda of Eq. 11")
    p.add_argument("--carry-channel", action="store_true",
                   help="give the network each cell's last observed value before every step as an input channel "
                        "(persistence); recorded in the checkpoint's model config")
    p.add_argument("--carry-skip", action="store_true",
                   help="with the carry channel, predict the change from each cell's last observed value (the "
                        "output adds it back: a new network starts as the last-value forecast); recorded in the "
                        "checkpoint's model config")
    p.add_argument("--user-tokens", action="store_true",
                   help="users also enter the token stream, not only the adaLN condition (a zero-initialised "
                        "embedding, added to a checkpoint that lacks it when fine-tuning with --context users); "
                        "recorded in the checkpoint's model config")
    p.add_argument("--poi-names", action="store_true",
                   help="the POI encoder also learns which category is which by name (the training cities' named "
                        "categories, e.g. the synthetic cities' schema, and residents): zero-initialised, added to a "
                        "checkpoint that lacks them; unnamed categories (the real cities') are read as before; "
                        "recorded in the checkpoint's model config (needs --context poi)")
    p.add_argument("--static-drop", type=float, default=d.static_drop,
                   help="share of training windows shown without their static layers (POI, residents), so that a "
                        "--poi-names network also forecasts cities whose categories it does not know by name (it is "
                        "shown none of them there) (default: 0)")
    p.add_argument("--loss-weighting", default=d.loss_weighting, choices=["none", "cell_level"],
                   help="cell_level: weight each cell's denoising error by its observed level in the window")
    p.add_argument("--augment", default=d.augment, choices=list(AUGMENTATIONS),
                   help="dihedral: map each training window by a random symmetry of its grid (flips, quarter turns)")
    p.add_argument("--lead-boost", type=float, default=d.lead_boost,
                   help="extra loss weight of the first hidden step after an observation, decaying over the next "
                        "steps (1 + B exp(-(lead - 1) / 2)); 0 = off")
    p.add_argument("--history", action="store_true",
                   help="the one-day lag channel is also filled from the record before each window (the day before "
                        "the window's first steps), so the network sees yesterday at the same time at any granularity; "
                        "recorded in the checkpoint's context switches")
    p.add_argument("--history-drop", type=float, default=d.history_drop,
                   help="with --history: share of training windows drawn without their day before")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--init", dest="init_from", default=None, help="start from this checkpoint (path or shipped name) for fine-tuning; its network is kept (--preset, --carry-channel and --carry-skip then do not apply) (default: none, a new network)")
    p.add_argument("--train-fraction", type=float, default=d.train_fraction, help="few-shot: use only the first share of each city's training windows (a time prefix)")
    p.add_argument("--city-weight", dest="city_weights", action="append", default=[], metavar="NAME=W",
                   help="relative sampling weight of a city (repeatable), e.g. synthetic=0.3 (default: 1 for every city); "
                        "a family's name weights all its cities as one, e.g. synthetic-prior=0.5")
    p.add_argument("--task-mix", nargs="+", default=None, metavar="TASK=W",
                   help="relative weights of the task masks in each batch, e.g. short=0.5 long=0.3 generation=0.1 "
                        f"random=0.1 (default: {' '.join(f'{k}={v}' for k, v in TASK_MIX_DEFAULT.items())})")
    p.add_argument("--val-every", type=int, default=d.val_every,
                   help="validate (sampled forecasts on the val regions) every this many steps; keeps best.pt")
    p.add_argument("--save-every", type=int, default=d.save_every,
                   help="also write OUT/last.pt every this many steps (atomically), for --resume")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the initialisation, the batches and the noise")
    p.add_argument("--out", default=d.out, help="run folder (checkpoints last.pt / best.pt, history.json)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pt; the run's --lr, --batch-size, --seed (and other trajectory "
                        "settings) must be those of its first launch; --steps may grow, the extra steps then run "
                        "at the cosine schedule's 10%% floor (its horizon is fixed at first launch)")
    return p


def parse_weights(items: Sequence[str], flag: str, example: str) -> dict[str, float]:
    """["a=1", "b=0.5"] -> {"a": 1.0, "b": 0.5}; ValueError naming `flag` on any other form."""
    try:
        return {k: float(v) for k, v in (item.split("=", 1) for item in items)}
    except ValueError:
        raise ValueError(f"{flag} takes NAME=NUMBER items, e.g. {example}; got {list(items)}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if k != "resume"}
    try:
        fields["city_weights"] = parse_weights(args.city_weights, "--city-weight", "synthetic=0.3")
        if args.task_mix is None:
            fields.pop("task_mix")
        else:
            fields["task_mix"] = parse_weights(args.task_mix, "--task-mix", "short=0.5 long=0.5")
        cfg = TrainConfig(**fields)
        cfg.validate()
    except ValueError as exc:
        print(f"uomo-train: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = train(cfg, resume=args.resume)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"uomo-train: error: {exc}", file=sys.stderr)
        return 2
    if _dist_info()[0] == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
