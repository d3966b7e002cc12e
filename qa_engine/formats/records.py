"""What answering a file writes: one output row per question, the {id: answer} predictions file, the summary."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa_engine.artifacts.atomic import atomic_open
from qa_engine.core.types import AnswerResult


def output_record(qid: str, question: str, result: AnswerResult) -> dict[str, Any]:
    """One output row: id, question, the best answer's fields, and the top_k list when more than one was asked."""
    flat: dict[str, Any] = {**result} if isinstance(result, dict) else {**result[0], "top_k": result}
    return {"id": qid, "question": question, **flat}


def write_predictions(path: str | Path, predictions: dict[str, str]) -> None:
    """{question id: best answer text}, the input of `qa-engine evaluate`, written atomically."""
    with atomic_open(path) as f:
        json.dump(predictions, f, ensure_ascii=False, indent=1)


def summary(questions: int, seconds: float) -> dict[str, Any]:
    """The line `qa-engine batch` prints: questions answered, seconds spent answering, questions per second."""
    return {"questions": questions, "seconds": round(seconds, 3),
            "questions_per_s": round(questions / seconds, 2) if seconds else 0.0}
