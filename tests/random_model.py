"""A random-weight BERT-like QA model written with onnx.helper, so the runtime's tests need no training or export.

Run `python -m tests.random_model` (needs onnx and onnxruntime's quantization and fp16 tools: the full venv) to
write tests/data/random_bert/model.{fp32,int8,fp16}.onnx; the files are committed, so the runtime-only test job
reads them without onnx installed, and tests/runtime/test_random_model.py checks the fp32 file is what this script makes.
The int8 and fp16 files come from export.quantize, as an exported artifact's do (int8 calibrated on test questions).

The graph is a 2-layer encoder (embeddings, masked multi-head self-attention, GELU feed-forward, post-layer norms)
and a QA head giving start_logits/end_logits, plus each token's bilinear affinity with the mean state of the
question segment (a random encoder alone answers nearly the same span whatever the question; with it, different
questions on one context get different answers, so a test that mixes up two callers' answers fails). Token ids are
hashed (mod HASH_BUCKETS) before the embedding lookup, so any tokenizer's ids are in range and the file stays small.
Weights are scaled so the logits spread widely (std about 5): a span's lead over the next is far above float
rounding, so padding or batching cannot flip an answer, while a model that let padding leak into attention would
change them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

FOLDER = Path(__file__).resolve().parent / "data" / "random_bert"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("start_logits", "end_logits")
OPSET = 17
IR_VERSION = 8  # fixed, so the bytes do not change with the onnx version installed (the file is committed)
SEED = 12
HIDDEN, HEADS, FFN, LAYERS = 32, 4, 64, 2
HASH_BUCKETS = 256
LN_EPS = 1e-12
LOGIT_GAIN = 5.0  # the QA head's output std over unit-variance hidden states
QUESTION_GAIN = 5.0  # the question-affinity term's std
CALIBRATION_PAIRS = 64


class _Graph:
    """Nodes and initializers collected while the encoder is written, one helper per operation."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.weights = rng, [], []

    def weight(self, name: str, shape: tuple[int, ...], scale: float) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: object) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x: str, prefix: str, n_in: int, n_out: int, gain: float = 1.0) -> str:
        w = self.weight(f"{prefix}.weight", (n_in, n_out), gain / np.sqrt(n_in))
        b = self.weight(f"{prefix}.bias", (n_out,), 0.1)
        return self.op("Add", [self.op("MatMul", [x, w], f"{prefix}.matmul"), b], f"{prefix}.out")

    def layer_norm(self, x: str, prefix: str) -> str:
        gamma = self.const(f"{prefix}.gamma", np.ones(HIDDEN, np.float32))
        beta = self.const(f"{prefix}.beta", np.zeros(HIDDEN, np.float32))
        return self.op("LayerNormalization", [x, gamma, beta], f"{prefix}.out", axis=-1, epsilon=LN_EPS)


def _embeddings(g: _Graph, token_type_ids: bool) -> str:
    ids = g.op("Mod", ["input_ids", g.const("buckets", np.array(HASH_BUCKETS, np.int64))], "hashed_ids")
    x = g.op("Gather", [g.weight("word_embeddings", (HASH_BUCKETS, HIDDEN), 1.0), ids], "words")
    x = g.op("Add", [x, _sinusoidal_positions(g)], "with_positions")
    if token_type_ids:
        types = g.op("Gather", [g.weight("token_type_embeddings", (2, HIDDEN), 1.0), "token_type_ids"], "type_vectors")
        x = g.op("Add", [x, types], "with_types")
    return g.layer_norm(x, "embeddings.norm")


def _sinusoidal_positions(g: _Graph) -> str:
    """(sequence, hidden) position vectors computed in the graph: sin and cos of the position at HIDDEN/2
    frequencies, as in the original Transformer (no table, so no length limit and a smaller file)."""
    length = g.op("Gather", [g.op("Shape", ["input_ids"], "shape"), g.const("one", np.array(1, np.int64))], "length")
    positions = g.op("Range", [g.const("zero", np.array(0, np.int64)), length, "one"], "positions")
    column = g.op("Unsqueeze", [g.op("Cast", [positions], "positions_float", to=1), "one_axis"], "position_column")
    frequencies = 1.0 / 10000.0 ** (np.arange(HIDDEN // 2, dtype=np.float32) / (HIDDEN // 2))
    angles = g.op("Mul", [column, g.const("frequencies", frequencies.astype(np.float32))], "angles")
    return g.op("Concat", [g.op("Sin", [angles], "sines"), g.op("Cos", [angles], "cosines")], "position_vectors",
                axis=-1)


def _attention_bias(g: _Graph) -> str:
    """(batch, 1, 1, seq): 0 where attention_mask is 1, -10000 (finite in fp16) where it is 0."""
    mask = g.op("Cast", ["attention_mask"], "mask_float", to=1)
    blocked = g.op("Sub", [g.const("one_float", np.array(1.0, np.float32)), mask], "blocked")
    bias = g.op("Mul", [blocked, g.const("minus_large", np.array(-10000.0, np.float32))], "mask_bias")
    return g.op("Unsqueeze", [bias, g.const("head_query_axes", np.array([1, 2], np.int64))], "attention_bias")


def _layer(g: _Graph, x: str, bias: str, i: int) -> str:
    p, head = f"layer{i}", HIDDEN // HEADS
    split_heads = g.const(f"{p}.split_shape", np.array([0, 0, HEADS, head], np.int64))

    def heads(name: str, perm: list[int]) -> str:
        projected = g.linear(x, f"{p}.{name}", HIDDEN, HIDDEN)
        return g.op("Transpose", [g.op("Reshape", [projected, split_heads], f"{p}.{name}.heads")],
                    f"{p}.{name}.t", perm=perm)

    q, k, v = heads("query", [0, 2, 1, 3]), heads("key", [0, 2, 3, 1]), heads("value", [0, 2, 1, 3])
    scale = g.const(f"{p}.scale", np.array(1 / np.sqrt(head), np.float32))
    scores = g.op("Mul", [g.op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
    probs = g.op("Softmax", [g.op("Add", [scores, bias], f"{p}.masked")], f"{p}.probs", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v], f"{p}.context")], f"{p}.context.t", perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [context, g.const(f"{p}.merge_shape", np.array([0, 0, HIDDEN], np.int64))], f"{p}.merged")
    x = g.layer_norm(g.op("Add", [x, g.linear(merged, f"{p}.output", HIDDEN, HIDDEN)], f"{p}.residual1"), f"{p}.norm1")
    hidden = g.linear(x, f"{p}.ffn_in", HIDDEN, FFN)
    erf = g.op("Erf", [g.op("Mul", [hidden, g.const(f"{p}.inv_sqrt2", np.array(1 / np.sqrt(2), np.float32))],
                            f"{p}.scaled")], f"{p}.erf")
    gelu = g.op("Mul", [g.op("Mul", [hidden, g.const(f"{p}.half", np.array(0.5, np.float32))], f"{p}.half_x"),
                        g.op("Add", [erf, "one_float"], f"{p}.one_plus_erf")], f"{p}.gelu")
    return g.layer_norm(g.op("Add", [x, g.linear(gelu, f"{p}.ffn_out", FFN, HIDDEN)], f"{p}.residual2"), f"{p}.norm2")


def _question_affinity(g: _Graph, x: str, token_type_ids: bool) -> str:
    """(batch, seq, 2): each token's state times a projection of the question's: the mean state over the first
    segment's real tokens ([CLS] question [SEP]), or the [CLS] state where the model takes no token_type_ids."""
    if token_type_ids:
        first = g.op("Sub", ["one_float", g.op("Cast", ["token_type_ids"], "types_float", to=1)], "first_segment")
        keep = g.op("Unsqueeze", [g.op("Mul", [first, "mask_float"], "question_tokens"),
                                  g.const("hidden_axis", np.array([2], np.int64))], "question_weights")
        total = g.op("ReduceSum", [g.op("Mul", [x, keep], "question_states"), "one_axis"], "question_sum", keepdims=0)
        count = g.op("ReduceSum", [keep, "one_axis"], "question_count", keepdims=0)
        question = g.op("Div", [total, count], "question_mean")
    else:
        question = g.op("Gather", [x, g.const("cls_index", np.array(0, np.int64))], "question_mean", axis=1)
    projection = g.op("Reshape", [g.op("MatMul", [question, g.weight("question.weight", (HIDDEN, 2 * HIDDEN),
                                                                        1 / np.sqrt(HIDDEN))], "question.matmul"),
                                  g.const("question.shape", np.array([0, HIDDEN, 2], np.int64))], "question.projection")
    affinity = g.op("MatMul", [x, projection], "question.affinity")
    return g.op("Mul", [affinity, g.const("question.gain", np.array(QUESTION_GAIN / np.sqrt(HIDDEN), np.float32))],
                "question.logits")


def build(token_type_ids: bool = True, seed: int = SEED) -> "onnx.ModelProto":
    """The random QA model; inputs int64 (batch, sequence), outputs float32 (batch, sequence), both axes dynamic."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph(np.random.default_rng(seed))
    g.const("one_axis", np.array([1], np.int64))
    x = _embeddings(g, token_type_ids)
    bias = _attention_bias(g)
    for i in range(LAYERS):
        x = _layer(g, x, bias, i)
    head = g.linear(x, "qa_outputs", HIDDEN, 2, gain=LOGIT_GAIN)
    logits = g.op("Add", [head, _question_affinity(g, x, token_type_ids)], "logits")
    g.nodes.append(helper.make_node("Split", [logits, g.const("halves", np.array([1, 1], np.int64))],
                                    ["start_column", "end_column"], name="split", axis=-1))
    last = g.const("last_axis", np.array([-1], np.int64))
    for column, name in zip(("start_column", "end_column"), OUTPUT_NAMES):
        g.nodes.append(helper.make_node("Squeeze", [column, last], [name], name=name))
    names = INPUT_NAMES if token_type_ids else INPUT_NAMES[:2]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "sequence"]) for n in OUTPUT_NAMES]
    graph = helper.make_graph(g.nodes, "random_bert_qa", inputs, outputs, g.weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qa-engine tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def calibration_feeds() -> list[dict[str, np.ndarray]]:
    """Model inputs of CALIBRATION_PAIRS test questions (seed 1: not the tests' seed-0 ones), as the engine batches
    them, for the int8 activation scales."""
    from qa_engine.core.config import EngineSettings
    from qa_engine.core.pipeline import model_feed, plan_calls
    from qa_engine.core.windows import WindowTokenizer
    from tests.fixtures import char_wordpiece, korean_alphabet, qa_pairs

    tokenizer = WindowTokenizer(char_wordpiece(korean_alphabet()))
    pairs = qa_pairs(CALIBRATION_PAIRS, seed=1)
    windows = tokenizer.windows([q for q, _, _ in pairs], [c for _, c, _ in pairs])
    return [model_feed(windows, rows, width, INPUT_NAMES, tokenizer.template.pad_id)
            for rows, width in plan_calls(windows, EngineSettings())]


def write(folder: Path = FOLDER) -> None:
    """Write the fp32 model and its int8 and fp16 variants made as export makes them."""
    import onnx
    from qa_engine.export.quantize import convert_fp16, quantize_int8

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.fp32.onnx"
    onnx.save(build(), str(fp32))
    quantize_int8(fp32, folder / "model.int8.onnx", calibration_feeds())
    convert_fp16(fp32, folder / "model.fp16.onnx")


if __name__ == "__main__":
    write()
