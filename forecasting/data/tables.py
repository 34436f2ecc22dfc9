"""Reading long tables: file formats, column names (overridable), checked columns.

Shared by the long-table loader and the cell-grid layout; pandas/geopandas are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError


LONG_COLUMNS = ("cell_id", "timestamp", "traffic", "users", "row", "col", "x", "y", "region", "split", "category", "count")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")  # the formats named in messages
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
READABLE_TABLE_SUFFIXES = (*CSV_SUFFIXES, ".tsv", *PARQUET_SUFFIXES)  # everything `_read_table` reads
GEO_SUFFIXES = (".geojson", ".gpkg", ".shp", ".fgb")
REFERENCE_MONDAY = np.datetime64("2024-01-01T00:00")  # a Monday: day_of_week 0 when no date is known


#: Nixtla's long-format names (neuralforecast / statsforecast) and the canonical names they stand for
NIXTLA_COLUMNS = {"unique_id": "cell_id", "ds": "timestamp", "y": "traffic"}


def _column_map(columns: dict[str, str] | None) -> dict[str, str]:
    cols = dict(columns or {})
    unknown = sorted(set(cols) - set(LONG_COLUMNS))
    if unknown:
        raise DataError(f"columns= maps unknown canonical names {unknown}: use keys from {LONG_COLUMNS}")
    return cols


def _rename(df, cols: dict[str, str], table: str = "traffic"):
    """Copy of `df` with the user's column names mapped to the canonical ones (Nixtla's detected).

    After the `columns=` renames, Nixtla's names stand for the canonical ones they replace (the rule):
    in the traffic table `unique_id` -> cell_id, `ds` -> timestamp and `y` -> traffic when the table has
    `unique_id` and `ds` and neither cell_id nor timestamp; in a cell or POI table `unique_id` -> cell_id
    when it has no cell_id. (So a Nixtla traffic table's `y` is never a coordinate: positions then come
    from a cell table, or row/col columns.)
    """
    out = df.rename(columns={theirs: ours for ours, theirs in cols.items() if theirs != ours}).copy()
    have = set(map(str, out.columns))
    if table == "traffic":
        nixtla = {"unique_id", "ds"} <= have and not have & {"cell_id", "timestamp"}
        pairs = NIXTLA_COLUMNS.items() if nixtla else ()
    else:
        pairs = [("unique_id", "cell_id")]
    renames = {theirs: ours for theirs, ours in pairs if theirs in have and ours not in have}
    out = out.rename(columns=renames) if renames else out
    given = {ours: theirs for ours, theirs in cols.items() if theirs != ours}
    out.attrs["given_names"] = {**given, **{ours: theirs for theirs, ours in renames.items()}}  # for messages
    return out


def _require_columns(df, needed: Sequence[str], what: str, cols: dict[str, str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        example = ", ".join(f"'{c}': '<your column>'" for c in missing)
        mapped = [f"{c} (mapped from {cols[c]!r})" for c in missing if c in cols]
        nixtla = {v: k for k, v in NIXTLA_COLUMNS.items()}
        alias = [f"{nixtla[c]!r} for {c}" for c in missing if c in nixtla and what == "traffic table"]
        aliases = f" (Nixtla's names work too: {', '.join(alias)})" if alias else ""
        raise DataError(
            f"{what} lacks the column(s) {missing}{' ' + str(mapped) if mapped else ''}; it has "
            f"{list(map(str, df.columns))}: rename them or pass columns={{{example}}}{aliases}"
        )


def _read_table(obj, what: str):
    """A DataFrame from a DataFrame or a CSV/Parquet path (cell tables may also be geo files)."""
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return obj
    path = Path(obj)
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist")
    low = path.name.lower()
    try:
        if low.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
        if low.endswith(CSV_SUFFIXES):
            return pd.read_csv(path)
        if low.endswith(".tsv"):
            return pd.read_csv(path, sep="\t")
        if low.endswith(GEO_SUFFIXES):
            import geopandas as gpd

            return gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - report any reader failure as bad input
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    raise DataError(f"{what} {path}: unsupported file type; use CSV or Parquet ({TABLE_SUFFIXES})")


def _as_ids(s, what: str):
    """Cell ids as strings (so that 7 in a CSV and '7' in a Parquet file match)."""
    if s.isna().any():
        raise DataError(f"{what}: {int(s.isna().sum())} rows have no cell_id")
    if s.dtype.kind == "f" and np.all(np.mod(s.to_numpy(), 1) == 0):
        s = s.astype(np.int64)
    return s.astype(str)


def _parse_timestamps(s, what: str):
    """Naive datetime64[ns] timestamps, the zone's name and the zone's UTC offset at the first step.

    Time-zone-aware stamps (or strings with UTC offsets) become UTC instants, so that steps are checked
    in absolute time and a daylight-saving change does not look like a gap; the calendar features then
    use the offset of the first step throughout. Naive stamps are taken as they are (offset 0).
    """
    import pandas as pd

    try:
        t = pd.to_datetime(s)
    except (ValueError, TypeError):
        try:
            t = pd.to_datetime(s, utc=True)  # mixed UTC offsets
        except (ValueError, TypeError) as exc:
            raise DataError(f"{what}: cannot parse the timestamp column as dates/times: {exc}") from exc
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise DataError(f"{what}: {int(t.isna().sum())} rows have no timestamp (e.g. row {i})")
    if getattr(t.dt, "tz", None) is None:
        return t.astype("datetime64[ns]"), None, pd.Timedelta(0)
    tz = str(t.dt.tz)
    first = t.iloc[int(np.argmin(t.to_numpy()))]
    offset = first.utcoffset() or pd.Timedelta(0)
    return t.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]"), tz, pd.Timedelta(offset)


def _checked_numbers(df, col: str, what: str, nonnegative: bool = True):
    """Column `col` as float64; NaN, non-numeric and (if `nonnegative`) negative values raise, with an example row."""
    import pandas as pd

    given = df.attrs.get("given_names", {}).get(col)
    name = f"{col} (column {given!r})" if given else col
    v = pd.to_numeric(df[col], errors="coerce")
    bad = ~np.isfinite(v.to_numpy(dtype=np.float64))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise DataError(
            f"{what}: {name} has {int(bad.sum())} NaN/inf or non-numeric values, e.g. {_row_text(df, i)}: "
            "fill or drop them before loading"
        )
    neg = v.to_numpy() < 0
    if nonnegative and neg.any():
        i = np.flatnonzero(neg)[0]
        raise DataError(
            f"{what}: {name} has {int(neg.sum())} negative values, e.g. {_row_text(df, i)}: "
            f"{col} must be >= 0"
        )
    return v.astype(np.float64)


def _row_text(df, i: int) -> str:
    row = df.iloc[int(i)]
    return "row " + str(int(i)) + " (" + ", ".join(f"{k}={row[k]!r}" for k in df.columns[:6]) + ")"


def _check_duplicates(tr) -> None:
    dup = tr.duplicated(["cell_id", "timestamp"], keep=False)
    if dup.any():
        first = tr[dup].iloc[0]
        same = int(((tr["cell_id"] == first["cell_id"]) & (tr["timestamp"] == first["timestamp"])).sum())
        raise DataError(
            f"traffic table has {int(dup.sum())} rows with a duplicated (cell_id, timestamp), e.g. cell "
            f"{first['cell_id']!r} at {first['timestamp']} appears {same} times: aggregate or drop duplicates"
        )


