"""`qa-engine answer` on the random-weight artifact: prints the engine's answer as JSON, reads a context file, and
answers bad input with exit status 2 and a message naming the problem (no traceback)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_engine import QAEngine
from qa_engine.cli.main import main

QUESTION, CONTEXT = "철수는 어디에 삽니까?", "영희는 부산에 삽니다. 철수는 서울에 삽니다."


def _answer(random_artifact: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    status = main(["answer", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32",
                   "--question", QUESTION, *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_answer_prints_the_engines_answer(random_artifact: Path, engine: QAEngine, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _answer(random_artifact, capsys, "--context", CONTEXT)
    assert status == 0 and json.loads(out) == json.loads(json.dumps(engine.answer(QUESTION, CONTEXT)))
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT, encoding="utf-8")
    status, from_file, _ = _answer(random_artifact, capsys, "--context-file", str(context_file), "--top-k", "3")
    assert status == 0 and json.loads(from_file) == json.loads(json.dumps(engine.answer(QUESTION, CONTEXT, top_k=3)))


@pytest.mark.parametrize("extra, message", [
    ((), "give --context or --context-file"),
    (("--context", "  "), "context 0 is empty"),
    (("--context-file", "/nonexistent/context.txt"), "No such file"),
    (("--context", CONTEXT, "--max-context-chars", "10"), "more than max_context_chars=10 (EngineSettings"),
])
def test_bad_answer_input_exits_2_naming_the_problem(random_artifact: Path, capsys: pytest.CaptureFixture[str],
                                                     extra: tuple[str, ...], message: str) -> None:
    status, out, err = _answer(random_artifact, capsys, *extra)
    assert status == 2 and out == "" and message in err and "Traceback" not in err
