"""The output folder of a run: checked before any work, locked against a second run, swapped in atomically.

    with output_lock(out):            # the CLI: held for the whole run
        ...
        with atomic_output(out) as tmp:   # planning.report.write_report: files go to tmp, then replace out
            ...
    atomic_write_text(path, text)     # one file (a sweep's job result, sweep.csv): whole or not at all
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from forecasting.files import atomic_write_text, umask  # noqa: F401  (atomic_write_text: public here too)

#
# Layout beside an output folder OUT (all in OUT's parent, all named after it):
#   .OUT.lock       the lock file: flock(LOCK_EX) held by the run writing OUT (holds its pid); removed
#                   by that run when it lets go
#   .OUT.tmp-XXXX   the report being written; renamed onto OUT once complete
#   .OUT.old-XXXX   only on the fallback swap (below), between its two renames
# A run that dies (SIGKILL, power loss) can leave .tmp-/.old- folders; the next run on OUT removes them
# once it holds the lock (restoring an .old- folder first if OUT itself is missing).
#
# The swap: when OUT exists, the complete new folder and OUT are exchanged with one
# renameat2(RENAME_EXCHANGE) call (Linux >= 3.15 with glibc >= 2.28; ext4, xfs, btrfs, tmpfs, ...), so at
# every instant OUT holds the old report or the new one, never nothing. Where the exchange is not
# available (another OS, a file system that refuses it) the fallback is two renames (OUT -> .old-,
# .tmp- -> OUT) with a window of a few microseconds in which OUT is missing; a crash inside that window
# leaves the old report in .old-, put back by the next run.

_LOCKS_HELD: dict[tuple[Path, int], int] = {}  # (output folder, thread id) -> depth of output_lock


def output_problem(out: Path, label: str = "--out") -> str | None:
    """Why a report cannot be written at `out` (a file in the way, a read-only folder), or None.

    Checks without writing: `out` is a folder or absent, and its nearest existing ancestor is a writable
    folder (the report, its temporary folder and the lock file all go beside `out`).
    """
    if out.exists() and not out.is_dir():
        return f"{label} {out} exists and is not a directory: choose another {label}"
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{label} {out}: {ancestor} is a file, not a folder: choose another {label}"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{label} {out}: the folder {ancestor} is read-only here: choose a writable {label}"
    return None


def _write_error(out: Path, label: str, exc: OSError):
    """An OSError met while preparing `out`, as an `OutputError` naming the user's key (not a temp path)."""
    from .errors import OutputError

    reason = exc.strerror or str(exc)
    return OutputError(f"{label} {out}: cannot write the report there ({reason}): choose a writable {label}")


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _acquire(out: Path, label: str) -> int:
    """Open and flock the lock file beside `out` without waiting; `OutputError` if another run holds it."""
    import fcntl

    from .errors import OutputError

    lock = _lock_path(out)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _write_error(out, label, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise OutputError(
                f"{label} {out} is being written by another run ({who} holds {lock.name}); wait for it to "
                f"finish or choose another {label}"
            ) from None
        try:  # the previous holder may have removed the file between our open and our flock: retry then
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)


def _release(out: Path, fd: int) -> None:
    """Remove the lock file (still holding the lock, so no other run can hold the removed file) and close."""
    try:
        os.unlink(_lock_path(out))
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _clean_stale(out: Path) -> None:
    """Remove the .tmp-/.old- folders of dead runs beside `out` (restoring an .old- one if `out` is missing)."""
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists():
        os.rename(olds.pop(), out)  # a run died between the fallback's two renames: its old report is back
    for stale in olds + list(out.parent.glob(f".{out.name}.tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def output_lock(out: str | Path, label: str = "--out") -> Iterator[Path]:
    """Hold the exclusive lock on the output folder `out` (yielded, resolved) for the duration of the block.

    Checks `out` first (`output_problem`), then takes `flock(LOCK_EX | LOCK_NB)` on `.<name>.lock` beside
    it: a second run on the same folder fails at once with an `OutputError` (exit 2 on the command line)
    instead of waiting. Stale temporary folders of dead runs are cleaned once the lock is held.
    Re-entrant within a thread (`atomic_output` inside an `output_lock` block takes no second lock).
    `label` names the folder in messages ('--out' or 'output.dir').
    """
    from .errors import OutputError

    out = Path(out).resolve()
    key = (out, threading.get_ident())
    if key in _LOCKS_HELD:
        _LOCKS_HELD[key] += 1
        try:
            yield out
        finally:
            _LOCKS_HELD[key] -= 1
        return
    problem = output_problem(out, label)
    if problem:
        raise OutputError(problem)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(out, label, exc) from None
    fd = _acquire(out, label)
    _LOCKS_HELD[key] = 1
    try:
        _clean_stale(out)
        yield out
    finally:
        del _LOCKS_HELD[key]
        _release(out, fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the paths `a` and `b` (renameat2 RENAME_EXCHANGE); False where not supported."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Put the complete folder `tmp` at `out`, never leaving `out` missing where the OS allows (see above)."""
    if not out.exists():
        os.rename(tmp, out)  # nothing to replace: one atomic rename
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # `tmp` now holds the old report
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_output(out: str | Path, label: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary folder beside `out`; on success it replaces `out`, on failure it is removed.

    So a failed run, a run killed half-way, or a re-run into an existing folder never leaves a
    half-written report: readers see the old report or the new one (see the swap above). Holds
    `output_lock(out)` (a concurrent run on the same folder is refused) unless the caller already does.
    """
    with output_lock(out, label) as final:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        except OSError as exc:
            raise _write_error(final, label, exc) from None
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes it private; the report is an ordinary folder
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            _swap_into_place(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
