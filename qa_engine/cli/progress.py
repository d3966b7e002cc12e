"""Progress of a job of known size: a tqdm bar (count, percentage, rate, ETA) on a terminal, and elsewhere (a
scheduler, nohup, CI) a plain log line every few seconds, so a long job's log shows where it is."""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from typing import IO, Any

log = logging.getLogger("qa_engine.progress")


class Progress:
    """Questions done out of `total`, counted from `done` (what a resumed job already has)."""

    def __init__(self, total: int, done: int = 0, every_s: float = 30.0, stream: IO[str] | None = None):
        stream = sys.stderr if stream is None else stream
        self.total, self.start, self.done, self.every_s = total, done, float(done), every_s
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="q", desc="answering", file=stream, dynamic_ncols=True)

    def advance(self, questions: float) -> None:
        """Add a (possibly fractional) number of questions: a model call's share of its chunk."""
        self._show(self.done + questions)

    def reach(self, done: int) -> None:
        """Set the exact count, as of a commit."""
        self._show(float(done))

    def _show(self, done: float) -> None:
        self.done = min(done, float(self.total))
        if self.bar is not None:
            self.bar.n = round(self.done, 1)
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            log.info(self.line(now - self.t0))

    def line(self, elapsed: float) -> str:
        """'answered 1,234 of 5,774 questions (21.4%), 5.9 questions/s, ETA 0:12:50'."""
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = str(timedelta(seconds=round((self.total - self.done) / rate))) if rate > 0 else "unknown"
        share = 100 * self.done / self.total if self.total else 100.0
        return (f"answered {int(self.done):,} of {self.total:,} questions ({share:.1f}%), "
                f"{rate:.1f} questions/s, ETA {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
