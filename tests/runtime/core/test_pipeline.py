"""The one windows-to-answers path: what export validation and training evaluation run (qa_engine.core.pipeline)
makes the engine's model calls and gives the engine's answers."""
from __future__ import annotations

import numpy as np
import pytest

from qa_engine import QAEngine
from qa_engine.core.config import DecodeConfig, EngineSettings
from qa_engine.core.pipeline import decode_logits, run_windows
from qa_engine.core.runner import CallRunner
from tests.fixtures import qa_pairs


def _recording(engine: QAEngine, shapes: list[tuple[int, ...]]) -> CallRunner:
    """The engine's model, recording each call's input shape."""

    def run(feed: dict[str, np.ndarray]):
        shapes.append(feed["input_ids"].shape)
        return engine.runner.run(feed)

    return CallRunner(run, engine.runner.input_names, engine.settings.device)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_run_windows_makes_the_engines_calls_and_answers(engine: QAEngine, device: str) -> None:
    """Same call shapes (token budget on CPU, fixed shapes on CUDA), same answers and scores, for questions the
    engine answers in one chunk (its first chunk is one batch)."""
    pairs = qa_pairs(6, seed=3)
    questions = [q for q, _, _ in pairs]
    contexts = [c * (1 + 4 * i) for i, (_, c, _) in enumerate(pairs)]  # 1 to 9 windows each: several widths
    settings = EngineSettings(window=engine.settings.window, device=device, batch_size=6)
    engine_calls: list[tuple[int, ...]] = []
    mine = QAEngine(_recording(engine, engine_calls), engine.tokenizer, settings)
    expected = mine.answer_batch(questions, contexts)

    pipeline_calls: list[tuple[int, ...]] = []
    windows = engine.tokenizer.windows(questions, contexts)
    runner = _recording(engine, pipeline_calls)
    (start, end), answers = run_windows(runner, windows, contexts, settings, engine.tokenizer.template.pad_id)

    assert len(set(engine_calls)) > 1
    assert sorted(pipeline_calls) == sorted(engine_calls)
    got = [a[0].as_dict() if a else None for a in answers]
    assert [g["answer"] for g in got] == [e["answer"] for e in expected]
    assert [(g["start"], g["end"]) for g in got] == [(e["start"], e["end"]) for e in expected]
    np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in expected], rtol=1e-6)
    # the logits kept are the decoded ones: decoding them at once gives the same answers
    again = decode_logits(windows, contexts, start, end, DecodeConfig())
    assert [a[0].answer for a in again] == [g["answer"] for g in got]
