"""Training labels: answer offsets checked against their context (unique near misses repaired), and the token
span of each window that holds its example's answer."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from qa_engine.core.windows import Windows
from qa_engine.formats.squad import DataError, Example, load_examples

log = logging.getLogger(__name__)

REPAIR_RADIUS = 64  # characters around a wrong answer_start searched for the answer text


def load_labelled(source: str | Path, split: str = "train", strict: bool = False) -> list[Example]:
    """`load_examples` with every answer offset checked against its context (see check_answers)."""
    return check_answers(load_examples(source, split), strict=strict, source=str(source))


def align_answer(context: str, text: str, start: int) -> int | None:
    """The start where `text` really is: `start` if right, the single nearby occurrence if unique, else None."""
    if not text:
        return None
    if 0 <= start and context[start : start + len(text)] == text:
        return start
    lo = max(0, start - REPAIR_RADIUS)
    hi = min(len(context), start + len(text) + REPAIR_RADIUS)
    found = []
    pos = context.find(text, lo, hi)
    while pos != -1:
        found.append(pos)
        pos = context.find(text, pos + 1, hi)
    return found[0] if len(found) == 1 else None


def check_answers(examples: Iterable[Example], strict: bool = False, source: str = "data") -> list[Example]:
    """Keep examples whose answers index their context; repair unique near misses, drop or fail on the rest."""
    kept: list[Example] = []
    repaired: list[str] = []
    dropped: list[str] = []
    for ex in examples:
        starts: list[int] = []
        texts: list[str] = []
        bad = False
        for text, start in zip(ex.answer_texts, ex.answer_starts):
            fixed = align_answer(ex.context, text, start)
            if fixed is None:
                bad = True
                continue
            if fixed != start:
                repaired.append(ex.id)
            texts.append(text)
            starts.append(fixed)
        if bad or not texts:
            msg = (f"{source}: id {ex.id}: answer {ex.answer_texts!r} at {ex.answer_starts} "
                   "does not match the context")
            if strict:
                raise DataError(msg)
            log.warning(msg)
            if not texts:
                dropped.append(ex.id)
                continue
        kept.append(Example(ex.id, ex.question, ex.context, tuple(texts), tuple(starts), ex.title))
    if repaired:
        log.warning("%s: repaired %d misaligned answer starts (ids: %s)", source, len(repaired),
                    ", ".join(repaired[:20]))
    if dropped:
        log.warning("%s: dropped %d questions with no aligned answer (ids: %s)", source, len(dropped),
                    ", ".join(dropped[:20]))
    if not kept:
        raise DataError(f"{source}: no usable examples (every question lacks an aligned answer)")
    return kept


def answer_char_spans(texts: Sequence[str], starts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each answer with surrounding whitespace trimmed: tokens never cover whitespace."""
    lo = np.array([s + len(t) - len(t.lstrip()) for t, s in zip(texts, starts)], dtype=np.int64)
    hi = np.array([s + len(t.rstrip()) for t, s in zip(texts, starts)], dtype=np.int64)
    return lo, hi


def answer_token_spans(windows: Windows, char_starts: np.ndarray, char_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training labels: per window, the token span covering [char_start, char_end) of its example's answer
    when the whole answer lies inside the window's context, else (0, 0), the CLS position.

    char_starts/char_ends are per example; the span is the last context token starting at or before the
    answer start and the first context token ending at or after the answer end (HF run_qa's rule).
    """
    a = char_starts[windows.example_index][:, None]
    b = char_ends[windows.example_index][:, None]
    ctx = windows.context_mask
    tok_start = windows.offsets[..., 0]
    tok_end = windows.offsets[..., 1]
    big = np.iinfo(np.int32).max
    first_ctx = np.where(ctx, tok_start, big).min(axis=1)
    last_ctx = np.where(ctx, tok_end, -1).max(axis=1)
    inside = (first_ctx <= a[:, 0]) & (last_ctx >= b[:, 0])
    cols = np.arange(ctx.shape[1])[None, :]
    start_tok = np.where(ctx & (tok_start <= a), cols, -1).max(axis=1)
    end_tok = np.where(ctx & (tok_end >= b), cols, big).min(axis=1)
    start_tok = np.where(inside, start_tok, 0)
    end_tok = np.where(inside, end_tok, 0)
    return start_tok.astype(np.int64), end_tok.astype(np.int64)
