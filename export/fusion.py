"""Transformer fusion with onnxruntime's optimizer (and onnxscript's fusions where they fuse more): fused attention,
layer norms and GELU for CPU and CUDA."""
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
    """The optimizer did not fuse every attention layer, or left one int8 cannot quantize: the graph would run
    unfused or in float, much slower."""


def fuse(src: Path, dst: Path, config: "PretrainedConfig") -> dict[str, int]:
    """Fuse `src` into `dst` and return the fused-op counts.

    onnxruntime's transformer optimizer fuses the TorchScript exporter's graphs; where it fuses fewer attention
    layers than the model has (the dynamo exporter's graphs), onnxscript's onnxruntime fusions run first
    (export/onnxscript_fusion.py) and the optimizer then fuses what they left. Raises unless every layer got a
    fused Attention that int8 can quantize with its mask, except for relative-position attention, which no
    onnxruntime kernel implements: that graph keeps its attention unfused and says so in the log."""
    layers = config.num_hidden_layers
    model = _optimize(src, config)
    counts = _fused_ops(model)
    if attention_fusable(config) and _attention(counts) < layers:
        from . import onnxscript_fusion

        pre = src.with_name(f"{src.stem}.onnxscript.onnx")
        onnxscript_fusion.fuse(src, pre)
        alternative = _optimize(pre, config)
        found = _fused_ops(alternative)
        if _attention(found) > _attention(counts):
            log.info("onnxscript's fusions fused %d attention layers where onnxruntime's optimizer fused %d",
                     _attention(found), _attention(counts))
            model, counts = alternative, found
    if not attention_fusable(config):
        log.warning("%s attention (relative positions) has no fused onnxruntime kernel: it stays unfused",
                    config.model_type)
    elif _attention(counts) != layers:
        raise FusionError(
            f"{src}: fused {_attention(counts)} attention nodes for {layers} layers "
            f"(fused ops: {counts or 'none'}); neither onnxruntime {_ort_version()}'s optimizer nor onnxscript's "
            f"fusions can fuse {config.model_type} exported this way (try the other --exporter)"
        )
    else:
        _check_quantizable(src, model.model.graph)
    model.save_model_to_file(str(dst))
    log.info("fused graph: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _optimize(src: Path, config: "PretrainedConfig"):
    from onnxruntime.transformers.optimizer import optimize_model

    return optimize_model(
        str(src),
        model_type=FUSION_TYPES[config.model_type],
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=OPT_LEVEL,
        use_gpu=False,
    )


def _fused_ops(model) -> dict[str, int]:
    stats = model.get_fused_operator_statistics()
    return {op: int(stats.get(op, 0)) for op in FUSED_OPS if stats.get(op, 0)}


def _attention(counts: dict[str, int]) -> int:
    return sum(counts.get(op, 0) for op in ATTENTION_OPS)


def _check_quantizable(src: Path, graph) -> None:
    """Every Attention node must be one onnxruntime's int8 quantizer turns into QAttention with its mask: no
    qkv_hidden_sizes (left in float) and no float attention_bias (dropped by QAttention). MultiHeadAttention
    (separate q, k, v projections) has no int8 form: it runs in float, with a warning."""
    heads = sum(node.op_type == "MultiHeadAttention" for node in graph.node)
    if heads:
        log.warning("%s: %d attention layers fused as MultiHeadAttention, which int8 keeps in float (its "
                    "projections are quantized); the TorchScript exporter's graph fuses to Attention", src.name, heads)
    for node in graph.node:
        if node.op_type != "Attention":
            continue
        if any(a.name == "qkv_hidden_sizes" for a in node.attribute) or any(node.input[5:6]):
            raise FusionError(
                f"{src}: fused Attention {node.name!r} takes its mask as a float attention_bias or has "
                "qkv_hidden_sizes; int8 would leave it in float or drop its mask"
            )


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
