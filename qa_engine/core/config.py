"""Settings shared by training, export and the engine, with the reference task's defaults."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qa_engine.core.buckets import Shapes
from qa_engine.core.constants import DOC_STRIDE, MAX_ANSWER_LENGTH, MAX_LENGTH

# Embeddings that number positions from padding_idx + 1 (transformers' create_position_ids_from_input_ids):
# RoBERTa's max_position_embeddings 514 with pad id 1 holds 512 tokens.
OFFSET_POSITIONS = ("roberta", "xlm-roberta")


@dataclass(frozen=True)
class WindowConfig:
    """How a (question, context) pair is cut into model windows."""

    max_length: int = MAX_LENGTH
    doc_stride: int = DOC_STRIDE

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not 0 <= self.doc_stride < self.max_length:
            raise ValueError(
                f"doc_stride must be in [0, max_length), got {self.doc_stride} for max_length {self.max_length}"
            )


@dataclass(frozen=True)
class DecodeConfig:
    """How logits become answer spans (the Hugging Face pipeline's knobs).

    Each window contributes its top_k spans before the merge across windows, as in the pipeline; a larger
    per-window shortlist (run_qa's n_best) would change which texts get their scores summed."""

    max_answer_length: int = MAX_ANSWER_LENGTH
    top_k: int = 1
    handle_impossible_answer: bool = False

    def __post_init__(self) -> None:
        if self.max_answer_length < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {self.max_answer_length}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


# On CPU a model call of about four full windows runs faster per window than bigger ones (activations stay
# in cache; measured +7-10% at batch 32 on the mBERT shape, benchmarks/results/); CUDA wants whole batches.
CPU_WINDOWS_PER_CALL = 4
# The longest context the engine accepts, in characters: far above any article-sized passage (KorQuAD's longest
# is under 10,000), and low enough that a stray file-sized context is refused instead of running for many minutes.
MAX_CONTEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class EngineSettings:
    """How the engine answers: windows, decoding, batching and the device its model calls are shaped for."""

    window: WindowConfig = WindowConfig()
    decode: DecodeConfig = DecodeConfig()
    batch_size: int = 32
    token_budget: int | None = None  # padded tokens per model call; None: the device default (see budget)
    precision: str = "fp32"
    device: str = "cpu"
    overlap: bool | None = None  # host work beside the model run (None: on CUDA only, see `overlaps`)
    max_context_chars: int = MAX_CONTEXT_CHARS  # longer contexts are refused with a ValueError naming this setting

    def __post_init__(self) -> None:
        if self.max_context_chars < 1:
            raise ValueError(f"max_context_chars must be >= 1, got {self.max_context_chars}")

    def budget(self, batch_size: int) -> int:
        """Padded tokens per model call: the setting, else 4 full windows on CPU and the whole batch on CUDA."""
        if self.token_budget is not None:
            return self.token_budget
        windows = min(batch_size, CPU_WINDOWS_PER_CALL) if self.device == "cpu" else batch_size
        return windows * self.window.max_length

    def shapes(self, batch_size: int) -> Shapes:
        """The model-call shapes of this device (fixed widths and row counts on CUDA, see qa_engine.core.buckets)."""
        return Shapes.for_device(self.device, self.window.max_length, batch_size)

    def overlaps(self) -> bool:
        """Whether feeds are built and logits decoded while the model runs: the setting, else on CUDA only (on
        CPU the model already keeps every core busy, and host work is under 1% of the time there)."""
        return self.device == "cuda" if self.overlap is None else self.overlap


def max_window_length(config: Any) -> int | None:
    """The most tokens one window may hold for a transformers model config (None: no position table).

    Its position embeddings, less the padding_idx + 1 positions that RoBERTa-family models never use."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or getattr(config, "model_type", None) not in OFFSET_POSITIONS:
        return positions
    return positions - (getattr(config, "pad_token_id", None) or 0) - 1
