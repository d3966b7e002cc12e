"""`qa-engine answer` on the random-weight artifact: prints the engine's answer as JSON, reads a context file, and
answers bad input with exit status 2 and a message naming the problem (no traceback)."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from qa_engine import QAEngine
from qa_engine.cli.main import main
from tests.unicode_forms import FORMS, assert_nfc_answer, in_form

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


def test_an_empty_question_is_not_numbered(random_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["answer", "--model", str(random_artifact), "--provider", "cpu", "--question", "",
                   "--context", CONTEXT])
    err = capsys.readouterr().err
    assert status == 2 and err.strip().endswith("error: the question is empty") and "question 0" not in err


@pytest.mark.parametrize("extra, message", [
    ((), "give --context or --context-file"),
    (("--context", "  "), "error: the context is empty"),
    (("--context-file", "/nonexistent/context.txt"), "No such file"),
    (("--context", CONTEXT, "--max-context-chars", "10"), "more than max_context_chars=10 (EngineSettings"),
])
def test_bad_answer_input_exits_2_naming_the_problem(random_artifact: Path, capsys: pytest.CaptureFixture[str],
                                                     extra: tuple[str, ...], message: str) -> None:
    status, out, err = _answer(random_artifact, capsys, *extra)
    assert status == 2 and out == "" and message in err and "Traceback" not in err


@pytest.mark.parametrize("form", FORMS)
def test_answer_and_batch_on_decomposed_korean_give_the_nfc_answers(random_artifact: Path, engine: QAEngine,
                                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     form: str) -> None:
    context = in_form(CONTEXT * 20, form)
    (tmp_path / "context.txt").write_text(context, encoding="utf-8")
    status = main(["answer", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32",
                   "--question", in_form(QUESTION, form), "--context-file", str(tmp_path / "context.txt")])
    assert status == 0
    assert_nfc_answer(json.loads(capsys.readouterr().out), engine.answer(QUESTION, CONTEXT * 20), context)
    rows = [{"id": str(i), "question": in_form(QUESTION, form), "context": context[: 40 * (i + 1)]} for i in range(5)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                       encoding="utf-8")
    status = main(["batch", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32",
                   "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"), "--top-k", "2"])
    assert status == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    nfc_contexts = [unicodedata.normalize("NFC", r["context"]) for r in rows]
    want = engine.answer_batch([QUESTION] * len(rows), nfc_contexts, top_k=2)
    assert [o["id"] for o in out] == [r["id"] for r in rows]
    for o, w, r in zip(out, want, rows):
        assert_nfc_answer(o["top_k"], w, r["context"])
