"""The transformers question-answering pipeline's answers (align_to_words=False) from a PyTorch model, computed
the pipeline's way but without it: transformers removed the pipeline in 5.3, and parity checks still need the
reference it gave. Written from the algorithm of transformers 4.57's QuestionAnsweringPipeline (fast tokenizer,
right padding) and checked against that pipeline where it exists (tests/export/test_families.py).

Independent of qa_engine's own windowing and span decoding on purpose: it is what those are compared to.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

MASKED = -10000.0  # the pipeline's logit for tokens that cannot be in an answer


def pipeline_answers(
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerFast",
    questions: Sequence[str],
    contexts: Sequence[str],
    max_seq_len: int = 384,
    doc_stride: int = 128,
    max_answer_len: int = 30,
    top_k: int = 1,
) -> list[list[dict]]:
    """For each question, its `top_k` answers {answer, score, start, end}, best first, as the pipeline gives them
    with align_to_words=False: a softmax over each window's context tokens and [CLS] (scored zero), spans of at
    most `max_answer_len` tokens, and answers of equal text (ignoring case) from several windows adding up."""
    import torch

    if tokenizer.padding_side != "right":
        raise ValueError("the reference follows the pipeline for right-padding tokenizers only")
    results = []
    for question, context in zip(questions, contexts):
        enc = tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest",
                        return_tensors="np")
        feed = {k: torch.from_numpy(enc[k]) for k in model_inputs(model, tokenizer) if k in enc}
        with torch.inference_mode():
            out = model(**feed)
        starts, ends = out.start_logits.float().numpy(), out.end_logits.float().numpy()
        answers: list[dict] = []
        for w in range(len(enc["input_ids"])):
            allowed = np.array([s == 1 for s in enc.sequence_ids(w)]) | (enc["input_ids"][w] == tokenizer.cls_token_id)
            allowed &= enc["attention_mask"][w].astype(bool)
            for s, e, score in _spans(starts[w], ends[w], allowed, max_answer_len, top_k):
                begin, end = int(enc["offset_mapping"][w][s][0]), int(enc["offset_mapping"][w][e][1])
                text = context[begin:end]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score
                else:
                    answers.append({"answer": text, "score": score, "start": begin, "end": end})
        results.append(sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k])
    return results


def model_inputs(model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerFast") -> list[str]:
    """The tokenizer's model_input_names that the model's forward names (a WordPiece tokenizer saved for BERT lists
    token_type_ids, which DistilBERT's forward rejects on transformers 4 and ignores on 5)."""
    params = inspect.signature(model.forward).parameters
    return [name for name in tokenizer.model_input_names if name in params]


def _spans(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, max_len: int,
           top_k: int) -> list[tuple[int, int, float]]:
    """One window's best spans: probabilities over the allowed tokens (context and [CLS]), [CLS] then zeroed,
    the top_k of start x end with start <= end < start + max_len, kept where both ends are allowed."""
    p_start, p_end = _softmax(np.where(allowed, start, MASKED)), _softmax(np.where(allowed, end, MASKED))
    p_start[0] = p_end[0] = 0.0
    scores = np.tril(np.triu(np.outer(p_start, p_end)), max_len - 1).ravel()
    order = np.argsort(-scores, kind="stable")[:top_k]
    picks = [np.unravel_index(i, (len(start), len(end))) for i in order]
    return [(int(s), int(e), float(scores[i])) for (s, e), i in zip(picks, order) if allowed[s] and allowed[e]]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
