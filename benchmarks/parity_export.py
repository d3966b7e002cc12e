"""Measure the export (export/VALIDATION.md, "Export without Optimum"): per family and torch.onnx exporter, the time,
fused ops, int8 QAttention nodes and fp32 parity; and the engine's answers on the mBERT shape against the transformers
question-answering pipeline's on KorQuAD dev questions.

    python -m qa_engine.benchmarks.parity_export families --out families.jsonl        # tiny random models, all five
    python -m qa_engine.benchmarks.parity_export families --mbert --out mbert.jsonl   # the mBERT shape as well
    python -m qa_engine.benchmarks.parity_export korquad --questions 300              # engine vs pipeline answers

Random weights built from configs (no hub), biases and norms drawn too, as training leaves them (from_config makes
them zero and one, and equal constants are merged by the exporters, which changes what the fusions see). One JSON
line per measurement.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from qa_engine.artifacts.manifest import installed_versions

log = logging.getLogger(__name__)

FAMILIES = ("bert", "distilbert", "electra", "roberta", "xlm-roberta")
KORQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512)


def tiny_checkpoint(family: str, out: Path, seed: int = 0) -> Path:
    """A random tiny QA model of `family` (2 layers, dim 128, absolute positions) with its tokenizer kind:
    WordPiece for bert, distilbert and electra, byte-level BPE for roberta, Unigram for xlm-roberta."""
    from qa_engine.train.subword import byte_level_bpe, save_subword_tokenizer, unigram
    from qa_engine.train.synthetic import alphabet, generate
    from qa_engine.train.tokenizer import save_tokenizer_dir, train_wordpiece
    from transformers import (
        BertConfig,
        DistilBertConfig,
        ElectraConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    records = generate(150, seed=1, split="train")
    texts = [*dict.fromkeys(r["context"] for r in records), *(r["question"] for r in records)]
    if family in ("roberta", "xlm-roberta"):
        tok = byte_level_bpe(texts, 2000) if family == "roberta" else unigram(texts, 2000, extra_alphabet=alphabet())
        save_subword_tokenizer(tok, out)
        pad = tok.token_to_id("<pad>")
        config_class = RobertaConfig if family == "roberta" else XLMRobertaConfig
        config = config_class(vocab_size=tok.get_vocab_size(), max_position_embeddings=512 + pad + 1,
                              type_vocab_size=1, pad_token_id=pad, **TINY)
    else:
        tok = train_wordpiece(texts, 2000, extra_alphabet=alphabet())
        names = ("input_ids", "attention_mask") if family == "distilbert" else (
            "input_ids", "token_type_ids", "attention_mask")
        save_tokenizer_dir(tok, out, model_input_names=names)
        vocab = tok.get_vocab_size()
        if family == "distilbert":
            config = DistilBertConfig(vocab_size=vocab, dim=128, n_layers=2, n_heads=4, hidden_dim=512)
        elif family == "electra":
            config = ElectraConfig(vocab_size=vocab, embedding_size=128, **TINY)
        else:
            config = BertConfig(vocab_size=vocab, **TINY)
    return save_random(config, out, seed)


def save_random(config, out: Path, seed: int) -> Path:
    """save_pretrained a QA model of `config` with random weights, biases and norm parameters included."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    config.architectures = [type(config).__name__.replace("Config", "ForQuestionAnswering")]
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_config(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # biases and norm scales and shifts
                p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(out)
    return out


def mbert_checkpoint(out: Path, data: Path, seed: int = 0) -> Path:
    """The benchmark's speed model: distilbert-base-multilingual-cased's shape, random weights, a WordPiece
    vocabulary trained on the KorQuAD dev contexts (benchmarks/models.py)."""
    from qa_engine.formats.squad import load_examples

    from .models import build_speed_checkpoint

    build_speed_checkpoint(out, load_examples(data, split="validation"), seed)
    return out


def measure_export(checkpoint: Path, exporter: str, out: Path, questions: int = 32) -> dict:
    """Export `checkpoint` (fp32 and int8) with `exporter`: seconds per step, fused ops, QAttention nodes (and
    how many take the mask) in int8, and the manifest's fp32 parity figures."""
    import onnx
    from qa_engine.export import fusion, onnx_export, pipeline

    from qa_engine.artifacts.manifest import Manifest

    seconds: dict[str, float] = {}
    restore = {(onnx_export, "export_onnx"): onnx_export.export_onnx, (fusion, "fuse"): fusion.fuse}
    for (module, name), real in restore.items():
        setattr(module, name, _timed(real, name, seconds))
    try:
        start = time.perf_counter()
        pipeline.export_artifact(checkpoint, out, precisions=("fp32", "int8"), max_validation=questions,
                                 exporter=exporter, force=True)
        seconds["total"] = time.perf_counter() - start
    finally:
        for (module, name), real in restore.items():
            setattr(module, name, real)
    manifest = Manifest.read(out)
    int8 = [n for n in onnx.load(str(out / "model.int8.onnx"), load_external_data=False).graph.node
            if n.op_type == "QAttention"]
    fp32 = manifest.variants["fp32"].validation
    return {
        "model_type": manifest.model_type, "exporter": exporter, "opset": manifest.opset,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "fusion": manifest.fusion, "int8_qattention": len(int8),
        "int8_qattention_with_mask": sum(len(n.input) > 5 and bool(n.input[5]) for n in int8),
        "unfused_vs_pytorch": fp32["steps"]["unfused_vs_pytorch"], "fused_vs_unfused": fp32["steps"]["fused_vs_unfused"],
        "max_abs_logit": fp32["max_abs_logit"], "answers_identical": fp32["answers_identical"],
        "int8_answers_identical": manifest.variants["int8"].validation["answers_identical"],
        "versions": manifest.versions,
    }


def _timed(function: Callable, name: str, seconds: dict[str, float]) -> Callable:
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] = time.perf_counter() - start
    return timed


def korquad(data: Path, questions: int, work: Path, exporter: str = "auto", seed: int = 0) -> dict:
    """Engine answers (fp32 and int8) on the exported mBERT shape against the pipeline's on the PyTorch checkpoint
    (align_to_words=False, the engine's max_seq_len, doc_stride and max_answer_len): how many are identical
    (text and offsets). The pipeline is transformers' own where it still exists (before 5.3), else
    qa_engine.export.reference, which computes the same; where both exist they are compared too."""
    from qa_engine.export.reference import model_inputs, pipeline_answers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa_engine import QAEngine
    from qa_engine.formats.squad import load_examples

    examples = load_examples(data, split="validation")[:questions]
    qs, cs = [e.question for e in examples], [e.context for e in examples]
    checkpoint = mbert_checkpoint(work / "checkpoint", data, seed)
    artifact = work / "artifact"
    export = measure_export(checkpoint, exporter, artifact)
    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.model_input_names = model_inputs(model, tokenizer)  # the pipeline feeds them all to the model
    result: dict = {"questions": len(examples), "export": export}
    engine = QAEngine.from_pretrained(artifact, provider="cpu", precision="fp32")
    window, decode = engine.settings.window, 30
    settings = dict(max_seq_len=window.max_length, doc_stride=window.doc_stride, max_answer_len=decode)
    start = time.perf_counter()
    reference = [a[0] for a in pipeline_answers(model, tokenizer, qs, cs, **settings)]
    result["reference_seconds"] = round(time.perf_counter() - start, 1)
    hf = _hf_pipeline(model, tokenizer, qs, cs, settings)
    if hf is not None:
        result["reference_vs_transformers_pipeline"] = _identical(reference, hf)
    for precision in ("fp32", "int8"):
        engine = QAEngine.from_pretrained(artifact, provider="cpu", precision=precision)
        ours = engine.answer_batch(qs, cs, max_answer_length=decode)
        result[f"engine_{precision}_vs_pipeline"] = _identical(ours, hf if hf is not None else reference)
    result["pipeline"] = "transformers" if hf is not None else "qa_engine.export.reference"
    return result


def _hf_pipeline(model, tokenizer, qs, cs, settings) -> list[dict] | None:
    """transformers' question-answering pipeline's answers, or None where this transformers has no such pipeline."""
    from transformers import pipeline

    try:
        qa = pipeline("question-answering", model=model, tokenizer=tokenizer)
    except KeyError:  # "Unknown task question-answering": removed in transformers 5.3
        return None
    answers = qa(question=qs, context=cs, align_to_words=False, batch_size=16, **settings)
    return answers if isinstance(answers, list) else [answers]


def _identical(ours: list[dict], theirs: list[dict]) -> dict:
    same = [(o["answer"], o["start"], o["end"]) == (t["answer"], t["start"], t["end"]) for o, t in zip(ours, theirs)]
    worst = max(abs(o["score"] - t["score"]) / max(t["score"], 1e-12) for o, t, s in zip(ours, theirs, same) if s) \
        if any(same) else None
    return {"identical": int(sum(same)), "of": len(same), "worst_score_rel_diff_where_identical": worst}


def _family_runs(args: argparse.Namespace, work: Path) -> Iterator[dict]:
    for family in args.families:
        checkpoint = tiny_checkpoint(family, work / family)
        for exporter in args.exporters:
            yield {"model": f"tiny {family}", **measure_export(checkpoint, exporter, work / f"{family}-{exporter}")}
    if args.mbert:
        checkpoint = mbert_checkpoint(work / "mbert", args.data)
        for exporter in args.exporters:
            yield {"model": "mBERT shape", **measure_export(checkpoint, exporter, work / f"mbert-{exporter}")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("families", help="export time, fused ops and parity per family and exporter")
    f.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    f.add_argument("--exporters", nargs="+", default=["torchscript", "dynamo"], choices=["torchscript", "dynamo"])
    f.add_argument("--mbert", action="store_true", help="the mBERT shape too (vocab trained on --data)")
    k = sub.add_parser("korquad", help="engine vs pipeline answers on the mBERT shape")
    k.add_argument("--questions", type=int, default=300)
    k.add_argument("--exporter", default="auto", choices=["auto", "torchscript", "dynamo"])
    for p in (f, k):
        p.add_argument("--data", type=Path, default=KORQUAD_DEV, help="KorQuAD 1.0 dev JSON")
        p.add_argument("--out", type=Path, help="append the JSON lines here too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    stack = installed_versions(("torch", "transformers", "onnxruntime", "onnxruntime-gpu", "onnxscript"))
    with tempfile.TemporaryDirectory() as tmp:
        runs = _family_runs(args, Path(tmp)) if args.what == "families" else iter(
            [{"model": "mBERT shape", **korquad(args.data, args.questions, Path(tmp), args.exporter)}])
        for run in runs:
            line = json.dumps({**run, "stack": stack}, ensure_ascii=False)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
