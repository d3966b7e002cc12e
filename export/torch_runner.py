"""The PyTorch model runner: the reference export validation compares the ONNX graph against."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qa_engine.core.runner import Logits


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
