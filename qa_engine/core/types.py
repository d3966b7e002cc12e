"""The answer schema the engine returns: the Hugging Face question-answering pipeline's dict, typed."""
from __future__ import annotations

from typing import List, TypedDict, Union


class AnswerDict(TypedDict):
    """One answer: `answer == context[start:end]`; score is the pipeline's p_start * p_end (summed over windows)."""

    answer: str
    score: float
    start: int
    end: int


# What one question gets back: one answer, or a list of them (best first) when top_k > 1.
AnswerResult = Union[AnswerDict, List[AnswerDict]]
