"""Calibration levers measured on the *val* regions only: each variant's leave-one-region-out coverage error.

    python bench/calibration_levers.py --checkpoint uomo-public-cpu --cities nanchang nanjing synthetic \
        --fit-draws 1 2 3 4 --residuals runs/public-val-residuals.npz

The forecaster's raw val residuals are computed once (as `calibration_bench.py` fits them: DDIM steps x
samples, val windows every `--fit-stride` steps, a synthetic preset joined by its `--fit-draws`) and every
variant of the fit is made from them (`forecasting.calibration.calibration_from_residuals`):

- `pool_weights`: tables pooled over the cities weigh every val entry once ("entries", the default) or
  every city as one ("cities"), in the dead zone's Brier score too;
- `level_maps`: a city with 3+ val regions may reshape its bands with a level map, kept where the map
  fitted on its other regions lowers a held-out region's coverage error;
- `outer_widths`: a city with 3+ val regions may scale the steps beyond its central 50% band by an outer
  width, kept where the pair chosen on its other regions beats the single width on each held-out region;
- the dead zone per city: each city's own dead zone (the Brier choice over its own entries) instead of the
  one chosen over every city's entries, scored on the held-out regions (`city_dead_zones`).

Per city x task the error is the mean over the held-out val regions of |PIT coverage - nominal| over the
central 50/80/90% bands at the variant's own choices (lower is better; a city with one val region has
none). `--residuals FILE.npz` keeps the residuals (written on the first run, read on later ones), so a
new variant costs a fit, not a sampling run. Writes bench/results/calibration_levers.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np

from common import RESULTS, add_val_sampling_args, command_line, refuse_fit_draws, table, write_json, write_text
from forecasting.calibration import POOL_WEIGHTS, Residuals, calibration_from_residuals, fitted_residuals
from forecasting.data import load_city

FIELDS = [f.name for f in dataclasses.fields(Residuals)]
REQUIRED = [f.name for f in dataclasses.fields(Residuals) if f.default is dataclasses.MISSING]


def save_residuals(path: Path, fitted: dict, geographies: dict, meta: dict) -> None:
    """The residuals as plain arrays (keys 'city|task|field'), with the geographies and the fit's settings."""
    arrays = {f"{c}|{t}|{f}": getattr(r, f) for (c, t), r in fitted.items() for f in FIELDS}
    arrays.update({f"geography|{c}": np.array(g) for c, g in geographies.items()},
                  settings=np.array(repr(sorted(meta.items()))))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)  # a kill leaves no half-written cache


def load_residuals(path: Path, meta: dict) -> tuple[dict, dict]:
    """(fitted, geographies) saved by `save_residuals` with the same settings; SystemExit otherwise."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["settings"]) != repr(sorted(meta.items())):
            raise SystemExit(f"{path} holds residuals of other settings ({z['settings']}); "
                             "remove it or pass another --residuals")
        keys = {tuple(k.split("|")[:2]) for k in z.files if k.count("|") == 2}
        missing = sorted({f for c, t in keys for f in REQUIRED if f"{c}|{t}|{f}" not in z.files})
        if missing:
            raise SystemExit(f"{path} holds residuals without {', '.join(missing)} (cached by an older version); "
                             "remove it or pass another --residuals")
        # fields with a default (the cells' scales, kept since 2026-12-05) may be absent from older caches
        fitted = {(c, t): Residuals(**{f: z[f"{c}|{t}|{f}"] for f in FIELDS if f"{c}|{t}|{f}" in z.files})
                  for c, t in sorted(keys)}
        geographies = {k.split("|", 1)[1]: str(z[k]) for k in z.files if k.startswith("geography|")}
    return fitted, geographies


def add_residual_args(ap: argparse.ArgumentParser) -> None:
    """The options of the val residuals every fit variant is made from (`val_residuals`)."""
    add_val_sampling_args(ap)
    ap.add_argument("--fit-stride", type=int, default=8, help="val windows every N steps")
    ap.add_argument("--fit-draws", nargs="*", type=int, default=[], metavar="SEED",
                    help="seeds of other draws of the synthetic presets among --cities joined to their val regions")
    ap.add_argument("--residuals", type=Path, default=None,
                    help="cache of the val residuals (.npz): read if it exists with the same settings, else written")


def val_residuals(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """(fitted, geographies, settings): the forecaster's raw val residuals per (city, task) as
    `calibration_bench.py` fits them, read from the `--residuals` cache when it holds the same settings,
    else sampled (and cached when `--residuals` is given)."""
    settings = {"checkpoint": args.checkpoint, "cities": sorted(args.cities), "tasks": sorted(args.tasks),
                "sampler": f"ddim-{args.steps} x {args.samples}", "stride": args.fit_stride,
                "draws": sorted(args.fit_draws)}
    if args.residuals is not None and args.residuals.is_file():
        fitted, geographies = load_residuals(args.residuals, settings)
        return fitted, geographies, settings
    from forecasting.forecast import load_forecaster

    model = load_forecaster(args.checkpoint, steps=args.steps, n_samples=args.samples)
    cities = [load_city(c) for c in args.cities]
    fitted = fitted_residuals(model, cities, args.tasks, "val", args.fit_stride, 0, args.fit_draws)
    geographies = {c.name: c.geography for c in cities}
    if args.residuals is not None:
        save_residuals(args.residuals, fitted, geographies, settings)
    return fitted, geographies, settings


def anchored_residuals(fitted: dict, cal) -> dict:
    """{(city, task): residuals around the centre of `cal`'s table for them} (`Residuals.anchored`)."""
    return {key: r.anchored(cal.tables[key].anchor, cal.tables[key].seasonal) for key, r in fitted.items()}


def choice_folds(around: dict, cal, key: tuple[str, str], geographies: dict, pool_weights: str = "entries"):
    """(record, folds): `cal`'s held-out choice record of `key` and the leave-one-region-out folds
    (`held_out_tables`) at its spread, around the centres `around` (`anchored_residuals`); (None, []) for a
    table without a held-out choice (fewer than 2 val regions)."""
    from forecasting.calibration import held_out_tables
    from forecasting.calibration.heldout import other_cities

    rec = cal.meta["pooling"].get(f"{key[0]}/{key[1]}")
    if rec is None:
        return None, []
    tab, flat = cal.tables[key], rec.get("spread") == "flat"
    others, same = other_cities(around, key, geographies)
    return rec, list(held_out_tables(around[key], others, key[1], tab.anchor, None if flat else tab.floor, same,
                                     flat, pool_weights))


def region_coverages(fitted: dict, cal, geographies: dict, pool_weights: str = "entries") -> dict[str, list]:
    """{city/task: [[PIT coverage of the central 50, 80, 90% band] per held-out val region]} under `cal`'s
    own choices (spread, own or pooled table, width; the level map if kept): how far single regions stray
    from nominal, i.e. the noise a test set of a few regions carries."""
    from forecasting.calibration import pit_coverage
    from forecasting.calibration.heldout import fold_pits, through_map

    around = anchored_residuals(fitted, cal)
    out = {}
    for key in fitted:
        rec, folds = choice_folds(around, cal, key, geographies, pool_weights)
        if rec is None:
            continue
        tab = cal.tables[key]
        pits = fold_pits(folds, int(rec["chosen"] == "pooled"), rec["width"], cal.zero_share)
        if tab.level_map is not None:
            pits = [through_map(u, tab.level_map) for u in pits]
        out[f"{key[0]}/{key[1]}"] = [[round(pit_coverage(u, c), 3) for c in (0.5, 0.8, 0.9)] for u in pits]
    return out


def city_dead_zones(fitted: dict, cal, geographies: dict) -> dict:
    """The dead zone chosen per city rather than over every city's entries, held out on val.

    Each city's own dead zone is the Brier choice over its own val entries (`dead_zones`), the shipped one
    `cal.zero_share` the choice over every city's. Under each, a city's table is fitted as the fit does (its
    entries around its centre, thin rows from the pooled table) and the val choices of spread, own or
    pooled table and width are made again (`held_out_choice`), so that the held-out coverage error of each
    rule is at its own choices (the pooled rule's equals the shipped fit's). The Brier score of P(y = 0) is
    held out too: each region under the dead zone chosen without it, over every other entry (`pooled`) or
    the city's other regions (`city`), both under `cal`'s tables.
    Returns {"chosen": {city: its own dead zone}, "tasks": {city/task: {rule: {"error", "width", "chosen"}}},
    "brier": {city: {rule: held-out Brier score per entry, per cell group}}}."""
    from forecasting.calibration import GROUPS, POOLED, ZERO_SHARES, ResidualTable, dead_zones
    from forecasting.calibration.fit import held_out_choice
    from forecasting.calibration.heldout import other_cities, zero_brier

    around = anchored_residuals(fitted, cal)
    brier = {(key, int(g)): zero_brier(r.take(r.region == g), cal.tables[key], ZERO_SHARES)
             for key, r in around.items() for g in np.unique(r.region)}
    cities = sorted({c for c, _ in fitted})
    own_zone = {c: dead_zones(sum(b for (k, _), b in brier.items() if k[0] == c)) for c in cities}
    out = {"chosen": {c: z.tolist() for c, z in own_zone.items()}, "tasks": {}, "brier": {}}
    for key, r in around.items():
        if f"{key[0]}/{key[1]}" not in cal.meta["pooling"]:
            continue  # fewer than 2 val regions: no held-out choice
        tab = cal.tables[key]
        own = ResidualTable.fit(r.numer, r.spread, r.bucket, r.group, key[1], shared=cal.tables[(POOLED, key[1])],
                                is_zero=r.is_zero, anchor=tab.anchor, seasonal=tab.seasonal)
        others, same = other_cities(around, key, geographies)
        out["tasks"][f"{key[0]}/{key[1]}"] = {
            rule: {k: rec[k] for k in ("error", "width", "chosen")}
            for rule, zone in (("pooled", cal.zero_share), ("city", own_zone[key[0]]))
            for rec in [held_out_choice(r, others, key[1], own, zone, same)[1]]}
    for city in cities:
        regions = sorted({g for (k, g) in brier if k[0] == city and g >= 0})
        if len(regions) < 2:
            continue
        score = {rule: np.zeros(len(GROUPS)) for rule in ("pooled", "city")}
        count = np.zeros(len(GROUPS))
        for g in regions:
            rows = sum(b for (k, r), b in brier.items() if k[0] == city and r == g)
            count += sum(np.bincount(a.group[a.region == g], minlength=len(GROUPS))
                         for k, a in around.items() if k[0] == city)
            zones = {"pooled": dead_zones(sum(b for (k, r), b in brier.items() if not (k[0] == city and r == g))),
                     "city": dead_zones(sum(b for (k, r), b in brier.items() if k[0] == city and r != g))}
            for rule, zone in zones.items():
                score[rule] += [rows[i, ZERO_SHARES.index(z)] for i, z in enumerate(zone)]
        out["brier"][city] = {rule: np.round(v / np.maximum(count, 1), 5).tolist() for rule, v in score.items()}
    return out


def variant_errors(pooling: dict) -> dict[str, float]:
    """{city/task: held-out coverage error at the variant's choices} (the mapped error where a map was kept, the
    error at the width pair where an outer width was)."""
    return {k: v["error_mapped"] if v.get("level_map") else v["error_outer"] if v.get("outer_width") else v["error"]
            for k, v in pooling.items()}


def variant_name(variant: dict) -> str:
    """A variant's column name: its pool weights, '+ map' with level maps, '+ outer' with outer widths."""
    return (variant["pool_weights"] + (" + map" if variant["level_maps"] else "")
            + (" + outer" if variant.get("outer_widths") else ""))


def outer_lines(variants: list[dict], keys: list[str]) -> list[str]:
    """The markdown section of the outer widths' own held-out test (none without such a variant)."""
    outer = [v for v in variants if v.get("outer_widths")]
    if not outer:
        return []
    pooling = outer[0]["pooling"]
    rows = [[k, f"{pooling[k]['nested_one']:.4f}", f"{pooling[k]['nested_two']:.4f}",
             f"{pooling[k]['width']:g} / {pooling[k]['outer_width']:g}" if pooling[k].get("outer_width") else "-"]
            for k in keys if "nested_one" in pooling.get(k, {})]
    return ["The outer width's own held-out test (`entries + outer`): each region scored at the single width",
            "and at the (central, outer) width pair chosen on the other regions (`nested_errors`); the pair is",
            "kept where it wins.", "",
            *table(["city / task", "one width", "width pair", "kept (central / outer)"], rows), ""]


def dead_zone_lines(zones: dict) -> list[str]:
    """The markdown section of `city_dead_zones`."""
    return [
        "## The dead zone per city", "",
        "Dead zone (share of the cell scale below which a sample is 0) chosen by the val Brier score of",
        "P(y = 0) over every city's entries (`pooled`, the shipped rule) or over each city's own (`city`);",
        "under each, the spread, own or pooled table and width chosen again on the held-out val regions, and",
        "the held-out coverage error at those choices (the pooled rule's is the shipped fit's). The Brier",
        "score is held out too: each region under the dead zone chosen without it.",
        "Chosen on all val regions, active / idle / unobserved cells: " + "; ".join(
            f"{c} {' / '.join(f'{x:g}' for x in z)}" for c, z in zones["chosen"].items()) + ".", "",
        *table(["city / task", "pooled rule: error (table, width)", "per city: error (table, width)"],
               [[k, *(f"{v[r]['error']:.4f} ({v[r]['chosen']}, {v[r]['width']:g})" for r in ("pooled", "city"))]
                for k, v in sorted(zones["tasks"].items())]), "",
        *table(["city", "Brier per entry, pooled rule (active / idle / unobserved)", "per city"],
               [[c, " / ".join(f"{x:.5f}" for x in v["pooled"]), " / ".join(f"{x:.5f}" for x in v["city"])]
                for c, v in sorted(zones["brier"].items())]), ""]


def markdown(variants: list[dict], command: str, wall: float, zones: dict | None = None) -> str:
    keys = sorted({k for v in variants for k in v["errors"]})
    names = [variant_name(v) for v in variants]
    rows = [[k, *(f"{v['errors'][k]:.4f}" for v in variants)] for k in keys]
    rows.append(["mean", *(f"{np.mean(list(v['errors'].values())):.4f}" for v in variants)])
    rows.append(["dead zone (active / idle / unobserved)", *(" / ".join(f"{x:g}" for x in v["zero_share"])
                                                            for v in variants)])
    maps = [", ".join(k for k, c in v["pooling"].items() if c.get("level_map")) or "none" for v in variants]
    mapped = [v for v in variants if v["level_maps"]]
    map_rows = [[k, *(f"{v['pooling'][k]['error']:.4f} / {v['pooling'][k]['error_mapped']:.4f}"
                      if "error_mapped" in v["pooling"].get(k, {}) else "-" for v in mapped)] for k in keys]
    return "\n".join([
        "# Calibration levers on the val regions (leave one region out)", "",
        f"Command: `{command}` (wall time {wall:.0f} s, 2 CPU cores).", "",
        "Held-out coverage error per city / task (mean over the held-out val regions of |PIT coverage - nominal|",
        "over the central 50/80/90% bands, at each variant's own choices of spread, own or pooled tables, width",
        "and level map; lower is better). Variants: how pooled tables weigh the cities (`entries`: every val",
        "entry once, the shipped fit; `cities`: every city as one) and whether level maps may be chosen (`+ map`).",
        "Cities with one val region (Nanjing) have no held-out score.", "",
        *table(["city / task", *names], rows), "",
        "Level maps kept: " + "; ".join(f"{n}: {m}" for n, m in zip(names, maps)) + ".", "",
        "The level map's own held-out test (each region under the map fitted on the other regions' PIT values):",
        "error without / with the map, at the variant's choices.", "",
        *table(["city / task", *(f"{v['pool_weights']} + map" for v in mapped)], map_rows), "",
        *outer_lines(variants, keys),
        "Held-out PIT coverage of single val regions (50 / 80 / 90%) at the shipped choices (`entries`): the",
        "spread between regions is what a test set of a few regions carries on top of any miscalibration.", "",
        *table(["city / task", "regions", "per held-out region"],
               [[k, len(c), "; ".join(" / ".join(f"{x:.0%}" for x in r) for r in c)]
                for k, c in sorted(variants[0].get("regions", {}).items())]), "",
        *(dead_zone_lines(zones) if zones else [])])


def residual_run(argv, description: str) -> tuple[argparse.Namespace, dict, dict, dict, float]:
    """A val-residual script's start: its options (`add_residual_args`, `--out`) parsed from `argv`, the draws
    checked, the residuals read or sampled (`val_residuals`); returns (args, fitted, geographies, settings,
    start time)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_residual_args(ap)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    refuse_fit_draws(ap, args.cities, args.fit_draws)
    t0 = time.perf_counter()
    return (args, *val_residuals(args), t0)


def main(argv=None) -> int:
    args, fitted, geographies, settings, t0 = residual_run(argv, __doc__)
    variants = []
    shapes = [(w, m, False) for w, m in itertools.product(POOL_WEIGHTS, (False, True))] + [("entries", False, True)]
    for pool_weights, level_maps, outer_widths in shapes:
        cal = calibration_from_residuals(fitted, geographies=geographies, pool_weights=pool_weights,
                                         level_maps=level_maps, outer_widths=outer_widths)
        variants.append({"pool_weights": pool_weights, "level_maps": level_maps, "outer_widths": outer_widths,
                         "pooling": cal.meta["pooling"], "errors": variant_errors(cal.meta["pooling"]),
                         "zero_share": np.atleast_1d(cal.zero_share).tolist()})
        if len(variants) == 1:
            variants[0]["regions"] = region_coverages(fitted, cal, geographies, pool_weights)
            zones = city_dead_zones(fitted, cal, geographies)
        print(f"{variant_name(variants[-1])}: mean held-out error "
              f"{np.mean(list(variants[-1]['errors'].values())):.4f}", flush=True)
    command = command_line("calibration_levers.py", argv)
    out = Path(args.out)
    write_json(out / "calibration_levers.json", {"command": command, "settings": settings, "variants": variants,
                                                        "dead_zone_per_city": zones})
    text = markdown(variants, command.strip(), time.perf_counter() - t0, zones)
    write_text(out / "calibration_levers.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
