"""MicroBatcher under a failing model: whatever the runner raises (KeyboardInterrupt included) every waiting caller
gets an error and the batcher closes cleanly; a runner that never returns is bounded by the batch timeout."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import wait

import pytest

from qa_engine.serving.batcher import BatcherClosedError, BatchTimeoutError, MicroBatcher, RunnerError

PAIR = ("철수는 어디에 삽니까?", "철수는 서울에 삽니다.")
ANSWER = {"answer": "서울", "score": 0.5, "start": 4, "end": 6}
WAIT = 60  # a guard against a hang, far beyond any batch here; never what a test measures


class Fatal(BaseException):
    """A BaseException of the runner's own, neither Exception nor KeyboardInterrupt."""


class Raising:
    """A runner whose first batch waits for the gate, then every batch raises `error`."""

    def __init__(self, error: BaseException):
        self.error, self.started, self.gate, self.calls = error, threading.Event(), threading.Event(), 0

    def answer_batch(self, questions, contexts, **options):
        self.calls += 1
        self.started.set()
        assert self.gate.wait(WAIT)
        raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), Fatal("device lost"), GeneratorExit()],
                         ids=["KeyboardInterrupt", "SystemExit", "own BaseException", "GeneratorExit"])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_runner_raising_any_base_exception_fails_every_waiting_caller_and_closes(error, workers: int) -> None:
    runner = Raising(error)
    batcher = MicroBatcher(runner, max_batch_size=8, max_wait_ms=0, workers=workers)
    futures = [batcher.submit(*PAIR) for _ in range(64)]
    assert runner.started.wait(WAIT)
    runner.gate.set()
    done, waiting = wait(futures, WAIT)
    assert not waiting  # nobody hangs
    errors = [f.exception() for f in futures]
    ran = [e for e in errors if isinstance(e, RunnerError)]
    assert ran and all(isinstance(e, (RunnerError, BatcherClosedError)) for e in errors)
    assert str(ran[0]).startswith(f"the model runner raised {type(error).__name__}") and ran[0].__cause__ is error
    assert runner.calls == len({id(e) for e in ran})  # one error per batch run, not retried one by one
    with pytest.raises(BatcherClosedError, match=f"closed .*{type(error).__name__}"):
        batcher.submit(*PAIR)
    batcher.close(WAIT)
    assert not any(t.is_alive() for t in batcher._workers)


def test_an_asyncio_caller_gets_an_error_not_the_interrupt() -> None:
    runner = Raising(KeyboardInterrupt())
    runner.gate.set()

    async def ask() -> BaseException | None:
        try:
            await asyncio.wait_for(batcher.answer_async(*PAIR), WAIT)
        except RunnerError as e:
            return e
        return None

    with MicroBatcher(runner, max_wait_ms=0) as batcher:
        assert isinstance(asyncio.run(ask()), RunnerError)


class HangsOnce:
    """A runner whose first batch never returns (until the test ends), and whose later batches answer at once."""

    def __init__(self) -> None:
        self.release, self.calls = threading.Event(), 0

    def answer_batch(self, questions, contexts, **options):
        self.calls += 1
        if self.calls == 1:
            self.release.wait()
        return [dict(ANSWER) for _ in questions]


def test_a_runner_that_never_returns_is_bounded_by_the_batch_timeout() -> None:
    runner = HangsOnce()
    try:
        with MicroBatcher(runner, max_wait_ms=0, batch_timeout_s=2.0) as batcher:
            hung = batcher.submit(*PAIR)
            with pytest.raises(BatchTimeoutError, match="did not return within the batch timeout of 2 s"):
                hung.result(WAIT)
            assert batcher.answer(*PAIR, timeout=WAIT) == ANSWER  # the batcher goes on with the next batch
    finally:
        runner.release.set()
    assert runner.calls == 2  # the timed-out batch was not retried one request at a time


def test_the_batch_timeout_is_off_by_default_and_checked() -> None:
    with MicroBatcher(HangsOnce()) as batcher:
        assert batcher.batch_timeout_s is None
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="batch_timeout_s must be > 0"):
            MicroBatcher(HangsOnce(), batch_timeout_s=bad)
