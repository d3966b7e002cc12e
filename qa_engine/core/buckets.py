"""Length buckets: windows sorted by length and packed into model calls under a token budget, in the shapes
the device wants (any multiple of 8 on CPU; on CUDA a few fixed widths and batch sizes, all warmed up at load)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

CUDA_WIDTH_STEP = 64  # CUDA widths: multiples of 64 up to max_length (6 shapes at 384)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class Shapes:
    """The model-call shapes allowed on a device: `widths` (ascending) or any multiple of `pad_multiple`,
    and `batch_sizes` (ascending) that a call's rows are padded up to, or any row count."""

    widths: tuple[int, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    pad_multiple: int = 8

    @classmethod
    def for_device(cls, device: str, max_length: int, batch_size: int) -> "Shapes":
        """CPU: no fixed shapes. CUDA: every first call of a new (rows, width) shape costs ~80 ms (measured on an
        H200), so widths are multiples of 64 capped at max_length and rows are padded to a power of two."""
        if device != "cuda":
            return cls()
        widths = sorted({min(w, max_length) for w in range(CUDA_WIDTH_STEP, max_length + CUDA_WIDTH_STEP,
                                                           CUDA_WIDTH_STEP)})
        sizes = sorted({min(1 << i, batch_size) for i in range(batch_size.bit_length() + 1)})
        return cls(tuple(widths), tuple(sizes))

    def width(self, longest: int) -> int:
        """The padded width of a call whose longest window has `longest` tokens."""
        if self.widths is None:
            return round_up(longest, self.pad_multiple)
        for w in self.widths:
            if w >= longest:
                return w
        raise ValueError(f"a window of {longest} tokens exceeds the widest shape {self.widths[-1]}")

    def rows(self, n: int) -> int:
        """The row count a call of `n` windows is padded to."""
        if self.batch_sizes is None:
            return n
        return next((b for b in self.batch_sizes if b >= n), n)


def plan_batches(
    lengths: np.ndarray, batch_size: int, token_budget: int | None = None, shapes: Shapes = Shapes()
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (row indices, padded width) per call: rows of similar length together, at most `batch_size` rows
    and `token_budget` padded tokens, width = the allowed width of the longest row."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(lengths, kind="stable")[::-1]  # longest first: the largest batch is allocated first
    i = 0
    while i < len(order):
        width = shapes.width(int(lengths[order[i]]))
        rows = batch_size if token_budget is None else max(1, min(batch_size, token_budget // width))
        chosen = order[i : i + rows]
        yield chosen, width
        i += len(chosen)
