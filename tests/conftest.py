"""Shared fixtures: the tiny offline model, trained once per session (cached across local runs), and its export."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

KORQUAD_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"


@pytest.fixture(scope="session")
def korquad_dev() -> Path:
    """The real KorQuAD 1.0 dev set; tests using it skip where it is absent."""
    path = Path(os.environ.get("KORQUAD_DEV", KORQUAD_DEV)).resolve()
    if not path.is_file():
        pytest.skip(f"KorQuAD dev set not found at {path}")
    return path


def _cache(request: pytest.FixtureRequest, name: str) -> Path:
    return Path(request.config.cache.mkdir("qa-engine")) / name


@pytest.fixture(scope="session")
def tiny_checkpoint(request: pytest.FixtureRequest) -> Path:
    """The tiny offline model (BERT with relative-position attention) trained on synthetic Korean data."""
    from train.tiny import build_tiny_model

    return build_tiny_model(_cache(request, "tiny-bert"), family="bert")


@pytest.fixture(scope="session")
def tiny_distilbert_checkpoint(request: pytest.FixtureRequest) -> Path:
    """A tiny DistilBERT, briefly trained: the family whose attention onnxruntime fuses, like the default base model."""
    from train.tiny import build_tiny_model

    return build_tiny_model(_cache(request, "tiny-distilbert-quick"), family="distilbert", quick=True)


@pytest.fixture(scope="session")
def tiny_artifact(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Path:
    """The tiny model exported in every precision (an artifact folder with qa_engine.json)."""
    from export.pipeline import export_artifact

    recipe = json.loads((tiny_checkpoint / "metrics.json").read_text(encoding="utf-8"))["recipe"]
    out = _cache(request, f"tiny-artifact-{recipe}")  # a new recipe gets a new export, not a stale one
    if not (out / "qa_engine.json").is_file():
        export_artifact(tiny_checkpoint, out, precisions=("fp32", "int8", "fp16"), force=True)
    return out
