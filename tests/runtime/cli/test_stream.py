"""The typed, streaming API: answer_stream (lazy, ordered, bounded), decode settings given at load time, and
`qa-engine batch` on top of answer_stream."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from qa_engine import DecodeConfig, QAEngine
from qa_engine.cli.main import main
from tests.fixtures import qa_pairs

SEEDS = [("철수는 어디에 삽니까?", "철수는 서울에 삽니다."), ("고양이가 어디에 앉습니까?", "고양이가 의자에 앉습니다.")]


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    filler = " 그리고 날씨가 맑았습니다."
    return [(q, c + filler * (i % 5) * 8) for i, (q, c, _) in enumerate(qa_pairs(40, seed=11))]


class Counted:
    """An iterator over `items` that counts how many were taken: shows how far a consumer reads ahead."""

    def __init__(self, items: list[Any]):
        self.items, self.taken = items, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.taken += 1
            yield item


def _span(answer: Any) -> tuple[str, int, int]:
    """What must not change with batching (the score may, in its last digits: padding changes float sums)."""
    return answer["answer"], answer["start"], answer["end"]


def test_answer_stream_is_lazy_ordered_and_bounded(engine: QAEngine, pairs: list[tuple[str, str]]) -> None:
    source = Counted([p if i % 2 else {"question": p[0], "context": p[1], "id": i} for i, p in enumerate(pairs)])
    stream = engine.answer_stream(source, batch_size=2, chunk_size=8)
    assert source.taken == 0  # nothing runs before the first answer is asked for
    first = next(stream)
    assert source.taken == 8  # one chunk read, not the whole input
    got = [first, *stream]
    want = engine.answer_batch([q for q, _ in pairs], [c for _, c in pairs], batch_size=2)
    assert [(g["answer"], g["start"], g["end"]) for g in got] == [(w["answer"], w["start"], w["end"]) for w in want]


def test_answer_stream_default_chunks_start_at_one_batch_and_double(engine: QAEngine,
                                                                    pairs: list[tuple[str, str]]) -> None:
    from qa_engine.engine import SERIAL_CHUNK_BATCHES

    source = Counted(pairs * 8)
    reads, last = [], 0
    for _ in engine.answer_stream(source, batch_size=3):
        if source.taken != last:
            reads.append(source.taken - last)
            last = source.taken
    most = SERIAL_CHUNK_BATCHES * 3
    assert reads[:6] == [3, 6, 12, 24, 48, most][:6] and most == 48  # the first answer waits for one batch only
    assert set(reads[4:-1]) == {most} and sum(reads) == len(pairs) * 8


def test_answer_stream_names_the_bad_pair_after_answering_the_ones_before(engine: QAEngine) -> None:
    good = SEEDS
    stream = engine.answer_stream([*good, ("철수는?", "   "), *good], chunk_size=2)
    assert [_span(next(stream)), _span(next(stream))] == [_span(engine.answer(q, c)) for q, c in good]
    with pytest.raises(ValueError, match="context 2 is empty"):
        next(stream)
    for bad, message in [((1, 2, 3), "pair 0 must be a"), ({"question": "q"}, "pair 0: a dict needs")]:
        with pytest.raises(ValueError, match=message):
            list(engine.answer_stream([bad]))
    with pytest.raises(ValueError, match="use answer"):
        list(engine.answer_stream("철수는 어디에 삽니까?"))


def test_decode_settings_given_at_load_time_take_effect(random_artifact: Path, engine: QAEngine) -> None:
    question, context = SEEDS[0]
    loaded = QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32", top_k=3,
                                      max_answer_length=1)
    assert loaded.settings.decode == DecodeConfig(max_answer_length=1, top_k=3)
    results = loaded.answer(question, context)
    assert isinstance(results, list) and len(results) == 3
    assert all(len(loaded.tokenizer.tokenizer.encode(r["answer"], add_special_tokens=False).ids) == 1
               for r in results)  # max_answer_length=1: one-token answers
    assert engine.settings.decode == DecodeConfig() and isinstance(engine.answer(question, context), dict)
    assert isinstance(loaded.answer(question, context, top_k=1), dict)  # a call argument still wins
    with_impossible = QAEngine(engine.runner, engine.tokenizer,
                               replace(engine.settings, decode=DecodeConfig(top_k=50, handle_impossible_answer=True)))
    assert "" in [a["answer"] for a in with_impossible.answer(question, context)]  # the no-answer candidate
    assert "" not in [a["answer"] for a in engine.answer(question, context, top_k=50)]
    with pytest.raises(TypeError, match="top_kk"):
        QAEngine.from_pretrained(random_artifact, provider="cpu", top_kk=3)


def test_batch_command_streams_a_file_in_input_order(random_artifact: Path, engine: QAEngine,
                                                     pairs: list[tuple[str, str]], tmp_path: Path) -> None:
    source = tmp_path / "questions.jsonl"
    source.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "context": c}, ensure_ascii=False) + "\n"
                              for i, (q, c) in enumerate(pairs)), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    assert main(["batch", "--model", str(random_artifact), "--provider", "cpu", "--precision", "fp32",
                 "--batch-size", "2", "--input", str(source), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = engine.answer_batch([q for q, _ in pairs], [c for _, c in pairs])
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(len(pairs))]
    assert [(r["answer"], r["start"], r["end"]) for r in rows] == [(w["answer"], w["start"], w["end"]) for w in want]
    assert all("top_k" not in r for r in rows)


def test_a_long_context_reports_progress_for_each_model_call(engine: QAEngine) -> None:
    question, context = SEEDS[0]
    shares: list[float] = []
    stream = engine.answer_stream([(question, context + " 그리고 날씨가 맑았습니다." * 200), SEEDS[1]],
                                  batch_size=2, on_progress=shares.append)
    next(stream)
    assert len(shares) > 5 and sum(shares) == pytest.approx(2.0)  # the chunk's calls add up to its questions
    assert all(0 < s < 1 for s in shares)


def test_contexts_over_max_context_chars_are_refused_naming_the_setting(random_artifact: Path,
                                                                        engine: QAEngine) -> None:
    limited = QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32", max_context_chars=20)
    assert limited.settings.max_context_chars == 20 and engine.settings.max_context_chars == 1_000_000
    question, context = SEEDS[0]
    long = context + "." * 20  # 32 characters
    assert limited.answer(question, context) == engine.answer(question, context)
    with pytest.raises(ValueError, match=r"^the context has 32 characters, more than max_context_chars=20"):
        limited.answer(question, long)
    with pytest.raises(ValueError, match=r"context 1 has 32 characters, more than max_context_chars=20"):
        list(limited.answer_stream([SEEDS[1], (question, long)]))
    with pytest.raises(ValueError, match="max_context_chars must be >= 1"):
        QAEngine.from_pretrained(random_artifact, provider="cpu", max_context_chars=0)
