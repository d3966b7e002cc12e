"""Export: ONNX artifact in every precision, parity with PyTorch, manifest, atomicity and clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxscript")

from qa_engine.benchmarks.parity_export import FAMILIES, tiny_checkpoint  # noqa: E402
from qa_engine.export import onnx_export, pipeline, quantize, validate  # noqa: E402
from qa_engine.export.fusion import FusionError, fuse  # noqa: E402

from qa_engine.artifacts.manifest import Manifest, sha256_file  # noqa: E402
from qa_engine.core.windows import WindowTokenizer  # noqa: E402

slow = pytest.mark.slow  # trains the tiny model (first run) or exports one

SMALL = 24  # validation questions for the extra exports: enough to decode real windows, quick on 2 cores
EXPORTERS = ("torchscript", "dynamo")
BATCH_GAP = 0.05  # int8 |Δ logits|, a window alone vs batched: a uint8 step crossed by float rounding, at most


def _copy_checkpoint(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    return dst


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def _int8_weight_layouts(path: Path) -> list[tuple[str, str, int, int, int]]:
    """(op type, node, output channels, weight scales, weight zero points) of every int8 weight product, after
    checking that every activation scale is a constant (static int8: no DynamicQuantizeLinear left)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    assert not [n.name for n in graph.node if n.op_type.startswith("DynamicQuantize")]
    layouts = []
    for node in graph.node:
        if node.op_type == "QAttention":  # input, weight, bias, input_scale, weight_scale, mask, input_zp, weight_zp
            a_scale, weight, scale, zero = node.input[3], node.input[1], node.input[4], node.input[7]
        elif node.op_type == "MatMulIntegerToFloat":  # A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias
            a_scale, weight, scale, zero = node.input[2], node.input[1], node.input[3], node.input[5]
        else:
            continue
        assert a_scale in consts and consts[a_scale].size == 1, node.name
        channels = consts[weight].shape[-1]
        layouts.append((node.op_type, node.name, channels, consts[scale].size, consts[zero].size if zero else channels))
    return layouts


@slow
def test_artifact_has_every_precision_with_matching_checksums(tiny_bert_artifact: Path, tiny_bert_checkpoint: Path) -> None:
    manifest = Manifest.read(tiny_bert_artifact)
    assert set(manifest.variants) == {"fp32", "int8", "fp16"}
    for precision, variant in manifest.variants.items():
        assert variant.file == f"model.{precision}.onnx"
        assert sha256_file(tiny_bert_artifact / variant.file) == variant.sha256
    assert manifest.variants["fp32"].providers == ["cpu", "cuda"]
    assert manifest.variants["int8"].providers == ["cpu"]
    assert manifest.variants["fp16"].providers == ["cuda"]
    for name in pipeline.TOKENIZER_FILES:  # transformers 5 writes no special_tokens_map.json: copied where present
        assert (tiny_bert_artifact / name).is_file() == (tiny_bert_checkpoint / name).is_file(), name
    assert (tiny_bert_artifact / "tokenizer.json").is_file() and (tiny_bert_artifact / "config.json").is_file()
    copied = [name for name in pipeline.TOKENIZER_FILES if (tiny_bert_artifact / name).is_file()]
    assert manifest.files == {name: sha256_file(tiny_bert_artifact / name) for name in copied}
    assert manifest.checksums_every_file and manifest.checksum == manifest.content_sha256()
    assert not (tiny_bert_artifact / pipeline.WORK).exists()
    assert manifest.model_type == "qa-engine-relbert"
    assert manifest.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest.output_names[:2] == ["start_logits", "end_logits"]
    assert manifest.opset >= onnx_export.MIN_OPSET
    assert {"onnxruntime", "transformers", "torch", "onnx", "onnxscript"} <= set(manifest.versions)
    assert not any("optimum" in name for name in manifest.versions)
    assert manifest.versions["torch.onnx exporter"] == onnx_export.choose_exporter("auto")
    import onnx

    graph = onnx.load(str(tiny_bert_artifact / "model.fp32.onnx"), load_external_data=False).graph
    for tensor in graph.input:  # dynamic batch and sequence axes
        assert all(d.dim_param and not d.dim_value for d in tensor.type.tensor_type.shape.dim), tensor.name
    layers = json.loads((tiny_bert_checkpoint / "config.json").read_text())["num_hidden_layers"]
    assert "Attention" not in manifest.fusion  # relative-position attention has no fused kernel
    # two norms per layer and the embeddings' (fused with the embedding sum, as EmbedLayerNormalization or as one
    # more SkipLayerNormalization, as the relative-position model's TorchScript graph has it)
    norms = manifest.fusion["SkipLayerNormalization"] + manifest.fusion.get("EmbedLayerNormalization", 0)
    assert norms == 2 * layers + 1, manifest.fusion


@slow
def test_manifest_records_validation(tiny_bert_artifact: Path) -> None:
    variants = Manifest.read(tiny_bert_artifact).variants
    fp32 = variants["fp32"]
    assert fp32.validated
    assert fp32.validation["reference"] == "pytorch"
    assert fp32.validation["max_abs_diff"] <= 1e-4
    assert fp32.validation["answers_identical"] == 1.0
    int8 = variants["int8"]
    assert int8.validated and int8.validation["reference"] == "fp32"
    assert int8.validation["questions"] > 100
    assert int8.validation["answers_identical"] >= 0.9
    assert int8.validation["calibration"]["windows"] >= int8.validation["calibration"]["questions"] > 100
    assert int8.validation["batch_max_abs_diff"] <= BATCH_GAP
    fp16 = variants["fp16"]
    if not fp16.validated:  # no working CUDA provider here: the reason is recorded
        assert "not validated" in fp16.note and "CUDA" in fp16.note


@slow
def test_fp32_onnx_matches_pytorch_on_real_windows(tiny_bert_artifact: Path, tiny_bert_checkpoint: Path) -> None:
    """An independent check of the parity the export asserts: real Korean windows, padded batch."""
    import torch
    from qa_engine.export.validate import BUILTIN_SAMPLES
    from transformers import AutoModelForQuestionAnswering

    from qa_engine.core.windows import WindowTokenizer
    from qa_engine.runners.sessions import cpu_session

    tok = WindowTokenizer.from_file(tiny_bert_artifact / "tokenizer.json")
    w = tok.windows([q for q, _, _ in BUILTIN_SAMPLES], [c for _, c, _ in BUILTIN_SAMPLES])
    feed = {"input_ids": w.input_ids, "attention_mask": w.attention_mask, "token_type_ids": w.token_type_ids}
    start, end = cpu_session(tiny_bert_artifact / "model.fp32.onnx").run(["start_logits", "end_logits"], feed)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_bert_checkpoint).eval()
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    real = w.attention_mask.astype(bool)
    assert np.abs(start - out.start_logits.numpy())[real].max() <= 1e-4
    assert np.abs(end - out.end_logits.numpy())[real].max() <= 1e-4


@slow
def test_int8_weights_have_one_scale_per_output_channel(tiny_bert_artifact: Path, tmp_path: Path) -> None:
    """The measured int8 layout (export/QUANTIZATION.md) is per-channel: the benchmark figures depend on it and the
    accuracy check cannot tell it from per-tensor on the tiny model. Quantized anew, so the check sees today's code."""
    out = tmp_path / "model.int8.onnx"
    examples, _ = validate.validation_examples(None, SMALL)
    tokenizer = WindowTokenizer.from_file(tiny_bert_artifact / "tokenizer.json")
    names = Manifest.read(tiny_bert_artifact).input_names
    feeds = validate.calibration_feeds(examples, tokenizer, names)
    quantize.quantize_int8(tiny_bert_artifact / "model.fp32.onnx", out, feeds)
    layouts = _int8_weight_layouts(out)
    assert len(layouts) >= 12  # 2 layers x (q, k, v, output, 2 feed-forward) at least
    for _, name, channels, scales, zero_points in layouts:
        assert (scales, zero_points) == (channels, channels), name


class _Shifted:
    """An onnxruntime session whose `output` is moved by `shift` on every token: a wrong graph whose answers stay
    the same (a constant does not change a softmax), so only the comparison of that output's logits can see it."""

    def __init__(self, session, output: str, shift: float):
        self.session, self.output, self.shift = session, output, shift

    def run(self, names, feed):
        names = names or [o.name for o in self.session.get_outputs()]
        return [o + self.shift if n == self.output else o for n, o in zip(names, self.session.run(names, feed))]


@slow
@pytest.mark.parametrize("output", ["start_logits", "end_logits"])
def test_fp32_gate_refuses_a_graph_with_one_output_shifted(tiny_bert_artifact: Path, tiny_bert_checkpoint: Path, output) -> None:
    from qa_engine.export.validate import (
        BUILTIN_SAMPLES,
        ParityError,
        check_fp32_parity,
    )
    from transformers import AutoModelForQuestionAnswering

    from qa_engine.core.config import DecodeConfig, WindowConfig
    from qa_engine.core.windows import WindowTokenizer
    from qa_engine.formats.squad import Example
    from qa_engine.runners.sessions import cpu_session

    manifest = Manifest.read(tiny_bert_artifact)
    tokenizer = WindowTokenizer.from_file(
        tiny_bert_artifact / "tokenizer.json", WindowConfig(manifest.max_length, manifest.doc_stride)
    )
    examples = [Example(f"builtin-{i}", q, c, (a,), (c.index(a),)) for i, (q, c, a) in enumerate(BUILTIN_SAMPLES)]
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_bert_checkpoint).eval()
    session = cpu_session(tiny_bert_artifact / "model.fp32.onnx")
    args = (tokenizer, examples, manifest.input_names, DecodeConfig())
    check_fp32_parity(model, session, *args)  # the real graph passes
    with pytest.raises(ParityError, match=output):
        check_fp32_parity(model, _Shifted(session, output, 0.5), *args)


@slow
def test_distilbert_family_exports_fused_attention(quick_distilbert_checkpoint: Path, tmp_path: Path) -> None:
    import onnx

    out = pipeline.export_artifact(
        quick_distilbert_checkpoint, tmp_path / "distilbert", precisions=("fp32", "int8"), max_validation=SMALL
    )
    manifest = Manifest.read(out)
    assert manifest.model_type == "distilbert"
    assert manifest.input_names == ["input_ids", "attention_mask"]  # DistilBERT takes no token_type_ids
    layers = json.loads((quick_distilbert_checkpoint / "config.json").read_text())["n_layers"]
    assert manifest.fusion["Attention"] == layers
    assert manifest.fusion["SkipLayerNormalization"] == 2 * layers
    assert manifest.fusion["EmbedLayerNormalization"] == 1
    assert set(manifest.variants) == {"fp32", "int8"}
    assert manifest.variants["fp32"].validated and manifest.variants["fp32"].validation["max_abs_diff"] <= 1e-4
    assert manifest.variants["int8"].validated
    ops = [n.op_type for n in onnx.load(str(out / "model.int8.onnx"), load_external_data=False).graph.node]
    assert ops.count("QAttention") == layers  # the measured int8 layout quantizes the fused attention too
    layouts = _int8_weight_layouts(out / "model.int8.onnx")  # per-channel weight scales, the attention's included
    assert [op for op, *_ in layouts].count("QAttention") == layers
    assert all((scales, zeros) == (channels, channels) for _, _, channels, scales, zeros in layouts), layouts
    assert not (out / "model.fp16.onnx").exists()


@slow
def test_failed_export_leaves_previous_artifact_untouched(
    tiny_bert_artifact: Path, tiny_bert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = shutil.copytree(tiny_bert_artifact, tmp_path / "artifact")
    before = _tree(previous)

    def failing(src: Path, dst: Path, feeds) -> None:
        dst.write_bytes(b"half-written")
        raise RuntimeError("injected failure")

    monkeypatch.setattr(quantize, "quantize_int8", failing)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.export_artifact(tiny_bert_checkpoint, previous, precisions="all", force=True, max_validation=SMALL)
    assert _tree(previous) == before

    def interrupted(src: Path, dst: Path) -> None:
        dst.write_bytes(b"half-written")
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "convert_fp16", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.export_artifact(tiny_bert_checkpoint, tmp_path / "fresh", precisions=("fp32", "fp16"), max_validation=SMALL)
    assert not (tmp_path / "fresh").exists()
    assert _leftovers(tmp_path) == []


@slow
def test_existing_output_needs_force(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "artifact"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        pipeline.export_artifact(tiny_bert_checkpoint, out)
    assert (out / "keep.txt").read_text() == "mine"


@slow
def test_cli_exports_and_prints_summary(
    tiny_bert_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qa_engine.cli.main import main

    out = tmp_path / "cli-artifact"
    args = ["export", "--model", str(tiny_bert_checkpoint), "--output", str(out), "--precision", "fp32",
            "--max-validation", str(SMALL)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "fp32" in printed and "PyTorch" in printed
    assert set(Manifest.read(out).variants) == {"fp32"}
    assert main(args) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err


@slow
def test_not_a_qa_model(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(tiny_bert_checkpoint, tmp_path / "mlm")
    config = json.loads((ckpt / "config.json").read_text())
    config["architectures"] = ["DistilBertForMaskedLM"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a question-answering model"):
        pipeline.export_artifact(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@slow
def test_unsupported_architecture(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(tiny_bert_checkpoint, tmp_path / "deberta")  # no fused attention in onnxruntime
    (ckpt / "config.json").write_text(json.dumps({"model_type": "deberta-v2", "architectures": ["DebertaV2ForQuestionAnswering"]}))
    with pytest.raises(ValueError, match="'deberta-v2' is not supported"):
        onnx_export.inspect_checkpoint(ckpt)


@slow
def test_missing_tokenizer(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(tiny_bert_checkpoint, tmp_path / "no-tok", skip=("tokenizer.json",))
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        pipeline.export_artifact(ckpt, tmp_path / "out")


@slow
def test_corrupt_weights(tiny_bert_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(tiny_bert_checkpoint, tmp_path / "corrupt")
    checkpoint = onnx_export.inspect_checkpoint(ckpt)
    checkpoint.weights.write_bytes(b"\x00garbage" * 16)
    with pytest.raises(ValueError, match=checkpoint.weights.name):
        pipeline.export_artifact(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_corrupt_onnx_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.fp32.onnx"
    bad.write_bytes(b"not a protobuf" * 8)
    with pytest.raises(ValueError, match="model.fp32.onnx"):
        onnx_export.read_graph(bad)


@slow
def test_fusion_raises_when_attention_is_not_fused(quick_distilbert_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = onnx_export.inspect_checkpoint(quick_distilbert_checkpoint)
    raw = onnx_export.export_onnx(onnx_export.load_model(checkpoint), tmp_path)
    layers = checkpoint.config.num_hidden_layers
    config = checkpoint.config.__class__.from_dict({**checkpoint.config.to_dict(), "n_layers": layers + 1})
    with pytest.raises(FusionError, match=f"{layers} attention nodes for {layers + 1} layers"):
        fuse(raw.path, tmp_path / "fused.onnx", config)


def _qattention(path: Path) -> list:
    import onnx

    return [n for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "QAttention"]


def _multi_head_only(family: str, exporter: str) -> bool:
    """ELECTRA on transformers 4 has eager attention only, whose dynamo graph onnxscript fuses to
    MultiHeadAttention, not Attention (export/VALIDATION.md); the TorchScript graph fuses to Attention."""
    import transformers

    return family == "electra" and exporter == "dynamo" and int(transformers.__version__.split(".")[0]) < 5


@slow
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_fuses_one_attention_per_layer_and_int8_quantizes_it_with_its_mask(
    family: str, exporter: str, tmp_path: Path
) -> None:
    checkpoint = tiny_checkpoint(family, tmp_path / "checkpoint")
    out = pipeline.export_artifact(checkpoint, tmp_path / "artifact", precisions=("fp32", "int8"),
                                   max_validation=SMALL, exporter=exporter)
    manifest = Manifest.read(out)
    layers = json.loads((checkpoint / "config.json").read_text()).get("num_hidden_layers", 2)
    fused = manifest.fusion
    assert manifest.versions["torch.onnx exporter"] == exporter
    assert fused["SkipLayerNormalization"] == 2 * layers and fused["BiasGelu"] == layers, fused
    assert fused.get("EmbedLayerNormalization", 0) + fused.get("LayerNormalization", 0) == 1, fused  # the embeddings'
    qattention = _qattention(out / "model.int8.onnx")
    if _multi_head_only(family, exporter):
        assert fused["MultiHeadAttention"] == layers and "Attention" not in fused and not qattention
    else:
        assert fused["Attention"] == layers and "MultiHeadAttention" not in fused, fused
        assert len(qattention) == layers
        assert all(len(n.input) > 5 and n.input[5] for n in qattention), "a QAttention lost its mask"
    fp32 = manifest.variants["fp32"].validation
    assert fp32["max_abs_diff"] <= 1e-4 and fp32["answers_identical"] == 1.0


def _padded_row_gap(path: Path, names: list[str]) -> float:
    """max |Δ logits| of a short window's real tokens, run alone and padded beside a longer one."""
    from qa_engine.runners.sessions import cpu_session

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(2, 40))
    mask = np.ones((2, 40), dtype=np.int64)
    mask[1, 12:] = 0
    ids[mask == 0] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": (np.arange(40) >= 8) * mask}
    session = cpu_session(path)
    padded = session.run(["start_logits", "end_logits"], {n: feed[n] for n in names})
    alone = session.run(["start_logits", "end_logits"], {n: feed[n][1:, :12] for n in names})
    return max(float(np.abs(p[1, :12] - a[0]).max()) for p, a in zip(padded, alone))


def _without_attention_masks(src: Path, dst: Path) -> Path:
    """The planted bug: every fused Attention's mask_index input taken away (it then attends to the padding)."""
    import onnx

    model = onnx.load(str(src))
    for node in model.graph.node:
        if node.op_type == "Attention" and len(node.input) > 3:
            node.input[3] = ""
    onnx.save(model, str(dst))
    return dst


@slow
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fused_attention_keeps_the_padding_mask(exporter: str, tmp_path: Path) -> None:
    """A padded window answers as it does alone, in the fused graph of either exporter; the same graph with its
    attention masks dropped does not, so this check sees a lost mask."""
    checkpoint = tiny_checkpoint("bert", tmp_path / "checkpoint")
    out = pipeline.export_artifact(checkpoint, tmp_path / "artifact", precisions=("fp32",), max_validation=SMALL,
                                   exporter=exporter)
    names = Manifest.read(out).input_names
    assert _padded_row_gap(out / "model.fp32.onnx", names) < 1e-5
    assert _padded_row_gap(_without_attention_masks(out / "model.fp32.onnx", tmp_path / "nomask.onnx"), names) > 1e-3


@slow
def test_weights_the_model_leaves_unused_are_refused(tmp_path: Path) -> None:
    """A checkpoint whose layers hold tensors this transformers does not build (a transformers 4 relative_key BERT's
    distance embeddings on transformers 5) would export as another model than the one trained: refused, named."""
    import torch
    from safetensors.torch import load_file, save_file

    path = tiny_checkpoint("bert", tmp_path / "checkpoint")
    weights = load_file(path / "model.safetensors")
    weights["bert.encoder.layer.1.attention.self.distance_embedding.weight"] = torch.zeros(1023, 32)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(onnx_export.CheckpointError, match=r"unused .*layer\.1\.attention\.self\.distance_embedding"):
        onnx_export.load_model(onnx_export.inspect_checkpoint(path))


def test_dynamo_fusion_feeds_the_int_mask_to_attention(tmp_path: Path) -> None:
    """onnxscript's fused Attention takes the padding mask as a float attention_bias with qkv_hidden_sizes, which
    int8 would leave in float or, without the attribute, quantize without its mask; the rewrite gives it the int mask."""
    import onnx
    from qa_engine.export import onnxscript_fusion

    checkpoint = onnx_export.inspect_checkpoint(tiny_checkpoint("distilbert", tmp_path / "checkpoint"))
    raw = onnx_export.export_onnx(onnx_export.load_model(checkpoint), tmp_path, exporter="dynamo")
    fused, masked = onnxscript_fusion.fuse(raw.path, tmp_path / "fused.onnx")
    assert fused == masked == checkpoint.config.num_hidden_layers
    attention = [n for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node if n.op_type == "Attention"]
    assert all(list(n.input)[3:] == ["attention_mask_mask_index"] for n in attention)
    assert not any(a.name == "qkv_hidden_sizes" for n in attention for a in n.attribute)
    examples, _ = validate.validation_examples(None, SMALL)
    feeds = validate.calibration_feeds(examples, WindowTokenizer.from_file(checkpoint.tokenizer_file), raw.input_names)
    quantize.quantize_int8(tmp_path / "fused.onnx", tmp_path / "int8.onnx", feeds)
    assert [n.input[5] for n in _qattention(tmp_path / "int8.onnx")] == ["attention_mask_mask_index"] * len(attention)


@slow
def test_fusion_refuses_attention_that_int8_cannot_quantize_with_its_mask(tmp_path: Path, monkeypatch) -> None:
    """Without the mask rewrite, the dynamo graph's Attention keeps its float attention_bias: refused by name."""
    from qa_engine.export import onnxscript_fusion

    checkpoint = onnx_export.inspect_checkpoint(tiny_checkpoint("distilbert", tmp_path / "checkpoint"))
    raw = onnx_export.export_onnx(onnx_export.load_model(checkpoint), tmp_path, exporter="dynamo")
    monkeypatch.setattr(onnxscript_fusion, "mask_as_mask_index", lambda model, attention: 0)
    with pytest.raises(FusionError, match="float attention_bias"):
        fuse(raw.path, tmp_path / "fused.onnx", checkpoint.config)


def test_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exporter 'onnx'"):
        onnx_export.choose_exporter("onnx")


def test_dynamo_refuses_an_opset_below_18(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 17 is too old for the dynamo exporter"):
        pipeline.export_artifact(tmp_path / "no-such-checkpoint", tmp_path / "out", opset=17, exporter="dynamo")


def test_torchscript_is_refused_where_torch_has_none(monkeypatch) -> None:
    monkeypatch.setattr(onnx_export, "torchscript_available", lambda: False)
    assert onnx_export.choose_exporter("auto") == "dynamo"
    with pytest.raises(ValueError, match="no TorchScript ONNX exporter; use --exporter dynamo"):
        onnx_export.choose_exporter("torchscript")


def test_parse_precisions() -> None:
    assert pipeline.parse_precisions("all") == ("fp32", "int8", "fp16")
    assert pipeline.parse_precisions("int8,fp32") == ("fp32", "int8")
    with pytest.raises(ValueError, match="bf16"):
        pipeline.parse_precisions("fp32,bf16")


def test_old_opset_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 13"):
        pipeline.export_artifact(tmp_path / "no-such-checkpoint", tmp_path / "out", opset=13)
