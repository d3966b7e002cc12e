"""The random-weight artifact the runtime tests stand on: the committed model is what tests/random_model.py builds,
padding cannot reach real tokens, the logits spread far beyond float rounding, and the artifact loads as exported."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, sha256_file
from tests.fixtures import RANDOM_MODEL, qa_pairs


def _session(precision: str = "fp32") -> ort.InferenceSession:
    return ort.InferenceSession(str(RANDOM_MODEL / f"model.{precision}.onnx"), providers=["CPUExecutionProvider"])


def _feed(ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """A feed whose second segment starts at column 20."""
    types = np.zeros_like(ids)
    types[:, 20:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types * mask}


def test_committed_model_is_what_the_script_builds() -> None:
    onnx = pytest.importorskip("onnx")
    from tests import random_model

    committed = onnx.load(str(RANDOM_MODEL / "model.fp32.onnx"))
    assert random_model.build().SerializeToString() == committed.SerializeToString()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_padding_does_not_reach_real_tokens_and_the_mask_is_used(precision: str) -> None:
    session = _session(precision)
    ids = np.random.default_rng(0).integers(5, 5000, (3, 40))
    start, end = session.run(None, _feed(ids, np.ones_like(ids)))
    padded = np.concatenate([ids, np.zeros((3, 24), np.int64)], axis=1)
    mask = (np.arange(64) < 40).astype(np.int64)[None].repeat(3, axis=0)
    padded_start, padded_end = session.run(None, _feed(padded, mask))
    np.testing.assert_allclose(padded_start[:, :40], start, atol=1e-4)
    np.testing.assert_allclose(padded_end[:, :40], end, atol=1e-4)
    unmasked_start, _ = session.run(None, _feed(padded, np.ones_like(padded)))
    assert np.abs(unmasked_start[:, :40] - start).max() > 0.1  # attending to the padding would change answers


def test_logits_spread_far_beyond_rounding() -> None:
    ids = np.random.default_rng(1).integers(5, 5000, (4, 100))
    start, end = _session().run(None, _feed(ids, np.ones_like(ids)))
    assert start.std() > 2 and end.std() > 2


def test_artifact_loads_with_checked_sums_in_every_precision(random_artifact: Path) -> None:
    manifest = Manifest.read(random_artifact)
    assert set(manifest.variants) == {"fp32", "int8", "fp16"}
    for variant in manifest.variants.values():
        assert sha256_file(random_artifact / variant.file) == variant.sha256
    question, context, _ = qa_pairs(1, seed=0)[0]
    for precision in ("fp32", "int8", "fp16"):
        engine = QAEngine.from_pretrained(random_artifact, provider="cpu", precision=precision)
        result = engine.answer(question, context)
        assert result["answer"] and context[result["start"] : result["end"]] == result["answer"]


def test_tokenizer_knows_every_character_of_the_test_texts(random_artifact: Path) -> None:
    engine = QAEngine.from_pretrained(random_artifact, provider="cpu", precision="fp32")
    unk = engine.tokenizer.tokenizer.token_to_id("[UNK]")
    for question, context, _ in qa_pairs(20, seed=0):
        assert unk not in engine.tokenizer.tokenizer.encode(question, context).ids
