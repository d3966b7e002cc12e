"""Model FLOPs for the token counts a system really ran: 2 * non-embedding params per token plus attention."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelShape:
    """The encoder's shape as far as compute goes."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        """Read DistilBERT (dim, n_layers) or BERT-style (hidden_size, num_hidden_layers) config names."""
        get = lambda *names: next(getattr(config, n) for n in names if hasattr(config, n))  # noqa: E731
        return cls(
            layers=get("n_layers", "num_hidden_layers"),
            hidden=get("dim", "hidden_size"),
            heads=get("n_heads", "num_attention_heads"),
            ffn=get("hidden_dim", "intermediate_size"),
            vocab=get("vocab_size"),
        )

    @property
    def params_per_layer(self) -> int:
        d, f = self.hidden, self.ffn
        attention = 4 * d * d + 4 * d
        feed_forward = 2 * d * f + f + d
        layer_norms = 2 * 2 * d
        return attention + feed_forward + layer_norms

    @property
    def params_nonembedding(self) -> int:
        """Weights every token multiplies through: the layers plus the span head (2 outputs)."""
        return self.layers * self.params_per_layer + 2 * self.hidden + 2


@dataclass
class TokenCounts:
    """What a system fed its model: sums of sequence lengths (L) and squared lengths (L^2), padded and real."""

    calls: int = 0
    sequences: int = 0
    padded: int = 0
    real: int = 0
    padded_sq: int = 0
    real_sq: int = 0

    def add(self, attention_mask: np.ndarray) -> None:
        """Count one model call from its [batch, width] attention mask."""
        batch, width = attention_mask.shape
        lengths = np.asarray(attention_mask).sum(axis=1).astype(np.int64)
        self.calls += 1
        self.sequences += batch
        self.padded += batch * width
        self.padded_sq += batch * width * width
        self.real += int(lengths.sum())
        self.real_sq += int((lengths * lengths).sum())

    def reset(self) -> None:
        """Start counting from zero (a new measurement)."""
        self.__init__()

    def as_dict(self) -> dict:
        return dict(vars(self))


def flops(shape: ModelShape, tokens: int, tokens_sq: int) -> float:
    """2 * params_nonembedding * tokens + per layer 4 * L^2 * d (scores QK^T and the weighted sum AV)."""
    return 2.0 * shape.params_nonembedding * tokens + shape.layers * 4.0 * shape.hidden * tokens_sq


def model_flops(shape: ModelShape, counts: dict) -> dict[str, float]:
    """FLOPs on padded (what ran) and unpadded (what was needed) tokens from a TokenCounts dict."""
    return {
        "padded": flops(shape, counts["padded"], counts["padded_sq"]),
        "real": flops(shape, counts["real"], counts["real_sq"]),
    }
