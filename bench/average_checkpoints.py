"""Weight average of checkpoints of one run (a run and its continuation): one network, chosen on val.

    python bench/average_checkpoints.py runs/stage1.pt runs/stage2.pt --weights 0.5 0.5 --out runs/soup.pt

theta = sum_i w_i theta_i over the sources' EMA weights (`forecasting.checkpoint.average_checkpoints`);
`--half` writes the float16 copy that ships instead of float32.
"""

from __future__ import annotations

import argparse
import sys

from forecasting.checkpoint import CheckpointError, average_checkpoints


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one network")
    ap.add_argument("--weights", type=float, nargs="+", default=None, help="one per checkpoint, summing to 1 (default equal)")
    ap.add_argument("--out", required=True, help="the averaged checkpoint to write")
    ap.add_argument("--half", action="store_true", help="write float16 weights (the shipped form)")
    ap.add_argument("--note", default=None, help="a line stored in the checkpoint's config")
    args = ap.parse_args(argv)
    try:
        path = average_checkpoints(args.checkpoints, args.out, args.weights, note=args.note, half=args.half)
    except CheckpointError as exc:
        print(f"average_checkpoints: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
