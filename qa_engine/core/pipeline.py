"""From windows to answers through any model runner, the one path the engine, export validation and training
evaluation share: calls planned with the engine's settings (`plan_calls`), each call's inputs (`model_feed`),
its logits decoded into spans as they arrive (`WindowAnswers`), and the merged answers."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from qa_engine.core.buckets import Shapes, plan_batches
from qa_engine.core.config import DecodeConfig, EngineSettings
from qa_engine.core.runner import Logits, ModelRunner
from qa_engine.core.spans import Answer, WindowSpans, best_spans, merge_answers
from qa_engine.core.windows import Windows

Call = tuple[np.ndarray, int]  # a model call: the window rows it holds and its padded width


def plan_calls(w: Windows, settings: EngineSettings, batch_size: int | None = None) -> list[Call]:
    """The model calls the engine makes for these windows: length-bucketed under its token budget, in its shapes."""
    batch_size = batch_size or settings.batch_size
    return list(plan_batches(w.lengths, batch_size, settings.budget(batch_size), settings.shapes(batch_size)))


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


class WindowAnswers:
    """A set of windows being answered: each call's logits are decoded into its rows' spans as they arrive
    (padding rows and columns dropped); once every row is in, the spans merge into each question's answers."""

    def __init__(self, windows: Windows, contexts: Sequence[str], decode: DecodeConfig):
        n, k = len(windows), decode.top_k
        self.windows, self.contexts, self.decode = windows, contexts, decode
        self.softmax_mask = windows.softmax_mask()
        self.spans = WindowSpans(np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=np.int64),
                                 np.full((n, k), -np.inf, dtype=np.float32), np.zeros(n, dtype=np.float32))
        self.calls_left = 0

    def add(self, rows: np.ndarray, start_logits: np.ndarray, end_logits: np.ndarray) -> None:
        """Decode one call's logits ([>= len(rows), width]) into the spans of `rows`."""
        w, s, cols = self.windows, self.spans, min(start_logits.shape[1], self.windows.input_ids.shape[1])
        n = len(rows)
        ws = best_spans(start_logits[:n, :cols], end_logits[:n, :cols], self.softmax_mask[rows, :cols],
                        w.context_mask[rows, :cols], self.decode.max_answer_length, self.decode.top_k)
        s.starts[rows], s.ends[rows], s.scores[rows], s.null_scores[rows] = ws.starts, ws.ends, ws.scores, ws.null_scores
        self.calls_left -= 1

    def answers(self) -> list[list[Answer]]:
        """Each question's answers, best first."""
        d = self.decode
        return merge_answers(self.spans, self.windows.offsets, self.windows.example_index, self.contexts,
                             d.top_k, d.handle_impossible_answer)


def run_windows(runner: ModelRunner, w: Windows, contexts: Sequence[str], settings: EngineSettings,
                pad_id: int, batch_size: int | None = None) -> tuple[Logits, list[list[Answer]]]:
    """Every window through `runner` in the engine's calls: their logits [N, L] (zeros past each window's end)
    and each question's answers, decoded per call as the engine decodes them."""
    batch_size = batch_size or settings.batch_size
    shapes = settings.shapes(batch_size)
    start = np.zeros(w.input_ids.shape, dtype=np.float32)
    end = np.zeros(w.input_ids.shape, dtype=np.float32)
    answers = WindowAnswers(w, contexts, settings.decode)
    for rows, width in plan_calls(w, settings, batch_size):
        s, e = runner.run(model_feed(w, rows, width, runner.input_names, pad_id, shapes))
        cols = min(width, w.input_ids.shape[1])
        start[rows, :cols], end[rows, :cols] = s[: len(rows), :cols], e[: len(rows), :cols]
        answers.add(rows, s, e)
    return (start, end), answers.answers()


def decode_logits(w: Windows, contexts: Sequence[str], start_logits: np.ndarray, end_logits: np.ndarray,
                  decode: DecodeConfig = DecodeConfig()) -> list[list[Answer]]:
    """Each question's answers from logits a model computed for all windows at once ([N, <= L])."""
    answers = WindowAnswers(w, contexts, decode)
    answers.add(np.arange(len(w)), np.asarray(start_logits, np.float32), np.asarray(end_logits, np.float32))
    return answers.answers()
