"""The vectorized decoder against the Hugging Face pipeline's own decoding functions (those tests skip where only
the runtime is installed) and on hand-made logits."""
import numpy as np
import pytest

from qa_engine.core.spans import WindowSpans, best_spans, merge_answers


def _batch(rng, n=48, length=128):
    start = (rng.normal(size=(n, length)) * 3).astype(np.float32)
    end = (rng.normal(size=(n, length)) * 3).astype(np.float32)
    ctx = np.zeros((n, length), bool)
    for i in range(n):
        q = rng.integers(3, 20)
        ctx[i, q + 2 : q + 2 + rng.integers(10, length - q - 3)] = True
    soft = ctx.copy()
    soft[:, 0] = True  # CLS joins the softmax, as the pipeline's p_mask has it
    return start, end, soft, ctx


def _pipeline_decode(start, end, p_mask, top_k, max_len):
    """The HF question-answering pipeline's select_starts_ends + decode_spans for one window, restated in numpy
    (transformers 5.3 removed them): softmax over the tokens p_mask leaves (context and CLS), masked ones at
    -10000; the null score p_start[0] * p_end[0]; span scores p_start * p_end over start <= end < start + max_len,
    CLS excluded; the top_k by score."""
    wanted = 1 - p_mask
    start = np.where(wanted == 0, -10000.0, start.astype(np.float64))
    end = np.where(wanted == 0, -10000.0, end.astype(np.float64))
    start = np.exp(start - start.max())
    start /= start.sum()
    end = np.exp(end - end.max())
    end /= end.sum()
    null = start[0] * end[0]
    start[0] = end[0] = 0.0
    candidates = np.tril(np.triu(np.outer(start, end)), max_len - 1)
    flat = candidates.flatten()
    order = np.argsort(-flat, kind="stable")[:top_k]
    starts, ends = np.unravel_index(order, candidates.shape)
    keep = np.isin(starts, wanted.nonzero()) & np.isin(ends, wanted.nonzero())
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[starts, ends], null


@pytest.mark.parametrize("top_k", [1, 3, 10])
@pytest.mark.parametrize("max_len", [1, 15, 30])
def test_scores_are_the_pipelines_probabilities(top_k, max_len):
    """Span and null scores are the pipeline's probabilities, computed independently here (no transformers)."""
    rng = np.random.default_rng(top_k * 10 + max_len)
    start, end, soft, ctx = _batch(rng)
    ours = best_spans(start, end, soft, ctx, max_len, top_k)
    for i in range(len(start)):
        s, e, scores, null = _pipeline_decode(start[i], end[i], (~soft[i]).astype(int), top_k, max_len)
        n = len(s)
        assert n > 0 and list(ours.starts[i, :n]) == list(s) and list(ours.ends[i, :n]) == list(e)
        np.testing.assert_allclose(ours.scores[i, :n], scores, rtol=1e-5)
        assert ours.null_scores[i] == pytest.approx(null, rel=1e-5)


@pytest.mark.parametrize("top_k", [1, 3, 10])
@pytest.mark.parametrize("max_len", [1, 15, 30])
def test_same_spans_and_scores_as_pipeline(top_k, max_len):
    select_starts_ends = pytest.importorskip("transformers.pipelines.question_answering").select_starts_ends
    rng = np.random.default_rng(top_k * 100 + max_len)
    start, end, soft, ctx = _batch(rng)
    ours = best_spans(start, end, soft, ctx, max_len, top_k)
    for i in range(len(start)):
        s, e, scores, null = select_starts_ends(
            start[i][None], end[i][None], (~soft[i]).astype(int), np.ones((1, start.shape[1]), int),
            1_000_000, top_k, True, max_len,
        )
        n = len(s)
        assert list(ours.starts[i, :n]) == list(s) and list(ours.ends[i, :n]) == list(e)
        np.testing.assert_allclose(ours.scores[i, :n], scores, rtol=1e-5)
        assert ours.null_scores[i] == pytest.approx(null, rel=1e-5)
        assert ((ours.ends[i] - ours.starts[i]) < max_len).all() and (ours.ends[i] >= ours.starts[i]).all()


def test_top_one_takes_the_first_best_span_when_scores_tie():
    """Whole-number logits tie a lot: the sliding-maximum path must still pick the smallest start, then end."""
    from qa_engine.core.spans import _log_softmax

    rng = np.random.default_rng(3)
    start, end, soft, ctx = _batch(rng, n=64, length=40)
    start, end = np.round(start / 3), np.round(end / 3)
    ours = best_spans(start, end, soft, ctx, 7, 1)
    ls, le = _log_softmax(start, soft), _log_softmax(end, soft)
    for i in range(len(start)):
        keys = {(s, e): ls[i, s] + le[i, e] for s in np.flatnonzero(ctx[i]) for e in np.flatnonzero(ctx[i])
                if s <= e < s + 7}
        best = max(keys.values())
        first = min(pair for pair, key in keys.items() if key == best)
        assert (ours.starts[i, 0], ours.ends[i, 0]) == first
        assert ours.scores[i, 0] == pytest.approx(float(np.exp(best)), rel=1e-6)


def test_spans_never_leave_the_context():
    rng = np.random.default_rng(0)
    start, end, soft, ctx = _batch(rng)
    start[~ctx] += 50  # the question and padding look like great answers
    spans = best_spans(start, end, soft, ctx, 30, 5)
    rows = np.arange(len(start))[:, None]
    assert ctx[rows, spans.starts].all() and ctx[rows, spans.ends].all()


def test_window_without_context_gives_no_span():
    start = np.zeros((1, 8), np.float32)
    ctx = np.zeros((1, 8), bool)
    spans = best_spans(start, start, ctx, ctx, 30, 2)
    assert np.isneginf(spans.scores).all()


def test_merge_sums_identical_texts_across_windows_and_keeps_first_offsets():
    """Three windows of question 0 and one of question 1, two candidates each. 서울 is found at 0 and at 6
    and only the sum ranks it above 부산; the ranking (대구, 서울, 부산) reverses the order the texts are met."""
    context = "서울 부산 서울 대구"
    offsets = np.zeros((4, 4, 2), np.int32)
    offsets[:, 1], offsets[:, 2] = (3, 5), (0, 2)  # window 0: 부산, 서울 (first occurrence)
    offsets[1, 1], offsets[1, 2] = (9, 11), (6, 8)  # window 1: 대구, 서울 again
    offsets[2, 1], offsets[2, 2] = (6, 8), (9, 11)  # window 2 (a later one): 서울, 대구
    spans = WindowSpans(
        starts=np.array([[1, 2], [1, 2], [1, 2], [2, 1]]), ends=np.array([[1, 2], [1, 2], [1, 2], [2, 1]]),
        scores=np.array([[0.30, 0.20], [0.25, 0.10], [0.05, 0.15], [0.90, 0.80]]),
        null_scores=np.array([0.1, 0.2, 0.3, 0.05]),
    )
    example_index = np.array([0, 0, 0, 1])
    merged = merge_answers(spans, offsets, example_index, [context, context], top_k=3)
    got = [(a.answer, a.start, a.end, a.score) for a in merged[0]]
    assert [g[:3] for g in got] == [("대구", 9, 11), ("서울", 0, 2), ("부산", 3, 5)]
    assert [g[3] for g in got] == pytest.approx([0.40, 0.35, 0.30])  # 0.25+0.15, 0.20+0.10+0.05, 0.30
    # question 1's window adds nothing to question 0's texts, and its own ranking is by score too
    assert [(a.answer, a.start, a.score) for a in merged[1]] == [("서울", 0, 0.90), ("부산", 3, 0.80)]
    top = merge_answers(spans, offsets, example_index, [context, context], top_k=1)
    assert [(a.answer, a.start) for a in top[0]] == [("대구", 9)]
    assert top[0][0].score == pytest.approx(0.40)


def test_null_answer_uses_the_smallest_null_score_over_windows():
    offsets = np.zeros((2, 3, 2), np.int32)
    offsets[:, 1] = (0, 2)
    spans = WindowSpans(np.array([[1], [1]]), np.array([[1], [1]]), np.array([[0.01], [0.02]]), np.array([0.9, 0.6]))
    best = merge_answers(spans, offsets, np.array([0, 0]), ["서울"], top_k=2, handle_impossible_answer=True)[0]
    assert best[0].answer == "" and best[0].score == pytest.approx(0.6)
    assert best[1].answer == "서울" and best[1].score == pytest.approx(0.03)


def test_korean_answers_stay_sub_word_where_the_pipeline_default_widens_them():
    """With whitespace words split into pieces (as mBERT does: 서 ##울 ##에), the pipeline's default
    align_to_words=True widens 서울 to 서울에; qa-engine keeps the model's span, like align_to_words=False."""
    pytest.importorskip("transformers.pipelines.question_answering",
                        reason="transformers removed its question-answering pipeline in 5.3 (scripts/test_compat.sh "
                               "runs this on 4.57)")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        DistilBertConfig,
        DistilBertForQuestionAnswering,
        PreTrainedTokenizerFast,
        pipeline,
    )

    from qa_engine.core.windows import WindowTokenizer

    question, context = "철수는 어디에 삽니까?", "철수는 서울에 삽니다."
    chars = sorted(set((question + context).replace(" ", "")))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])
    model = DistilBertForQuestionAnswering(DistilBertConfig(vocab_size=len(vocab), dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    qa = pipeline("question-answering", model=model, tokenizer=fast)
    examples = qa._args_parser(question=question, context=context)
    example = examples[0] if isinstance(examples, (list, tuple)) else examples
    feature = next(iter(qa.preprocess(example, max_seq_len=64, doc_stride=16)))
    ids = feature["input_ids"][0].tolist()

    start = np.full((1, len(ids)), -5.0, np.float32)
    end = start.copy()
    start[0, ids.index(vocab["서"])] = 5.0  # the model's span: 서 ##울, inside the word 서울에
    end[0, ids.index(vocab["##울"])] = 5.0
    outputs = [{"start": start, "end": end, **feature}]
    widened = qa.postprocess(outputs, max_answer_len=30, align_to_words=True)
    exact = qa.postprocess(outputs, max_answer_len=30, align_to_words=False)

    windows = WindowTokenizer(Tokenizer.from_str(tok.to_str())).windows([question], [context])
    assert windows.input_ids[0].tolist() == ids
    spans = best_spans(start, end, windows.softmax_mask(), windows.context_mask, 30, 1)
    ours = merge_answers(spans, windows.offsets, windows.example_index, [context])[0][0]
    assert widened["answer"] == "서울에"
    assert exact["answer"] == ours.answer == "서울" and (ours.start, ours.end) == (4, 6)
    assert ours.score == pytest.approx(exact["score"], rel=1e-5)
