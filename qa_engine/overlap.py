"""A two-deep pipeline: host work on the next and previous items while the model runs the current one.

onnxruntime releases the GIL while a session runs (and the Rust tokenizer while it encodes), so one worker
thread running the model overlaps with the calling thread building feeds and decoding logits.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
F = TypeVar("F")
R = TypeVar("R")


def overlapped(
    items: Iterable[T],
    prepare: Callable[[T], F],
    run: Callable[[F], R],
    finish: Callable[[T, R], None],
    overlap: bool = True,
) -> None:
    """finish(item, run(prepare(item))) for every item, in order.

    With `overlap`, `run` goes to one worker thread and at most two items are in flight: while item k runs,
    the caller's thread draws and prepares item k+1, then finishes item k. The first exception from any stage
    is raised here after the worker has stopped: queued runs are cancelled and a running one is waited for,
    so nothing is left running. A single item runs inline (no thread for one model call)."""
    it = iter(items)
    head = list(islice(it, 2))
    if not overlap or len(head) < 2:
        for item in chain(head, it):
            finish(item, run(prepare(item)))
        return
    pending: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-engine-run") as pool:
        try:
            for item in chain(head, it):
                pending.append((item, pool.submit(run, prepare(item))))
                if len(pending) == 2:
                    done, future = pending.popleft()
                    finish(done, future.result())
            while pending:
                done, future = pending.popleft()
                finish(done, future.result())
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
