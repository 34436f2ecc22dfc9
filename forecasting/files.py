"""Atomic file writes, the one place that does them: a kill at any instant leaves the old file or the new one.

    atomic_write_text(path, text)              # JSON, Markdown, CSV
    atomic_write(path, lambda tmp: torch.save(state, tmp))   # any writer that takes a path

Each writes a temporary file beside `path` (same folder, so the final `os.replace` is atomic), syncs it,
gives it the permissions of an ordinary file (mkstemp makes it private), then renames it over `path`.
On any failure the temporary file is removed and `path` is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def umask() -> int:
    """The process's file creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], object], make_folder: bool = False) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it over `path`; returns `path`.

    `make_folder` creates the parent folders first (else the folder must exist). A stray
    `.<name>.tmp-XXXX` can remain only if the process dies between the write and the cleanup; no reader
    looks at it.
    """
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str, make_folder: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically (see `atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), make_folder)
