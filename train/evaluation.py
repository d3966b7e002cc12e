"""Scoring a model's logits over an evaluation set: decoded as the engine decodes (qa_engine.core.pipeline), scored
with qa_engine.formats.metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qa_engine.core.config import DecodeConfig
from qa_engine.core.pipeline import decode_logits
from qa_engine.core.windows import Windows, WindowTokenizer
from qa_engine.formats.metrics import Score, evaluate
from qa_engine.formats.squad import Example, references

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
        """id -> best answer text from per-window logits [N, <=L] (narrower ones count as masked)."""
        answers = decode_logits(self.windows, [ex.context for ex in self.answered], start_logits, end_logits,
                                 DecodeConfig(max_answer_length=max_answer_length))
        return {ex.id: found[0].answer for ex, found in zip(self.answered, answers) if found}

    def score(self, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_length: int,
              metric: str = "korquad") -> Score:
        """EM/F1 over all examples (those without a prediction score 0)."""
        return evaluate(references(self.examples), self.predictions(start_logits, end_logits, max_answer_length),
                        metric)
