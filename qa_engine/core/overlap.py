"""A two-deep pipeline: host work on the next and previous items while the model runs the current one.

onnxruntime releases the GIL while a session runs (and the Rust tokenizer while it encodes), so one worker
thread running the model overlaps with the calling thread building feeds and decoding logits.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from typing import Callable, Generator, Iterable, TypeVar

T = TypeVar("T")
F = TypeVar("F")
R = TypeVar("R")


def overlapped(
    items: Iterable[T], prepare: Callable[[T], F], run: Callable[[F], R], overlap: bool = True,
    worker: str = "qa-engine-run", eager: bool = False,
) -> Generator[tuple[T, R], None, None]:
    """(item, run(prepare(item))) for every item, in order, lazily.

    With `overlap`, `run` goes to one worker thread and at most two items are in flight: while item k runs, the
    caller's thread draws and prepares item k+1, then gets item k back to finish it. The first exception from any
    stage (or from the consumer, which closes this generator) stops the pipeline after the worker has stopped:
    queued runs are cancelled and a running one is waited for, so nothing is left running. Without `overlap`,
    or for a single item, everything runs on the caller's thread and no item is drawn before it is needed.

    To find a single item the pipeline draws two before running the first. Where drawing the second may take long
    (it waits for work of its own), `eager` runs the first item on the worker before the second is drawn, at the
    price of a worker thread even for a single item. `worker` names the worker thread."""
    it = iter(items)
    if not overlap:
        for item in it:
            yield item, run(prepare(item))
        return
    if not eager:
        head = list(islice(it, 2))
        if len(head) < 2:
            for item in head:
                yield item, run(prepare(item))
            return
        it = chain(head, it)
    pending: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=worker) as pool:
        try:
            for item in it:
                pending.append((item, pool.submit(run, prepare(item))))
                if len(pending) == 2:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
