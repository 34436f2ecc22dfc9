"""Loader 2: the paper's public release (64-step windows in JSON), stitched back into series."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .city import WINDOW, City, DataError
from .windows import window_starts


#
# Layout of the release (as read by its own loading code):
#   24_<City>_short64.json   {"X_train": [1][N][64][H][W], "X_val": ..., "X_test": ...,
#                             "timestamps": {"train": [N][64][2], "val": ..., "test": ...}}
#                             each timestamp is [day_of_week, slot_of_day]
#   <City>_user64.json       {"X_train": [1][N][64][H][W], ...}        connected users, same windows
#   <City>_poi64.json        {"X_train": [N][C][H][W], ...}            POI counts of each window's region
# Windows of one region follow each other at a fixed stride (1 in the release); a new region starts
# where the chain breaks. The (N, 1, 64, H, W) order that the release's README mentions is read too.

RELEASE_SPLIT_KEYS = {"train": "X_train", "val": "X_val", "test": "X_test"}


def release_json_paths(directory: str | Path, city: str) -> dict[str, Path]:
    """Paths of the three release files of `city` (e.g. 'TrafficNJ') in `directory`."""
    d = Path(directory)
    return {
        "traffic": d / f"24_{city}_short64.json",
        "users": d / f"{city}_user64.json",
        "poi": d / f"{city}_poi64.json",
    }


def release_cities(directory: str | Path) -> list[str]:
    """City names of the release traffic files (`24_<City>_short64.json`) found in `directory`."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p.name[len("24_") : -len("_short64.json")] for p in d.glob("24_*_short64.json"))


def _release_users(users_doc: dict, windows: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The users windows of every split present in the traffic file, checked to match its windows' shapes."""
    users = {}
    for s, traffic in windows.items():
        if RELEASE_SPLIT_KEYS[s] not in users_doc:
            raise DataError(f"{path} lacks {RELEASE_SPLIT_KEYS[s]} although the traffic file has it")
        users[s] = _release_windows(users_doc[RELEASE_SPLIT_KEYS[s]], path, s)
        if users[s].shape != traffic.shape:
            raise DataError(f"split {s!r}: users windows {users[s].shape} do not match traffic windows {traffic.shape}")
    return users


def _stitch_regions(series: dict[str, dict[str, np.ndarray]], chains: dict[str, list[tuple[int, int]]],
                    strides: dict[str, int | None], poi_doc: dict | None, poi_path: Path) -> dict[str, list]:
    """Per region (a chain of windows a..b of a split), its stitched series, its POI (static per region,
    checked) and its split: {"traffic", "users", "dow", "slot", "poi", "split"} -> one entry per region."""
    parts: dict[str, list] = {k: [] for k in ("traffic", "users", "dow", "slot", "poi", "split")}
    for s, fields in series.items():
        shape = fields["traffic"].shape
        st = strides[s] or shape[1]
        poi_s = None if poi_doc is None else _release_poi(poi_doc, s, shape, poi_path)
        for a, b in chains[s]:
            for part, key in (("traffic", "traffic"), ("dow", "day_of_week"), ("slot", "slot_of_day"), ("users", "users")):
                if key in fields:
                    parts[part].append(_stitch(fields[key], a, b, st, f"split {s!r} {key}"))
            if poi_s is not None:
                differs = np.flatnonzero(np.any(poi_s[a : b + 1] != poi_s[a], axis=(1, 2, 3)))
                if differs.size:
                    raise DataError(
                        f"{poi_path}: split {s!r}: POI of window {a + differs[0]} differs from window {a} "
                        "of the same region: POI must be static per region"
                    )
                parts["poi"].append(poi_s[a])
            parts["split"].append(s)
    return parts


def load_release_json(
    directory: str | Path,
    city: str,
    slots_per_day: int | None = None,
    stride: int | None = None,
    name: str | None = None,
) -> City:
    """Load a city from the paper's release JSON files and stitch its windows into continuous series.

    Per split, window k+1 *chains* to window k when it equals window k advanced by the stride s in
    traffic, users and timestamps: w[k+1][:L-s] == w[k][s:]. A break starts a new region. The stride is
    detected (the most common start-to-start advance of chaining pairs) unless given. A region of n
    windows becomes a series of (n-1)*s + L steps, and every window is checked to equal its slice.
    All regions must end up with the same length (one (R, T, H, W) array); a window that breaks the
    pattern (e.g. a corrupted one) raises a `DataError` naming the split and window index.

    `slots_per_day` is inferred from the timestamps (the slot after which the day changes) when not
    given. POI (optional file) must be identical across the windows of a region. Users are optional.
    """
    paths = release_json_paths(directory, city)
    if not paths["traffic"].exists():
        raise DataError(_missing_release_message(Path(directory), city, paths["traffic"]))
    traffic_doc = _read_json(paths["traffic"])
    users_doc = _read_json(paths["users"]) if paths["users"].exists() else None
    poi_doc = _read_json(paths["poi"]) if paths["poi"].exists() else None

    splits = [s for s, key in RELEASE_SPLIT_KEYS.items() if key in traffic_doc]
    if not splits:
        raise DataError(
            f"{paths['traffic']} holds none of the keys {list(RELEASE_SPLIT_KEYS.values())}: "
            "is it a release traffic file?"
        )
    windows = {s: _release_windows(traffic_doc[RELEASE_SPLIT_KEYS[s]], paths["traffic"], s) for s in splits}
    stamps = {s: _release_timestamps(traffic_doc, s, windows[s].shape[:2], paths["traffic"]) for s in splits}
    dow_col, slot_col = _timestamp_columns(np.concatenate([stamps[s].reshape(-1, 2) for s in splits]))
    dow = {s: stamps[s][..., dow_col] for s in splits}
    slot = {s: stamps[s][..., slot_col] for s in splits}
    spd = slots_per_day or infer_slots_per_day(
        np.concatenate([dow[s] for s in splits]), np.concatenate([slot[s] for s in splits])
    )
    users = None if users_doc is None else _release_users(users_doc, windows, paths["users"])

    # stitch each split; chains are decided on traffic, users and timestamps together
    series = {s: {"traffic": windows[s], "day_of_week": dow[s], "slot_of_day": slot[s]} for s in splits}
    if users is not None:
        for s in splits:
            series[s]["users"] = users[s]
    chains: dict[str, list[tuple[int, int]]] = {}
    strides: dict[str, int | None] = {}
    for s in splits:
        strides[s], chains[s] = _find_chains(series[s], spd, stride)
    _check_equal_lengths(chains, strides, series)

    parts = _stitch_regions(series, chains, strides, poi_doc, paths["poi"])
    return City(
        name=name or city,
        traffic=np.stack(parts["traffic"]),
        users=np.stack(parts["users"]) if users is not None else None,
        poi=np.stack(parts["poi"]) if parts["poi"] else None,
        day_of_week=np.stack(parts["dow"]),
        slot_of_day=np.stack(parts["slot"]),
        slots_per_day=spd,
        split=np.array(parts["split"]),
        meta={
            "source": {k: str(p) for k, p in paths.items() if p.exists()},
            "stride": strides,
            "windows": {s: [(a, b) for a, b in chains[s]] for s in splits},
        },
    )


def save_release_json(city: City, directory: str | Path, release_name: str | None = None, stride: int = 1) -> dict[str, Path]:
    """Write `city` in the release layout (64-step windows every `stride` steps); returns the paths.

    The inverse of `load_release_json` (for interchange with the original code and for tests).
    """
    release_name = release_name or city.name
    paths = release_json_paths(directory, release_name)
    Path(directory).mkdir(parents=True, exist_ok=True)
    traffic_doc: dict = {"timestamps": {}}
    users_doc: dict = {}
    poi_doc: dict = {}
    starts = window_starts(city.n_steps, WINDOW, stride)
    if starts.size == 0:
        raise DataError(f"{city.name}: series of {city.n_steps} steps are shorter than one {WINDOW}-step window")
    t_idx = starts[:, None] + np.arange(WINDOW)[None, :]  # (n, L)
    for s, key in RELEASE_SPLIT_KEYS.items():
        regions = city.regions(s)
        if regions.size == 0:
            continue
        cut = lambda a: np.concatenate([a[r][t_idx] for r in regions])  # noqa: E731  (N, L, ...)
        traffic_doc[key] = [cut(city.traffic).tolist()]
        traffic_doc["timestamps"][s] = np.stack([cut(city.day_of_week), cut(city.slot_of_day)], -1).tolist()
        if city.users is not None:
            users_doc[key] = [cut(city.users).tolist()]
        if city.poi is not None:
            poi_doc[key] = np.repeat(city.poi[regions], starts.size, axis=0).tolist()
    import json

    written = {"traffic": paths["traffic"]}
    paths["traffic"].write_text(json.dumps(traffic_doc))
    if city.users is not None:
        paths["users"].write_text(json.dumps(users_doc))
        written["users"] = paths["users"]
    if city.poi is not None:
        paths["poi"].write_text(json.dumps(poi_doc))
        written["poi"] = paths["poi"]
    return written


def infer_slots_per_day(day_of_week: np.ndarray, slot_of_day: np.ndarray) -> int:
    """Slots per day from (N, L) day/slot stamps: one more than the slot after which the day changes."""
    dow = np.asarray(day_of_week).reshape(-1, np.shape(day_of_week)[-1])
    slot = np.asarray(slot_of_day).reshape(dow.shape)
    change = dow[:, 1:] != dow[:, :-1]
    last = np.unique(slot[:, :-1][change])
    if last.size == 0:
        raise DataError(
            "cannot infer slots_per_day: no window crosses midnight; pass slots_per_day explicitly"
        )
    if last.size > 1:
        raise DataError(
            f"cannot infer slots_per_day: the day changes after different slots {last.tolist()}; "
            "the timestamps are inconsistent (or pass slots_per_day explicitly)"
        )
    return int(last[0]) + 1


def _missing_release_message(directory: Path, city: str, traffic: Path) -> str:
    found = release_cities(directory)
    msg = f"release traffic file {traffic} not found (looked for 24_{city}_short64.json in {directory})"
    if found:
        msg += f"; release cities present there: {found}"
    rar = list(directory.glob(f"*{city}*.rar")) if directory.is_dir() else []
    if rar:
        msg += f"; found {[p.name for p in rar]}: extract the .rar archives first"
    return msg


def _read_json(path: Path) -> dict:
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable JSON file: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object with keys X_train/X_val/X_test")
    return doc


def _squeeze_release(a: np.ndarray, ndim: int) -> np.ndarray:
    """Drop the release's singleton axis: (1, N, ...) or (N, 1, ...) -> (N, ...)."""
    if a.ndim == ndim + 1 and a.shape[0] == 1:
        return a[0]
    if a.ndim == ndim + 1 and a.shape[1] == 1:
        return a[:, 0]
    return a


def _release_windows(obj, path: Path, split: str) -> np.ndarray:
    """(N, L, H, W) float64 windows of one split."""
    try:
        a = np.asarray(obj, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: split {split!r} is not a regular numeric array: {exc}") from exc
    a = _squeeze_release(a, 4)
    if a.ndim != 4 or a.shape[0] == 0:
        raise DataError(f"{path}: split {split!r} must hold windows (1, N, L, H, W), got shape {np.shape(obj)}")
    return a


def _release_timestamps(doc: dict, split: str, n_l: tuple[int, int], path: Path) -> np.ndarray:
    """(N, L, 2) integer stamps of one split."""
    block = doc.get("timestamps", doc.get("timestamp"))
    if not isinstance(block, dict):
        raise DataError(f"{path} lacks 'timestamps' ({{'train': [N][L][2], ...}} of [day_of_week, slot])")
    raw = block.get(split, block.get(RELEASE_SPLIT_KEYS[split]))
    if raw is None:
        raise DataError(f"{path}: 'timestamps' lacks the {split!r} entry")
    ts = _squeeze_release(np.asarray(raw), 3)
    if ts.shape != (*n_l, 2):
        raise DataError(f"{path}: timestamps of split {split!r} must be {(*n_l, 2)}, got {ts.shape}")
    if not np.all(np.mod(ts, 1) == 0):
        raise DataError(f"{path}: timestamps of split {split!r} must be whole numbers [day_of_week, slot]")
    return ts.astype(np.int64)


def _timestamp_columns(stamps: np.ndarray) -> tuple[int, int]:
    """Which stamp column is day-of-week and which slot: the one exceeding 6 is the slot.

    Default [day_of_week, slot] (the order the release's code reads); the README's [time, day] order is
    detected when its first column exceeds 6.
    """
    hi = stamps.max(axis=0)
    if hi[0] > 6 and hi[1] <= 6:
        return 1, 0
    return 0, 1


def _shift_chains(series: dict[str, np.ndarray], shift: int) -> np.ndarray:
    """(N-1,) bool: window k+1 equals window k advanced by `shift` steps in every series."""
    first = next(iter(series.values()))
    L = first.shape[1]
    ok = np.ones(first.shape[0] - 1, dtype=bool)
    for a in series.values():
        a = a.reshape(a.shape[0], L, -1)
        ok &= np.all(a[1:, : L - shift] == a[:-1, shift:], axis=(1, 2))
    return ok


def _find_chains(
    series: dict[str, np.ndarray], slots_per_day: int, stride: int | None
) -> tuple[int | None, list[tuple[int, int]]]:
    """Detect the stride and cut the windows of one split into chains (first, last window index)."""
    dow, slot = series["day_of_week"], series["slot_of_day"]
    N, L = dow.shape
    if N == 1:
        return stride, [(0, 0)]
    week = 7 * slots_per_day
    start = dow[:, 0] * slots_per_day + slot[:, 0]
    advance = np.mod(np.diff(start), week)  # (N-1,) start-to-start advance in slots
    if stride is None:
        best, best_count = None, 0
        for s in np.unique(advance):
            if 0 < s < L:
                count = int(np.sum(_shift_chains(series, int(s)) & (advance == s)))
                if count > best_count:
                    best, best_count = int(s), count
        stride = best
    if stride is None:  # no two windows overlap: each window is its own region
        return None, [(k, k) for k in range(N)]
    if not 0 < stride < L:
        raise DataError(f"stride must lie in 1..{L - 1} for windows of {L} steps, got {stride}")
    links = (advance == stride) & _shift_chains(series, stride)
    breaks = np.flatnonzero(~links)  # chain ends after these windows
    ends = np.append(breaks, N - 1)
    firsts = np.insert(breaks + 1, 0, 0)
    return stride, list(zip(firsts.tolist(), ends.tolist()))


def _chain_length(a: int, b: int, stride: int | None, L: int) -> int:
    return (b - a) * (stride or L) + L


def _check_equal_lengths(chains, strides, series) -> None:
    """All stitched regions must have one length; otherwise name the window that breaks the pattern.

    `series[split]` holds the split's windows by name (traffic, day_of_week, slot_of_day[, users]).
    """
    lengths = {}
    for s in chains:
        N, L = series[s]["traffic"].shape[:2]
        for a, b in chains[s]:
            lengths[(s, a, b)] = _chain_length(a, b, strides[s], L)
    if len(set(lengths.values())) <= 1:
        return
    # most specific diagnosis first: a lone window whose neighbours chain around it is corrupted
    for s in chains:
        N, L = series[s]["traffic"].shape[:2]
        st = strides[s]
        if st is None or 2 * st >= L:
            continue
        for a, b in chains[s]:
            k = a
            if a == b and 0 < k < N - 1:
                around = {n: v[[k - 1, k + 1]] for n, v in series[s].items()}
                if _shift_chains(around, 2 * st)[0]:
                    raise DataError(
                        f"split {s!r}: window {k} does not chain with its neighbours although windows "
                        f"{k - 1} and {k + 1} chain around it (stride {st}): window {k} is corrupted "
                        f"({_first_difference(series[s], k - 1, k, st)})"
                    )
    values, counts = np.unique(list(lengths.values()), return_counts=True)
    expected = int(values[np.argmax(counts)])
    (s, a, b), n = next((key, n) for key, n in lengths.items() if n != expected)
    N, L = series[s]["traffic"].shape[:2]
    st = strides[s] or L
    edges = []
    if st < L:
        if a > 0:
            edges.append(f"window {a} does not continue window {a - 1} ({_first_difference(series[s], a - 1, a, st)})")
        if b < N - 1:
            edges.append(f"window {b + 1} does not continue window {b} ({_first_difference(series[s], b, b + 1, st)})")
    raise DataError(
        f"split {s!r}: windows {a}..{b} chain into a series of {n} steps while the other regions have "
        f"{expected} steps, so the windows neither chain (each equal to the previous one advanced by the "
        f"stride {strides[s]}) nor start regions of one consistent length"
        + (": " + "; ".join(edges) if edges else "")
    )


def _first_difference(series: dict[str, np.ndarray], k0: int, k1: int, shift: int) -> str:
    """Where window k1 first differs from window k0 advanced by `shift`."""
    L = next(iter(series.values())).shape[1]
    for name, a in series.items():
        x, y = a[k0][shift:], a[k1][: L - shift]
        diff = np.argwhere(x != y)
        if diff.size:
            t = int(diff[0][0])
            return f"{name} differs at its step {t}: {y[tuple(diff[0])]!r} vs {x[tuple(diff[0])]!r} in window {k0}"
    return f"equal values, but its start time does not advance by {shift} slots"


def _stitch(windows: np.ndarray, a: int, b: int, stride: int, what: str) -> np.ndarray:
    """Series of the chain of windows a..b; verifies that every window equals its slice."""
    w = windows[a : b + 1]
    n, L = w.shape[:2]
    t_idx = np.arange(n)[:, None] * stride + np.arange(L)[None, :]  # (n, L)
    out = np.empty(((n - 1) * stride + L, *w.shape[2:]), dtype=w.dtype)
    out[t_idx] = w
    bad = np.flatnonzero(~np.all((out[t_idx] == w).reshape(n, -1), axis=1))
    if bad.size:
        raise DataError(f"{what}: window {a + bad[0]} does not equal its slice of the stitched series")
    return out


def _release_poi(doc: dict, split: str, shape: tuple, path: Path) -> np.ndarray:
    """(N, C, H, W) POI per window of one split."""
    key = RELEASE_SPLIT_KEYS[split]
    if key not in doc:
        raise DataError(f"{path} lacks {key} although the traffic file has it")
    p = np.asarray(doc[key], dtype=np.float64)
    N, _, H, W = shape
    if p.ndim == 5:
        p = _squeeze_release(p, 4)
    if p.ndim == 3:  # one POI map for the whole split
        p = np.broadcast_to(p, (N, *p.shape))
    if p.ndim != 4 or p.shape[0] != N or p.shape[2:] != (H, W):
        raise DataError(
            f"{path}: POI of split {split!r} must be (N={N}, categories, H={H}, W={W}), got {p.shape}: "
            "the POI grid does not match the traffic windows"
        )
    return p
