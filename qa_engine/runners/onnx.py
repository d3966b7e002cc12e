"""The onnxruntime model runner: the engine's and export validation's way to run a session."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qa_engine.core.runner import Logits, as_logits
from qa_engine.runners import sessions

if TYPE_CHECKING:
    import onnxruntime as ort


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
        return as_logits(sessions.run(self.session, feed, self.device))
