"""Settings shared by training, export and the engine, with the reference task's defaults."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowConfig:
    """How a (question, context) pair is cut into model windows."""

    max_length: int = 384
    doc_stride: int = 128

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not 0 <= self.doc_stride < self.max_length:
            raise ValueError(
                f"doc_stride must be in [0, max_length), got {self.doc_stride} for max_length {self.max_length}"
            )


@dataclass(frozen=True)
class DecodeConfig:
    """How logits become answer spans (the Hugging Face pipeline's knobs).

    Each window contributes its top_k spans before the merge across windows, as in the pipeline; a larger
    per-window shortlist (run_qa's n_best) would change which texts get their scores summed."""

    max_answer_length: int = 30
    top_k: int = 1
    handle_impossible_answer: bool = False

    def __post_init__(self) -> None:
        if self.max_answer_length < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {self.max_answer_length}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
