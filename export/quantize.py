"""Reduced-precision variants of the fused fp32 graph: int8 for CPU, fp16 for CUDA.

The int8 layout was chosen by measurement (export/QUANTIZATION.md): the fused graph's MatMul and Attention nodes
in int8 (per-channel weights; Attention becomes QAttention) with **static** activation scales, one per tensor,
measured on calibration windows. A dynamic scale is the range of the whole model call, so the other rows of a
batch (and its padding) would change a question's answer; a static one makes every row's result its own.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from qa_engine.runners import int8_kernels

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

INT8_OP_TYPES = ("MatMul", "Attention")
INT8_PER_CHANNEL = True
# fp16 stays off where fp32 range or accumulation matters (unfused normalizations and softmax, if any remain).
FP16_KEEP_FP32 = ("LayerNormalization", "SimplifiedLayerNormalization", "Softmax")
UINT8_LEVELS = 255  # activations are uint8, as DynamicQuantizeLinear makes them
U8S8_OPS = ("MatMulIntegerToFloat", "MatMulInteger", "QAttention", "DynamicQuantizeMatMul")
INT8 = 3  # onnx.TensorProto.INT8


class CalibrationError(ValueError):
    """No usable calibration windows, or an activation that never took a finite value on them."""


@dataclass(frozen=True)
class Calibration:
    """The range of every quantized activation over the real tokens of the calibration windows."""

    ranges: dict[str, tuple[float, float]]  # tensor name -> (min, max)
    windows: int

    def scale_and_zero_point(self, name: str) -> tuple[np.float32, np.uint8]:
        """uint8 parameters for `name`'s range, computed as DynamicQuantizeLinear does (the range includes 0)."""
        low, high = self.ranges[name]
        low, high = min(low, 0.0), max(high, 0.0)
        scale = (high - low) / UINT8_LEVELS if high > low else 1.0
        zero_point = np.clip(np.rint(-low / scale), 0, UINT8_LEVELS)
        return np.float32(scale), np.uint8(zero_point)


def quantize_int8(src: Path, dst: Path, feeds: Iterable[dict[str, np.ndarray]], reduce_range: bool = False,
                  calibration: Calibration | None = None) -> Calibration:
    """int8 for onnxruntime on CPU: int8 per-channel weights (7-bit with `reduce_range`), uint8 activations with
    scales calibrated on `feeds` (model inputs by name, as the engine builds them) unless a `calibration` of the
    same fp32 graph is given. Returns the calibration, for the manifest and for a second int8 graph."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="int8-", dir=dst.parent) as tmp:
        dynamic = Path(tmp) / "dynamic.onnx"
        quantize_dynamic_int8(src, dynamic, reduce_range)
        model = onnx.load(str(dynamic))
    activations = [n.input[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    calibration = calibration or calibrate(src, activations, feeds)
    freeze_activation_scales(model, calibration)
    onnx.save(model, str(dst))
    log.info("int8 graph: %s (%s weights; %d activation scales from %d calibration windows)", dst.name,
             "7-bit" if reduce_range else "8-bit", len(activations), calibration.windows)
    return calibration


def quantize_dynamic_int8(src: Path, dst: Path, reduce_range: bool = False) -> None:
    """onnxruntime's dynamic int8 graph: the weights quantized, each activation behind a DynamicQuantizeLinear."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _root_logger_at(logging.ERROR):
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=list(INT8_OP_TYPES),
            per_channel=INT8_PER_CHANNEL,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            # ONNX shape inference cannot type the com.microsoft fused ops; without this the quantizer fails on them.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def max_abs_weight(model: "onnx.ModelProto") -> int:
    """The largest |w| among the int8 weights that U8S8 kernels multiply (input 1 of the integer MatMul and
    attention nodes); 0 when there are none."""
    from onnx import numpy_helper

    weights = {n.input[1] for n in model.graph.node if n.op_type in U8S8_OPS and len(n.input) > 1}
    found = [np.abs(numpy_helper.to_array(i).astype(np.int16)).max(initial=0) for i in model.graph.initializer
             if i.name in weights and i.data_type == INT8]
    return int(max(found, default=0))


def weight_range(model: "onnx.ModelProto") -> dict:
    """The manifest's record of the saturation check: max|w|, the vpmaddubsw pair-sum bound 2 * 255 * max|w|,
    the int16 limit, and whether a CPU without VNNI would saturate on these weights."""
    largest = max_abs_weight(model)
    return {"max_abs_weight": largest, "pair_sum_bound": int8_kernels.pair_sum_bound(largest),
            "int16_max": int8_kernels.INT16_MAX, "saturates_without_vnni": int8_kernels.saturates(largest)}


def calibrate(model_path: Path, tensors: list[str], feeds: Iterable[dict[str, np.ndarray]]) -> Calibration:
    """Run the fp32 model on `feeds` with `tensors` as extra outputs; the min and max of each over real tokens
    (rows of a [batch, sequence, ...] tensor where attention_mask is 0 are padding and left out)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                              for t in dict.fromkeys(tensors) if t not in known)
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor named
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    low = dict.fromkeys(tensors, np.inf)
    high = dict.fromkeys(tensors, -np.inf)
    windows = 0
    for feed in feeds:
        values = dict(zip(tensors, session.run(tensors, feed)))
        real = feed["attention_mask"].astype(bool)
        windows += len(real)
        for name, value in values.items():
            value = value[real] if value.shape[:2] == real.shape else value
            finite = value[np.isfinite(value)]
            if finite.size:
                low[name], high[name] = min(low[name], float(finite.min())), max(high[name], float(finite.max()))
    if not windows:
        raise CalibrationError("no calibration windows: int8 activation scales need at least one")
    missing = [t for t in tensors if not np.isfinite(low[t])]
    if missing:
        raise CalibrationError(f"{len(missing)} activations took no finite value on the calibration windows "
                               f"(first: {missing[0]})")
    return Calibration({t: (low[t], high[t]) for t in tensors}, windows)


@dataclass
class _GraphIndex:
    """Who produces and who consumes each tensor of a graph, and the constant tensors' shapes."""

    nodes: list
    producer: dict[str, "onnx.NodeProto"]
    consumers: dict[str, list]
    constants: dict[str, tuple[int, ...]]
    outputs: set[str]

    @classmethod
    def of(cls, graph: "onnx.GraphProto") -> "_GraphIndex":
        nodes = list(graph.node)
        consumers: dict[str, list] = {}
        for n in nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        return cls(nodes, {o: n for n in nodes for o in n.output}, consumers,
                   {i.name: tuple(i.dims) for i in graph.initializer}, {o.name for o in graph.output})

    def only_consumer(self, tensor: str, op_type: str) -> "onnx.NodeProto | None":
        """The node reading `tensor` when it is the only reader, of `op_type`, and `tensor` is no graph output."""
        users = self.consumers.get(tensor, [])
        if len(users) == 1 and users[0].op_type == op_type and tensor not in self.outputs:
            return users[0]
        return None


def _static_quantize(node: "onnx.NodeProto", calibration: Calibration, graph: "onnx.GraphProto",
                     index: _GraphIndex) -> "onnx.NodeProto":
    """The QuantizeLinear replacing a DynamicQuantizeLinear, its calibrated scale and zero point added as constants."""
    from onnx import helper, numpy_helper

    quantized, scale, zero_point = node.output
    s, z = calibration.scale_and_zero_point(node.input[0])
    graph.initializer.extend([numpy_helper.from_array(np.array(s), scale),
                              numpy_helper.from_array(np.array(z), zero_point)])
    index.constants.update({scale: (), zero_point: ()})
    return helper.make_node("QuantizeLinear", [node.input[0], scale, zero_point], [quantized],
                            name=f"{node.name or quantized}_static")


def _matmul_integer_to_float(node: "onnx.NodeProto", index: _GraphIndex,
                             removed: set[int]) -> "onnx.NodeProto | None":
    """The MatMulIntegerToFloat replacing a MatMulInteger and its dequantizing Cast, Mul (and bias Add), whose ids
    go into `removed`; None where the pattern around it is not that one or its scales are not constants."""
    from onnx import helper

    cast = index.only_consumer(node.output[0], "Cast")
    mul = cast and index.only_consumer(cast.output[0], "Mul")
    if mul is None:
        return None
    scales = index.producer.get(mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0])
    if scales is None or scales.op_type != "Mul" or not all(i in index.constants for i in scales.input):
        return None
    zero_points = list(node.input[2:4]) + [""] * (4 - len(node.input))
    inputs = [node.input[0], node.input[1], *scales.input, *zero_points]
    output = mul.output[0]
    add = index.only_consumer(output, "Add")
    bias = add and next((i for i in add.input if i != output), None)
    shape = index.constants.get(bias, ())
    if add is not None and len(shape) == 1 and shape[0] > 1:  # the bias shape MatMulIntegerToFloat takes
        inputs.append(bias)
        output = add.output[0]
        removed.add(id(add))
    removed.update((id(cast), id(mul)))
    if all(id(c) in removed for c in index.consumers[scales.output[0]]):
        removed.add(id(scales))
    return helper.make_node("MatMulIntegerToFloat", inputs, [output], domain="com.microsoft",
                            name=f"{node.name or output}_static")


def freeze_activation_scales(model: "onnx.ModelProto", calibration: Calibration) -> None:
    """Turn the dynamic int8 graph static in place: each DynamicQuantizeLinear becomes a QuantizeLinear with the
    calibrated scale and zero point as constants (what QAttention and the MatMuls read), and each MatMulInteger
    with its dequantizing Cast/Mul (and a following bias Add) becomes one MatMulIntegerToFloat, the kernel
    onnxruntime fuses them into for dynamic graphs but cannot once the scales are constants (it folds them)."""
    from onnx import helper

    graph = model.graph
    index = _GraphIndex.of(graph)
    replacement: dict[int, onnx.NodeProto] = {}
    removed: set[int] = set()
    for node in index.nodes:  # first: the MatMul pass below needs the scales as constants
        if node.op_type == "DynamicQuantizeLinear":
            replacement[id(node)] = _static_quantize(node, calibration, graph, index)
    for node in index.nodes:
        if node.op_type == "MatMulInteger" and (fused := _matmul_integer_to_float(node, index, removed)) is not None:
            replacement[id(node)] = fused
    kept = [replacement.get(id(n), n) for n in index.nodes if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


@contextlib.contextmanager
def _root_logger_at(level: int) -> Iterator[None]:
    """Silence what the quantizer logs straight to the root logger: a line per tensor and a pre-processing hint."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(old, level))
    try:
        yield
    finally:
        root.setLevel(old)


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations for CUDA; inputs stay int64 and logits fp32 (keep_io_types)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(
        keep_io_types=True, op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP16_KEEP_FP32]
    )
    model.save_model_to_file(str(dst))
    log.info("fp16 graph: %s", dst.name)
