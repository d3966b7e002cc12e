"""Length bucketing: windows sorted by length and packed into batches under a token budget."""
from __future__ import annotations

from typing import Iterator

import numpy as np


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def plan_batches(
    lengths: np.ndarray, batch_size: int, token_budget: int | None = None, pad_multiple: int = 8
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (row indices, padded width) per batch: rows of similar length together, at most
    `batch_size` rows and `token_budget` padded tokens, width = longest row rounded up to `pad_multiple`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(lengths, kind="stable")[::-1]  # longest first: the largest batch is allocated first
    i = 0
    while i < len(order):
        width = round_up(int(lengths[order[i]]), pad_multiple)
        rows = batch_size if token_budget is None else max(1, min(batch_size, token_budget // width))
        chosen = order[i : i + rows]
        yield chosen, width
        i += len(chosen)
