"""RoBERTa and XLM-RoBERTa, each with its own tokenizer kind, through train, export (fusion, int8, fp16) and the engine.

RoBERTa gets a byte-level BPE (RobertaProcessing, trim_offsets), XLM-RoBERTa a Unigram over Metaspace ▁ pieces;
both are trained here on synthetic Korean text, and the engine must answer with the HF pipeline's spans."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from qa_engine.train.subword import (
    SPECIAL_TOKENS,
    byte_level_bpe,
    save_subword_tokenizer,
    unigram,
)
from qa_engine.train.synthetic import alphabet, generate
from tokenizers import Tokenizer

from qa_engine.core.config import max_window_length
from qa_engine.core.windows import PairTemplate, WindowTokenizer

slow = pytest.mark.slow
FAMILIES = ("roberta", "xlm-roberta")
CONTEXT = "철수는 서울에 삽니다. 영희는 부산의 작은 도서관에서 일합니다."


@pytest.fixture(scope="module")
def texts() -> list[str]:
    records = generate(150, seed=1, split="train")
    return [*dict.fromkeys(r["context"] for r in records), *(r["question"] for r in records)]


@pytest.fixture(scope="module")
def tokenizers(texts: list[str]) -> dict[str, Tokenizer]:
    """Each family's own tokenizer kind."""
    return {"roberta": byte_level_bpe(texts, 2000), "xlm-roberta": unigram(texts, 2000, extra_alphabet=alphabet())}


# ---- tokenizers and the pair template (fast) -------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_pair_template_is_robertas(tokenizers: dict[str, Tokenizer], family: str) -> None:
    tok = tokenizers[family]
    enc = tok.encode("철수는 어디에 삽니까?", CONTEXT)
    assert enc.tokens[0] == "<s>" and enc.tokens[-1] == "</s>"
    assert enc.tokens.count("</s>") == 3 and set(enc.type_ids) == {0}
    template = PairTemplate.from_tokenizer(tok)
    s, pad, eos = (tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>"))
    assert (template.prefix, template.middle, template.suffix) == ((s,), (eos, eos), (eos,))
    assert (template.cls_id, template.pad_id) == (s, pad) == (0, 1)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))


def test_byte_level_offsets_leave_the_leading_space_out(tokenizers: dict[str, Tokenizer]) -> None:
    """A 'Ġ' token covers its word only (trim_offsets), also when the context is encoded alone, as windows are."""
    enc = tokenizers["roberta"].encode(CONTEXT, add_special_tokens=False)
    spaced = [(t, o) for t, o in zip(enc.tokens, enc.offsets) if t.startswith("Ġ")]
    assert len(spaced) == CONTEXT.count(" ")
    for token, (start, end) in spaced:
        assert start > 0 and CONTEXT[start - 1] == " " and not CONTEXT[start:end].startswith(" "), token
    covered = {i for start, end in enc.offsets for i in range(start, end)}
    assert covered == {i for i, ch in enumerate(CONTEXT) if ch != " "}


def test_metaspace_offsets_point_at_the_pieces_characters(tokenizers: dict[str, Tokenizer]) -> None:
    """A ▁ piece covers the space it stands for; the ▁ prepended to the text stands for no character (alone,
    tokenizers gives it the first character's offsets, in the engine as in transformers)."""
    enc = tokenizers["xlm-roberta"].encode(CONTEXT, add_special_tokens=False)
    pieces = list(zip(enc.tokens, enc.offsets))
    assert pieces[0][0].startswith("▁")
    if pieces[0][0] == "▁":
        assert pieces[0][1] == (0, 1)
        pieces = pieces[1:]
    else:
        pieces[0] = (pieces[0][0][1:], pieces[0][1])
    assert pieces[0][1][0] == 0
    for piece, (start, end) in pieces:
        assert CONTEXT[start:end].replace(" ", "▁") == piece, (piece, start, end)
    assert sum(piece.startswith("▁") for piece, _ in pieces) == CONTEXT.count(" ")


# ---- positions ----------------------------------------------------------------------------------------------------
def test_roberta_positions_hold_two_tokens_fewer() -> None:
    from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

    assert max_window_length(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert max_window_length(XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert max_window_length(BertConfig(max_position_embeddings=512, pad_token_id=0)) == 512


def test_export_settings_cut_max_length_to_what_roberta_positions_hold(tmp_path: Path) -> None:
    from qa_engine.export.onnx_export import Checkpoint
    from qa_engine.export.pipeline import settings
    from transformers import RobertaConfig

    (tmp_path / "train_config.json").write_text(json.dumps({"max_length": 514, "doc_stride": 128}))
    window, _ = settings(Checkpoint(tmp_path, RobertaConfig(max_position_embeddings=514, pad_token_id=1),
                                    tmp_path / "model.safetensors"))
    assert window.max_length == 512


# ---- export and the engine (slow) -----------------------------------------------------------------------------
def _checkpoint(tokenizer: Tokenizer, family: str, out: Path) -> Path:
    """A randomly initialized tiny QA model of `family` with its tokenizer, saved as a checkpoint folder."""
    import torch
    from qa_engine.train.model import tiny_config
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    save_subword_tokenizer(tokenizer, out)
    config = tiny_config(family, len(AutoTokenizer.from_pretrained(out)), pad_token_id=tokenizer.token_to_id("<pad>"))
    config.architectures = [type(config).__name__.replace("Config", "ForQuestionAnswering")]
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out)
    return out


@slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_exports_fused_and_answers_like_the_pipeline(
    tokenizers: dict[str, Tokenizer], family: str, tmp_path: Path
) -> None:
    import onnx
    from qa_engine.export.pipeline import export_artifact

    from qa_engine import QAEngine
    from qa_engine.artifacts.manifest import Manifest
    from tests.hf_pipeline import pipeline_answers

    checkpoint = _checkpoint(tokenizers[family], family, tmp_path / "checkpoint")
    artifact = export_artifact(checkpoint, tmp_path / "artifact", precisions="all", max_validation=32)
    manifest = Manifest.read(artifact)
    layers = json.loads((checkpoint / "config.json").read_text())["num_hidden_layers"]
    assert manifest.model_type == family
    assert manifest.input_names == ["input_ids", "attention_mask"]  # the RoBERTa export has no token_type_ids
    assert manifest.fusion["Attention"] == layers and manifest.fusion["SkipLayerNormalization"] == 2 * layers
    assert manifest.variants["fp32"].validated and manifest.variants["int8"].validated
    assert "answers_identical" in manifest.variants["fp16"].validation  # converted and run (on CPU without a GPU)
    ops = [n.op_type for n in onnx.load(str(artifact / "model.int8.onnx"), load_external_data=False).graph.node]
    assert ops.count("QAttention") == layers

    records = generate(20, seed=7, split="heldout")
    long_context = " ".join(r["context"] for r in generate(30, seed=8, split="heldout"))  # several windows
    questions = [r["question"] for r in records] + [records[0]["question"]]
    contexts = [r["context"] for r in records] + [long_context]
    engine = QAEngine.from_pretrained(artifact, provider="cpu", precision="fp32")
    window = engine.settings.window
    assert len(engine.tokenizer.windows(questions[-1:], contexts[-1:])) > 1
    ours = engine.answer_batch(questions, contexts)
    for o, context in zip(ours, contexts):
        assert o["answer"] and context[o["start"] : o["end"]] == o["answer"]
    # the pipeline on the PyTorch model: a span may differ only where two nearly tie (fp32 rounding of a random
    # model's flat logits), so allow 2 of 21; equal answers have equal scores
    theirs = pipeline_answers(checkpoint, questions, contexts, window.max_length, window.doc_stride)
    same = [(o["answer"], o["start"], o["end"]) == (t["answer"], t["start"], t["end"]) for o, t in zip(ours, theirs)]
    assert sum(same) >= len(same) - 2
    for o, t, equal in zip(ours, theirs, same):
        assert not equal or o["score"] == pytest.approx(t["score"], rel=1e-3, abs=1e-6)


@slow
@pytest.mark.parametrize("family", FAMILIES)
def test_the_reference_gives_the_transformers_pipelines_answers(
    tokenizers: dict[str, Tokenizer], family: str, tmp_path: Path
) -> None:
    """qa_engine.export.reference stands in for the pipeline transformers 5.3 removed: where the pipeline still
    exists it must give its answers, scores and top-k lists exactly (same PyTorch model, same windows)."""
    from qa_engine.export.reference import pipeline_answers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from tests.hf_pipeline import transformers_pipeline

    checkpoint = _checkpoint(tokenizers[family], family, tmp_path / "checkpoint")
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    qa = transformers_pipeline(model, tokenizer)
    if qa is None:
        pytest.skip("this transformers has no question-answering pipeline (removed in 5.3)")
    records = generate(12, seed=9, split="heldout")
    questions = [r["question"] for r in records] + [records[0]["question"]]
    contexts = [r["context"] for r in records] + [" ".join(r["context"] for r in generate(30, seed=8, split="heldout"))]
    settings = dict(max_seq_len=64, doc_stride=16, max_answer_len=10)
    for top_k in (1, 3):
        ours = pipeline_answers(model, tokenizer, questions, contexts, top_k=top_k, **settings)
        theirs = qa(question=questions, context=contexts, align_to_words=False, top_k=top_k, batch_size=4, **settings)
        theirs = [t if isinstance(t, list) else [t] for t in theirs]
        assert [[(a["answer"], a["start"], a["end"]) for a in o] for o in ours] == \
            [[(a["answer"], a["start"], a["end"]) for a in t] for t in theirs]
        assert [a["score"] for o in ours for a in o] == pytest.approx([a["score"] for t in theirs for a in t], rel=1e-4)


@slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_a_few_steps_and_exports(tokenizers: dict[str, Tokenizer], family: str, tmp_path: Path) -> None:
    from qa_engine.export.pipeline import export_artifact
    from qa_engine.train.config import TrainConfig
    from qa_engine.train.synthetic import write_jsonl
    from qa_engine.train.trainer import train

    from qa_engine import QAEngine
    from qa_engine.artifacts.manifest import Manifest

    write_jsonl(generate(30, seed=5, split="train"), tmp_path / "train.jsonl")
    save_subword_tokenizer(tokenizers[family], tmp_path / "tokenizer")
    cfg = TrainConfig(output=str(tmp_path / "model"), model=family, model_config="tiny",
                      tokenizer=str(tmp_path / "tokenizer"), dataset=str(tmp_path / "train.jsonl"),
                      epochs=1.0, lr=1e-3, batch_size=16, logging_steps=1, mixed_precision="no", max_length=512)
    out = train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["global_step"] >= 3 and math.isfinite(metrics["train"]["train_loss"])
    assert json.loads((out / "config.json").read_text())["model_type"] == family

    artifact = export_artifact(out, tmp_path / "artifact", precisions=("fp32",), max_validation=16)
    assert Manifest.read(artifact).max_length == 512  # 514 positions, numbered from pad id 1 + 1
    engine = QAEngine.from_pretrained(artifact, provider="cpu", precision="fp32")
    answer = engine.answer_batch(["철수는 어디에 삽니까?"], [CONTEXT])[0]
    assert CONTEXT[answer["start"] : answer["end"]] == answer["answer"]


def test_roberta_family_takes_no_token_type_ids() -> None:
    """One segment embedding: a BERT-style template's type id 1 would index past it."""
    from qa_engine.train.model import model_input_names, tiny_config
    from transformers import AutoModelForQuestionAnswering

    for family in FAMILIES:
        model = AutoModelForQuestionAnswering.from_config(tiny_config(family, 100, pad_token_id=1))
        assert model_input_names(model) == ("input_ids", "attention_mask")
    bert = AutoModelForQuestionAnswering.from_config(tiny_config("bert", 100))
    assert model_input_names(bert) == ("input_ids", "attention_mask", "token_type_ids")


@slow
def test_roberta_with_a_wordpiece_tokenizer_trains(texts: list[str], tmp_path: Path) -> None:
    """klue/roberta-base's layout: a RoBERTa model with a BERT WordPiece tokenizer ([CLS] q [SEP] c [SEP], type ids 1)."""
    from qa_engine.train.config import TrainConfig
    from qa_engine.train.synthetic import write_jsonl
    from qa_engine.train.tokenizer import save_tokenizer_dir, train_wordpiece
    from qa_engine.train.trainer import train

    write_jsonl(generate(10, seed=5, split="train"), tmp_path / "train.jsonl")
    save_tokenizer_dir(train_wordpiece(texts, 1000, extra_alphabet=alphabet()), tmp_path / "tokenizer",
                       model_input_names=("input_ids", "attention_mask"))
    cfg = TrainConfig(output=str(tmp_path / "model"), model="roberta", model_config="tiny",
                      tokenizer=str(tmp_path / "tokenizer"), dataset=str(tmp_path / "train.jsonl"),
                      epochs=1.0, lr=1e-3, batch_size=16, mixed_precision="no")
    metrics = json.loads((train(cfg) / "metrics.json").read_text())
    assert math.isfinite(metrics["train"]["train_loss"])


@slow
def test_max_length_beyond_robertas_positions_is_refused(tokenizers: dict[str, Tokenizer], tmp_path: Path) -> None:
    from qa_engine.train.config import TrainConfig
    from qa_engine.train.synthetic import write_jsonl
    from qa_engine.train.trainer import train

    write_jsonl(generate(5, seed=5, split="train"), tmp_path / "train.jsonl")
    save_subword_tokenizer(tokenizers["roberta"], tmp_path / "tokenizer")
    cfg = TrainConfig(output=str(tmp_path / "model"), model="roberta", model_config="tiny",
                      tokenizer=str(tmp_path / "tokenizer"), dataset=str(tmp_path / "train.jsonl"), max_length=513)
    with pytest.raises(ValueError, match="max_length 513 exceeds the 512 tokens"):
        train(cfg)
    assert not (tmp_path / "model").exists()


def test_window_tokenizer_frames_roberta_windows(tokenizers: dict[str, Tokenizer]) -> None:
    """Windows match the Rust tokenizer's own pair encoding: <s> q </s></s> c </s>, offsets on the context."""
    for family, tok in tokenizers.items():
        windows = WindowTokenizer(Tokenizer.from_str(tok.to_str())).windows(["철수는 어디에 삽니까?"], [CONTEXT])
        enc = tok.encode("철수는 어디에 삽니까?", CONTEXT)
        n = int(windows.lengths[0])
        assert windows.input_ids[0, :n].tolist() == enc.ids, family
        context = np.array(enc.sequence_ids) == 1
        assert (windows.context_mask[0, :n] == context).all()
        assert [tuple(o) for o in windows.offsets[0, :n][context]] == [o for o, c in zip(enc.offsets, context) if c]
