"""Transformer fusion with onnxruntime's optimizer: fused attention, layer norms and GELU for CPU and CUDA."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .onnx_export import FUSION_TYPES

if TYPE_CHECKING:
    from transformers import PretrainedConfig

log = logging.getLogger(__name__)

FUSED_OPS = (
    "EmbedLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
# Level 1 (basic) rewrites are provider independent, so one fused graph serves CPU, CUDA and the int8/fp16 steps.
OPT_LEVEL = 1


# onnxruntime's attention fusion matches the absolute-position BERT graph; relative position scores
# (BERT position_embedding_type relative_key*, and train.relbert's model type, the offline tiny model) leave
# attention as MatMul/Softmax nodes, fused or not.
UNFUSABLE_POSITIONS = ("relative_key", "relative_key_query")
UNFUSABLE_TYPES = ("qa-engine-relbert",)


def attention_fusable(config: "PretrainedConfig") -> bool:
    """Whether onnxruntime's optimizer has a fused attention kernel for this architecture."""
    return (config.model_type not in UNFUSABLE_TYPES
            and getattr(config, "position_embedding_type", "absolute") not in UNFUSABLE_POSITIONS)


class FusionError(ValueError):
    """The optimizer did not fuse every attention layer: the graph would run unfused, much slower."""


def fuse(src: Path, dst: Path, config: "PretrainedConfig") -> dict[str, int]:
    """Fuse `src` into `dst` and return the fused-op counts.

    Raises unless every layer got a fused Attention, except for relative-position attention, which no
    onnxruntime kernel implements: that graph keeps its attention unfused and says so in the log."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(src),
        model_type=FUSION_TYPES[config.model_type],
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=OPT_LEVEL,
        use_gpu=False,
    )
    stats = model.get_fused_operator_statistics()
    counts = {op: int(stats.get(op, 0)) for op in FUSED_OPS if stats.get(op, 0)}
    attention = sum(counts.get(op, 0) for op in ATTENTION_OPS)
    if not attention_fusable(config):
        log.warning("%s attention (relative positions) has no fused onnxruntime kernel: it stays unfused",
                    config.model_type)
    elif attention != config.num_hidden_layers:
        raise FusionError(
            f"{src}: fused {attention} attention nodes for {config.num_hidden_layers} layers "
            f"(fused ops: {counts or 'none'}); this onnxruntime {_ort_version()} cannot fuse "
            f"{config.model_type} exported at this opset"
        )
    model.save_model_to_file(str(dst))
    log.info("fused graph: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
