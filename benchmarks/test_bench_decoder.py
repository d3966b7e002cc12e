"""Decoder speed: qa_engine.core.spans on a whole batch vs the HF pipeline's per-question postprocess (B=64, L=384)."""
from __future__ import annotations

import pytest
from qa_engine.benchmarks.decoder import DecoderCase, build_case

# the pipeline's np.array(p_mask) on a torch tensor warns once per window under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
pytest.importorskip("transformers.pipelines.question_answering",
                    reason="transformers removed its question-answering pipeline in 5.3")


@pytest.fixture(scope="module")
def case(tokenizer_dir, workload) -> DecoderCase:
    case = build_case(tokenizer_dir, workload, n_windows=64, width=384)
    case.check()
    return case


def test_decode_qa_engine(benchmark, case):
    benchmark.group = "decoder B=64 L=384"
    assert len(benchmark(case.engine)) == case.questions


def test_decode_hf_pipeline_per_example(benchmark, case):
    benchmark.group = "decoder B=64 L=384"
    assert len(benchmark(case.hf)) == case.questions
