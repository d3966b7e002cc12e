"""The array-built windows equal, array for array, the row-by-row reference they replaced."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import (
    ContextCache,
    PairTemplate,
    Windows,
    WindowTokenizer,
    window_counts,
)

CORPUS = ["철수는 서울에 삽니다.", "고양이가 의자에 앉습니다.", "영희는 2019년 3월 5일에 부산으로 이사했다.",
          "Apple은 1976년에 설립되었다.", "학생 300명이 도서관에서 책 12권을 읽었다."]


def reference_windows(wt: WindowTokenizer, questions: list[str], contexts: list[str]) -> Windows:
    """The implementation before vectorization: one Python row per window, filled slice by slice."""
    t, cfg = wt.template, wt.config
    unique = {c: i for i, c in enumerate(dict.fromkeys(contexts))}
    ctx_enc = wt.tokenizer.encode_batch(list(unique), add_special_tokens=False)
    q_enc = wt.tokenizer.encode_batch(list(questions), add_special_tokens=False)
    rows = []
    limit = wt.max_question_tokens()
    for i, (q, c) in enumerate(zip(q_enc, (ctx_enc[unique[c]] for c in contexts))):
        nq = len(q.ids)
        if nq > limit:
            raise ValueError(f"question {i} is too long")
        budget = cfg.max_length - t.n_special - nq
        step = budget - cfg.doc_stride
        starts = [0]
        if len(c.ids) > budget:
            starts = []
            for s in range(0, len(c.ids), step):
                starts.append(s)
                if s + budget >= len(c.ids):
                    break
        for s in starts:
            rows.append((i, q.ids, c.ids[s : s + budget], c.offsets[s : s + budget]))
    n = len(rows)
    lengths = np.array([t.n_special + len(q) + len(c) for _, q, c, _ in rows], dtype=np.int32)
    width = int(lengths.max()) if n else 0
    ids = np.full((n, width), t.pad_id, dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    ctx_mask = np.zeros((n, width), dtype=bool)
    offsets = np.zeros((n, width, 2), dtype=np.int32)
    for r, (_, q, c, off) in enumerate(rows):
        a0 = len(t.prefix)
        a1 = a0 + len(q)
        b0 = a1 + len(t.middle)
        b1 = b0 + len(c)
        ids[r, :a0], ids[r, a0:a1], ids[r, a1:b0], ids[r, b0:b1] = t.prefix, q, t.middle, c
        ids[r, b1 : b1 + len(t.suffix)] = t.suffix
        types[r, :a0], types[r, a0:a1], types[r, a1:b0] = t.prefix_types, t.question_type, t.middle_types
        types[r, b0:b1], types[r, b1 : b1 + len(t.suffix)] = t.context_type, t.suffix_types
        ctx_mask[r, b0:b1] = True
        if off:
            offsets[r, b0:b1] = off
    attention = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    example_index = np.array([r[0] for r in rows], dtype=np.int32)
    return Windows(ids, types, attention, ctx_mask, offsets, lengths, example_index, t.cls_id)


def assert_same(got: Windows, want: Windows) -> None:
    for f in fields(Windows):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, f.name
            assert a.shape == b.shape, f.name
            assert np.array_equal(a, b), f.name
        else:
            assert a == b, f.name


@dataclass
class FakeEncoding:
    ids: list[int]
    offsets: list[tuple[int, int]]


class FakeTokenizer:
    """encode_batch over texts that name their tokens: 'Q<len>' and 'C<len>:<seed>' (ids and offsets drawn from the
    seed, empty offsets included), so token sequences of any length and shape reach the window builder."""

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[FakeEncoding]:
        out = []
        for text in texts:
            kind, _, rest = text.partition(":")
            n = int(kind[1:])
            rng = np.random.default_rng(int(rest or 0) + 7 * n)
            ids = rng.integers(5, 1000, n).tolist()
            starts = np.sort(rng.integers(0, 10 * n + 1, n))
            widths = rng.integers(0, 4, n)  # width 0: tokens with an empty offset
            out.append(FakeEncoding(ids, list(zip(starts.tolist(), (starts + widths).tolist()))))
        return out

    encode_batch_fast = encode_batch


@pytest.fixture(scope="module")
def wordpiece() -> Tokenizer:
    train_wordpiece = pytest.importorskip("qa_engine.train.tokenizer").train_wordpiece  # skips in the runtime-only job

    return train_wordpiece(CORPUS * 5, vocab_size=300)


templates = st.builds(
    lambda pre, mid, suf, qt, ct, pad: PairTemplate(
        prefix=tuple(range(1, pre + 1)), middle=tuple(range(10, 10 + mid)), suffix=tuple(range(20, 20 + suf)),
        prefix_types=(0,) * pre, middle_types=(qt,) * mid, suffix_types=(ct,) * suf,
        question_type=qt, context_type=ct, cls_id=1 if pre else None, pad_id=pad,
    ),
    st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 1), st.integers(0, 1), st.integers(0, 3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    template=templates,
    max_length=st.integers(8, 64),
    stride_share=st.floats(0, 0.9),
    pairs=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 4), st.integers(0, 200)), min_size=0, max_size=8),
    data=st.data(),
)
def test_any_token_sequences_give_the_reference_windows(wordpiece, template, max_length, stride_share, pairs, data):
    stride = min(int(stride_share * max_length), max_length - 1)
    wt = WindowTokenizer(Tokenizer.from_str(wordpiece.to_str()), WindowConfig(max_length, stride))
    wt.template = template
    wt.tokenizer = FakeTokenizer()
    limit = wt.max_question_tokens()
    if limit < 0:
        return
    # questions of any length that fits, the limit itself among them; contexts shared between pairs
    q_lens = [data.draw(st.sampled_from([0, limit, max(0, limit - 1), min(q, limit)])) for q, _, _ in pairs]
    questions = [f"Q{n}" for n in q_lens]
    contexts = [f"C{c_len}:{seed % 5}" for _, seed, c_len in pairs]
    assert_same(wt.windows(questions, contexts), reference_windows(wt, questions, contexts))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4), st.integers(0, 120)), min_size=1, max_size=10),
    split=st.integers(0, 10),
    max_tokens=st.integers(0, 300),
)
def test_a_context_cache_shared_by_calls_changes_no_window(wordpiece, pairs, split, max_tokens):
    wt = WindowTokenizer(Tokenizer.from_str(wordpiece.to_str()), WindowConfig(48, 8))
    wt.tokenizer = FakeTokenizer()
    questions = [f"Q{n}" for n, _, _ in pairs]
    contexts = [f"C{c_len}:{seed}" for _, seed, c_len in pairs]
    cache = ContextCache(max_tokens)  # small enough to evict, so hits, misses and evictions all occur
    for lo, hi in [(0, split), (split, len(pairs)), (0, len(pairs))]:
        if lo < hi:
            want = reference_windows(wt, questions[lo:hi], contexts[lo:hi])
            assert_same(wt.windows(questions[lo:hi], contexts[lo:hi], cache=cache), want)
        assert cache.tokens <= max_tokens


def test_context_cache_drops_the_least_recently_used_context_first():
    cache = ContextCache(max_tokens=5)
    part = lambda n: (np.zeros(n, dtype=np.int64), np.zeros((n, 2), dtype=np.int32))  # noqa: E731
    cache.put("a", part(2))
    cache.put("b", part(2))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", part(2))
    assert (cache.get("b"), len(cache), cache.tokens) == (None, 2, 4)
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.put("big", part(9))  # larger than the whole cache: not kept, and nothing evicted for it
    assert (cache.get("big"), len(cache), cache.tokens) == (None, 2, 4)
    ids, offsets = np.arange(6, dtype=np.int64), np.zeros((6, 2), dtype=np.int32)
    cache.put("view", (ids[:3], offsets[:3]))  # a view into a bigger array (a chunk's flat tokens) ...
    kept = cache.get("view")
    assert kept is not None and not np.shares_memory(kept[0], ids) and not np.shares_memory(kept[1], offsets)
    assert kept[0].tolist() == [0, 1, 2]  # ... is kept as a copy, so the chunk's arrays can be freed


def test_context_cache_keeps_at_most_max_entries_contexts_however_short():
    cache = ContextCache(max_tokens=1000, max_entries=3)
    for name in "abcde":  # a long job of short contexts: the entry count, not the tokens, bounds the memory
        cache.put(name, (np.zeros(1, dtype=np.int64), np.zeros((1, 2), dtype=np.int32)))
    assert (len(cache), cache.tokens) == (3, 3)
    assert cache.get("b") is None and cache.get("c") is not None and cache.get("e") is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.sampled_from(CORPUS), min_size=1, max_size=12),
    questions=st.lists(st.sampled_from(["철수는 어디에 삽니까?", "누가?", "몇 권을 읽었나? " * 3, "Apple"]), min_size=1, max_size=6),
    max_length=st.sampled_from([24, 32, 48, 384]),
    stride=st.sampled_from([0, 4, 8, 16]),
)
def test_real_tokenizer_gives_the_reference_windows(wordpiece, texts, questions, max_length, stride):
    wt = WindowTokenizer(Tokenizer.from_str(wordpiece.to_str()), WindowConfig(max_length, stride))
    contexts = [" ".join(texts[: i + 1]) for i in range(len(questions))]
    contexts[-1] = contexts[0]  # a context shared between two questions
    try:
        want = reference_windows(wt, questions, contexts)
    except ValueError:
        with pytest.raises(ValueError, match="too long"):
            wt.windows(questions, contexts)
        return
    assert_same(wt.windows(questions, contexts), want)


def test_too_long_question_is_named_by_its_index(wordpiece):
    wt = WindowTokenizer(Tokenizer.from_str(wordpiece.to_str()), WindowConfig(24, 8))
    with pytest.raises(ValueError, match="question 1 is too long"):
        wt.windows(["누가?", "몇 권을 읽었나? " * 5, "누가?"], CORPUS[:3])


@given(n=st.integers(0, 3000), budget=st.integers(1, 400), stride_share=st.floats(0, 0.99))
def test_window_counts_follow_the_overflow_rule(n, budget, stride_share):
    stride = min(int(stride_share * budget), budget - 1)
    step = budget - stride
    starts = [k * step for k in range(int(window_counts(np.array([n]), np.array([budget]), stride)[0]))]
    assert starts and all(s < max(n, 1) for s in starts)  # every chunk starts inside the context
    assert starts[-1] + budget >= n  # the last chunk reaches the end
    assert len(starts) == 1 or starts[-2] + budget < n  # and no chunk before it does


def test_question_fits_is_the_rule_windows_enforces(wordpiece):
    from qa_engine.formats.squad import Example, split_by_fit

    wt = WindowTokenizer(Tokenizer.from_str(wordpiece.to_str()), WindowConfig(24, 8))
    questions = ["누가?", "몇 권을 읽었나? " * 5, "철수는 어디에 삽니까?"]
    fits = wt.question_fits(questions)
    assert fits.tolist() == [True, False, True]
    wt.windows([q for q, ok in zip(questions, fits) if ok], CORPUS[:2])
    with pytest.raises(ValueError, match="too long"):
        wt.windows(questions[1:2], CORPUS[:1])
    examples = [Example(f"q{i}", q, CORPUS[0]) for i, q in enumerate(questions)]
    kept, too_long = split_by_fit(examples, wt)
    assert [e.id for e in kept] == ["q0", "q2"] and [e.id for e in too_long] == ["q1"]
