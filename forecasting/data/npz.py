"""Loader 1: the `.npz` files of `../shared/data` (`load_npz`) and the folder that holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .city import City, DataError


NPZ_KEYS = ("traffic", "users", "poi", "day_of_week", "slot_of_day", "split", "slots_per_day")


def default_data_dir() -> Path:
    """`$UOMO_DATA_DIR` if set, else `../shared/data` next to the repository root."""
    import os

    env = os.environ.get("UOMO_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def load_npz(path: str | Path, name: str | None = None) -> City:
    """Load a city from an `.npz` file in the format of `../shared/data/README.md`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"city file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: _npz_array(npz, k, path) for k in npz.files}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - report any reader failure as bad input
        raise DataError(f"{path} is not a readable .npz file: {exc}") from exc
    missing = [k for k in ("traffic", "day_of_week", "slot_of_day", "split", "slots_per_day") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the arrays {missing} (expected keys: {NPZ_KEYS})")
    return City(
        name=name or path.stem,
        traffic=arrays["traffic"],
        users=arrays.get("users"),
        poi=arrays.get("poi"),
        day_of_week=arrays["day_of_week"],
        slot_of_day=arrays["slot_of_day"],
        slots_per_day=int(arrays["slots_per_day"]),
        split=arrays["split"],
        meta={"source": str(path)},
    )


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    """One array of an .npz, refusing (never unpickling) one that holds Python objects."""
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(
            f"{path}: array {key!r} holds pickled Python objects (an object array), which are refused because "
            "loading them could run code; store plain numeric arrays (e.g. np.asarray(values, dtype=float))"
        ) from None


def available_real_cities(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Name -> path of the real-city `.npz` files present in `data_dir` (may be empty)."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.glob("*.npz"))}
