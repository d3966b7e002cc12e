"""Window cutting: identical to the Rust tokenizer's own overflow, offsets always on the original string."""
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import WindowTokenizer, window_counts

CORPUS = [
    "철수는 서울에 삽니다.", "고양이가 의자에 앉습니다.", "영희는 2019년 3월 5일에 부산으로 이사했다.",
    "Apple은 1976년에 설립되었다.", "학생 300명이 도서관에서 책 12권을 읽었다.",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    train_wordpiece = pytest.importorskip("qa_engine.train.tokenizer").train_wordpiece  # skips in the runtime-only job

    return train_wordpiece(CORPUS * 5, vocab_size=300)


def _rust_windows(tok: Tokenizer, q, c, cfg):
    ref = Tokenizer.from_str(tok.to_str())
    ref.enable_truncation(cfg.max_length, stride=cfg.doc_stride, strategy="only_second")
    enc = ref.encode(q, c)
    return [enc] + enc.overflowing


@pytest.mark.parametrize("max_length, stride", [(20, 4), (24, 8), (40, 0), (384, 128)])
def test_windows_equal_rust_overflow(tokenizer, max_length, stride):
    cfg = WindowConfig(max_length, stride)
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), cfg)
    q, c = "철수는 어디에 삽니까?", " ".join(CORPUS * 3)
    w = wt.windows([q], [c])
    ref = _rust_windows(tokenizer, q, c, cfg)
    assert len(w) == len(ref)
    for r, enc in enumerate(ref):
        n = len(enc.ids)
        assert w.lengths[r] == n
        assert w.input_ids[r, :n].tolist() == enc.ids
        assert w.token_type_ids[r, :n].tolist() == enc.type_ids
        ctx = np.array([s == 1 for s in enc.sequence_ids])
        assert (w.context_mask[r, :n] == ctx).all()
        assert (w.offsets[r, :n][ctx] == np.array(enc.offsets)[ctx]).all()
        assert (w.attention_mask[r, :n] == 1).all() and (w.attention_mask[r, n:] == 0).all()


def test_window_counts_step_and_stop():
    # chunks start every budget - stride tokens until one reaches the end: 25 tokens, budget 10 -> 0, 7, 14, 21
    counts = window_counts(np.array([5, 25, 24, 1000, 0]), np.array([10, 10, 10, 100, 10]), 3)
    assert counts.tolist() == [1, 4, 3, 11, 1]


def test_too_long_question_is_refused_not_panicking(tokenizer):
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), WindowConfig(32, 8))
    with pytest.raises(ValueError, match="question 1 is too long"):
        wt.windows(["짧은 질문", "아주 긴 질문 " * 20], ["철수는 서울에 삽니다."] * 2)


# Arbitrary characters mixed with the corpus's own, so that most windows hold tokens the vocabulary knows.
KNOWN = sorted(set("".join(CORPUS)))
text = st.text(
    alphabet=st.one_of(st.sampled_from(KNOWN), st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=200
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=text, context=text)
def test_offsets_always_index_the_original_context(tokenizer, question, context):
    """Every context token's offsets cover the characters it was made from: the vocabulary's text of the
    token equals the normalized context[start:end] (a token shifted by one would name another piece)."""
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), WindowConfig(24, 8))
    try:
        w = wt.windows([question], [context])
    except ValueError as e:
        assert "too long" in str(e)
        return
    assert not w.context_mask[w.attention_mask == 0].any()
    unk = tokenizer.token_to_id("[UNK]")
    for r in range(len(w)):
        ids, off = w.input_ids[r][w.context_mask[r]], w.offsets[r][w.context_mask[r]]
        assert ((0 <= off[:, 0]) & (off[:, 0] < off[:, 1]) & (off[:, 1] <= len(context))).all()
        assert (np.diff(off[:, 0]) > 0).all()  # in context order, no token twice
        for token_id, (start, end) in zip(ids.tolist(), off.tolist()):
            if token_id != unk:  # an unknown word has no vocabulary text to compare
                piece = tokenizer.id_to_token(token_id).removeprefix("##")
                assert tokenizer.normalizer.normalize_str(context[start:end]).strip() == piece


def test_nfd_hangul_is_not_recomposed(tokenizer):
    context = unicodedata.normalize("NFD", "철수는 서울에 삽니다.")
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()))
    w = wt.windows(["어디?"], [context])
    assert len(context) > len("철수는 서울에 삽니다.")  # decomposed jamo
    assert w.offsets[w.context_mask][:, 1].max() == len(context)
