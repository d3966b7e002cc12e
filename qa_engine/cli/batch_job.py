"""`qa-engine batch` as a job that loses nothing: answers are committed to OUTPUT.partial a chunk at a time in input
order, `--resume` checks what is there against the input and answers only the rest, bad records stop the job or are
skipped into an errors file, and SIGINT / SIGTERM / a full disk leave a partial file that resuming finishes.

Chunks have a fixed size and a resumed job starts at a chunk boundary, so every question is answered in the same
model calls as in an uninterrupted run and the output is the same to the byte (scores depend on what shares a call).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from qa_engine.cli.progress import Progress
from qa_engine.core.types import AnswerResult
from qa_engine.formats.journal import REFUSED, Committed, Journal, ResumeError, partial_path
from qa_engine.formats.records import output_record, summary, write_predictions
from qa_engine.formats.squad import Example, Refused, count_questions, iter_parsed

Record = tuple[int, "Example | Refused"]
# answers for (question, context) pairs in order, given a callback taking each model call's share of questions
Answerer = Callable[[Iterable[tuple[str, str]], Callable[[float], None]], Iterator[AnswerResult]]


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; raised in the main thread outside a commit."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopped(Exception):
    """The job ended early, with the one-line message to print and the exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class _Signals:
    """SIGINT and SIGTERM as `Interrupted` in the main thread, held back while a commit is written (a handler runs
    in the main thread whichever thread the signal reached, so a flag, not a signal mask, is what holds it)."""

    def __init__(self) -> None:
        self.holding, self.pending = False, 0

    def handle(self, signum: int, _frame: object) -> None:
        if self.holding:
            self.pending = signum
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            signum, self.pending = self.pending, 0
            raise Interrupted(signum)


_SIGNALS = _Signals()


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted`, after the commit in progress if any."""
    previous = {sig: signal.signal(sig, _SIGNALS.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class BatchJob:
    """What to answer and where: the input, the output and its companions, and the settings that shape the rows."""

    input: Path
    output: Path
    settings: dict[str, Any]  # stored in the partial file; a resume must match them
    chunk: int  # questions per commit, which must also be the answerer's chunk of questions
    max_context_chars: int
    on_error: str = "stop"  # or "skip"
    errors: Path | None = None  # where skipped records are listed (with on_error "skip")
    predictions: Path | None = None
    resume: bool = False
    resume_command: str = ""
    progress_every_s: float = 30.0

    @property
    def partial(self) -> Path:
        return partial_path(self.output)

    @property
    def jsonl(self) -> bool:
        return self.input.suffix in (".jsonl", ".ndjson")


def _checked(job: BatchJob, records: Iterator[Record]) -> Iterator[Record]:
    """The records, a context over the size limit refused like any bad record."""
    for n, item in records:
        if isinstance(item, Example) and len(item.context) > job.max_context_chars:
            where = f"{job.input}:{n}" if job.jsonl else f"{job.input}: question {n}"
            item = Refused(n, item.id, f"{where} (id {item.id}): context has {len(item.context):,} characters, more "
                                       f"than max_context_chars={job.max_context_chars:,} (--max-context-chars)")
        yield n, item


def _fingerprint(item: Example | Refused) -> bytes:
    """What a record adds to the hash of the records a partial file covers."""
    fields = [item.id, item.question, item.context] if isinstance(item, Example) else [item.number, item.reason]
    return json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n"


class _Feed:
    """The records on their way to the answerer: each usable one is handed on as (question, context), and every
    record waits in `pending`, in input order, until its answer comes. With on_error "stop" a bad record ends the
    feed (the ones before it are still answered) and is kept in `failure`."""

    def __init__(self, records: Iterator[Record], skip: bool):
        self.records, self.skip = records, skip
        self.pending: deque[Example | Refused] = deque()
        self.failure: Refused | None = None

    def pairs(self) -> Iterator[tuple[str, str]]:
        for _, item in self.records:
            if isinstance(item, Refused) and not self.skip:
                self.failure = item
                return
            self.pending.append(item)
            if isinstance(item, Example):
                yield item.question, item.context


def _verify(journal: Journal, records: Iterator[Record], digest: Any) -> None:
    """Check that the partial file's entries are this input's first records, in order, unchanged."""
    for i, entry in enumerate(journal.entries(), 1):
        item = next(records, (0, None))[1]
        if REFUSED in entry:
            ok = isinstance(item, Refused) and item.number == entry[REFUSED]["number"]
            had = f"a refusal of record {entry[REFUSED]['number']}"
        else:
            ok = isinstance(item, Example) and (item.id, item.question) == (entry["id"], entry["question"])
            had = f"the answer to id {entry['id']!r}"
        if not ok:
            now = "the end of the input" if item is None else (
                f"id {item.id!r}" if isinstance(item, Example) else f"a bad record ({item.reason})")
            raise ResumeError(f"{journal.path} is not a run over this input: its entry {i} is {had}, the input's "
                              f"record {i} is {now}; give the input it was made from, or delete it to start over")
        assert item is not None
        digest.update(_fingerprint(item))
    if journal.committed.records and digest.hexdigest() != journal.committed.sha256:
        raise ResumeError(f"{journal.path} answered questions that changed since (same ids, other text): delete it "
                          "to start over")


class _Writer:
    """Entries of the records as their answers come, committed every `chunk` answers."""

    def __init__(self, journal: Journal, chunk: int, digest: Any, progress: Progress):
        self.journal, self.chunk, self.digest, self.progress = journal, chunk, digest, progress
        self.done = replace(journal.committed)
        self.lines: list[str] = []
        self.in_chunk = 0

    def refusal(self, item: Refused) -> None:
        self._add(item, json.dumps({REFUSED: {"number": item.number, "id": item.id, "reason": item.reason}},
                                   ensure_ascii=False))
        self.done.refused += 1

    def answer(self, item: Example, result: AnswerResult) -> None:
        self._add(item, json.dumps(output_record(item.id, item.question, result), ensure_ascii=False))
        self.done.answers += 1
        self.in_chunk += 1
        if self.in_chunk == self.chunk:
            self.commit()

    def _add(self, item: Example | Refused, line: str) -> None:
        self.lines.append(line + "\n")
        self.digest.update(_fingerprint(item))
        self.done.records += 1

    def commit(self) -> None:
        if self.done.records == self.journal.committed.records:
            return
        self.done.sha256 = self.digest.hexdigest()
        with _SIGNALS.held():
            self.journal.commit(self.lines, self.done)
        self.done, self.lines, self.in_chunk = replace(self.journal.committed), [], 0
        self.progress.reach(self.done.records)


def _answer_rest(feed: _Feed, answer: Answerer, writer: _Writer) -> None:
    def leading_refusals() -> None:
        while feed.pending and isinstance(first := feed.pending[0], Refused):
            feed.pending.popleft()
            writer.refusal(first)

    for result in answer(feed.pairs(), writer.progress.advance):
        leading_refusals()
        item = feed.pending.popleft()
        assert isinstance(item, Example)
        writer.answer(item, result)
    leading_refusals()
    writer.commit()


def _finish(job: BatchJob, journal: Journal) -> None:
    """The output, the errors file and the predictions from the partial file, which then goes."""
    journal.finish(job.output, job.errors if job.on_error == "skip" else None, "line" if job.jsonl else "question")
    if job.predictions:
        write_predictions(job.predictions, ((row["id"], row["answer"]) for row in map(json.loads, journal.rows())))
    journal.close()
    job.partial.unlink()


def answered(job: BatchJob) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(id, best answer, the input's own answers) per row of a finished JSON Lines output, read back with the input."""
    examples = (item for _, item in _checked(job, iter_parsed(job.input)) if isinstance(item, Example))
    with open(job.output, encoding="utf-8") as f:
        for example, line in zip(examples, f):
            row = json.loads(line)
            yield row["id"], row["answer"], example.answer_texts


def run(job: BatchJob, answer: Answerer) -> dict[str, Any]:
    """Answer the job's input (the rest of it, resuming) and write its output; the summary of this run.

    Raises Stopped, its message naming the --resume command, for a bad record (on_error "stop"), SIGINT or SIGTERM,
    and a write that fails; ResumeError for a partial file this run cannot continue."""
    total = count_questions(job.input)
    journal = Journal.open(job.partial, job.settings, job.resume)
    try:
        digest = hashlib.sha256()
        records = _checked(job, iter_parsed(job.input))
        _verify(journal, records, digest)
        resumed = journal.committed.answers
        progress = Progress(total, journal.committed.records, job.progress_every_s)
        feed, writer = _Feed(records, job.on_error == "skip"), _Writer(journal, job.chunk, digest, progress)
        t0 = time.perf_counter()
        try:
            _answer_rest(feed, answer, writer)
        finally:
            progress.close()
        seconds = time.perf_counter() - t0
        done = journal.committed
        if feed.failure is not None:
            raise Stopped(f"{feed.failure.reason}; the {done.answers:,} answers before it are kept in {job.partial}: "
                          f"fix the input and continue with: {job.resume_command} (or add --on-error skip)", 2)
        _finish(job, journal)
    except Interrupted as e:
        done = journal.committed
        raise Stopped(f"interrupted by {e}: {done.answers:,} answers of {total:,} questions are kept in "
                      f"{job.partial}; continue with: {job.resume_command}",
                      128 + e.signum) from None
    except OSError as e:
        raise Stopped(f"{e}; the {journal.committed.answers:,} answers committed are kept in {job.partial}: once "
                      f"that is fixed (a full disk: free space), continue with: {job.resume_command}", 2) from None
    finally:
        journal.close()
    result = {**summary(done.answers - resumed, seconds), "total": done.answers}
    if resumed:
        result["resumed_from"] = resumed
    if job.on_error == "skip":
        result["refused"] = done.refused
    return result
