"""Export checks on real windows: fp32 ONNX must match PyTorch; int8/fp16 are scored against fp32."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from qa_engine.batching import plan_batches
from qa_engine.config import DecodeConfig
from qa_engine.features import Windows, WindowTokenizer
from qa_engine.metrics import evaluate
from qa_engine.spans import best_spans, merge_answers
from qa_engine.squad import Example, load_examples, make_example, references

if TYPE_CHECKING:
    import onnxruntime as ort
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

ATOL = 1e-4  # fp32 ONNX vs PyTorch, on logits of real (unpadded) tokens
PARITY_QUESTIONS = 64  # PyTorch runs on these first questions only: it is the slow side
F1_WARN_DROP = 1.0  # points
BATCH_SIZE = 16
SYNTHETIC_SEED = 20_241_125  # with the generator's heldout split: names and places unseen in training

# Used only where neither validation data nor the synthetic generator is available.
BUILTIN_SAMPLES = (
    ("대한민국의 수도는 어디인가?", "대한민국의 수도는 서울이다. 서울에는 약 천만 명이 살고 있으며 한강이 도시를 가로질러 흐른다.", "서울"),
    ("한글을 창제한 왕은 누구인가?", "세종대왕은 조선의 제4대 왕으로 1443년에 훈민정음을 창제하였다. 훈민정음은 오늘날 한글로 불린다.", "세종대왕"),
    ("훈민정음은 몇 년에 창제되었는가?", "세종대왕은 조선의 제4대 왕으로 1443년에 훈민정음을 창제하였다. 훈민정음은 오늘날 한글로 불린다.", "1443년"),
    ("이순신이 승리한 해전은?", "이순신 장군은 1597년 명량 해전에서 열세 척의 배로 일본 수군을 물리쳤다.", "명량 해전"),
    ("부산에서 가장 유명한 해수욕장은?", "부산은 대한민국 제2의 도시이며 해운대 해수욕장으로 유명한 항구 도시이다.", "해운대 해수욕장"),
    ("제주도의 가장 높은 산은?", "제주도에는 해발 1947미터의 한라산이 있으며 이는 남한에서 가장 높은 산이다.", "한라산"),
    ("경주는 어느 나라의 수도였는가?", "경주는 천년 동안 신라의 수도였으며 불국사와 석굴암 같은 유적이 남아 있다.", "신라"),
    ("김치의 주재료는 무엇인가?", "김치는 배추를 소금에 절인 뒤 고춧가루, 마늘, 젓갈로 버무려 발효시킨 한국의 전통 음식이다.", "배추"),
)


Runner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]  # feed -> (start_logits, end_logits)


class ParityError(ValueError):
    """The fp32 ONNX graph does not reproduce the PyTorch model."""


@dataclass
class Predictions:
    """Per-window logits [N, L] (zeros on padding) and the decoded answer text of each question."""

    start_logits: np.ndarray
    end_logits: np.ndarray
    answers: list[str]


def validation_examples(data: str | Path | None, limit: int) -> tuple[list[Example], str]:
    """Up to `limit` labelled examples and where they came from: the given file, the synthetic set or built-ins."""
    if data is not None:
        return load_examples(data, split="validation")[:limit], str(data)
    try:
        from train.synthetic import generate
    except ImportError:
        log.info("no validation data and no synthetic generator; using %d built-in samples", len(BUILTIN_SAMPLES))
        examples = [
            Example(f"builtin-{i}", q, c, (a,), (c.index(a),)) for i, (q, c, a) in enumerate(BUILTIN_SAMPLES)
        ]
        return examples[:limit], "built-in"
    records = generate(max(1, limit // 2), seed=SYNTHETIC_SEED, split="heldout")  # 1-6 questions per context
    return [make_example(r, "synthetic heldout") for r in records[:limit]], "synthetic heldout"


def usable(examples: Sequence[Example], tokenizer: WindowTokenizer) -> list[Example]:
    """The examples whose question fits a window; raises when none does."""
    limit = tokenizer.max_question_tokens()
    encoded = tokenizer.tokenizer.encode_batch([ex.question for ex in examples], add_special_tokens=False)
    kept = [ex for ex, enc in zip(examples, encoded) if len(enc.ids) <= limit]
    if len(kept) < len(examples):
        log.warning("skipping %d validation questions longer than %d tokens", len(examples) - len(kept), limit)
    if not kept:
        raise ValueError("no validation question fits a window")
    return kept


def _feed(w: Windows, rows: np.ndarray, width: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    arrays = {"input_ids": w.input_ids, "attention_mask": w.attention_mask, "token_type_ids": w.token_type_ids}
    return {n: np.ascontiguousarray(arrays[n][rows, :width]) for n in names}


def predict(
    run: Runner,
    windows: Windows,
    contexts: Sequence[str],
    input_names: Sequence[str],
    decode: DecodeConfig,
) -> Predictions:
    """Run `run` over length-sorted batches of windows and decode the answers with qa_engine.spans."""
    n, length = windows.input_ids.shape
    start = np.zeros((n, length), dtype=np.float32)
    end = np.zeros((n, length), dtype=np.float32)
    for rows, width in plan_batches(windows.lengths, BATCH_SIZE):
        width = min(width, length)
        s, e = run(_feed(windows, rows, width, input_names))
        start[rows, :width], end[rows, :width] = s, e
    spans = best_spans(start, end, windows.softmax_mask(), windows.context_mask, decode.max_answer_length)
    merged = merge_answers(spans, windows.offsets, windows.example_index, contexts)
    return Predictions(start, end, [a[0].answer if a else "" for a in merged])


def torch_runner(model: "PreTrainedModel") -> Runner:
    """PyTorch forward on numpy feeds, logits back as float32 numpy."""
    import torch

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    return run


def onnx_runner(session: "ort.InferenceSession") -> Runner:
    """onnxruntime run returning (start_logits, end_logits) as float32."""

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = session.run(["start_logits", "end_logits"], feed)[:2]
        return start.astype(np.float32, copy=False), end.astype(np.float32, copy=False)

    return run


def _scores(examples: Sequence[Example], answers: Sequence[str]) -> tuple[float, float]:
    score = evaluate(references(examples), {ex.id: a for ex, a in zip(examples, answers)})
    return round(score.exact_match, 3), round(score.f1, 3)


def check_fp32_parity(
    model: "PreTrainedModel",
    session: "ort.InferenceSession",
    tokenizer: WindowTokenizer,
    examples: Sequence[Example],
    input_names: Sequence[str],
    decode: DecodeConfig,
) -> tuple[Predictions, dict[str, Any]]:
    """fp32 ONNX vs PyTorch: max |Δ logits| <= ATOL on real tokens and identical answers, else ParityError.

    Returns the ONNX predictions on all examples (the reference for the other precisions) and the summary.
    """
    questions = [ex.question for ex in examples]
    contexts = [ex.context for ex in examples]
    windows = tokenizer.windows(questions, contexts)
    onnx_pred = predict(onnx_runner(session), windows, contexts, input_names, decode)

    k = min(PARITY_QUESTIONS, len(examples))
    rows = np.flatnonzero(windows.example_index < k)
    sub = windows.select(rows, windows.input_ids.shape[1])
    torch_pred = predict(torch_runner(model), sub, contexts[:k], input_names, decode)
    real = sub.attention_mask.astype(bool)
    diff = max(
        float(np.abs(onnx_pred.start_logits[rows] - torch_pred.start_logits)[real].max()),
        float(np.abs(onnx_pred.end_logits[rows] - torch_pred.end_logits)[real].max()),
    )
    mismatched = [i for i in range(k) if onnx_pred.answers[i] != torch_pred.answers[i]]
    em, f1 = _scores(examples, onnx_pred.answers)
    summary = {
        "reference": "pytorch",
        "questions": k,
        "windows": int(len(rows)),
        "max_abs_diff": diff,
        "atol": ATOL,
        "answers_identical": 1.0 - len(mismatched) / k,
        "exact_match": em,
        "f1": f1,
        "scored_questions": len(examples),
    }
    if diff > ATOL or mismatched:
        first = f"; first differing answer: question {mismatched[0]}" if mismatched else ""
        raise ParityError(
            f"fp32 ONNX does not match PyTorch: max |Δ logits| {diff:.3g} (limit {ATOL:g}), "
            f"{len(mismatched)} of {k} answers differ{first}"
        )
    log.info("fp32 parity: max |Δ logits| %.2e over %d windows, answers identical", diff, len(rows))
    return onnx_pred, summary


def compare_to_fp32(
    session: "ort.InferenceSession",
    reference_answers: Sequence[str],
    tokenizer: WindowTokenizer,
    examples: Sequence[Example],
    input_names: Sequence[str],
    decode: DecodeConfig,
    precision: str,
) -> dict[str, Any]:
    """A reduced-precision variant against fp32 (`reference_answers`, one per example): identical answers, EM/F1 deltas."""
    contexts = [ex.context for ex in examples]
    windows = tokenizer.windows([ex.question for ex in examples], contexts)
    pred = predict(onnx_runner(session), windows, contexts, input_names, decode)
    same = sum(a == b for a, b in zip(pred.answers, reference_answers)) / len(examples)
    em, f1 = _scores(examples, pred.answers)
    em32, f132 = _scores(examples, reference_answers)
    summary = {
        "reference": "fp32",
        "provider": session.get_providers()[0],
        "questions": len(examples),
        "answers_identical": round(same, 4),
        "exact_match": em,
        "f1": f1,
        "exact_match_delta": round(em - em32, 3),
        "f1_delta": round(f1 - f132, 3),
    }
    if f132 - f1 > F1_WARN_DROP:
        log.warning("%s loses %.2f F1 points against fp32 (%.2f vs %.2f)", precision, f132 - f1, f1, f132)
    else:
        log.info("%s: %.1f%% answers identical to fp32, F1 %+.2f", precision, 100 * same, f1 - f132)
    return summary
