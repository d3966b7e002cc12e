"""Writing flat QA records as JSON Lines or nested SQuAD v1.1 JSON, atomically (qa_engine.artifacts.atomic)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from qa_engine.artifacts.atomic import atomic_open


def write_jsonl(records: Iterable[dict], path: str | Path) -> None:
    """Write flat records as JSON Lines, atomically."""
    with atomic_open(path) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_squad_json(records: Iterable[dict], path: str | Path) -> None:
    """Write flat records as nested SQuAD v1.1 JSON (one paragraph per distinct context of a title), atomically."""
    articles: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        answers = zip(r["answers"]["text"], r["answers"]["answer_start"])
        qa = {"id": r["id"], "question": r["question"], "answers": [{"text": t, "answer_start": s} for t, s in answers]}
        articles.setdefault(r.get("title", ""), {}).setdefault(r["context"], []).append(qa)
    doc = {
        "version": "1.1",
        "data": [
            {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()
        ],
    }
    with atomic_open(path) as f:
        json.dump(doc, f, ensure_ascii=False)
