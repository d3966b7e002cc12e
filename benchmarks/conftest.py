"""Fixtures of the pytest-benchmark suites (`pytest benchmarks/ --benchmark-only`): the tiny model and a workload."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from benchmarks.workload import Workload, sample

KORQUAD_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
QUESTIONS = 256


def _cache(request: pytest.FixtureRequest, name: str) -> Path:
    return Path(request.config.cache.mkdir("qa-engine")) / name


@pytest.fixture(scope="session")
def tiny_checkpoint(request: pytest.FixtureRequest) -> Path:
    """A tiny DistilBERT, briefly trained (shared with the unit tests' cache): the family whose attention
    onnxruntime fuses, like the default base model, so the engine suite times the production graph layout."""
    from train.tiny import build_tiny_model

    return build_tiny_model(_cache(request, "tiny-distilbert-quick"), family="distilbert", quick=True)


@pytest.fixture(scope="session")
def bench_artifact(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Path:
    """The tiny model exported for CPU (fp32 and int8)."""
    from export.pipeline import export_artifact

    recipe = json.loads((tiny_checkpoint / "metrics.json").read_text(encoding="utf-8"))["recipe"]
    out = _cache(request, f"bench-artifact-{recipe}")
    if not (out / "qa_engine.json").is_file():
        export_artifact(tiny_checkpoint, out, precisions=("fp32", "int8"), force=True)
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(request: pytest.FixtureRequest, workload: Workload) -> Path:
    """A WordPiece tokenizer trained on the workload's text, saved for AutoTokenizer (all the decoders need)."""
    from benchmarks.models import train_speed_tokenizer
    from qa_engine.squad import Example
    from train.tokenizer import save_tokenizer_dir

    digest = hashlib.sha256("\n".join(workload.ids).encode()).hexdigest()[:12]
    out = _cache(request, f"bench-tokenizer-{digest}")
    if not (out / "tokenizer.json").is_file():
        examples = [Example(i, q, c) for i, q, c in zip(workload.ids, workload.questions, workload.contexts)]
        save_tokenizer_dir(train_speed_tokenizer(examples)[0], out)
    return out


@pytest.fixture(scope="session")
def workload() -> Workload:
    """256 KorQuAD dev questions when the data set is here (KORQUAD_DEV overrides the path), else synthetic ones."""
    from qa_engine.squad import load_examples

    path = Path(os.environ.get("KORQUAD_DEV", KORQUAD_DEV)).resolve()
    if path.is_file():
        return sample(load_examples(path), QUESTIONS, 0, str(path))
    from qa_engine.squad import make_example
    from train.synthetic import generate

    records = generate(QUESTIONS, seed=1, split="heldout")
    return sample([make_example(r, "synthetic") for r in records], QUESTIONS, 0, "synthetic")
