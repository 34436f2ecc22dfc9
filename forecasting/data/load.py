"""One entry point for every source: `load_city` resolves a name or a path to a `City`.

This is the only place where a city is found from a name or a path; the benchmark, training, the
scenario runner and the bench scripts all call it. `load_cities` also resolves names of city
families (the synthetic prior's `synthetic-prior:64`) to their list of cities.
"""

from __future__ import annotations

from pathlib import Path

from .city import City, DataError
from .long_table import load_long_table
from .npz import available_real_cities, default_data_dir, load_npz
from .release_json import load_release_json, release_cities
from .resample import parse_resampled_name, resample_city
from .synthetic import city_from_name
from .synthetic_prior import parse_prior_name, prior_cities
from .tables import READABLE_TABLE_SUFFIXES, TABLE_SUFFIXES

REAL_CITY_NAMES = ("nanjing", "nanchang")


def load_city(source: str | Path, data_dir: str | Path | None = None, **kwargs) -> City:
    """Load a city from any supported source; other keyword arguments go to the matching loader.

    - a synthetic preset name ('synthetic', 'synthetic-small', ...; see `forecasting.data.synthetic`);
    - one city of the synthetic prior, 'synthetic-prior@S#K' (`forecasting.data.synthetic_prior`; a
      family such as 'synthetic-prior:64' names several cities: use `load_cities`);
    - a city name ('nanjing', 'nanchang', or any `<name>.npz` there): `<data_dir>/<name>.npz`, where
      `data_dir` defaults to `default_data_dir()` ($UOMO_DATA_DIR, else ../shared/data);
    - a `.npz` file (`load_npz`);
    - a directory with release JSON (`load_release_json`; `city=` picks one if there are several);
    - a release traffic file `24_<City>_short64.json`;
    - a CSV/Parquet long table (`load_long_table`, e.g. with cells=..., poi=..., region_size=...);
    - any of these followed by '@<minutes>min' ('nanjing@60min'): the city at that coarser time step
      (`forecasting.data.resample`: traffic summed, users averaged over each slot).
    """
    text = str(source)
    if not Path(text).exists():
        resampled = parse_resampled_name(text)
        if resampled is not None:
            base, minutes = resampled
            return resample_city(load_city(base, data_dir, **kwargs), minutes)
        if text.startswith("synthetic"):
            return _synthetic_city(text, **kwargs)
        named = _named_city(text, data_dir)
        if named is not None:
            return load_npz(named, **kwargs)
    return _load_path(Path(text), data_dir, **kwargs)


def load_cities(source: str | Path, data_dir: str | Path | None = None, **kwargs) -> list[City]:
    """The cities a name stands for: every city of a family name ('synthetic-prior:64', see
    `forecasting.data.synthetic_prior`), else the one city of `load_city(source, data_dir, **kwargs)`."""
    text = str(source)
    if not Path(text).exists() and parse_prior_name(text) is not None:
        return prior_cities(text, **kwargs)
    return [load_city(source, data_dir, **kwargs)]


def _synthetic_city(name: str, **kwargs) -> City:
    """A synthetic preset, or one city of the synthetic prior (DataError for a family of several)."""
    parsed = parse_prior_name(name)
    if parsed is None and name.startswith("synthetic-prior"):
        raise DataError(f"{name!r}: name prior cities synthetic-prior:N, synthetic-prior:A-B, synthetic-prior@S:N "
                        "or synthetic-prior@S#K")
    if parsed is None:
        return city_from_name(name, **kwargs)
    if len(parsed[1]) != 1:
        raise DataError(f"{name!r} names {len(parsed[1])} cities of the synthetic prior: load them with load_cities")
    return prior_cities(name, **kwargs)[0]


def _named_city(name: str, data_dir: str | Path | None) -> Path | None:
    """`<data_dir>/<name>.npz` for a bare city name (None when `name` is no such name)."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if (folder / f"{name}.npz").is_file() and Path(name).name == name:
        return folder / f"{name}.npz"
    if name.lower() in REAL_CITY_NAMES:
        path = folder / f"{name.lower()}.npz"
        if not path.exists():
            raise DataError(
                f"real city {name!r} needs {path}: put the shared data there, set $UOMO_DATA_DIR, or pass the "
                f"folder holding {name.lower()}.npz (data_dir=, city.data_dir in a scenario) or the file's path"
            )
        return path
    return None


def _load_path(path: Path, data_dir: str | Path | None, **kwargs) -> City:
    """A city from an existing file or directory, dispatched on what it is."""
    if not path.exists():
        folder = Path(data_dir) if data_dir is not None else default_data_dir()
        available = sorted(available_real_cities(folder))
        raise DataError(
            f"no city at {str(path)!r}: looked for a file or directory at {path.resolve()} and for the names "
            f"{list(REAL_CITY_NAMES)} in {folder} (present there: {available or 'none'})"
        )
    if path.is_dir():
        city = kwargs.pop("city", None)
        found = release_cities(path)
        if city is None:
            if len(found) != 1:
                npz = sorted(p.name for p in path.glob("*.npz"))
                raise DataError(
                    f"{path}: " + (f"several release cities {found}: pass city=" if found else
                    "no release traffic file (looked for 24_<City>_short64.json)"
                    + (f"; .npz files here: {npz} (pass one of them)" if npz else ""))
                )
            city = found[0]
        return load_release_json(path, city, **kwargs)
    low = path.name.lower()
    if low.endswith(".npz"):
        return load_npz(path, **kwargs)
    if low.endswith(".json"):
        if not (low.startswith("24_") and low.endswith("_short64.json")):
            raise DataError(f"{path}: a release traffic file is named 24_<City>_short64.json")
        return load_release_json(path.parent, path.name[len("24_") : -len("_short64.json")], **kwargs)
    if low.endswith(READABLE_TABLE_SUFFIXES):
        return load_long_table(path, **kwargs)
    raise DataError(
        f"{path}: unsupported source; use a .npz file, a directory of release JSON, a release traffic "
        f"JSON file or a long table ({', '.join(TABLE_SUFFIXES)})"
    )
