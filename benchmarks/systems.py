"""The systems under test behind one interface: answer a batch of questions and count what the model ran."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qa_engine.config import DecodeConfig, WindowConfig

from .flops import TokenCounts

log = logging.getLogger(__name__)

WINDOW = WindowConfig()
DECODE = DecodeConfig()


@dataclass(frozen=True)
class SystemSpec:
    """A system's name, the precision whose GEMM peak bounds it, and whether it is a peer or qa-engine."""

    name: str
    family: str  # "hf", "optimum" or "engine"
    precision: str  # "fp32", "bf16" or "int8"
    label: str

    @property
    def peer(self) -> bool:
        return self.family != "engine"


SYSTEMS: dict[str, SystemSpec] = {
    s.name: s
    for s in (
        SystemSpec("hf-fp32", "hf", "fp32", "HF pipeline, PyTorch fp32"),
        SystemSpec("hf-bf16", "hf", "bf16", "HF pipeline, PyTorch bf16"),
        SystemSpec("optimum-fp32", "optimum", "fp32", "HF pipeline, Optimum ORT fp32"),
        SystemSpec("optimum-int8", "optimum", "int8", "HF pipeline, Optimum ORT dynamic int8"),
        SystemSpec("engine-fp32", "engine", "fp32", "qa-engine fp32 (CPU)"),
        SystemSpec("engine-int8", "engine", "int8", "qa-engine int8 (CPU)"),
    )
}
BASELINE = "hf-fp32"


def _answers(result: dict | list[dict]) -> list[dict]:
    """The pipeline returns a bare dict for one question and a list for several."""
    return [result] if isinstance(result, dict) else list(result)


class Runner:
    """A loaded system: `answer(questions, contexts, batch_size)` -> one answer dict per question, in order."""

    def __init__(self, spec: SystemSpec, answer: Callable[[Sequence[str], Sequence[str], int], list[dict]],
                 counts: TokenCounts, profile: dict | None = None):
        self.spec = spec
        self._answer = answer
        self.counts = counts
        self.profile = profile

    def answer(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int) -> list[dict]:
        return self._answer(questions, contexts, batch_size)


def _hf_pipeline_runner(spec: SystemSpec, pipe, counts: TokenCounts) -> Runner:
    """Count every model call through the pipeline's `_forward`, then call it as users do (align_to_words=False)."""
    forward = pipe._forward

    def counted_forward(inputs, **kwargs):
        counts.add(np.asarray(inputs["attention_mask"]))
        return forward(inputs, **kwargs)

    pipe._forward = counted_forward

    def answer(questions, contexts, batch_size):
        result = pipe(
            question=list(questions), context=list(contexts), batch_size=batch_size,
            max_seq_len=WINDOW.max_length, doc_stride=WINDOW.doc_stride,
            max_answer_len=DECODE.max_answer_length, align_to_words=False,
        )
        return _answers(result)

    return Runner(spec, answer, counts)


def load_hf(spec: SystemSpec, model_dir: Path) -> Runner:
    """transformers pipeline("question-answering") on PyTorch; bf16 casts the weights (AMX / AVX512-BF16 kernels)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, local_files_only=True).eval()
    if spec.precision == "bf16":
        model = model.to(torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    # a generic fast tokenizer also emits token_type_ids, which DistilBERT's forward() rejects
    accepted = inspect.signature(model.forward).parameters
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n in accepted]
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
    return _hf_pipeline_runner(spec, pipe, TokenCounts())


def load_optimum(spec: SystemSpec, model_dir: Path, file_name: str) -> Runner:
    """Optimum's ORTModelForQuestionAnswering inside Optimum's pipeline, CPU provider, one thread per core."""
    from optimum.onnxruntime import ORTModelForQuestionAnswering
    from optimum.pipelines import pipeline
    from transformers import AutoTokenizer

    from qa_engine.runtime import session_options

    model = ORTModelForQuestionAnswering.from_pretrained(
        model_dir, file_name=file_name, provider="CPUExecutionProvider", session_options=session_options(),
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
    return _hf_pipeline_runner(spec, pipe, TokenCounts())


class CountingSession:
    """Wraps an onnxruntime session to count the shapes the engine feeds it."""

    def __init__(self, session, counts: TokenCounts):
        self._session = session
        self._counts = counts

    def run(self, output_names, feed, *args, **kwargs):
        self._counts.add(feed["attention_mask"])
        return self._session.run(output_names, feed, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


def load_engine(spec: SystemSpec, artifact_dir: Path) -> Runner:
    """qa-engine on the CPU provider at the spec's precision, with its per-stage profile."""
    from qa_engine.engine import QAEngine

    engine = QAEngine.from_pretrained(artifact_dir, provider="cpu", precision=spec.precision)
    counts, profile = TokenCounts(), {}
    engine.session = CountingSession(engine.session, counts)

    def answer(questions, contexts, batch_size):
        return engine.answer_batch(questions, contexts, batch_size=batch_size, profile=profile)

    return Runner(spec, answer, counts, profile)
