"""MicroBatcher: concurrent callers get the engine's own answers, errors stay with their caller, close drains."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from qa_engine import QAEngine
from qa_engine.serving.batcher import BatcherClosedError, MicroBatcher, QueueFullError
from tests.unicode_forms import FORMS, assert_nfc_answer, in_form

CONTEXTS = [
    "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. 그는 집현전을 설치하여 학자들을 길렀다.",
    "이순신은 조선 중기의 무신으로 임진왜란 때 거북선을 이끌고 한산도 대첩에서 승리하였다.",
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. 인구는 약 천만 명이다.",
    "김치는 배추와 무를 소금에 절여 고춧가루, 마늘, 젓갈 등으로 버무린 한국의 전통 발효 음식이다.",
]
QUESTIONS = ["누가 훈민정음을 창제하였나?", "거북선을 이끈 사람은?", "대한민국의 수도는?", "김치는 무엇으로 만드나?",
             "집현전을 설치한 임금은?", "한산도 대첩은 언제 일어났나?", "한강은 어디를 흐르나?", "김치의 재료는?"]


def _pairs(n: int) -> list[tuple[str, str]]:
    return [(QUESTIONS[i % len(QUESTIONS)], CONTEXTS[i % len(CONTEXTS)]) for i in range(n)]


def _same(got: dict, want: dict) -> None:
    """Same span; the score may differ in the last digits because batch padding changes float summation."""
    assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
    assert got["score"] == pytest.approx(want["score"], rel=1e-3, abs=1e-6)


class Gated:
    """Wraps an engine so each batch waits for the test to open the gate."""

    def __init__(self, engine: QAEngine):
        self.engine = engine
        self.started = threading.Event()
        self.gate = threading.Event()
        self.sizes: list[int] = []  # requests in each batch, in the order the batches reached the engine

    def answer_batch(self, questions, contexts, **kw):
        self.sizes.append(len(questions))
        self.started.set()
        assert self.gate.wait(30)
        return self.engine.answer_batch(questions, contexts, **kw)


@pytest.mark.parametrize("workers", [1, 2])
def test_threads_get_their_own_answers(engine: QAEngine, workers: int) -> None:
    """32 threads ask at once and get their own answers, combined into batches: the engine is held until all
    32 requests are queued, so each worker runs at most one batch before that, then full batches of 8."""
    pairs = _pairs(32)
    want = [engine.answer(q, c) for q, c in pairs]
    gated = Gated(engine)
    submitted = threading.Semaphore(0)
    batcher = MicroBatcher(gated, max_batch_size=8, max_wait_ms=5, workers=workers)

    def ask(pair: tuple[str, str]) -> dict:
        future = batcher.submit(*pair)
        submitted.release()
        return future.result(60)

    with ThreadPoolExecutor(32) as pool:
        try:
            results = pool.map(ask, pairs)
            assert all(submitted.acquire(timeout=60) for _ in pairs)
        finally:
            gated.gate.set()
        got = list(results)
    batcher.close()
    for g, w in zip(got, want):
        _same(g, w)
    assert batcher.answered == sum(gated.sizes) == 32
    assert len(gated.sizes) == batcher.batches <= workers + 32 // 8
    assert max(gated.sizes) == 8


def test_asyncio_tasks_get_their_own_answers(engine: QAEngine) -> None:
    pairs = _pairs(40)
    want = [engine.answer(q, c) for q, c in pairs]

    async def run(batcher: MicroBatcher) -> list[dict]:
        return await asyncio.gather(*(batcher.answer_async(q, c) for q, c in pairs))

    with MicroBatcher(engine, max_batch_size=16) as batcher:
        got = asyncio.run(run(batcher))
    for g, w in zip(got, want):
        _same(g, w)


def test_answer_options_apply_to_every_request(engine: QAEngine) -> None:
    pairs = _pairs(6)
    with engine.batcher(top_k=3, max_batch_size=6, max_wait_ms=600_000) as batcher:  # one batch of six
        got = [f.result(60) for f in [batcher.submit(q, c) for q, c in pairs]]
    for g, (q, c) in zip(got, pairs):
        want = engine.answer(q, c, top_k=3)
        assert isinstance(g, list) and len(g) == len(want) > 1
        for a, b in zip(g, want):
            _same(a, b)


@pytest.mark.parametrize("question, context", [("", "문맥"), ("질문", "  "), (None, "문맥"), ("질문", 3)])
def test_malformed_request_is_refused_before_queuing(engine: QAEngine, question, context) -> None:
    recorder = Gated(engine)
    recorder.gate.set()
    with MicroBatcher(recorder) as batcher:
        with pytest.raises(ValueError):
            batcher.submit(question, context)  # raised here, not through a future of a queued request
        _same(batcher.answer(*_pairs(1)[0]), engine.answer(*_pairs(1)[0]))
    assert recorder.sizes == [1]  # the engine only ever saw the well-formed request


def test_failing_request_in_a_batch_reaches_only_its_caller(engine: QAEngine) -> None:
    pairs = _pairs(8)
    too_long = "세종대왕 " * 400  # more question tokens than any window holds: the engine raises ValueError
    recorder = Gated(engine)
    recorder.gate.set()
    # a long wait and a batch size of exactly 9 make all nine requests one batch
    with MicroBatcher(recorder, max_batch_size=9, max_wait_ms=600_000) as batcher:
        futures = [batcher.submit(q, c) for q, c in pairs[:4]]
        bad = batcher.submit(too_long, CONTEXTS[0])
        futures += [batcher.submit(q, c) for q, c in pairs[4:]]
        with pytest.raises(ValueError, match="too long"):
            bad.result(60)
        for f, (q, c) in zip(futures, pairs):
            _same(f.result(60), engine.answer(q, c))
        after = batcher.submit(*pairs[0])  # the worker is still alive; close() ends the long wait
    _same(after.result(60), engine.answer(*pairs[0]))
    assert recorder.sizes == [9] + [1] * 9 + [1]  # the failed batch, its requests one by one, then `after`


def test_failing_batch_does_not_poison_the_queue(engine: QAEngine) -> None:
    class FlakyOnce:
        calls = 0

        def answer_batch(self, questions, contexts, **kw):
            FlakyOnce.calls += 1
            if FlakyOnce.calls == 1:
                raise RuntimeError("transient failure")
            return engine.answer_batch(questions, contexts, **kw)

    pairs = _pairs(4)
    with MicroBatcher(FlakyOnce(), max_batch_size=4, max_wait_ms=10_000) as batcher:
        futures = [batcher.submit(q, c) for q, c in pairs]
        results = [f.result(60) for f in futures]
    for r, (q, c) in zip(results, pairs):
        _same(r, engine.answer(q, c))


def test_full_queue_raises_instead_of_growing(engine: QAEngine) -> None:
    gated = Gated(engine)
    batcher = MicroBatcher(gated, max_batch_size=1, max_wait_ms=0, max_queue=2)
    q, c = _pairs(1)[0]
    running = batcher.submit(q, c)
    assert gated.started.wait(30)  # the worker holds the first request; the queue is empty again
    queued = [batcher.submit(q, c), batcher.submit(q, c)]
    with pytest.raises(QueueFullError):
        batcher.submit(q, c)
    gated.gate.set()
    batcher.close()
    for f in [running, *queued]:
        _same(f.result(60), engine.answer(q, c))


def test_close_drains_queued_requests_then_refuses(engine: QAEngine) -> None:
    gated = Gated(engine)
    batcher = MicroBatcher(gated, max_batch_size=2, max_wait_ms=0)
    pairs = _pairs(7)
    futures = [batcher.submit(q, c) for q, c in pairs]
    assert gated.started.wait(30)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gated.gate.set()
    closer.join(60)
    assert not closer.is_alive()
    for f, (q, c) in zip(futures, pairs):
        assert f.done()
        _same(f.result(), engine.answer(q, c))
    with pytest.raises(BatcherClosedError):
        batcher.submit(*pairs[0])


def test_timed_out_request_is_withdrawn(engine: QAEngine) -> None:
    gated = Gated(engine)
    batcher = MicroBatcher(gated, max_batch_size=1, max_wait_ms=0)
    q, c = _pairs(1)[0]
    first = batcher.submit(q, c)
    assert gated.started.wait(30)
    with pytest.raises(FutureTimeout):
        batcher.answer(q, c, timeout=0.01)  # still queued behind the gated batch: cancelled, never run
    gated.gate.set()
    batcher.close()
    _same(first.result(), engine.answer(q, c))
    assert batcher.answered == 1


def test_bad_settings_are_refused(engine: QAEngine) -> None:
    for kw in ({"max_batch_size": 0}, {"max_wait_ms": -1}, {"max_queue": 0}, {"workers": 0}):
        with pytest.raises(ValueError):
            MicroBatcher(engine, **kw)


@pytest.mark.parametrize("form", FORMS)
def test_decomposed_korean_in_a_shared_batch_gets_the_nfc_answers(engine: QAEngine, form: str) -> None:
    """NFC and other-form requests batched together: each gets its own NFC answer, offsets into its own text."""
    pairs = _pairs(8)
    asked = [(in_form(q, form), in_form(c, form)) if i % 2 else (q, c) for i, (q, c) in enumerate(pairs)]
    want = [engine.answer(q, c) for q, c in pairs]
    with MicroBatcher(engine, max_batch_size=8, max_wait_ms=50) as batcher:
        futures = [batcher.submit(q, c) for q, c in asked]
        got = [f.result(60) for f in futures]
    for g, w, (_, context) in zip(got, want, asked):
        assert_nfc_answer(g, w, context)
