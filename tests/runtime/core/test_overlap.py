"""The two-deep pipeline: order kept, at most two items in flight, errors raised with nothing left running."""
from __future__ import annotations

import threading
import time

import pytest

from qa_engine.core.overlap import overlapped as pipeline


def overlapped(items, prepare, run, finish, overlap=True) -> None:
    """Drive the pipeline as the engine does: finish each item as it comes back."""
    for item, result in pipeline(items, prepare, run, overlap):
        finish(item, result)


class Recorder:
    """Stages that log what happens, on which thread, and how many runs are started but not finished."""

    def __init__(self, fail: str | None = None, fail_at: int = -1):
        self.events: list[tuple[str, int]] = []
        self.threads: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.running = 0
        self.fail, self.fail_at = fail, fail_at
        self.lock = threading.Lock()

    def _maybe_fail(self, stage: str, item: int) -> None:
        if stage == self.fail and item == self.fail_at:
            raise RuntimeError(f"{stage} failed on {item}")

    def prepare(self, item: int) -> int:
        self._maybe_fail("prepare", item)
        with self.lock:
            self.events.append(("prepare", item))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return item

    def run(self, item: int) -> int:
        with self.lock:
            self.running += 1
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(0.002)
            self._maybe_fail("run", item)
            with self.lock:
                self.events.append(("run", item))
            return item * 10
        finally:
            with self.lock:
                self.running -= 1

    def finish(self, item: int, result: int) -> None:
        self._maybe_fail("finish", item)
        assert result == item * 10
        with self.lock:
            self.events.append(("finish", item))
            self.in_flight -= 1


def test_results_are_finished_in_order_with_at_most_two_in_flight():
    r = Recorder()
    overlapped(range(20), r.prepare, r.run, r.finish)
    assert [i for stage, i in r.events if stage == "finish"] == list(range(20))
    assert r.max_in_flight == 2  # the next item was prepared while one was running: overlap happened
    assert r.threads == {next(iter(r.threads))} and threading.current_thread().name not in r.threads


def test_next_item_is_prepared_before_the_previous_one_is_finished():
    r = Recorder()
    overlapped(range(5), r.prepare, r.run, r.finish)
    order = r.events.index
    for i in range(4):
        assert order(("prepare", i + 1)) < order(("finish", i))


def test_without_overlap_everything_runs_inline_one_at_a_time():
    r = Recorder()
    overlapped(range(5), r.prepare, r.run, r.finish, overlap=False)
    assert r.max_in_flight == 1
    assert r.threads == {threading.current_thread().name}
    assert r.events == [(s, i) for i in range(5) for s in ("prepare", "run", "finish")]


def test_a_single_item_runs_on_the_calling_thread():
    r = Recorder()
    overlapped([7], r.prepare, r.run, r.finish)
    assert r.threads == {threading.current_thread().name}
    assert r.events == [("prepare", 7), ("run", 7), ("finish", 7)]


@pytest.mark.parametrize("stage", ["prepare", "run", "finish"])
@pytest.mark.parametrize("at", [0, 1, 5])
def test_an_exception_in_any_stage_reaches_the_caller_with_nothing_running(stage, at):
    r = Recorder(fail=stage, fail_at=at)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match=f"{stage} failed on {at}"):
        overlapped(range(10), r.prepare, r.run, r.finish)
    assert r.running == 0
    assert threading.active_count() == before
    finished = [i for s, i in r.events if s == "finish"]
    assert finished == list(range(len(finished))) and len(finished) <= at
    assert max((i for s, i in r.events if s == "run"), default=-1) <= at + 1  # nothing ran far past the error


def test_an_exception_while_drawing_items_stops_the_pipeline():
    r = Recorder()

    def items():
        yield from range(3)
        raise ValueError("question 3 is too long")

    with pytest.raises(ValueError, match="question 3"):
        overlapped(items(), r.prepare, r.run, r.finish)
    assert r.running == 0


def test_without_overlap_no_item_is_drawn_before_it_is_needed():
    drawn = []

    def items():
        for i in range(3):
            drawn.append(i)
            yield i

    stream = pipeline(items(), lambda i: i, lambda i: i, overlap=False)
    assert drawn == [] and next(stream) == (0, 0) and drawn == [0]


def test_a_consumer_that_stops_early_leaves_nothing_running():
    r = Recorder()
    before = threading.active_count()
    stream = pipeline(range(10), r.prepare, r.run)
    assert next(stream) == (0, 0)
    stream.close()
    assert r.running == 0 and threading.active_count() == before


def test_eager_runs_the_first_item_before_drawing_the_second():
    started, waited, threads = threading.Event(), [], []

    def items():
        yield 0
        waited.append(started.wait(timeout=10))  # drawing item 1 waits until item 0 runs: only eager gets past
        yield 1

    def run(item: int) -> int:
        threads.append(threading.current_thread().name)
        started.set()
        return item * 10

    assert list(pipeline(items(), lambda i: i, run, True, eager=True)) == [(0, 0), (1, 10)]
    assert waited == [True] and threading.current_thread().name not in threads
    threads.clear()
    assert list(pipeline([7], lambda i: i, run, True, "eager-test", eager=True)) == [(7, 70)]
    assert threads[0].startswith("eager-test")  # even a single item goes to the worker
