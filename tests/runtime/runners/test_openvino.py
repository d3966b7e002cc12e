"""provider="openvino": the OpenVINO runner behind the seam and its artifact IR (skipped without OpenVINO)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, sha256_file
from qa_engine.runners.openvino import OpenVinoRunner, bf16_native, compile_config
from tests.fixtures import build_random_artifact, qa_pairs

ov = pytest.importorskip("openvino")


def test_each_precision_compiles_with_its_hint():
    assert compile_config("bf16", 2)["INFERENCE_PRECISION_HINT"] == "bf16"
    assert compile_config("int8", 2)["INFERENCE_PRECISION_HINT"] == "f32"
    assert bf16_native(["avx512_bf16"]) and bf16_native(["amx_bf16"]) and not bf16_native(["avx512_vnni"])


def test_the_runner_feeds_the_inputs_by_name_and_returns_float_logits():
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    start = ops.convert(ops.subtract(ids, mask), ov.Type.f32)
    end = ops.convert(ops.multiply(ids, mask), ov.Type.f32)
    compiled = ov.Core().compile_model(ov.Model([start, end], [ids, mask]), "CPU")
    runner = OpenVinoRunner(compiled, "fp32", ("input_ids", "attention_mask"))
    feed = {"attention_mask": np.array([[1, 0]], dtype=np.int64), "input_ids": np.array([[5, 7]], dtype=np.int64)}
    s, e = runner.run(feed)
    assert s.dtype == np.float32 and s.tolist() == [[4.0, 7.0]] and e.tolist() == [[5.0, 0.0]]


def _with_ir(folder: Path) -> Path:
    """The random artifact with its fp32 ONNX graph converted to OpenVINO IR and recorded as export --openvino does."""
    (folder / "openvino").mkdir()
    xml = folder / "openvino" / "model.fp32.xml"
    ov.save_model(ov.convert_model(folder / "model.fp32.onnx"), xml, compress_to_fp16=False)
    manifest = Manifest.read(folder)
    manifest.openvino = {"fp32": {"file": "openvino/model.fp32.xml", "sha256": sha256_file(xml),
                                  "weights": "openvino/model.fp32.bin",
                                  "weights_sha256": sha256_file(xml.with_suffix(".bin"))}}
    manifest.write(folder)
    return folder


@pytest.fixture(scope="module")
def ir_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _with_ir(build_random_artifact(tmp_path_factory.mktemp("ir")))


def test_the_openvino_engine_answers_as_the_onnxruntime_one(ir_artifact):
    pairs = qa_pairs(24, seed=5)
    questions, contexts = [q for q, _, _ in pairs], [c for _, c, _ in pairs]
    engine = QAEngine.from_pretrained(ir_artifact, provider="openvino")
    assert isinstance(engine.runner, OpenVinoRunner) and engine.settings.precision == "fp32"
    reference = QAEngine.from_pretrained(ir_artifact, provider="cpu", precision="fp32")
    got = engine.answer_batch(questions, contexts, batch_size=8)
    want = reference.answer_batch(questions, contexts, batch_size=8)
    assert [a["answer"] for a in got] == [a["answer"] for a in want]  # type: ignore[index]
    np.testing.assert_allclose([a["score"] for a in got], [a["score"] for a in want], rtol=1e-3)  # type: ignore[index]


def test_an_artifact_without_ir_or_that_precision_is_refused(ir_artifact, random_artifact):
    with pytest.raises(ValueError, match="--openvino"):
        QAEngine.from_pretrained(random_artifact, provider="openvino")
    with pytest.raises(ValueError, match="'int8' not in"):
        QAEngine.from_pretrained(ir_artifact, provider="openvino", precision="int8")


def test_replaced_weights_fail_the_checksum(tmp_path):
    folder = _with_ir(build_random_artifact(tmp_path / "art"))
    weights = folder / "openvino" / "model.fp32.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.fp32.bin: checksum"):
        QAEngine.from_pretrained(folder, provider="openvino")
