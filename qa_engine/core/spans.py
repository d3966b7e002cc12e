"""Vectorized span decoding: start/end logits of a batch of windows -> best answer spans.

Scores follow the Hugging Face question-answering pipeline: a softmax over each window's context
tokens (and CLS) for start and for end, a span's score is p_start * p_end, spans run
start <= end < start + max_answer_length, and a question's windows are merged by summing the
scores of identical answer texts (case-insensitive, and in any Unicode normal form).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from qa_engine.core.types import AnswerDict
from qa_engine.core.unicode import nfc

MASKED_LOGIT = -10000.0


@dataclass
class WindowSpans:
    """The top-k token spans of each window: arrays [N, k]; invalid slots have score -inf."""

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    null_scores: np.ndarray  # [N] p_start[0] * p_end[0], the pipeline's no-answer score


def _log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.where(mask, logits.astype(np.float32, copy=False), np.float32(MASKED_LOGIT))
    x -= x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    softmax_mask: np.ndarray,
    answer_mask: np.ndarray,
    max_answer_length: int = 30,
    top_k: int = 1,
) -> WindowSpans:
    """Top-k spans per window over arrays [N, L], without a loop over windows or tokens.

    Spans are ranked by log p_start + log p_end (the order of p_start * p_end). For top_k == 1 a sliding
    maximum of the end scores gives every start its best end in log2(max_answer_length) passes; for more,
    one add and a partial sort over an [N, L, max_answer_length] grid do the work of the pipeline's L x L
    outer product. Ties go to the smallest start, then the smallest end, as in the pipeline's flat argmax.
    """
    n, length = start_logits.shape
    log_start = _log_softmax(start_logits, softmax_mask)
    log_end = _log_softmax(end_logits, softmax_mask)
    null_scores = np.exp(log_start[:, 0] + log_end[:, 0])
    m = min(max_answer_length, length)
    masked_start = np.where(answer_mask, log_start, -np.inf)
    # ends past the window fall on padding and are invalid
    masked_end = np.pad(np.where(answer_mask, log_end, -np.inf), ((0, 0), (0, m - 1)), constant_values=-np.inf)
    if top_k == 1:
        best = masked_start + _window_max(masked_end, m, length)
        starts = best.argmax(axis=1)[:, None]
        picked = np.take_along_axis(best, starts, axis=1)
        # the chosen start's end: the first position of its window holding the maximum
        ends = starts + sliding_window_view(masked_end, m, axis=1)[np.arange(n), starts[:, 0]].argmax(axis=1)[:, None]
    else:
        # cand[w, s, k]: the span from s to s + k
        cand = (masked_start[:, :, None] + sliding_window_view(masked_end, m, axis=1)).reshape(n, length * m)
        k = min(top_k, cand.shape[1])
        part = np.argpartition(-cand, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(cand, part, axis=1), axis=1, kind="stable")
        flat = np.take_along_axis(part, order, axis=1)
        picked = np.take_along_axis(cand, flat, axis=1)
        starts, lengths = np.divmod(flat, m)
        ends = starts + lengths
    scores = np.where(np.isfinite(picked), np.exp(picked), -np.inf)  # -inf: no valid span in that slot
    return WindowSpans(starts, ends, scores, null_scores)


def _window_max(values: np.ndarray, width: int, count: int) -> np.ndarray:
    """For i < count: the max of values[:, i : i + width], by doubling windows (log2(width) passes over [N, L])."""
    span = 1
    while span * 2 <= width:
        values = np.maximum(values[:, :-span], values[:, span:])
        span *= 2
    return np.maximum(values[:, :count], values[:, width - span : width - span + count])


@dataclass(frozen=True)
class Answer:
    answer: str
    score: float
    start: int
    end: int

    def as_dict(self) -> AnswerDict:
        return {"answer": self.answer, "score": self.score, "start": self.start, "end": self.end}


def merge_answers(
    spans: WindowSpans,
    offsets: np.ndarray,
    example_index: np.ndarray,
    contexts: Sequence[str],
    top_k: int = 1,
    handle_impossible_answer: bool = False,
) -> list[list[Answer]]:
    """Per example, its windows' spans as character answers, best first (the pipeline's merge rule)."""
    rows = np.arange(len(example_index))[:, None]
    char_starts = offsets[rows, spans.starts, 0]
    char_ends = offsets[rows, spans.ends, 1]
    valid = np.isfinite(spans.scores)
    n_examples = len(contexts)
    null = np.full(n_examples, np.inf, dtype=np.float64)
    np.minimum.at(null, example_index, spans.null_scores.astype(np.float64))
    counts = np.bincount(example_index, minlength=n_examples)
    results: list[list[Answer]] = [[] for _ in range(n_examples)]
    single = (counts[example_index] == 1) & valid[:, 0]
    if top_k == 1 and not handle_impossible_answer:
        # one window and one candidate: nothing to merge
        for w in np.flatnonzero(single):
            ex = int(example_index[w])
            s, e = int(char_starts[w, 0]), int(char_ends[w, 0])
            results[ex] = [Answer(contexts[ex][s:e], float(spans.scores[w, 0]), s, e)]
        pending = np.flatnonzero(~single)
    else:
        pending = np.arange(len(example_index))
    merged: dict[int, dict[str, list]] = {}
    for w in pending:
        ex = int(example_index[w])
        bucket = merged.setdefault(ex, {})
        for j in np.flatnonzero(valid[w]):
            s, e = int(char_starts[w, j]), int(char_ends[w, j])
            text = contexts[ex][s:e]
            key = nfc(text).lower()
            hit = bucket.get(key)
            if hit is None:
                bucket[key] = [float(spans.scores[w, j]), s, e, text]
            else:
                hit[0] += float(spans.scores[w, j])
    for ex, bucket in merged.items():
        answers = [Answer(text, score, s, e) for score, s, e, text in bucket.values()]
        if handle_impossible_answer:
            answers.append(Answer("", float(null[ex]), 0, 0))
        answers.sort(key=lambda a: a.score, reverse=True)
        results[ex] = answers[:top_k]
    if handle_impossible_answer:
        for example in np.flatnonzero(counts > 0):
            if not results[example]:
                results[example] = [Answer("", float(null[example]), 0, 0)]
    return results
