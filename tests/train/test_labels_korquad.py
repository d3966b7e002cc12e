"""Windows and training labels on the real KorQuAD 1.0 dev set (skipped where the file is absent)."""
import os

import numpy as np
import pytest
from qa_engine.train.labels import answer_char_spans, answer_token_spans, load_labelled
from tokenizers import Tokenizer

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import WindowTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CFG = WindowConfig()  # the reference task's 384 / 128


@pytest.fixture(scope="module")
def dev(korquad_dev):
    return load_labelled(korquad_dev, strict=True)


@pytest.fixture(scope="module")
def tokenizer(dev) -> Tokenizer:
    from qa_engine.train.tokenizer import train_wordpiece

    texts = [*dict.fromkeys(ex.context for ex in dev), *(ex.question for ex in dev)]
    return train_wordpiece(texts, vocab_size=8000)


@pytest.fixture(scope="module")
def labelled(dev, tokenizer):
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), CFG)
    windows = wt.windows([ex.question for ex in dev], [ex.context for ex in dev])
    lo, hi = answer_char_spans([ex.answer_texts[0] for ex in dev], [ex.answer_starts[0] for ex in dev])
    return windows, answer_token_spans(windows, lo, hi)


def test_every_answer_lies_inside_some_window(dev, labelled):
    windows, (starts, _) = labelled
    holding = np.bincount(windows.example_index, weights=starts > 0, minlength=len(dev))
    assert len(dev) == 5774
    assert (holding >= 1).all(), [dev[i].id for i in np.flatnonzero(holding == 0)[:10]]
    assert windows.example_index.max() == len(dev) - 1 and len(windows) > len(dev)  # some contexts overflow


def test_labels_map_back_to_the_trimmed_answer(dev, labelled):
    windows, (starts, ends) = labelled
    rows = np.flatnonzero(starts > 0)
    assert (windows.context_mask[rows, starts[rows]] & windows.context_mask[rows, ends[rows]]).all()
    wrong = []
    for r in rows:
        ex = dev[windows.example_index[r]]
        text = ex.context[windows.offsets[r, starts[r], 0] : windows.offsets[r, ends[r], 1]]
        if text != ex.answer_texts[0].strip():
            wrong.append((ex.id, ex.answer_texts[0], text))
    assert not wrong, wrong[:10]


def test_windows_equal_rust_overflow_on_every_question(dev, tokenizer):
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), CFG)
    windows = wt.windows([ex.question for ex in dev], [ex.context for ex in dev])
    ref = Tokenizer.from_str(tokenizer.to_str())
    ref.enable_truncation(CFG.max_length, stride=CFG.doc_stride, strategy="only_second")
    encodings = ref.encode_batch([(ex.question, ex.context) for ex in dev])
    row = 0
    for i, enc in enumerate(encodings):
        for part in [enc, *enc.overflowing]:
            n = len(part.ids)
            ctx = np.array([s == 1 for s in part.sequence_ids])
            assert windows.example_index[row] == i
            assert windows.lengths[row] == n
            assert windows.input_ids[row, :n].tolist() == part.ids, dev[i].id
            assert windows.token_type_ids[row, :n].tolist() == part.type_ids, dev[i].id
            assert (windows.context_mask[row, :n] == ctx).all(), dev[i].id
            assert (windows.offsets[row, :n][ctx] == np.array(part.offsets)[ctx]).all(), dev[i].id
            row += 1
    assert row == len(windows)
