"""Atomic writes: a temp file or folder beside the target, renamed into place only when complete.

Temps are named `.NAME.XXXXXXXX.tmp` and locked (flock) while their writer lives, so a later write of the same
target can tell what an interrupted writer left (unlocked) from a live writer's temp (locked) and remove only the
former. SIGTERM and SIGINT unwind a write in the main thread, removing its temp, unless the application handles
them itself. Files and folders get the modes a plain open() / mkdir would give them under the process umask.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import secrets
import shutil
import signal
import stat
import threading
from pathlib import Path
from typing import IO, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock, so no temp can be told stale and none is removed
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
UNWOUND_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _lock(fd: int) -> None:
    """Mark a temp as in use for as long as `fd` is open (the kernel drops the lock when its process dies)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _in_use(path: Path) -> bool:
    """Whether a live writer holds `path` (a temp file or folder) locked (always, where locks do not exist)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone meanwhile, or not ours to read: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Remove the temps beside `target` that interrupted writers of it left (killed ones too); logs each.

    Returns the removed paths. Temps of writers still running are locked and left alone."""
    target = Path(target)
    removed = []
    for name in sorted(glob.glob(f".{glob.escape(target.name)}.*{TEMP_SUFFIX}", root_dir=target.parent)):
        path = target.parent / name
        if _in_use(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.warning("removed %s, left by an interrupted write of %s", path, target.name)
        removed.append(path)
    return removed


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM / SIGINT raise SystemExit in the main thread while a temp exists (so `except`/`finally` remove it),
    where they would otherwise end the process at once; handlers an application installed stay in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in UNWOUND_SIGNALS}
    for sig, handler in previous.items():
        if handler == signal.SIG_DFL:
            signal.signal(sig, _raise_exit)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler == signal.SIG_DFL:
                signal.signal(sig, handler)


def _new_temp_file(path: Path, binary: bool) -> tuple[int, Path]:
    """A new locked temp file beside `path`, mode as open() gives: the existing file's, else 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | (getattr(os, "O_BINARY", 0) if binary else 0)
    while True:
        tmp = _temp_path(path)
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        _lock(fd)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit fsync and rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    with _signals_unwind():
        fd, tmp = _new_temp_file(path, "b" in mode)
        try:
            with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def _new_temp_dir(target: Path) -> tuple[int | None, Path]:
    """A new locked temp folder beside `target`, mode as mkdir gives (0777 less the umask); returns (lock fd, path),
    the fd None where locks do not exist."""
    while True:
        tmp = _temp_path(target)
        try:
            os.mkdir(tmp, 0o777)
            break
        except FileExistsError:
            continue
    if fcntl is None:
        return None, tmp
    try:
        fd = os.open(tmp, os.O_RDONLY)
        _lock(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fd, tmp


@contextlib.contextmanager
def atomic_dir(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on clean exit it replaces `target`, else it is removed.

    An existing `target` is kept untouched on failure and is only replaced when `force` is set.
    """
    target = Path(target)
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    with _signals_unwind():
        fd, tmp = _new_temp_dir(target)
        try:
            yield tmp
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if fd is not None:
                os.close(fd)
