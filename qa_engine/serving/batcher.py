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
from typing import TYPE_CHECKING, Any

from qa_engine.core.inputs import check_text
from qa_engine.core.types import AnswerResult

if TYPE_CHECKING:
    from qa_engine.engine import QAEngine

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The batcher already holds `max_queue` waiting requests; the caller should back off or shed load."""


class BatcherClosedError(RuntimeError):
    """The batcher was closed and takes no new requests."""


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
    """

    def __init__(
        self,
        engine: "QAEngine",
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        workers: int = 1,
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
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.answer_options = answer_options
        self.batches = 0  # model batches run, for reporting the mean batch size
        self.answered = 0
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
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
                raise BatcherClosedError("the batcher is closed")
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
        """Run one batch; if it fails, run its requests one by one so an error reaches only its own caller."""
        try:
            results = self.engine.answer_batch(
                [r.question for r in batch], [r.context for r in batch], **self.answer_options
            )
        except Exception as e:  # noqa: BLE001 - any failure is handed to the callers, never kills the worker
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            log.debug("batch of %d failed (%s); answering its requests one by one", len(batch), e)
            for r in batch:
                self._answer([r])
            return
        with self._cond:
            self.batches += 1
            self.answered += len(batch)
        for r, result in zip(batch, results):
            r.future.set_result(result)
