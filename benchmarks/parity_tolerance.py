"""Measure the fp32 export gate's inputs: |Δ logits| of the unfused and fused ONNX graphs on real windows.

    python -m qa_engine.benchmarks.parity_tolerance tests issue mbert roberta    # the cases of export/VALIDATION.md

Random weights built from configs (no hub); one JSON line per model with max |logit|, the three differences
(unfused vs PyTorch, fused vs unfused, fused vs PyTorch), their share of max |logit| and changed answers.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from qa_engine.export import fusion, onnx_export, validate
from qa_engine.export.torch_runner import TorchRunner

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import WindowTokenizer
from qa_engine.runners import sessions
from qa_engine.runners.onnx import OnnxRunner

KORQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"


def _texts() -> list[str]:
    from qa_engine.train.synthetic import generate

    records = generate(300, seed=1, split="train")
    return [*dict.fromkeys(r["context"] for r in records), *(r["question"] for r in records)]


def measure(name: str, config, tokenizer, questions: int = 64, seed: int = 0) -> dict:
    """Export `config` with random weights, fuse it and compare the logits of the three graphs on real windows."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(seed)
    config.architectures = [type(config).__name__.replace("Config", "ForQuestionAnswering")]
    model = AutoModelForQuestionAnswering.from_config(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = onnx_export.export_onnx(model, Path(tmp))
        fused = Path(tmp) / "fused.onnx"
        fusion.fuse(raw.path, fused, config)
        windower = WindowTokenizer(tokenizer, WindowConfig(384, 128))
        examples = validate.usable(validate.validation_examples(None, questions)[0], windower)
        contexts = [ex.context for ex in examples]
        windows = windower.windows([ex.question for ex in examples], contexts)
        names = tuple(raw.input_names)
        runners = {"pytorch": TorchRunner(model, names),
                   "unfused": OnnxRunner(sessions.cpu_session(raw.path), input_names=names),
                   "fused": OnnxRunner(sessions.cpu_session(fused), input_names=names)}
        pred = {k: validate.predict(run, windows, contexts, validate.engine_settings(windower), windower.template.pad_id)
                for k, run in runners.items()}
    real = windows.attention_mask.astype(bool)
    result: dict = {"model": name, "windows": len(windows)}
    for a, b in (("unfused", "pytorch"), ("fused", "unfused"), ("fused", "pytorch")):
        gap = validate.logit_gap((pred[b].start_logits, pred[b].end_logits), (pred[a].start_logits, pred[a].end_logits), real)
        result["max_abs_logit"] = result.get("max_abs_logit", gap.scale)
        result[f"{a}_vs_{b}"] = gap.max_abs_diff
        result[f"{a}_vs_{b}_rel"] = gap.max_abs_diff / gap.scale
        result[f"{a}_vs_{b}_answers_changed"] = int(np.sum([x != y for x, y in zip(pred[a].answers, pred[b].answers)]))
    return result


def cases(groups: list[str]) -> Iterator[tuple[str, Callable]]:
    """(name, () -> (config, tokenizer, questions)) for each requested group."""
    from qa_engine.train.subword import byte_level_bpe, unigram
    from qa_engine.train.synthetic import alphabet
    from qa_engine.train.tokenizer import train_wordpiece
    from transformers import (
        BertConfig,
        DistilBertConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    texts = _texts()
    wordpiece = train_wordpiece(texts, 8000, extra_alphabet=alphabet())
    small = dict(dim=128, n_layers=2, n_heads=4, hidden_dim=512)
    if "tests" in groups:
        yield "tiny distilbert", lambda: (DistilBertConfig(vocab_size=wordpiece.get_vocab_size(), **small), wordpiece, 64)
        yield "tiny bert relative_key", lambda: (BertConfig(
            vocab_size=wordpiece.get_vocab_size(), hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=512, position_embedding_type="relative_key"), wordpiece, 64)
    if "issue" in groups:  # issue 11: vocabulary trained on KorQuAD dev text where it is present
        if KORQUAD_DEV.is_file():
            data = json.loads(KORQUAD_DEV.read_text(encoding="utf-8"))
            korquad = train_wordpiece([p["context"] for a in data["data"] for p in a["paragraphs"]], 8000,
                                      extra_alphabet=alphabet())
        else:
            korquad = wordpiece
        yield "issue 11 distilbert init 0.5", lambda: (DistilBertConfig(
            vocab_size=korquad.get_vocab_size(), initializer_range=0.5, **small), korquad, 64)
    if "mbert" in groups:
        for init in (0.02, 0.1):
            yield f"mbert shape init {init}", lambda init=init: (DistilBertConfig(
                vocab_size=30000, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, initializer_range=init), wordpiece, 32)
    if "roberta" in groups:
        bpe, spm = byte_level_bpe(texts, 4000), unigram(texts, 4000, alphabet())
        roberta = dict(max_position_embeddings=514, pad_token_id=1)
        yield "tiny roberta", lambda: (RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=128,
                                                     num_hidden_layers=2, num_attention_heads=4,
                                                     intermediate_size=512, **roberta), bpe, 64)
        yield "tiny xlm-roberta", lambda: (XLMRobertaConfig(vocab_size=spm.get_vocab_size(), hidden_size=128,
                                                            num_hidden_layers=2, num_attention_heads=4,
                                                            intermediate_size=512, **roberta), spm, 64)
        for init in (0.02, 0.1):
            yield f"roberta-base shape init {init}", lambda init=init: (RobertaConfig(
                vocab_size=32000, initializer_range=init, **roberta), bpe, 32)
        yield "xlm-roberta-base shape init 0.1", lambda: (XLMRobertaConfig(
            vocab_size=30000, initializer_range=0.1, **roberta), spm, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", choices=["tests", "issue", "mbert", "roberta"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name, build in cases(args.groups):
        config, tokenizer, questions = build()
        print(json.dumps(measure(name, config, tokenizer, questions)), flush=True)


if __name__ == "__main__":
    main()
