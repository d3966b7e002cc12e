"""Atomic writes: an interrupted write leaves the previous file or folder as it was and no temporary behind."""
from __future__ import annotations

from pathlib import Path

import pytest

from qa_engine.artifacts.atomic import atomic_dir, atomic_open, atomic_write_text


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
