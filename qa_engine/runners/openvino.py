"""The OpenVINO model runner (`provider="openvino"`, extra `qa-engine[openvino]`): an artifact's OpenVINO IR, written
by `qa-engine export --openvino` (int8 by NNCF, calibrated on the windows the onnxruntime int8 graph is), compiled
for the CPU. bf16 compiles the fp32 IR with the CPU plugin's bf16 inference precision (AVX512-BF16 or AMX)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from qa_engine.core.constants import OPENVINO, OPENVINO_PRECISIONS
from qa_engine.core.runner import Logits, as_logits

if TYPE_CHECKING:
    import openvino as ov

PROVIDER = OPENVINO
PRECISIONS = OPENVINO_PRECISIONS  # preference order where none is asked for
IR_OF = {"fp32": "fp32", "int8": "int8", "bf16": "fp32"}  # the IR each precision compiles
INFERENCE_PRECISION = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}  # the plugin's precision for what is not int8
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def bf16_native(flags: Iterable[str]) -> bool:
    """Whether the CPU runs bf16 matrix math natively (AVX512-BF16 or AMX)."""
    return any(f in BF16_FLAGS for f in flags)


def compile_config(precision: str, threads: int) -> dict[str, str]:
    """CPU plugin properties: one latency stream on `threads` cores, the precision's inference-precision hint."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]}


def import_openvino() -> Any:
    """The openvino module, or ImportError naming the extra that installs it."""
    try:
        import openvino
    except ImportError as e:
        raise ImportError("provider 'openvino' needs OpenVINO: pip install 'qa-engine[openvino]'") from e
    return openvino


@dataclass
class OpenVinoRunner:
    """A compiled OpenVINO model behind the ModelRunner seam; one infer request per calling thread."""

    compiled: "ov.CompiledModel"
    precision: str
    input_names: tuple[str, ...]
    device: str = "cpu"
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        outputs = request.infer({n: feed[n] for n in self.input_names}, share_inputs=True)
        return as_logits([outputs[o] for o in self.compiled.outputs[:2]])


def load_runner(xml: Path, precision: str, input_names: tuple[str, ...], threads: int) -> OpenVinoRunner:
    """The IR at `xml` (its weights beside it) compiled for the CPU at `precision`."""
    ov = import_openvino()
    core = ov.Core()
    compiled = core.compile_model(core.read_model(xml), "CPU", compile_config(precision, threads))
    return OpenVinoRunner(compiled, precision, input_names)
