"""Reduced-precision variants of the fused fp32 graph: int8 for CPU, fp16 for CUDA.

The int8 layout was chosen by measurement (export/QUANTIZATION.md): dynamic quantization of the
fused graph, per-channel weights, with the fused Attention nodes quantized too (QAttention).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

INT8_OP_TYPES = ("MatMul", "Attention")
INT8_PER_CHANNEL = True
# fp16 stays off where fp32 range or accumulation matters (unfused normalizations and softmax, if any remain).
FP16_KEEP_FP32 = ("LayerNormalization", "SimplifiedLayerNormalization", "Softmax")


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 (uint8 activations, int8 per-channel weights) for onnxruntime on CPU."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _root_logger_at(logging.ERROR):
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=list(INT8_OP_TYPES),
            per_channel=INT8_PER_CHANNEL,
            weight_type=QuantType.QInt8,
            # ONNX shape inference cannot type the com.microsoft fused ops; without this the quantizer fails on them.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    log.info("int8 graph: %s", dst.name)


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
