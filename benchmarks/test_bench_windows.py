"""Window building: `WindowTokenizer.windows` vs the Rust encode calls alone, on the workload's questions."""
from __future__ import annotations

import pytest

from qa_engine.core.windows import WindowTokenizer


@pytest.fixture(scope="module")
def pairs(workload) -> tuple[list[str], list[str]]:
    return list(workload.questions), list(workload.contexts)


def test_windows(benchmark, tokenizer_dir, pairs):
    benchmark.group = "windows"
    wt = WindowTokenizer.from_file(tokenizer_dir / "tokenizer.json")
    assert len(benchmark(wt.windows, *pairs)) >= len(pairs[0])


def test_rust_encode_only(benchmark, tokenizer_dir, pairs):
    benchmark.group = "windows"
    wt = WindowTokenizer.from_file(tokenizer_dir / "tokenizer.json")
    questions, contexts = pairs
    unique = list(dict.fromkeys(contexts))

    def encode() -> int:
        return len(wt.tokenizer.encode_batch(unique, add_special_tokens=False)) + len(
            wt.tokenizer.encode_batch_fast(questions, add_special_tokens=False))

    assert benchmark(encode) == len(unique) + len(questions)
