"""Dynamic micro-batching: concurrent single-question calls coalesced into one `answer_batch` call."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from qa_engine.core.inputs import check_text
from qa_engine.core.types import AnswerResult
from qa_engine.serving.retry import BatchTimeoutError, RunnerError, answer_each, call_with_timeout

__all__ = ["BatchTimeoutError", "BatcherClosedError", "MicroBatcher", "QueueFullError", "RunnerError"]

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The batcher already holds `max_queue` waiting requests; the caller should back off or shed load."""


class BatcherClosedError(RuntimeError):
    """The batcher was closed and takes no new requests (or closed with this request still queued)."""


class BatchAnswerer(Protocol):
    """What the batcher drives: QAEngine, or anything with its answer_batch(questions, contexts, **options)."""

    @property
    def answer_batch(self) -> Callable[..., list[AnswerResult]]: ...


@dataclass
class _Request:
    question: str
    context: str
    future: Future[AnswerResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Queues single questions from many threads or asyncio tasks and answers them in batches on worker threads.

    A batch starts with the oldest waiting request and closes when `max_batch_size` requests are in
    it or `max_wait_ms` have passed since that request arrived, so a lone request waits at most
    `max_wait_ms`; under load, requests that arrived while the previous batch ran go out at once.
    Several workers run batches side by side; on CPU, `workers` = cores with an engine of
    intra_op_threads=1 keeps every core busy.
    `answer_options` (top_k, max_answer_length, handle_impossible_answer) apply to every request.

    Every request gets an answer or an error, whatever the model raises: a failing batch is answered again one
    request at a time, so an error reaches only its own caller; a runner raising a BaseException that is not an
    Exception (KeyboardInterrupt, SystemExit) gives its batch a RunnerError and closes the batcher, every queued
    request getting BatcherClosedError. `batch_timeout_s` (default: none) bounds each model call: a batch that
    runs longer gets BatchTimeoutError and is abandoned, and the batcher goes on with the next one.
    """

    def __init__(
        self,
        engine: BatchAnswerer,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        workers: int = 1,
        batch_timeout_s: float | None = None,
        **answer_options: Any,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if batch_timeout_s is not None and not batch_timeout_s > 0:
            raise ValueError(f"batch_timeout_s must be > 0 or None, got {batch_timeout_s}")
        self.engine = engine
        self.batch_timeout_s = batch_timeout_s
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.answer_options = answer_options
        self.batches = 0  # model batches run, for reporting the mean batch size
        self.answered = 0
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._closed_why = ""
        self._workers = [
            threading.Thread(target=self._run, name=f"qa-engine-batcher-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._workers:
            t.start()

    def submit(self, question: str, context: str) -> Future[AnswerResult]:
        """Queue one question; the returned future resolves to the engine's answer dict (or its error)."""
        check_text(question, "question")  # refused here, before it can join (and fail) a batch
        check_text(context, "context")
        request = _Request(question, context)
        with self._cond:
            if self._closed:
                raise BatcherClosedError(f"the batcher is closed{self._closed_why}")
            if len(self._queue) >= self.max_queue:
                raise QueueFullError(f"{self.max_queue} requests already waiting; retry later")
            self._queue.append(request)
            self._cond.notify()
        return request.future

    def answer(self, question: str, context: str, timeout: float | None = None) -> AnswerResult:
        """Answer one question, blocking until its batch has run; on timeout the request is withdrawn if not started."""
        future = self.submit(question, context)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    async def answer_async(self, question: str, context: str) -> AnswerResult:
        """Answer one question without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(question, context))

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, answer every request already queued, then stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._workers:
            t.join(timeout)

    def __enter__(self) -> "MicroBatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_batch(self) -> list[_Request]:
        """Block for the next batch; empty only when closed and drained."""
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return []
                    self._cond.wait()
                deadline = self._queue[0].enqueued + self.max_wait
                while 0 < len(self._queue) < self.max_batch_size and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._queue:  # another worker may have taken the batch meanwhile
                    n = min(len(self._queue), self.max_batch_size)
                    return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while batch := self._next_batch():
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if live:
                self._answer(live)

    def _answer(self, batch: list[_Request]) -> None:
        """Run one batch; every request gets its answer or its error, whatever the runner raises."""
        try:
            outcomes = answer_each(batch, self._run_batch)
        except BaseException as e:  # noqa: BLE001 - not an Exception: the batcher closes, nobody waits forever
            error = RunnerError.wrapping(e, "; the batcher is closed")
            log.error("%s", error)
            for r in batch:
                r.future.set_exception(error)
            self._close_now(f" after the model runner raised {type(e).__name__}")
            return
        for r, outcome in zip(batch, outcomes):
            if isinstance(outcome, Exception):
                r.future.set_exception(outcome)
            else:
                r.future.set_result(outcome)

    def _run_batch(self, batch: list[_Request]) -> list[AnswerResult]:
        """One answer_batch call for these requests (bounded by the batch timeout, where set)."""
        results = call_with_timeout(
            lambda: self.engine.answer_batch([r.question for r in batch], [r.context for r in batch],
                                             **self.answer_options),
            self.batch_timeout_s, f"a batch of {len(batch)} questions",
        )
        with self._cond:
            self.batches += 1
            self.answered += len(batch)
        return results

    def _close_now(self, why: str) -> None:
        """Close without answering what is queued: each queued request gets BatcherClosedError saying why."""
        with self._cond:
            self._closed, self._closed_why = True, why
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for r in queued:
            if r.future.set_running_or_notify_cancel():
                r.future.set_exception(BatcherClosedError(f"the batcher closed before this request ran,{why}"))
