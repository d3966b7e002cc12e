"""Shared fixtures: the tiny offline model, trained once per session (cached across local runs), and its export."""
from __future__ import annotations

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
    """A tiny DistilBERT-style QA model trained on synthetic Korean data (save_pretrained folder)."""
    from train.tiny import build_tiny_model

    return build_tiny_model(_cache(request, "tiny-distilbert"), family="distilbert")


@pytest.fixture(scope="session")
def tiny_bert_checkpoint(request: pytest.FixtureRequest) -> Path:
    """A tiny BERT-style model (with token_type_ids), briefly trained: for the second export family."""
    from train.tiny import build_tiny_model

    return build_tiny_model(_cache(request, "tiny-bert"), family="bert", quick=True)


@pytest.fixture(scope="session")
def tiny_artifact(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Path:
    """The tiny model exported in every precision (an artifact folder with qa_engine.json)."""
    from export.pipeline import export_artifact

    out = _cache(request, "tiny-artifact")
    if not (out / "qa_engine.json").is_file():
        export_artifact(tiny_checkpoint, out, precisions=("fp32", "int8", "fp16"), force=True)
    return out
