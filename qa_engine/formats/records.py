"""What answering a file writes: one output row per question, the {id: answer} predictions file, the summary."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from qa_engine.artifacts.atomic import atomic_open
from qa_engine.core.types import AnswerResult


def output_record(qid: str, question: str, result: AnswerResult) -> dict[str, Any]:
    """One output row: id, question, the best answer's fields, and the top_k list when more than one was asked."""
    flat: dict[str, Any] = {**result} if isinstance(result, dict) else {**result[0], "top_k": result}
    return {"id": qid, "question": question, **flat}


def write_predictions(path: str | Path, predictions: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """{question id: best answer text}, the input of `qa-engine evaluate`, written atomically. Pairs are streamed
    to the file (the layout json.dump(indent=1) gives), so a job of any length holds none of them."""
    pairs = predictions.items() if isinstance(predictions, Mapping) else predictions
    with atomic_open(path) as f:
        f.write("{")
        sep = "\n "
        for qid, answer in pairs:
            f.write(f"{sep}{json.dumps(qid, ensure_ascii=False)}: {json.dumps(answer, ensure_ascii=False)}")
            sep = ",\n "
        f.write("\n}" if sep != "\n " else "}")


def write_parquet(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Output rows as a Parquet table, written atomically (needs pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_open(path, "wb", encoding=None) as f:
        pq.write_table(pa.Table.from_pylist(list(records)), f)


def summary(questions: int, seconds: float) -> dict[str, Any]:
    """The line `qa-engine batch` prints: questions answered, seconds spent answering, questions per second."""
    return {"questions": questions, "seconds": round(seconds, 3),
            "questions_per_s": round(questions / seconds, 2) if seconds else 0.0}
