"""The systems under test behind one interface: answer a batch of questions and count what the model ran."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qa_engine.core.config import DecodeConfig, WindowConfig
from qa_engine.core.runner import Logits, ModelRunner

from .flops import TokenCounts

log = logging.getLogger(__name__)

WINDOW = WindowConfig()
DECODE = DecodeConfig()


@dataclass(frozen=True)
class SystemSpec:
    """A system's name, device, the precision whose matrix peak bounds it, and whether it is a peer or qa-engine."""

    name: str
    family: str  # "hf", "optimum", "openvino" or "engine"
    precision: str  # "fp32", "bf16", "fp16" or "int8"
    label: str
    device: str = "cpu"  # "cpu" or "cuda"
    peak_key: str | None = None  # the peak that bounds it when not its precision's (TF32 math on fp32 weights)

    @property
    def peer(self) -> bool:
        return self.family != "engine"

    @property
    def peak(self) -> str:
        """Key of the matrix peak (hardware.gemm_peaks / cuda_peaks) this system's FLOP share is taken of."""
        return self.peak_key or self.precision


SYSTEMS: dict[str, SystemSpec] = {
    s.name: s
    for s in (
        SystemSpec("hf-fp32", "hf", "fp32", "HF pipeline, PyTorch fp32"),
        SystemSpec("hf-bf16", "hf", "bf16", "HF pipeline, PyTorch bf16"),
        SystemSpec("optimum-fp32", "optimum", "fp32", "HF pipeline, Optimum ORT fp32"),
        SystemSpec("optimum-int8", "optimum", "int8", "HF pipeline, Optimum ORT dynamic int8"),
        SystemSpec("openvino-fp32", "openvino", "fp32", "OpenVINO fp32 on qa-engine's windows"),
        SystemSpec("openvino-int8", "openvino", "int8", "OpenVINO NNCF int8 on qa-engine's windows"),
        SystemSpec("openvino-bf16", "openvino", "bf16", "OpenVINO bf16 on qa-engine's windows"),
        SystemSpec("engine-fp32", "engine", "fp32", "qa-engine fp32 (CPU)"),
        SystemSpec("engine-int8", "engine", "int8", "qa-engine int8 (CPU)"),
        SystemSpec("hf-cuda-fp16", "hf", "fp16", "HF pipeline, PyTorch fp16 (CUDA)", "cuda"),
        SystemSpec("hf-cuda-fp32", "hf", "fp32", "HF pipeline, PyTorch fp32 (CUDA)", "cuda"),
        # onnxruntime's CUDA provider runs fp32 MatMuls in TF32 unless told not to (use_tf32), and Optimum does not
        SystemSpec("optimum-cuda-fp32", "optimum", "fp32", "HF pipeline, Optimum ORT fp32 (CUDA)", "cuda", "tf32"),
        SystemSpec("optimum-cuda-o4", "optimum", "fp16", "HF pipeline, Optimum ORT O4 fp16 (CUDA)", "cuda"),
        SystemSpec("engine-cuda-fp16", "engine", "fp16", "qa-engine fp16 (CUDA)", "cuda"),
        SystemSpec("engine-cuda-fp32", "engine", "fp32", "qa-engine fp32 (CUDA)", "cuda"),
    )
}
BASELINES = {"cpu": "hf-fp32", "cuda": "hf-cuda-fp32"}  # the reference of the ratios and answer agreement
BASELINE = BASELINES["cpu"]


def systems_for(device: str) -> tuple[str, ...]:
    """The names of the systems `qa-engine bench --device DEVICE` can run, in report order."""
    return tuple(n for n, s in SYSTEMS.items() if s.device == device)


def default_systems(device: str, isa: Sequence[str], openvino: bool) -> tuple[str, ...]:
    """The systems run when none are named: the device's, less the OpenVINO peers where OpenVINO (with NNCF) is not
    installed and OpenVINO bf16 where the CPU has no native bf16 (AVX512-BF16 or AMX)."""
    from qa_engine.runners.openvino import bf16_native

    def runs(name: str) -> bool:
        spec = SYSTEMS[name]
        if spec.family != "openvino":
            return True
        return openvino and (spec.precision != "bf16" or bf16_native(isa))

    return tuple(n for n in systems_for(device) if runs(n))


def baseline_for(names: Sequence[str]) -> str:
    """The HF fp32 system of the device the named systems run on (CPU when none is named)."""
    devices = {SYSTEMS[n].device for n in names} or {"cpu"}
    if len(devices) > 1:
        raise ValueError(f"systems of several devices in one comparison: {', '.join(names)}")
    return BASELINES[devices.pop()]


def _answers(result: dict | list[dict]) -> list[dict]:
    """The pipeline returns a bare dict for one question and a list for several."""
    return [result] if isinstance(result, dict) else list(result)


class Runner:
    """A loaded system: `answer(questions, contexts, batch_size)` -> one answer dict per question, in order."""

    def __init__(self, spec: SystemSpec, answer: Callable[[Sequence[str], Sequence[str], int], list[dict]],
                 counts: TokenCounts, profile: dict | None = None, engine=None, load_warmup_s: float | None = None):
        self.spec = spec
        self._answer = answer
        self.counts = counts
        self.profile = profile
        self.engine = engine  # the QAEngine of a qa-engine system (warm-up, micro-batcher)
        self.load_warmup_s = load_warmup_s  # the engine's own warm-up at load, when it reported one

    def answer(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int) -> list[dict]:
        return self._answer(questions, contexts, batch_size)

    def warm_shapes(self, batch_sizes: Sequence[int]) -> None:
        """Let qa-engine run each of its CUDA call shapes at these batch sizes once (QAEngine.warmup)."""
        if self.engine is not None and self.spec.device == "cuda":
            self.engine.warmup(batch_sizes=list(batch_sizes))


def _hf_pipeline_runner(spec: SystemSpec, pipe, counts: TokenCounts) -> Runner:
    """Count every model call through the pipeline's `_forward`, then call it as users do (align_to_words=False)."""
    forward = pipe._forward

    def counted_forward(inputs, **kwargs):
        mask = inputs["attention_mask"]
        counts.add(mask.cpu().numpy() if hasattr(mask, "cpu") else np.asarray(mask))  # a torch tensor on CUDA
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


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PIPELINE_DEVICE = {"cpu": -1, "cuda": "cuda:0"}


def load_hf(spec: SystemSpec, model_dir: Path) -> Runner:
    """transformers pipeline("question-answering") on PyTorch, weights cast to the spec's dtype (bf16: AMX /
    AVX512-BF16 kernels on CPU) and moved to its device."""
    import torch
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type)
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, local_files_only=True).eval()
    if spec.precision != "fp32":
        model = model.to(getattr(torch, TORCH_DTYPES[spec.precision]))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    # a generic fast tokenizer also emits token_type_ids, which DistilBERT's forward() rejects
    accepted = inspect.signature(model.forward).parameters
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n in accepted]
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=PIPELINE_DEVICE[spec.device])
    return _hf_pipeline_runner(spec, pipe, TokenCounts())


def load_optimum(spec: SystemSpec, model_dir: Path, file_name: str) -> Runner:
    """Optimum's ORTModelForQuestionAnswering inside Optimum's pipeline: on CPU one thread per core, on CUDA
    the CUDA provider with Optimum's defaults (IO binding on) and the pipeline's tensors on the GPU."""
    from optimum.onnxruntime import ORTModelForQuestionAnswering
    from optimum.pipelines import pipeline
    from qa_engine.train import relbert  # noqa: F401  (registers the offline tiny model's type)
    from transformers import AutoTokenizer

    from qa_engine.runners.sessions import preload_cuda_libraries, session_options

    provider = "CUDAExecutionProvider" if spec.device == "cuda" else "CPUExecutionProvider"
    if spec.device == "cuda":
        preload_cuda_libraries()  # NVIDIA's pip libraries, as onnxruntime documents for a pip install
    model = ORTModelForQuestionAnswering.from_pretrained(
        model_dir, file_name=file_name, provider=provider, session_options=session_options(),
    )
    if spec.device == "cuda" and model.providers[0] != provider:
        raise RuntimeError(f"Optimum fell back to {model.providers[0]} instead of {provider}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    pipe = pipeline("question-answering", model=model, tokenizer=tokenizer, device=PIPELINE_DEVICE[spec.device])
    return _hf_pipeline_runner(spec, pipe, TokenCounts())


def counted(engine, counts: TokenCounts):
    """The same engine with its model runner wrapped to count every call's tokens (CPU and CUDA alike)."""
    from qa_engine.engine import QAEngine

    return QAEngine(CountingRunner(engine.runner, counts.add), engine.tokenizer, engine.settings)


def engine_load_options(from_pretrained: Callable, device: str) -> dict:
    """Keyword arguments asking QAEngine.from_pretrained for its load-time warm-up on CUDA, where it has the option."""
    return {"warmup": True} if device == "cuda" and "warmup" in inspect.signature(from_pretrained).parameters else {}


def load_engine(spec: SystemSpec, artifact_dir: Path) -> Runner:
    """qa-engine on the spec's device and precision, with its per-stage profile. On CUDA the engine warms its call
    shapes up at load, as a user's engine does (through `engine.warmup()` where from_pretrained has no option)."""
    from qa_engine.engine import QAEngine

    options = engine_load_options(QAEngine.from_pretrained, spec.device)
    engine = QAEngine.from_pretrained(artifact_dir, provider=spec.device, precision=spec.precision, **options)
    warmup_s = engine.warmup() if spec.device == "cuda" and not options else None
    counts, profile = TokenCounts(), {}
    engine = counted(engine, counts)

    def answer(questions, contexts, batch_size):
        return engine.answer_batch(questions, contexts, batch_size=batch_size, profile=profile)

    return Runner(spec, answer, counts, profile, engine, warmup_s)


def load_openvino(spec: SystemSpec, artifact_dir: Path, ir_dir: Path) -> Runner:
    """qa-engine's tokenizer, call planning and span decoder around an OpenVINO model (benchmarks/openvino_peer.py)
    of the spec's precision instead of the onnxruntime session; no onnxruntime session is opened."""
    from qa_engine.artifacts.manifest import Manifest
    from qa_engine.core.windows import WindowTokenizer
    from qa_engine.engine import EngineSettings, QAEngine
    from qa_engine.runners.sessions import physical_cores

    from .openvino_peer import load_peer

    manifest = Manifest.read(artifact_dir)
    window = WindowConfig(manifest.max_length, manifest.doc_stride)
    settings = EngineSettings(window=window, decode=DecodeConfig(max_answer_length=manifest.max_answer_length),
                              precision=spec.precision)
    runner = load_peer(ir_dir, spec.precision, tuple(manifest.input_names), physical_cores())
    tokenizer = WindowTokenizer.from_file(artifact_dir / manifest.tokenizer_file, window)
    counts, profile = TokenCounts(), {}
    engine = counted(QAEngine(runner, tokenizer, settings), counts)

    def answer(questions, contexts, batch_size):
        return engine.answer_batch(questions, contexts, batch_size=batch_size, profile=profile)

    return Runner(spec, answer, counts, profile, engine)


@dataclass
class CountingRunner:
    """Wraps a runner and hands every call's attention mask to `count` (the benchmarks' token accounting)."""

    inner: ModelRunner
    count: Callable[[np.ndarray], None]
    device: str = field(init=False)
    precision: str = field(init=False)
    input_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.device, self.precision, self.input_names = self.inner.device, self.inner.precision, self.inner.input_names

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        self.count(feed["attention_mask"])
        return self.inner.run(feed)
