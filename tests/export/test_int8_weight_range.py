"""The int8 weights' saturation check at export and the 7-bit graph written where it fails (no timing)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qa_engine.export import pipeline, quantize
from tests.random_model import FOLDER, INPUT_NAMES


def _matmul_model(path: Path) -> Path:
    """float x [2, 8] times a constant [8, 4] weight: a graph quantize_dynamic turns into MatMulInteger."""
    weight = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              [numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_full_range_weights_fail_the_check_and_7_bit_weights_pass(tmp_path):
    src = _matmul_model(tmp_path / "fp32.onnx")
    quantize.quantize_dynamic_int8(src, tmp_path / "full.onnx")
    quantize.quantize_dynamic_int8(src, tmp_path / "reduced.onnx", reduce_range=True)
    full = quantize.weight_range(onnx.load(str(tmp_path / "full.onnx")))
    reduced = quantize.weight_range(onnx.load(str(tmp_path / "reduced.onnx")))
    assert full["max_abs_weight"] == 127 and full["pair_sum_bound"] == 2 * 255 * 127
    assert full["saturates_without_vnni"]
    assert reduced["max_abs_weight"] <= 64 and not reduced["saturates_without_vnni"]


def test_minus_128_counts_as_128():
    weight = np.array([[-128, 3], [5, 7]], dtype=np.int8)
    node = helper.make_node("MatMulIntegerToFloat", ["a", "w", "sa", "sw"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
                              [numpy_helper.from_array(weight, "w")])
    assert quantize.max_abs_weight(helper.make_model(graph)) == 128


def _feeds(n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"input_ids": rng.integers(0, 256, (2, 16), dtype=np.int64),
             "attention_mask": np.ones((2, 16), dtype=np.int64),
             "token_type_ids": np.zeros((2, 16), dtype=np.int64)} for _ in range(n)]


def test_a_saturating_int8_graph_gets_a_7_bit_twin_with_the_same_activation_scales(tmp_path):
    files = {"fp32": tmp_path / "model.fp32.onnx", "int8": tmp_path / "model.int8.onnx"}
    shutil.copyfile(FOLDER / "model.fp32.onnx", files["fp32"])
    calibration = quantize.quantize_int8(files["fp32"], files["int8"], _feeds(2))
    record = pipeline._int8_weight_range(files, calibration)
    assert record["saturates_without_vnni"] and record["max_abs_weight"] == 127
    twin = onnx.load(str(files[pipeline.NO_VNNI]))
    assert files[pipeline.NO_VNNI].name == pipeline.NO_VNNI_FILE
    assert quantize.max_abs_weight(twin) == record["no_vnni_max_abs_weight"] <= 64
    scales = {i.name: numpy_helper.to_array(i) for i in twin.graph.initializer if i.name.endswith("_scale")}
    full = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(files["int8"])).graph.initializer}
    activation_scales = [n.input[1] for n in twin.graph.node if n.op_type == "QuantizeLinear"]
    assert activation_scales and all(np.array_equal(scales[s], full[s]) for s in activation_scales)
    assert set(INPUT_NAMES) <= {i.name for i in twin.graph.input}
