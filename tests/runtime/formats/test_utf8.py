"""A file that is not UTF-8 is refused naming the file, the line and the byte offset, and the fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_engine.cli.main import main
from qa_engine.formats.squad import iter_examples
from qa_engine.formats.utf8 import NotUtf8Error, iter_lines, read_text

GOOD = json.dumps({"id": "1", "question": "철수는 어디에 삽니까?", "context": "철수는 서울에 삽니다."},
                  ensure_ascii=False).encode("utf-8") + b"\n"
CP949 = "서울".encode("cp949")  # b"\xbc\xad\xbf\xef": 0xbc cannot start a UTF-8 character


def _where(message: str, path: Path, line: int, offset: int) -> None:
    assert str(path) in message and f"line {line}, byte offset {offset}" in message
    assert "UTF-8" in message and "iconv -f CP949 -t UTF-8" in message


def test_json_lines_name_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD + GOOD + b'{"id": "3", "question": "' + CP949 + b'", "context": "c"}\n')
    examples = iter_examples(path)
    assert [next(examples).id, next(examples).id] == ["1", "1"]  # the lines before the bad one are read
    with pytest.raises(NotUtf8Error) as refused:
        next(examples)
    _where(str(refused.value), path, 3, 2 * len(GOOD) + len(b'{"id": "3", "question": "'))


def test_whole_files_name_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_bytes(b'{"data": [\n\n  ' + CP949 + b"]}")
    with pytest.raises(NotUtf8Error) as refused:
        list(iter_examples(path))
    _where(str(refused.value), path, 3, 14)


def test_lines_are_read_with_or_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD + GOOD.rstrip(b"\n"))
    assert [n for n, _ in iter_lines(path)] == [1, 2]
    assert read_text(path) == (GOOD + GOOD.rstrip(b"\n")).decode("utf-8")


def test_commands_report_it_in_one_line(tmp_path: Path, random_artifact: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    context = tmp_path / "context.txt"
    context.write_bytes("철수는 ".encode("utf-8") + CP949)
    assert main(["answer", "--model", str(random_artifact), "--provider", "cpu", "--question", "어디?",
                 "--context-file", str(context)]) == 2
    err = capsys.readouterr().err
    _where(err, context, 1, len("철수는 ".encode("utf-8")))
    assert "Traceback" not in err
    predictions = tmp_path / "pred.json"
    predictions.write_bytes(b'{"1": "' + CP949 + b'"}')
    data = tmp_path / "dev.jsonl"
    data.write_bytes(GOOD)
    assert main(["evaluate", "--data", str(data), "--predictions", str(predictions)]) == 2
    _where(capsys.readouterr().err, predictions, 1, 7)
