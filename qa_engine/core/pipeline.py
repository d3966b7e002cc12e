"""From windows to answers through any model runner: the model inputs of a call, all logits of a set of windows,
and the answers those logits give. The engine's pipelined loop, export validation and training evaluation share
these, so a window is fed, run and decoded the same way everywhere."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from qa_engine.core.buckets import Shapes, plan_batches
from qa_engine.core.config import DecodeConfig
from qa_engine.core.runner import Logits, ModelRunner
from qa_engine.core.spans import MASKED_LOGIT, Answer, best_spans, merge_answers
from qa_engine.core.windows import Windows


def model_feed(w: Windows, rows: np.ndarray, width: int, input_names: Sequence[str], pad_id: int,
               shapes: Shapes = Shapes()) -> dict[str, np.ndarray]:
    """A call's inputs: `rows` padded to the shapes' row count with copies of the first row, and columns to
    `width` (which may exceed the longest window) with the pad id in input_ids and zeros elsewhere."""
    n = shapes.rows(len(rows))
    if n > len(rows):
        rows = np.concatenate([rows, np.full(n - len(rows), rows[0])])
    cols = min(width, w.input_ids.shape[1])
    arrays = {"input_ids": w.input_ids, "attention_mask": w.attention_mask, "token_type_ids": w.token_type_ids}
    feed = {}
    for name in input_names:
        out = np.full((n, width), pad_id if name == "input_ids" else 0, dtype=np.int64)
        out[:, :cols] = arrays[name][rows, :cols]
        feed[name] = out
    return feed


def window_feeds(w: Windows, input_names: Sequence[str], pad_id: int,
                 batch_size: int = 16) -> Iterator[tuple[np.ndarray, int, dict[str, np.ndarray]]]:
    """(rows, width, inputs) of length-bucketed model calls covering every window once."""
    for rows, width in plan_batches(w.lengths, batch_size):
        width = min(width, w.input_ids.shape[1])
        yield rows, width, model_feed(w, rows, width, input_names, pad_id)


def run_windows(runner: ModelRunner, w: Windows, pad_id: int, batch_size: int = 16) -> Logits:
    """Start and end logits [N, L] of every window (zeros past each window's end), in length-bucketed calls."""
    start = np.zeros(w.input_ids.shape, dtype=np.float32)
    end = np.zeros(w.input_ids.shape, dtype=np.float32)
    for rows, width, feed in window_feeds(w, runner.input_names, pad_id, batch_size):
        start[rows, :width], end[rows, :width] = runner.run(feed)
    return start, end


def decode_windows(w: Windows, contexts: Sequence[str], start_logits: np.ndarray, end_logits: np.ndarray,
                   decode: DecodeConfig = DecodeConfig()) -> list[list[Answer]]:
    """Each question's answers, best first, from its windows' logits ([N, <= L]: narrower ones count as masked)."""
    start, end = (_widen(x, w.input_ids.shape[1]) for x in (start_logits, end_logits))
    spans = best_spans(start, end, w.softmax_mask(), w.context_mask, decode.max_answer_length, decode.top_k)
    return merge_answers(spans, w.offsets, w.example_index, contexts, decode.top_k, decode.handle_impossible_answer)


def _widen(logits: np.ndarray, width: int) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)[:, :width]
    if logits.shape[1] == width:
        return logits
    return np.pad(logits, ((0, 0), (0, width - logits.shape[1])), constant_values=MASKED_LOGIT)
