"""Export checks on real windows: fp32 ONNX must match PyTorch; int8/fp16 are scored against fp32."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from qa_engine.core.config import DecodeConfig, EngineSettings
from qa_engine.core.pipeline import model_feed, plan_calls, run_windows
from qa_engine.core.runner import ModelRunner
from qa_engine.core.spans import best_spans
from qa_engine.core.windows import Windows, WindowTokenizer
from qa_engine.formats.metrics import evaluate
from qa_engine.formats.squad import (
    Example,
    load_examples,
    make_example,
    references,
    split_by_fit,
)
from qa_engine.runners.onnx import OnnxRunner

from .torch_runner import TorchRunner

if TYPE_CHECKING:
    import onnxruntime as ort
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# fp32 parity gate on logits of real (unpadded) tokens: max |Δ| <= ATOL + RTOL * max |reference logits|.
# Measured rounding (export/VALIDATION.md) reaches 8.3e-5 of the largest logit per step here and at most
# ~1.6e-4 on a large-logit DistilBERT (VALIDATION.md); RTOL leaves 6x headroom over that, ATOL covers models with near-zero logits.
ATOL = 1e-4
RTOL = 1e-3
PARITY_QUESTIONS = 64  # PyTorch runs on these first questions only: it is the slow side
F1_WARN_DROP = 1.0  # points
SYNTHETIC_SEED = 20_241_125  # with the generator's heldout split: names and places unseen in training
CALIBRATION_SEED = SYNTHETIC_SEED + 1  # int8 calibration's synthetic questions: others than validation's
CALIBRATION_QUESTIONS = 128

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




class ParityError(ValueError):
    """The fp32 ONNX graph does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class Tolerance:
    """How far a graph's logits may stray from its reference: atol + rtol * max |reference logits|.

    Rounding grows with the activations, so a fixed bound refuses correct models with large logits."""

    atol: float = ATOL
    rtol: float = RTOL

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(f"atol and rtol must be >= 0, got {self.atol} and {self.rtol}")

    def limit(self, scale: float) -> float:
        """The largest |Δ logits| accepted when the reference's largest |logit| is `scale`."""
        return self.atol + self.rtol * scale

    def accepts(self, gap: "Gap") -> bool:
        """Whether `gap` is within the limit (never when a logit is NaN or infinite)."""
        return gap.max_abs_diff <= self.limit(gap.scale)


@dataclass(frozen=True)
class Gap:
    """The largest |Δ| between two sets of logits [N, L] on real tokens, and where it is."""

    max_abs_diff: float
    scale: float  # max |reference logit|
    output: str  # "start_logits" or "end_logits"
    window: int
    token: int


def logit_gap(reference: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray], real: np.ndarray) -> Gap:
    """Compare (start, end) logits over the `real` tokens (bool [N, L]) of each window; NaN counts as infinitely far."""
    best = None
    for name, ref, got in zip(("start_logits", "end_logits"), reference, other):
        diff = np.where(real, np.abs(got.astype(np.float64) - ref), -1.0)
        diff[np.isnan(diff)] = np.inf  # a NaN logit is as far off as it gets
        w, t = np.unravel_index(int(diff.argmax()), diff.shape)
        if best is None or diff[w, t] > best[0]:
            best = (float(diff[w, t]), name, int(w), int(t))
    scale = max(float(np.abs(np.where(real, ref, 0.0)).max()) for ref in reference)
    return Gap(best[0], scale, best[1], best[2], best[3])


@dataclass
class Predictions:
    """Per-window logits [N, L] (zeros on padding) and the decoded answer text of each question."""

    start_logits: np.ndarray
    end_logits: np.ndarray
    answers: list[str]


def validation_examples(data: str | Path | None, limit: int) -> tuple[list[Example], str]:
    """Up to `limit` labelled examples and where they came from: the given file, the synthetic set or built-ins."""
    return _examples(data, 0, limit, SYNTHETIC_SEED)


def calibration_examples(data: str | Path | None, limit: int, skip: int) -> tuple[list[Example], str]:
    """Up to `limit` examples for int8 calibration from the validation source: past its first `skip` (the
    validation questions) where it has more, so that int8 is scored on questions it was not calibrated on."""
    examples, source = _examples(data, skip, limit, CALIBRATION_SEED)
    if examples:
        return examples, source
    examples, source = _examples(data, 0, limit, CALIBRATION_SEED)
    return examples, f"{source} (the validation questions: no others there)"


def _examples(data: str | Path | None, skip: int, limit: int, seed: int) -> tuple[list[Example], str]:
    if data is not None:
        return load_examples(data, split="validation")[skip : skip + limit], str(data)
    try:
        from qa_engine.train.synthetic import generate
    except ImportError:
        log.info("no validation data and no synthetic generator; using %d built-in samples", len(BUILTIN_SAMPLES))
        examples = [
            Example(f"builtin-{i}", q, c, (a,), (c.index(a),)) for i, (q, c, a) in enumerate(BUILTIN_SAMPLES)
        ]
        return examples[skip : skip + limit], "built-in"
    records = generate(max(1, limit // 2), seed=seed, split="heldout")  # 1-6 questions per context
    source = f"synthetic heldout (seed {seed})"
    return [make_example(r, source) for r in records[:limit]], source


def calibration_feeds(examples: Sequence[Example], tokenizer: WindowTokenizer,
                      input_names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """The model inputs of every window of `examples`, in the calls the engine would make of them."""
    windows = tokenizer.windows([ex.question for ex in examples], [ex.context for ex in examples])
    for rows, width in plan_calls(windows, engine_settings(tokenizer)):
        yield model_feed(windows, rows, width, input_names, tokenizer.template.pad_id)


def engine_settings(tokenizer: WindowTokenizer, decode: DecodeConfig = DecodeConfig()) -> EngineSettings:
    """The settings a CPU engine loads this artifact with: validation plans and decodes its calls as users' do."""
    return EngineSettings(window=tokenizer.config, decode=DecodeConfig(max_answer_length=decode.max_answer_length))


def batch_gap(session: "ort.InferenceSession", tokenizer: WindowTokenizer, examples: Sequence[Example],
              input_names: Sequence[str]) -> float:
    """max |Δ logits| on real tokens between each window run alone and run in length-bucketed batches: how much a
    question's answer depends on what else is in its model call (0 but for float rounding in a row-wise graph)."""
    windows = tokenizer.windows([ex.question for ex in examples], [ex.context for ex in examples])
    runner, settings = OnnxRunner(session, input_names=tuple(input_names)), engine_settings(tokenizer)
    contexts = [ex.context for ex in examples]
    alone, _ = run_windows(runner, windows, contexts, settings, tokenizer.template.pad_id, batch_size=1)
    batched, _ = run_windows(runner, windows, contexts, settings, tokenizer.template.pad_id)
    return logit_gap(alone, batched, windows.attention_mask.astype(bool)).max_abs_diff


def usable(examples: Sequence[Example], tokenizer: WindowTokenizer) -> list[Example]:
    """The examples whose question fits a window; raises when none does."""
    kept, _ = split_by_fit(examples, tokenizer)
    if not kept:
        raise ValueError("no validation question fits a window")
    return kept


def predict(runner: ModelRunner, windows: Windows, contexts: Sequence[str], settings: EngineSettings,
            pad_id: int) -> Predictions:
    """`runner`'s logits on every window and the answers they give, in the engine's calls (qa_engine.core.pipeline)."""
    (start, end), answers = run_windows(runner, windows, contexts, settings, pad_id)
    return Predictions(start, end, [a[0].answer if a else "" for a in answers])


def changed_answers(
    reference: Predictions, other: Predictions, windows: Windows, decode: DecodeConfig, gap: float
) -> tuple[list[int], list[int]]:
    """Questions whose answer changed: (near ties that logits `gap` apart can swap, the other changes).

    Within |Δ logits| <= gap a span's log score (two log-softmaxes) moves by at most 4 gap, so a window's pick
    can move to another span only if the reference scores that span within 8 gap of its best. A changed answer
    is a near tie when every window of its question picked such a span."""
    changed = [i for i, (a, b) in enumerate(zip(reference.answers, other.answers)) if a != b]
    if not changed:
        return [], []
    mask, context = windows.softmax_mask(), windows.context_mask
    mine = best_spans(reference.start_logits, reference.end_logits, mask, context, decode.max_answer_length)
    theirs = best_spans(other.start_logits, other.end_logits, mask, context, decode.max_answer_length)
    rows = np.arange(len(windows))
    log_start, log_end = _log_softmax(reference.start_logits, mask), _log_softmax(reference.end_logits, mask)
    picks = [np.where(np.isfinite(spans.scores[:, 0]),
                      log_start[rows, spans.starts[:, 0]] + log_end[rows, spans.ends[:, 0]], -np.inf)
             for spans in (mine, theirs)]
    margin = np.where(picks[0] == picks[1], 0.0, picks[0] - picks[1])  # the reference's best minus their pick
    close = np.ones(len(reference.answers), dtype=bool)
    np.logical_and.at(close, windows.example_index, margin <= 8 * gap)
    ties = [i for i in changed if close[i]]
    return ties, [i for i in changed if not close[i]]


def _log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Log-probabilities over the masked tokens of each row, as the span decoder computes them."""
    x = np.where(mask, logits.astype(np.float64), -np.inf)
    top = x.max(axis=1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=1, keepdims=True))


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
    tolerance: Tolerance = Tolerance(),
    unfused: "ort.InferenceSession | None" = None,
) -> tuple[Predictions, dict[str, Any]]:
    """The fp32 graph `session` must reproduce PyTorch within `tolerance` with identical answers, else ParityError.

    Two answers that nearly tie may swap under differences within the limit: such swaps are counted
    ("near_ties"), not refused; any other changed answer is.

    Given `unfused` (the plain torch.onnx export), each step is judged on its own error: the unfused graph against
    PyTorch, then `session` (the fused graph, the one that ships) against the unfused graph. Logits are compared
    on the first PARITY_QUESTIONS questions. Returns `session`'s predictions on all examples (the reference of
    the other precisions) and the summary for the manifest.
    """
    questions = [ex.question for ex in examples]
    contexts = [ex.context for ex in examples]
    windows = tokenizer.windows(questions, contexts)
    pad_id, names, settings = tokenizer.template.pad_id, tuple(input_names), engine_settings(tokenizer, decode)
    shipped = predict(OnnxRunner(session, input_names=names), windows, contexts, settings, pad_id)

    k = min(PARITY_QUESTIONS, len(examples))
    rows = np.flatnonzero(windows.example_index < k)
    sub = windows.select(rows, windows.input_ids.shape[1])
    torch_pred = predict(TorchRunner(model, names), sub, contexts[:k], settings, pad_id)
    graph = Predictions(shipped.start_logits[rows], shipped.end_logits[rows], shipped.answers[:k])
    steps = [("onnx_vs_pytorch", "fp32 ONNX graph", "PyTorch", graph, torch_pred)]
    if unfused is not None:
        plain = predict(OnnxRunner(unfused, input_names=names), sub, contexts[:k], settings, pad_id)
        steps = [("unfused_vs_pytorch", "unfused ONNX export", "PyTorch", plain, torch_pred),
                 ("fused_vs_unfused", "fused graph", "unfused export", graph, plain)]
    gaps, ties = _judge_steps(steps, sub, decode, tolerance)
    total = logit_gap((torch_pred.start_logits, torch_pred.end_logits), (graph.start_logits, graph.end_logits),
                      sub.attention_mask.astype(bool))
    summary = _parity_summary(examples, shipped, graph, torch_pred, len(rows), total, gaps, ties, tolerance)
    log.info("fp32 parity: %s over %d windows (limit %.2g); answers identical but for %s near ties",
             ", ".join(f"{n} max |Δ logits| {g.max_abs_diff:.2e}" for n, g in gaps.items()), len(rows),
             tolerance.limit(total.scale), "+".join(str(n) for n in ties.values()))
    return shipped, summary


ParityStep = tuple[str, str, str, Predictions, Predictions]  # key, name, reference's name, predictions, reference's


def _judge_steps(steps: Sequence[ParityStep], windows: Windows, decode: DecodeConfig,
                 tolerance: Tolerance) -> tuple[dict[str, Gap], dict[str, int]]:
    """Each step's logit gap on the real tokens and its near-tie swaps; ParityError at the first step outside
    `tolerance` or with a changed answer that is no near tie."""
    real = windows.attention_mask.astype(bool)
    gaps, ties = {}, {}
    for key, name, reference_name, got, reference in steps:
        gap = logit_gap((reference.start_logits, reference.end_logits), (got.start_logits, got.end_logits), real)
        tied, changed = changed_answers(reference, got, windows, decode, gap.max_abs_diff)
        if not tolerance.accepts(gap) or changed:
            raise ParityError(_refusal(name, reference_name, gap, tied, changed, got, reference, windows, tolerance))
        gaps[key], ties[key] = gap, len(tied)
    return gaps, ties


def _parity_summary(examples: Sequence[Example], shipped: Predictions, graph: Predictions, torch_pred: Predictions,
                    windows: int, total: Gap, gaps: dict[str, Gap], ties: dict[str, int],
                    tolerance: Tolerance) -> dict[str, Any]:
    """The manifest's record of the fp32 check: the shipped graph against PyTorch, per step, and its scores."""
    k = len(torch_pred.answers)
    em, f1 = _scores(examples, shipped.answers)
    return {
        "reference": "pytorch",
        "questions": k,
        "windows": int(windows),
        "max_abs_diff": total.max_abs_diff,
        "max_abs_logit": total.scale,
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "limit": tolerance.limit(total.scale),
        "steps": {name: gap.max_abs_diff for name, gap in gaps.items()},
        "answers_identical": sum(a == b for a, b in zip(graph.answers, torch_pred.answers)) / k,
        "near_ties": ties,
        "exact_match": em,
        "f1": f1,
        "scored_questions": len(examples),
    }


def _refusal(
    name: str,
    reference_name: str,
    gap: Gap,
    tied: list[int],
    changed: list[int],
    got: Predictions,
    reference: Predictions,
    windows: Windows,
    tolerance: Tolerance,
) -> str:
    """A refusal that names the difference, the option that would relax it and what relaxing it risks."""
    question = int(windows.example_index[gap.window])
    limit = tolerance.limit(gap.scale)
    found = (f"max |Δ logits| {gap.max_abs_diff:.3g} ({gap.output}, question {question}, token {gap.token}); "
             f"limit {limit:.3g} = atol {tolerance.atol:g} + rtol {tolerance.rtol:g} × max |logit| {gap.scale:.3g}")
    k = len(reference.answers)
    if changed:
        i = changed[0]
        found += (f"; {len(changed)} of {k} answers differ beyond a near tie (first: question {i}, "
                  f"{got.answers[i]!r} vs {reference.answers[i]!r})")
    if tied:
        found += f"; {len(tied)} near ties swapped"
    message = f"{name} does not match {reference_name}: {found}. "
    if not (math.isfinite(gap.max_abs_diff) and math.isfinite(gap.scale)):
        message += ("A NaN or infinite logit is never rounding, and no --atol/--rtol accepts it: the graph is broken "
                    "(or the PyTorch model itself overflows on these inputs).")
    elif not tolerance.accepts(gap):
        needed = (gap.max_abs_diff - tolerance.atol) / max(gap.scale, 1e-12)
        message += (
            f"Measured rounding stays within 2e-4 × max |logit| (export/VALIDATION.md); a larger difference "
            f"usually means a wrong graph. If you accept it, pass --rtol {_round_up(needed)} "
            f"(export_artifact(rtol=...)) or a larger --atol: the artifact may then give other scores"
            + (" and answers" if changed else "") + " than the PyTorch model, and a wrong graph of that size would ship."
        )
    else:
        message += (
            "The logits are within the limit but the answers changed more than such a difference can explain, "
            "so --atol/--rtol would not change this: the decoding of this graph's outputs differs (a wrong output "
            "order or mask?), and the artifact would answer differently from the PyTorch model."
        )
    return message


def _round_up(value: float) -> str:
    """`value` (> 0) rounded up to one significant digit, as an option value: 0.0032 -> '4e-3'."""
    exponent = math.floor(math.log10(value))
    return f"{math.ceil(value / 10.0**exponent - 1e-9)}e{exponent}"


def compare_to_fp32(
    model: "ort.InferenceSession | ModelRunner",
    reference_answers: Sequence[str],
    tokenizer: WindowTokenizer,
    examples: Sequence[Example],
    input_names: Sequence[str],
    decode: DecodeConfig,
    precision: str,
) -> dict[str, Any]:
    """A reduced-precision variant (an onnxruntime session or any runner) against fp32 (`reference_answers`, one per
    example): identical answers, EM/F1 deltas."""
    contexts = [ex.context for ex in examples]
    windows = tokenizer.windows([ex.question for ex in examples], contexts)
    session = hasattr(model, "get_providers")
    runner = OnnxRunner(model, input_names=tuple(input_names)) if session else model
    pred = predict(runner, windows, contexts, engine_settings(tokenizer, decode), tokenizer.template.pad_id)
    same = sum(a == b for a, b in zip(pred.answers, reference_answers)) / len(examples)
    em, f1 = _scores(examples, pred.answers)
    em32, f132 = _scores(examples, reference_answers)
    summary = {
        "reference": "fp32",
        "provider": model.get_providers()[0] if session else type(model).__name__,
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
