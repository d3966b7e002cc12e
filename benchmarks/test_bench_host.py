"""The engine's host work at the GPU batch size in CUDA shapes, with an instant model and beside a simulated one."""
from __future__ import annotations

import pytest
from qa_engine.benchmarks.host import BATCH, H200_SECONDS_PER_TOKEN, SleepRunner

from qa_engine.core.windows import WindowTokenizer
from qa_engine.engine import EngineSettings, QAEngine


@pytest.mark.parametrize("seconds_per_token", [0.0, H200_SECONDS_PER_TOKEN], ids=["instant", "simulated-h200"])
def test_host_pipeline(benchmark, tokenizer_dir, workload, seconds_per_token):
    benchmark.group = "host"
    engine = QAEngine(SleepRunner(seconds_per_token), WindowTokenizer.from_file(tokenizer_dir / "tokenizer.json"),
                      EngineSettings(batch_size=BATCH, precision="fp16", device="cuda"))
    answers = benchmark(engine.answer_batch, list(workload.questions), list(workload.contexts))
    assert len(answers) == len(workload)
