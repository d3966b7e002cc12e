"""The offline tiny model's relative-position BERT (train.relbert): 4.57 BERT's relative_key math on any transformers,
really used by the tiny model, saved and loaded through the Auto classes, exported to ONNX."""
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoConfig, AutoModelForQuestionAnswering, BertConfig, BertForQuestionAnswering  # noqa: E402

from qa_engine.train.model import TINY_FAMILIES, tiny_config  # noqa: E402
from qa_engine.train.relbert import MODEL_TYPE, RelBertConfig, RelBertForQuestionAnswering  # noqa: E402
from qa_engine.train.weights import unknown_config_options  # noqa: E402

SMALL = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
             initializer_range=0.5)  # large weights: differences show in the logits


def _inputs(lengths: list[int], width: int, seed: int = 0) -> dict:
    """A right-padded batch: question segment (type 0) for the first third of each row, context (type 1) after."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, SMALL["vocab_size"], (len(lengths), width), generator=g)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        types[row, n // 3 : n] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types}


def _model(seed: int = 0) -> RelBertForQuestionAnswering:
    torch.manual_seed(seed)
    return RelBertForQuestionAnswering(RelBertConfig(**SMALL)).eval()


def test_attention_is_the_relative_key_formula():
    """score(l, r) = q_l . (k_r + D[l - r]) / sqrt(d), evaluated pair by pair, against the layer's batched einsum."""
    model = _model()
    attention = model.bert.encoder.layer[0].attention.self
    batch = _inputs([9, 6], 9)
    hidden = torch.randn(2, 9, SMALL["hidden_size"], generator=torch.Generator().manual_seed(1))
    mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        got = attention(hidden, mask)
        heads, size = attention.num_attention_heads, attention.attention_head_size
        offset = SMALL["max_position_embeddings"] - 1  # distance 0's row
        split = [lin(hidden).view(2, 9, heads, size) for lin in (attention.query, attention.key, attention.value)]
        q, k, v = split
        table = attention.distance_embedding.weight
        want = torch.zeros(2, 9, heads, size)
        for b in range(2):
            for h in range(heads):
                for i in range(9):
                    scores = torch.tensor([
                        float(q[b, i, h] @ (k[b, j, h] + table[i - j + offset])) / math.sqrt(size)
                        if batch["attention_mask"][b, j] else -math.inf
                        for j in range(9)
                    ])
                    want[b, i, h] = torch.softmax(scores, 0) @ v[b, :, h]
    torch.testing.assert_close(got, want.reshape(2, 9, heads * size), atol=1e-5, rtol=1e-5)


def _bert_has_relative_key() -> bool:
    layer = BertForQuestionAnswering(BertConfig(position_embedding_type="relative_key", **SMALL))
    return any("distance_embedding" in name for name, _ in layer.named_parameters())


@pytest.mark.skipif(not _bert_has_relative_key(), reason="this transformers' BERT has no relative_key attention")
def test_same_logits_as_the_transformers_bert_it_reproduces():
    """Where transformers' own BERT implements relative_key (4.x), its weights give our model identical logits."""
    torch.manual_seed(0)
    bert = BertForQuestionAnswering(BertConfig(position_embedding_type="relative_key", attn_implementation="eager",
                                               **SMALL)).eval()
    ours = _model()
    missing, unexpected = ours.load_state_dict(bert.state_dict(), strict=False)
    assert missing == [] and unexpected == ["bert.embeddings.position_embeddings.weight"]  # 4.57 builds, never adds it
    batch = _inputs([20, 13, 7], 20)
    with torch.no_grad():
        want, got = bert(**batch), ours(**batch)
    torch.testing.assert_close(got.start_logits, want.start_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.end_logits, want.end_logits, atol=1e-5, rtol=0)


def _shift_difference(model: torch.nn.Module, shift: int) -> float:
    """How much the real tokens' logits move when `shift` masked padding tokens are put before them."""
    batch = _inputs([15], 15, seed=3)
    shifted = {k: torch.cat([torch.zeros(1, shift, dtype=v.dtype), v], dim=1) for k, v in batch.items()}
    with torch.no_grad():
        plain, moved = model(**batch), model(**shifted)
    return max(float((plain.start_logits - moved.start_logits[:, shift:]).abs().max()),
               float((plain.end_logits - moved.end_logits[:, shift:]).abs().max()))


def _tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForQuestionAnswering.from_config(tiny_config("bert", SMALL["vocab_size"])).eval()


def test_the_tiny_bert_sees_only_relative_positions():
    """Moving a whole window leaves the tiny model's answers unchanged; a BERT with absolute positions (what
    transformers 5 builds when it ignores position_embedding_type) moves them, so the check bites."""
    assert _shift_difference(_tiny_bert(), shift=5) < 1e-4
    torch.manual_seed(0)
    absolute = BertForQuestionAnswering(BertConfig(**SMALL)).eval()
    assert _shift_difference(absolute, shift=5) > 1e-2


def test_the_tiny_bert_uses_a_distance_embedding_in_every_layer():
    """Changing the distance embeddings changes the logits: relative positions are not silently dropped."""
    model = _tiny_bert()
    tables = [p for name, p in model.named_parameters() if name.endswith("attention.self.distance_embedding.weight")]
    assert len(tables) == model.config.num_hidden_layers
    batch = _inputs([15], 15)
    with torch.no_grad():
        before = model(**batch).start_logits
        for table in tables:
            table.normal_(0.0, 10.0)  # unused tables would leave the logits bit for bit as they were
        after = model(**batch).start_logits
    assert float((before - after).abs().max()) > 1e-3


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_configs_set_no_option_their_transformers_does_not_know(family):
    """An option the config class does not define is stored and ignored (transformers 5's BERT and
    position_embedding_type): the tiny configs must not depend on one."""
    assert unknown_config_options(tiny_config(family, 100)) == {}


def test_unknown_config_options_names_an_ignored_option():
    config = RelBertConfig(**SMALL)
    config.position_embedding_type = "relative_key"  # what a 4.57 BERT config carries into transformers 5
    assert unknown_config_options(config) == {"position_embedding_type": "relative_key"}


def test_save_and_load_through_the_auto_classes(tmp_path):
    model = _model()
    model.config.architectures = ["RelBertForQuestionAnswering"]
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == MODEL_TYPE
    loaded, info = AutoModelForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, RelBertForQuestionAnswering)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    batch = _inputs([12, 8], 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch).start_logits, model(**batch).start_logits, atol=0, rtol=0)


def test_loss_is_bert_s():
    """Mean of the start and end cross-entropies, labels past the window ignored, as BertForQuestionAnswering."""
    model = _model()
    batch = _inputs([10, 10], 10)
    starts, ends = torch.tensor([2, 50]), torch.tensor([4, 50])  # 50: past the window, clamped and ignored
    with torch.no_grad():
        out = model(**batch, start_positions=starts, end_positions=ends)
    ce = torch.nn.functional.cross_entropy
    want = (ce(out.start_logits[:1], starts[:1]) + ce(out.end_logits[:1], ends[:1])) / 2
    torch.testing.assert_close(out.loss, want)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_exports_to_onnx_with_dynamic_axes(tmp_path, dynamo):
    """torch.onnx.export of the model gives onnxruntime logits equal to PyTorch's, at a width it was not traced at."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    model = _model()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    trace = _inputs([8, 5], 8)
    path = tmp_path / "model.onnx"
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    if dynamo:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=SMALL["max_position_embeddings"])
        # opset 18: the torch.export exporter's own (its conversion down to 17 writes an invalid Split)
        kwargs = {"dynamic_shapes": {n: {0: batch, 1: sequence} for n in names}, "dynamo": True, "opset_version": 18}
    else:
        kwargs = {"dynamic_axes": {**axes, "start_logits": axes["input_ids"], "end_logits": axes["input_ids"]},
                  "dynamo": False, "opset_version": 17}
    with torch.no_grad():
        torch.onnx.export(model, (), str(path), kwargs=trace, input_names=names,
                          output_names=["start_logits", "end_logits"], **kwargs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _inputs([19, 11, 3], 19, seed=5)
    start, end = session.run(None, {n: batch[n].numpy() for n in names})
    with torch.no_grad():
        want = model(**batch)
    torch.testing.assert_close(torch.from_numpy(start), want.start_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(end), want.end_logits, atol=1e-4, rtol=1e-4)
    from qa_engine.export.fusion import fuse

    fused = fuse(path, tmp_path / "fused.onnx", model.config)  # all but attention, which has no relative kernel
    layers = SMALL["num_hidden_layers"]
    assert "Attention" not in fused
    assert (fused.get("EmbedLayerNormalization"), fused.get("SkipLayerNormalization")) == (1, 2 * layers)
