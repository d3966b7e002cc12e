"""Reading the UTF-8 files people hand qa-engine (questions, contexts, predictions): a byte that is not UTF-8 is
reported with the file, the line and the byte offset, and how to convert the file (Korean text saved by older
Windows tools is usually CP949 / EUC-KR)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator


class NotUtf8Error(ValueError):
    """A file that is not valid UTF-8, named with the line and byte offset of the first bad byte."""


def _error(path: str | Path, line: int, offset: int, e: UnicodeDecodeError) -> NotUtf8Error:
    bad = e.object[e.start : e.end].hex(" ")
    return NotUtf8Error(
        f"{path}: line {line}, byte offset {offset}: not UTF-8 (byte {bad}: {e.reason}); save the file as UTF-8, "
        f"e.g. `iconv -f CP949 -t UTF-8 {path} > utf8-{Path(path).name}` for Korean text from older Windows tools"
    )


def read_text(path: str | Path) -> str:
    """The whole file as text; NotUtf8Error naming the line and byte offset of the first byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _error(path, data.count(b"\n", 0, e.start) + 1, e.start, e) from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line, the last one whether or not a newline ends it; NotUtf8Error as
    read_text's, raised when the reader reaches the bad line."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _error(path, number, offset + e.start, e) from None
            offset += len(raw)
