"""Scoring a model's logits over an evaluation set: decode with qa_engine.spans, score with qa_engine.metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qa_engine.features import WindowTokenizer, Windows
from qa_engine.metrics import Score, evaluate
from qa_engine.spans import MASKED_LOGIT, best_spans, merge_answers
from qa_engine.squad import Example, references

from .data import WindowDataset, inference_dataset


@dataclass
class EvalSet:
    """Labelled examples with their model windows; questions that fit no window count as unanswered."""

    examples: list[Example]
    windows: Windows
    dataset: WindowDataset
    answered: list[Example]  # the examples that have windows, in `windows.example_index` order

    @classmethod
    def build(cls, examples: Sequence[Example], windower: WindowTokenizer, input_names: Sequence[str]) -> "EvalSet":
        dataset, windows, answered = inference_dataset(examples, windower, input_names)
        return cls(list(examples), windows, dataset, answered)

    def predictions(self, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_length: int) -> dict[str, str]:
        """id -> best answer text from per-window logits [N, <=L] (narrower batches padded by the caller)."""
        width = self.windows.input_ids.shape[1]
        start_logits, end_logits = (_widen(x, width) for x in (start_logits, end_logits))
        spans = best_spans(start_logits, end_logits, self.windows.softmax_mask(), self.windows.context_mask,
                           max_answer_length, top_k=1)
        answers = merge_answers(spans, self.windows.offsets, self.windows.example_index,
                                [ex.context for ex in self.answered], top_k=1)
        return {ex.id: found[0].answer for ex, found in zip(self.answered, answers) if found}

    def score(self, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_length: int,
              metric: str = "korquad") -> Score:
        """EM/F1 over all examples (those without a prediction score 0)."""
        return evaluate(references(self.examples), self.predictions(start_logits, end_logits, max_answer_length),
                        metric)


def _widen(logits: np.ndarray, width: int) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)[:, :width]
    if logits.shape[1] == width:
        return logits
    return np.pad(logits, ((0, 0), (0, width - logits.shape[1])), constant_values=MASKED_LOGIT)
