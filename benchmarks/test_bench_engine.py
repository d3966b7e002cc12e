"""qa-engine end to end on the tiny model: answer_batch per precision and batch size, and tokenization alone."""
from __future__ import annotations

import pytest

from qa_engine.engine import QAEngine

QUESTIONS = 64


@pytest.fixture(scope="module", params=["fp32", "int8"])
def engine(request, quick_distilbert_artifact) -> QAEngine:
    return QAEngine.from_pretrained(quick_distilbert_artifact, provider="cpu", precision=request.param)


@pytest.mark.parametrize("batch_size", [1, 8, 32, 64])
def test_answer_batch(benchmark, engine, workload, batch_size):
    benchmark.group = f"engine {engine.settings.precision}, {QUESTIONS} questions"
    work = workload.head(QUESTIONS)
    answers = benchmark(engine.answer_batch, work.questions, work.contexts, batch_size=batch_size)
    assert len(answers) == QUESTIONS


def test_tokenize_windows(benchmark, engine, workload):
    benchmark.group = "tokenize"
    windows = benchmark(engine.tokenizer.windows, workload.questions, workload.contexts)
    assert len(windows) >= len(workload)
