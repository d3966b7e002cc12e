"""onnxscript's onnxruntime fusions, for graphs whose attention onnxruntime's own optimizer does not fuse.

The dynamo exporter's graphs are such graphs (export/VALIDATION.md). onnxscript fuses their attention into
com.microsoft Attention, but with the padding mask as a float attention_bias [batch, 1, seq, seq] and a
qkv_hidden_sizes attribute: onnxruntime's int8 quantizer leaves such a node in float (the attribute), and
quantizes it without its mask once the attribute is gone. So where that bias is the padding mask alone, the
node gets the int attention mask as mask_index instead, which QAttention keeps.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx_ir as ir

log = logging.getLogger(__name__)

MASK_INPUT = "attention_mask"
MS_DOMAIN = "com.microsoft"
BIAS = 5  # Attention inputs: input, weights, bias, mask_index, past, attention_bias, past_sequence_length
MASK_INDEX = 3


def fuse(src: Path, dst: Path) -> tuple[int, int]:
    """onnxscript's fusions of `src` into `dst`; returns (fused Attention nodes, those now taking the int mask)."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model, _ = optimize_for_ort(ir.load(str(src)))
    attention = [n for n in model.graph if n.op_type == "Attention" and n.domain == MS_DOMAIN]
    masked = mask_as_mask_index(model, attention)
    ir.save(model, str(dst))
    log.info("onnxscript fused %d Attention nodes, %d with the attention mask as mask_index", len(attention), masked)
    return len(attention), masked


def mask_as_mask_index(model: "ir.Model", attention: list["ir.Node"]) -> int:
    """Feed each Attention node whose attention_bias is computed from the attention mask alone the int32 mask as
    mask_index (1 keeps a key, 0 masks it, as the bias did), without qkv_hidden_sizes; returns how many."""
    import onnx_ir as ir

    mask = next((v for v in model.graph.inputs if v.name == MASK_INPUT), None)
    nodes = [n for n in attention if mask is not None and _takes_padding_bias(n, mask)]
    if not nodes:
        return 0
    cast = ir.node("Cast", [mask], attributes={"to": ir.DataType.INT32}, name=f"{MASK_INPUT}_mask_index")
    cast.outputs[0].name = f"{MASK_INPUT}_mask_index"
    model.graph.insert_before(next(iter(model.graph)), cast)
    for node in nodes:
        node.attributes.pop("qkv_hidden_sizes", None)
        kept = list(node.inputs[:MASK_INDEX])
        for i in range(len(node.inputs)):
            node.replace_input_with(i, None)
        node.resize_inputs(MASK_INDEX + 1)
        for i, value in enumerate([*kept, cast.outputs[0]]):
            node.replace_input_with(i, value)
    ir.passes.common.RemoveUnusedNodesPass()(model)  # the float bias's own subgraph
    return len(nodes)


def _takes_padding_bias(node: "ir.Node", mask: "ir.Value") -> bool:
    """Whether `node` has no mask_index, equal q/k/v sizes and an attention_bias [batch, 1, *, seq] that depends
    on no data but the attention mask (other inputs only through their shapes) and on no float tensor but
    scalars: a padding mask, not relative positions or other learned scores."""
    inputs = list(node.inputs)
    if len(inputs) <= BIAS or inputs[BIAS] is None or any(v is not None for v in inputs[MASK_INDEX:BIAS]):
        return False
    if any(v is not None for v in inputs[BIAS + 1:]):
        return False
    sizes = node.attributes.get("qkv_hidden_sizes")
    if sizes is not None and len(set(sizes.value)) != 1:
        return False
    bias = inputs[BIAS]
    if bias.shape is None or len(bias.shape) != 4 or bias.shape[1] != 1:
        return False
    return _depends_on_mask_only(bias, mask)


def _depends_on_mask_only(value: "ir.Value", mask: "ir.Value") -> bool:
    import onnx_ir as ir

    found_mask, seen, stack = False, set(), [value]
    while stack:
        v = stack.pop()
        if v is None or id(v) in seen:
            continue
        seen.add(id(v))
        producer = v.producer()
        if producer is None:
            if v is mask:
                found_mask = True
            elif v.is_graph_input():
                return False
            elif v.const_value is not None and v.dtype.is_floating_point() and _size(v.const_value.shape) > 1:
                return False
            continue
        if producer.op_type == "Shape":
            continue  # a size, not data
        if producer.op_type == "Constant":
            tensor = next(iter(producer.attributes.values())).value
            if isinstance(tensor, ir.TensorProtocol) and tensor.dtype.is_floating_point() and _size(tensor.shape) > 1:
                return False
            continue
        stack.extend(producer.inputs)
    return found_mask


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
