"""The transformers question-answering pipeline's answers (align_to_words=False) on a PyTorch checkpoint: the
pipeline itself where this transformers still has it (it was removed in 5.3), else qa_engine.export.reference,
which computes the same (tests/export/test_families.py checks that where both exist)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def transformers_pipeline(model, tokenizer):
    """transformers' own question-answering pipeline, or None where this transformers has none."""
    from transformers import pipeline

    try:
        return pipeline("question-answering", model=model, tokenizer=tokenizer)
    except KeyError:  # "Unknown task question-answering"
        return None


def pipeline_answers(checkpoint: Path, questions: Sequence[str], contexts: Sequence[str], max_seq_len: int,
                     doc_stride: int, max_answer_len: int = 30, top_k: int = 1) -> list:
    """Per question the pipeline's best answer dict (top_k 1) or list of the top_k, from the PyTorch model."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa_engine.export.reference import pipeline_answers as reference

    model = AutoModelForQuestionAnswering.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    qa = transformers_pipeline(model, tokenizer)
    settings = dict(max_seq_len=max_seq_len, doc_stride=doc_stride, max_answer_len=max_answer_len, top_k=top_k)
    if qa is None:
        answers = reference(model, tokenizer, questions, contexts, **settings)
        return [a[0] for a in answers] if top_k == 1 else answers
    answers = qa(question=list(questions), context=list(contexts), align_to_words=False, batch_size=16, **settings)
    if len(questions) == 1:
        answers = [answers]
    return answers
