"""The model-runner seam: whatever computes span logits for a batch of windows, behind one call.

The engine, export validation, training evaluation and the benchmarks drive models only through this
protocol, so an onnxruntime session, a PyTorch model, a Triton server or a counting wrapper plug in alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from qa_engine.runners import sessions

if TYPE_CHECKING:
    import onnxruntime as ort

Logits = tuple[np.ndarray, np.ndarray]  # start and end logits, float32 [rows, width]


class ModelRunner(Protocol):
    """A QA model: int64 [rows, width] inputs by name in, float32 start/end logits [rows, width] out."""

    device: str  # where it runs: "cpu", "cuda", "triton", ...
    precision: str  # "fp32", "int8", "fp16", "bf16"
    input_names: tuple[str, ...]  # the inputs a feed must hold, in the model's order

    def run(self, feed: dict[str, np.ndarray]) -> Logits: ...


def _float32(outputs: Sequence[Any]) -> Logits:
    start, end = outputs[0], outputs[1]
    return np.asarray(start, dtype=np.float32), np.asarray(end, dtype=np.float32)


@dataclass
class OnnxRunner:
    """An onnxruntime session; on CUDA each call goes through IO binding (see sessions.run)."""

    session: "ort.InferenceSession"
    device: str = "cpu"
    precision: str = "fp32"
    input_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.input_names:
            self.input_names = tuple(i.name for i in self.session.get_inputs())

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        return _float32(sessions.run(self.session, feed, self.device))


@dataclass
class TorchRunner:
    """A PyTorch AutoModelForQuestionAnswering (export validation's reference, training evaluation): numpy feeds
    moved to the model's device, logits back as float32 numpy. torch is imported only when it runs."""

    model: Any
    input_names: tuple[str, ...]
    device: str = "cpu"
    precision: str = "fp32"

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        import torch

        where = next(self.model.parameters()).device
        with torch.inference_mode():
            out = self.model(**{k: torch.from_numpy(v).to(where) for k, v in feed.items()})
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()


@dataclass
class CallRunner:
    """Any function from a feed to (start, end) logits, e.g. a remote inference call."""

    call: Callable[[dict[str, np.ndarray]], Sequence[Any]]
    input_names: tuple[str, ...]
    device: str
    precision: str = "fp32"

    def run(self, feed: dict[str, np.ndarray]) -> Logits:
        return _float32(self.call(feed))


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
