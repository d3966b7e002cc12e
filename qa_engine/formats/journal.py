"""The file an unfinished `qa-engine batch` writes, OUTPUT.partial: a settings header, then the output rows and the
refused records in input order, committed a chunk at a time (one write, then fsync) with a marker line counting
the records so far and hashing them. A kill loses at most the chunk not yet committed; `--resume` keeps what the
last marker covers and cuts the rest (a torn last line included), and the finished job copies the rows out."""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from qa_engine.artifacts.atomic import atomic_open

HEADER = "qa_engine_batch"
FORMAT = 1
COMMIT = "commit"
REFUSED = "refused"


class ResumeError(ValueError):
    """A partial file that cannot be continued by this run, named in the message with the way out."""


def partial_path(output: str | Path) -> Path:
    """Where a job writing `output` keeps its answers until it is done: OUTPUT.partial beside it."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


@dataclass
class Committed:
    """What the last commit marker covers: input records (answered or refused), answers, refusals, their hash."""

    records: int = 0
    answers: int = 0
    refused: int = 0
    sha256: str = ""
    offset: int = 0  # bytes of the file it covers, header included


def _differences(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [f"{key}: {have.get(key)!r} there, {want.get(key)!r} here" for key in sorted(set(have) | set(want))
            if have.get(key) != want.get(key)]


def _read_committed(path: Path, settings: dict[str, Any]) -> Committed | None:
    """The last commit of a partial file written with `settings`; None when it holds no complete header."""
    done = Committed()
    with open(path, "rb") as f:
        first = f.readline()
        if not first.endswith(b"\n"):
            return None
        header = json.loads(first)
        if not isinstance(header, dict) or header.get(HEADER) != FORMAT:
            raise ResumeError(f"{path} is not a qa-engine batch partial file; move it away to start over")
        diff = _differences(header.get("settings", {}), settings)
        if diff:
            raise ResumeError(f"{path} was written with other settings ({'; '.join(diff)}); resume with the same "
                              "settings, or delete it to start over")
        done.offset = f.tell()
        for n, line in enumerate(f, 2):
            if not line.endswith(b"\n"):
                break  # torn by a kill mid-write: past the last commit, redone
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResumeError(f"{path}:{n} is not JSON ({e}); delete the file to start over") from None
            if COMMIT in entry:
                done = Committed(**entry[COMMIT], offset=f.tell())
    return done


class Journal:
    """An open partial file, appended to by `commit` only."""

    def __init__(self, path: Path, settings: dict[str, Any], committed: Committed):
        self.path, self.settings, self.committed = path, settings, committed
        self._fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        os.ftruncate(self._fd, committed.offset)
        os.lseek(self._fd, committed.offset, os.SEEK_SET)

    @classmethod
    def open(cls, path: str | Path, settings: dict[str, Any], resume: bool) -> "Journal":
        """The partial file at `path`: continued where its last commit ends when `resume` (after checking it was
        written with `settings`), else started anew; an existing one is refused without `resume`."""
        path = Path(path)
        committed = None
        if path.exists():
            if not resume:
                raise ResumeError(f"{path} holds the answers of an interrupted run: continue it with --resume, "
                                  "or delete it to start over")
            committed = _read_committed(path, settings)
        if committed is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = json.dumps({HEADER: FORMAT, "settings": settings}, ensure_ascii=False) + "\n"
            with open(path, "w", encoding="utf-8") as f:
                f.write(header)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(path.parent)
            committed = Committed(offset=len(header.encode("utf-8")))
        return cls(path, settings, committed)

    def entries(self) -> Iterator[dict[str, Any]]:
        """The committed rows and refusals, in input order (commit markers left out)."""
        with open(self.path, "rb") as f:
            f.readline()
            while f.tell() < self.committed.offset:
                entry = json.loads(f.readline())
                if COMMIT not in entry:
                    yield entry

    def rows(self) -> Iterator[bytes]:
        """The committed output rows, each exactly as written (one JSON line)."""
        with open(self.path, "rb") as f:
            f.readline()
            while f.tell() < self.committed.offset:
                line = f.readline()
                if line.startswith(b'{"id": '):
                    yield line

    def commit(self, lines: list[str], done: Committed) -> None:
        """Append `lines` and a marker for `done` in one write, then fsync. A failed write (a full disk) is cut back
        to the last commit before its OSError is raised."""
        marker = {COMMIT: {"records": done.records, "answers": done.answers, "refused": done.refused,
                           "sha256": done.sha256}}
        data = "".join([*lines, json.dumps(marker) + "\n"]).encode("utf-8")
        self._append(data)
        done.offset = self.committed.offset + len(data)
        self.committed = done

    def _append(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):  # a resume cuts a torn tail anyway
                os.ftruncate(self._fd, self.committed.offset)
                os.lseek(self._fd, self.committed.offset, os.SEEK_SET)
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self, output: Path, errors: Path | None, number_key: str) -> None:
        """Write the output (JSON Lines, or Parquet for a .parquet name) and, when given, the errors file (one
        line per refused record: its number under `number_key`, id and reason), each atomically."""
        if output.suffix == ".parquet":
            from qa_engine.formats.records import write_parquet

            write_parquet(output, (json.loads(line) for line in self.rows()))
        else:
            with atomic_open(output, "wb", encoding=None) as out:
                for line in self.rows():
                    out.write(line)
        if errors is not None:
            with atomic_open(errors) as err:
                for entry in self.entries():
                    if REFUSED in entry:
                        refused = entry[REFUSED]
                        err.write(json.dumps({number_key: refused["number"], "id": refused["id"],
                                              "reason": refused["reason"]}, ensure_ascii=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
