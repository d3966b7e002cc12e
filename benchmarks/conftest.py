"""Fixtures of the pytest-benchmark suites (`pytest benchmarks/ --benchmark-only`): the quick DistilBERT's export
(tests.fixtures, shared with the unit tests' cache) and a workload."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from qa_engine.benchmarks.workload import Workload, sample

from tests.fixtures import (  # noqa: F401
    cache_dir,
    korquad_path,
    quick_distilbert_artifact,
    quick_distilbert_checkpoint,
)

QUESTIONS = 256


@pytest.fixture(scope="session")
def tokenizer_dir(request: pytest.FixtureRequest, workload: Workload) -> Path:
    """A WordPiece tokenizer trained on the workload's text, saved for AutoTokenizer (all the decoders need)."""
    from qa_engine.benchmarks.models import train_speed_tokenizer
    from qa_engine.train.tokenizer import save_tokenizer_dir

    from qa_engine.formats.squad import Example

    digest = hashlib.sha256("\n".join(workload.ids).encode()).hexdigest()[:12]
    out = cache_dir(request, f"bench-tokenizer-{digest}")
    if not (out / "tokenizer.json").is_file():
        examples = [Example(i, q, c) for i, q, c in zip(workload.ids, workload.questions, workload.contexts)]
        save_tokenizer_dir(train_speed_tokenizer(examples)[0], out)
    return out


@pytest.fixture(scope="session")
def workload() -> Workload:
    """256 KorQuAD dev questions when the data set is here (KORQUAD_DEV overrides the path), else synthetic ones."""
    from qa_engine.formats.squad import load_examples

    path = korquad_path()
    if path.is_file():
        return sample(load_examples(path), QUESTIONS, 0, str(path))
    from qa_engine.train.synthetic import generate

    from qa_engine.formats.squad import make_example

    records = generate(QUESTIONS, seed=1, split="heldout")
    return sample([make_example(r, "synthetic") for r in records], QUESTIONS, 0, "synthetic")
