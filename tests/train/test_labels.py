"""Training labels: answer offsets checked and repaired against their context, and each window's answer tokens."""
import logging

import numpy as np
import pytest
from qa_engine.train.labels import (
    align_answer,
    answer_char_spans,
    answer_token_spans,
    load_labelled,
)
from qa_engine.train.tokenizer import train_wordpiece
from tokenizers import Tokenizer

from qa_engine.core.config import WindowConfig
from qa_engine.core.windows import WindowTokenizer
from qa_engine.formats.squad import DataError
from tests.runtime.core.test_windows import CORPUS
from tests.runtime.formats.test_squad import _qa, _squad


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_wordpiece(CORPUS * 5, vocab_size=300)


def test_labels_map_back_to_the_answer_in_every_window(tokenizer):
    cfg = WindowConfig(20, 6)
    wt = WindowTokenizer(Tokenizer.from_str(tokenizer.to_str()), cfg)
    context = " ".join(CORPUS * 2)
    answer = "부산"
    starts = [context.index(answer), context.rindex(answer)]
    w = wt.windows(["어디로 이사했나?"] * 2, [context] * 2)
    s, e = answer_token_spans(w, *answer_char_spans([answer] * 2, starts))
    for r in range(len(w)):
        start = starts[w.example_index[r]]
        ctx = w.offsets[r][w.context_mask[r]]
        holds = ctx[0, 0] <= start and start + len(answer) <= ctx[-1, 1]
        if holds:  # every window holding the whole answer is labelled with it, the others with CLS
            assert context[w.offsets[r, s[r], 0] : w.offsets[r, e[r], 1]] == answer
        else:
            assert (s[r], e[r]) == (0, 0)
    assert (np.bincount(w.example_index[s > 0]) >= 2).all()  # each answer lies in several windows


def test_labels_trim_whitespace_around_answers():
    lo, hi = answer_char_spans([" 서울 ", "부산"], [3, 10])
    assert lo.tolist() == [4, 10] and hi.tolist() == [6, 12]


def test_repairs_a_unique_near_miss_and_logs_it(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    ex = load_labelled(_squad(tmp_path / "d.json", [_qa("1", "서울", 6), _qa("2", "부산", 17)]))
    assert [e.answer_starts for e in ex] == [(4,), (17,)]
    assert "repaired 1" in caplog.text


def test_drops_unrepairable_answers_with_ids_or_fails_when_strict(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = _squad(tmp_path / "d.json", [_qa("1", "서울", 4), _qa("2", "대구", 3)])
    assert [e.id for e in load_labelled(path)] == ["1"]
    assert "dropped 1" in caplog.text and "2" in caplog.text
    with pytest.raises(DataError, match="id 2"):
        load_labelled(path, strict=True)


def test_ambiguous_repair_is_not_guessed():
    assert align_answer("서울 서울 서울", "서울", 1) is None
    assert align_answer("abc서울", "서울", 3) == 3


def test_no_aligned_answer_at_all_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no usable examples"):
        load_labelled(_squad(tmp_path / "none.json", [_qa("1", "대구", 0)]))
