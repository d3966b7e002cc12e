"""The model-runner seam: whatever computes span logits for a batch of windows, behind one call.

The engine, export validation, training evaluation and the benchmarks drive models only through this
protocol, so an onnxruntime session (runners/onnx.py), a PyTorch model (export/torch_runner.py), a Triton server
(CallRunner) or the benchmarks' counting wrapper plug in alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

Logits = tuple[np.ndarray, np.ndarray]  # start and end logits, float32 [rows, width]


class ModelRunner(Protocol):
    """A QA model: int64 [rows, width] inputs by name in, float32 start/end logits [rows, width] out."""

    device: str  # where it runs: "cpu", "cuda", "triton", ...
    precision: str  # "fp32", "int8", "fp16", "bf16"
    input_names: tuple[str, ...]  # the inputs a feed must hold, in the model's order

    def run(self, feed: dict[str, np.ndarray]) -> Logits: ...


def as_logits(outputs: Sequence[Any]) -> Logits:
    """The first two outputs of a QA model as float32 numpy (start, end) logits."""
    start, end = outputs[0], outputs[1]
    return np.asarray(start, dtype=np.float32), np.asarray(end, dtype=np.float32)


@dataclass
class CallRunner:
    """Any function from a feed to (start, end) logits, e.g. a remote inference call."""

    call: Callable[[dict[str, np.ndarray]], Sequence[Any]]
    input_names: tuple[str, ...]
    device: str
    precision: str = "fp32"

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        return as_logits(self.call(feed))
