"""Window-building micro-benchmark: `WindowTokenizer.windows` against the Rust encode calls inside it."""
from __future__ import annotations

import logging
from pathlib import Path

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import WindowTokenizer

from .hardware import best_seconds
from .workload import Workload

log = logging.getLogger(__name__)

QUESTIONS = 2048
TARGET_RATIO = 1.5  # windows() at most 1.5x the time of its Rust encode calls (the tokenizer's own cost is the floor)


def windows_benchmark(tokenizer_file: Path, work: Workload, window: WindowConfig = WindowConfig(),
                      repeats: int = 5) -> dict:
    """Best-of-`repeats` seconds of windows() and of the two Rust encode calls it makes, on the same pairs."""
    wt = WindowTokenizer.from_file(tokenizer_file, window)
    questions, contexts = list(work.questions), list(work.contexts)
    unique = list(dict.fromkeys(contexts))

    def encode() -> None:  # the Rust calls windows() makes: contexts with offsets, questions without
        wt.tokenizer.encode_batch(unique, add_special_tokens=False)
        wt.tokenizer.encode_batch_fast(questions, add_special_tokens=False)

    n_windows = len(wt.windows(questions, contexts))
    encode_s = best_seconds(encode, repeats)
    windows_s = best_seconds(lambda: wt.windows(questions, contexts), repeats)
    log.info("windows: %.1f ms for %d questions (%d windows), Rust encode alone %.1f ms (%.2fx)",
             windows_s * 1e3, len(questions), n_windows, encode_s * 1e3, windows_s / encode_s)
    return {"questions": len(questions), "contexts": len(unique), "windows": n_windows,
            "encode_ms": encode_s * 1e3, "windows_ms": windows_s * 1e3, "ratio": windows_s / encode_s,
            "target_ratio": TARGET_RATIO}
