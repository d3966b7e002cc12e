"""How serving runs a batch of requests so that nothing fails silently: a failed batch is retried one request at a
time (an error reaches only the request that causes it), and an optional timeout bounds a model call that never
returns."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatchTimeoutError(TimeoutError):
    """A model call did not return within the batch timeout; its callers get this error instead of waiting."""


class RunnerError(RuntimeError):
    """The model runner raised a BaseException that is not an Exception (KeyboardInterrupt, SystemExit, ...)."""

    @classmethod
    def wrapping(cls, error: BaseException, after: str = "") -> "RunnerError":
        """This error for `error` (kept as its cause), its message naming what was raised."""
        detail = f": {error}" if str(error) else ""
        wrapped = cls(f"the model runner raised {type(error).__name__}{detail}{after}")
        wrapped.__cause__ = error
        return wrapped


def answer_each(items: Sequence[T], run: Callable[[list[T]], list[R]]) -> list[R | Exception]:
    """`run` over all items at once; if it raises an Exception, over each item alone, so each item gets its own
    result or the error it alone causes (in its place in the list). A timed-out batch is not retried: each item
    alone would wait as long again. BaseExceptions that are not Exceptions propagate to the caller."""
    try:
        return list(run(list(items)))
    except BatchTimeoutError as e:
        return [e] * len(items)
    except Exception as e:  # noqa: BLE001 - handed back in the items' places, never lost
        if len(items) == 1:
            return [e]
        log.debug("batch of %d failed (%s); running its items one by one", len(items), e)
        return [answer_each([item], run)[0] for item in items]


def call_with_timeout(call: Callable[[], R], timeout_s: float | None, what: str) -> R:
    """`call()`, or BatchTimeoutError when it has not returned within `timeout_s` (None: no limit).

    With a limit the call runs on a daemon thread that is abandoned on timeout: a hung device cannot be
    interrupted from Python, only kept from blocking its callers (and the process's exit)."""
    if timeout_s is None:
        return call()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="qa-engine-model-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.error("%s did not return within %g s; abandoning it", what, timeout_s)
        raise BatchTimeoutError(f"{what} did not return within the batch timeout of {timeout_s:g} s (a hung "
                                "device or runner?); the call was abandoned")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]
