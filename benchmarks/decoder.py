"""Decoder micro-benchmark: qa_engine.core.spans (vectorized) vs the HF pipeline's per-example postprocess, same logits.

Needs transformers' question-answering pipeline (gone in 5.3): where this interpreter lacks it, the run starts
`python -m qa_engine.benchmarks.decoder CHECKPOINT WORKLOAD.json RESULT.json` in the peers' environment."""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from qa_engine.core.config import DecodeConfig, WindowConfig
from qa_engine.core.spans import best_spans, merge_answers
from qa_engine.core.windows import Windows, WindowTokenizer

from .hardware import best_seconds
from .workload import Workload

log = logging.getLogger(__name__)


def hf_pipeline(checkpoint: Path):
    """A question-answering pipeline around the checkpoint's tokenizer; postprocess never touches the model,
    so a one-layer stand-in keeps this cheap."""
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForQuestionAnswering,
        pipeline,
    )

    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    stand_in = DistilBertForQuestionAnswering(
        DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    ).eval()
    return pipeline("question-answering", model=stand_in, tokenizer=tokenizer, device=-1)


def _hf_features(pipe, work: Workload, n_windows: int, window: WindowConfig) -> list[tuple[int, list[dict]]]:
    """(question index, its preprocessed windows) for whole questions until exactly n_windows windows."""
    chosen, total = [], 0
    for i, (q, c) in enumerate(zip(work.questions, work.contexts)):
        feats = list(pipe.preprocess({"question": q, "context": c}, max_seq_len=window.max_length,
                                     doc_stride=window.doc_stride))
        if total + len(feats) <= n_windows:
            chosen.append((i, feats))
            total += len(feats)
        if total == n_windows:
            return chosen
    raise ValueError(f"the workload has too few windows to pick exactly {n_windows}")


def _padded(a: np.ndarray, width: int, fill=0) -> np.ndarray:
    pad = [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, constant_values=fill)


@dataclass
class DecoderCase:
    """Both decoders bound to the same windows and logits; each call decodes all of them."""

    engine: Callable[[], list]
    hf: Callable[[], list]
    questions: int
    windows: int
    width: int

    def check(self) -> None:
        """Raise unless both decoders give every question the same answer, span and score."""
        for q, (ours, theirs) in enumerate(zip(self.engine(), self.hf())):
            a = ours[0]
            if (a.answer, a.start, a.end) != (theirs["answer"], theirs["start"], theirs["end"]) or not np.isclose(
                a.score, theirs["score"], rtol=1e-4
            ):
                raise AssertionError(f"question {q}: qa-engine {a} != HF {theirs}")


def build_case(checkpoint: Path, work: Workload, n_windows: int = 64, width: int = 384,
               decode: DecodeConfig = DecodeConfig(), seed: int = 0) -> DecoderCase:
    """Random logits [n_windows, width] over real windows of whole questions, laid out for each decoder."""
    import torch

    window = WindowConfig(max_length=width)
    pipe = hf_pipeline(checkpoint)
    chosen = _hf_features(pipe, work, n_windows, window)
    questions = [work.questions[i] for i, _ in chosen]
    contexts = [work.contexts[i] for i, _ in chosen]
    w: Windows = WindowTokenizer.from_file(checkpoint / "tokenizer.json", window).windows(questions, contexts)
    hf_ids = [f["input_ids"][0].tolist() for _, feats in chosen for f in feats]
    if len(w) != n_windows or any(list(w.input_ids[r, : w.lengths[r]]) != ids for r, ids in enumerate(hf_ids)):
        raise AssertionError("qa-engine windows differ from the HF pipeline's windows")

    rng = np.random.default_rng(seed)
    start = rng.standard_normal((n_windows, width), dtype=np.float32)
    end = rng.standard_normal((n_windows, width), dtype=np.float32)
    softmax_mask, context_mask = _padded(w.softmax_mask(), width, False), _padded(w.context_mask, width, False)
    offsets = _padded(w.offsets, width)

    def engine() -> list:
        spans = best_spans(start, end, softmax_mask, context_mask, decode.max_answer_length, 1)
        return merge_answers(spans, offsets, w.example_index, contexts)

    outputs, row = [], 0
    for _, feats in chosen:
        per_question = []
        for f in feats:
            n = f["input_ids"].shape[1]
            per_question.append({
                **f,
                "start": torch.from_numpy(start[row : row + 1].copy()),
                "end": torch.from_numpy(end[row : row + 1].copy()),
                "p_mask": torch.nn.functional.pad(f["p_mask"], (0, width - n), value=1),
                "attention_mask": torch.nn.functional.pad(f["attention_mask"], (0, width - n), value=0),
            })
            row += 1
        outputs.append(per_question)

    def hf() -> list:
        return [pipe.postprocess(o, top_k=1, handle_impossible_answer=False,
                                 max_answer_len=decode.max_answer_length, align_to_words=False) for o in outputs]

    return DecoderCase(engine, hf, len(chosen), n_windows, width)


def decoder_benchmark(checkpoint: Path, work: Workload, n_windows: int = 64, width: int = 384,
                      repeats: int = 5, seed: int = 0) -> dict:
    """Time both decoders on identical logits (best of `repeats`) after asserting identical answers."""
    case = build_case(checkpoint, work, n_windows, width, seed=seed)
    case.check()
    engine_s = best_seconds(case.engine, repeats * 4)
    hf_s = best_seconds(case.hf, repeats)
    log.info("decoder: qa-engine %.2f ms, HF per-example %.1f ms (%.0fx) on %d windows x %d",
             engine_s * 1e3, hf_s * 1e3, hf_s / engine_s, n_windows, width)
    return {
        "windows": n_windows, "width": width, "questions": case.questions, "identical_answers": True,
        "engine_ms": engine_s * 1e3, "hf_ms": hf_s * 1e3, "speedup": hf_s / engine_s,
    }


def main(argv: list[str]) -> int:
    """decoder_benchmark(CHECKPOINT, WORKLOAD.json) written to RESULT.json."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    checkpoint, workload, result = map(Path, argv)
    result.write_text(json.dumps(decoder_benchmark(checkpoint, Workload.from_json(workload))), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
