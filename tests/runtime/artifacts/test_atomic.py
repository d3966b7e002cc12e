"""Atomic writes: an interrupted write leaves the previous file or folder as it was and no temporary behind."""
from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from qa_engine.artifacts.atomic import atomic_dir, atomic_open, atomic_write_text, remove_stale_temps


class Interrupted(Exception):
    """Raised inside a write to stand for a crash half-way through it."""


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes), to compare a folder before and after."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("error", [Interrupted, KeyboardInterrupt])
@pytest.mark.parametrize("mode", ["w", "wb"])
def test_exception_inside_atomic_open_keeps_the_old_file_and_no_temp(tmp_path: Path, error, mode) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text("old complete content\n", encoding="utf-8")
    partial = "new half-written" if mode == "w" else b"new half-written"
    with pytest.raises(error):
        with atomic_open(path, mode, encoding=None if mode == "wb" else "utf-8") as f:
            f.write(partial)
            f.flush()  # the bytes reach the disk: only the rename may decide what `path` holds
            raise error()
    assert path.read_text(encoding="utf-8") == "old complete content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"]


def test_interrupted_first_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "predictions.json"
    with pytest.raises(Interrupted):
        with atomic_open(path) as f:
            f.write("{")
            raise Interrupted()
    assert list((tmp_path / "sub").iterdir()) == []


def test_completed_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("old", encoding="utf-8")
    with atomic_open(path) as f:
        f.write("새 내용")
        assert path.read_text(encoding="utf-8") == "old"  # not visible until the write is complete
    assert path.read_text(encoding="utf-8") == "새 내용"
    atomic_write_text(path, "again")
    assert path.read_text(encoding="utf-8") == "again"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


@pytest.mark.parametrize("error", [Interrupted, KeyboardInterrupt])
def test_exception_inside_atomic_dir_keeps_the_old_folder_and_no_temp(tmp_path: Path, error) -> None:
    target = tmp_path / "artifact"
    (target / "nested").mkdir(parents=True)
    (target / "model.onnx").write_bytes(b"old model")
    (target / "nested" / "config.json").write_text("{}", encoding="utf-8")
    before = _tree(target)
    with pytest.raises(error):
        with atomic_dir(target, force=True) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            (tmp / "extra.txt").write_text("new", encoding="utf-8")
            raise error()
    assert _tree(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_interrupted_new_folder_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        with atomic_dir(tmp_path / "fresh") as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            raise Interrupted()
    assert list(tmp_path.iterdir()) == []


def test_completed_atomic_dir_replaces_the_folder_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    target.mkdir()
    (target / "stale.onnx").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="--force"):
        with atomic_dir(target):
            pass
    assert _tree(target) == {"stale.onnx": b"old"}
    with atomic_dir(target, force=True) as tmp:
        (tmp / "model.onnx").write_bytes(b"new")
        assert _tree(target) == {"stale.onnx": b"old"}  # not visible until the folder is complete
    assert _tree(target) == {"model.onnx": b"new"}
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


# --- what an interrupted or killed writer leaves, and the modes of what is written ------------------------------

CHILD = r"""
import signal, sys
from pathlib import Path
from qa_engine.artifacts.atomic import atomic_dir, atomic_open

kind, target, handler = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if handler == "own":
    signal.signal(signal.SIGTERM, lambda *_: print("own handler", flush=True))
writer = atomic_dir(target, force=True) if kind == "dir" else atomic_open(target)
with writer as out:
    if kind == "dir":
        (out / "model.onnx").write_bytes(b"half")
    else:
        out.write("half")
        out.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    print("finished", flush=True)
"""


def _default_sigint() -> None:
    """A job started in the background (CI under nohup or `&`) inherits SIGINT ignored; the child must see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_writer(kind: str, target: Path, handler: str = "default") -> subprocess.Popen:
    """A child process half-way through an atomic write of `target`, blocked until told to finish."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(target), handler], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    return child


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("kind", ["dir", "file"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_terminated_writer_removes_its_temp_and_keeps_the_old_target(tmp_path: Path, kind: str, sig: int) -> None:
    target = tmp_path / ("artifact" if kind == "dir" else "answers.jsonl")
    if kind == "dir":
        target.mkdir()
        (target / "model.onnx").write_bytes(b"old model")
    else:
        target.write_text("old", encoding="utf-8")
    child = _start_writer(kind, target)
    assert len(_temps(tmp_path)) == 1
    child.send_signal(sig)
    assert child.wait(timeout=60) != 0
    assert _temps(tmp_path) == []
    assert (target / "model.onnx" if kind == "dir" else target).read_bytes() in (b"old model", b"old")


def test_an_applications_own_sigterm_handler_is_left_in_place(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    child = _start_writer("dir", target, handler="own")
    child.send_signal(signal.SIGTERM)
    assert child.stdout is not None and child.stdout.readline() == "own handler\n"
    child.communicate("\n")
    assert child.returncode == 0 and _tree(target) == {"model.onnx": b"half"}
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_next_write_removes_what_a_killed_writer_left_and_says_so(tmp_path: Path, kind: str, caplog) -> None:
    target = tmp_path / ("artifact" if kind == "dir" else "answers.jsonl")
    child = _start_writer(kind, target)
    child.kill()
    child.wait()
    left = _temps(tmp_path)
    assert len(left) == 1  # SIGKILL cannot be caught
    caplog.set_level(logging.WARNING, logger="qa_engine.artifacts.atomic")
    if kind == "dir":
        with atomic_dir(target) as tmp:
            (tmp / "model.onnx").write_bytes(b"whole")
    else:
        atomic_write_text(target, "whole")
    assert _temps(tmp_path) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"removed {tmp_path / left[0]}, left by an interrupted write of {target.name}"]


def test_a_live_writers_temp_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    child = _start_writer("dir", target)
    try:
        assert remove_stale_temps(target) == []
        assert len(_temps(tmp_path)) == 1
    finally:
        child.communicate("\n")
    assert child.returncode == 0 and _tree(target) == {"model.onnx": b"half"}


def test_stale_temps_of_other_targets_are_left_alone(tmp_path: Path) -> None:
    other = tmp_path / ".answers.jsonl.1234abcd.tmp"
    other.write_text("someone else's", encoding="utf-8")
    atomic_write_text(tmp_path / "answers.json", "x")
    assert other.is_file()


@pytest.fixture
def umask():
    """Sets the process umask for one test (restored after it)."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_written_files_and_folders_get_the_modes_open_and_mkdir_give(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    (tmp_path / "plain-dir").mkdir()
    atomic_write_text(tmp_path / "atomic.txt", "x")
    with atomic_open(tmp_path / "atomic.bin", "wb") as f:
        f.write(b"x")
    with atomic_dir(tmp_path / "atomic-dir") as tmp:
        (tmp / "file").write_text("x", encoding="utf-8")
    file_mode, dir_mode = _mode(tmp_path / "plain.txt"), _mode(tmp_path / "plain-dir")
    assert (file_mode, dir_mode) == (0o666 & ~mask, 0o777 & ~mask)
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "atomic.bin") == file_mode
    assert _mode(tmp_path / "atomic-dir") == dir_mode
    assert _mode(tmp_path / "atomic-dir" / "file") == file_mode


def test_rewriting_a_file_keeps_its_mode_as_open_does(tmp_path: Path, umask) -> None:
    path = tmp_path / "secret.json"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o600)
    atomic_write_text(path, "new")
    assert _mode(path) == 0o600 and path.read_text(encoding="utf-8") == "new"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
