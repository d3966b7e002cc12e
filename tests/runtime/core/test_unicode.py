"""NFC with a map back: token offsets into the NFC text become whole characters of the original string."""
from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa_engine.core.unicode import nfc, nfd_lengths, offset_map
from qa_engine.core.windows import WindowTokenizer
from tests.fixtures import char_wordpiece, korean_alphabet
from tests.unicode_forms import FORMS, in_form

PIECES = ["철", "수", "는", "한", "글", "가", " ", "a", "é", "e\u0301", "\u1100\u1161", "\u1100\u1161\u11a8", "각",
          "\u1112\u1161", "\u11ab", "Å", "\u212b", ".", "a\u0344", "\u2adc"]  # NFC splits U+0344 and U+2ADC


def test_nfc_text_needs_no_map_and_is_not_copied() -> None:
    text = "철수는 서울에 삽니다."
    assert offset_map(text) is None
    assert nfc(text) is text
    assert nfc(unicodedata.normalize("NFD", text)) == text


def test_nfd_lengths_are_unicodedatas() -> None:
    text = "가각힣 aé\u212b\u00c0\u1100\u1161ǅ①"
    assert nfd_lengths(text).tolist() == [len(unicodedata.normalize("NFD", ch)) for ch in text]


def test_a_character_nfc_splits_is_kept_whole() -> None:
    m = offset_map("xa\u0344y")  # NFC: x, a with diaeresis, combining acute, y
    assert m is not None and m.text == "x\u00e4\u0301y"
    assert m.starts.tolist() == [0, 1, 2, 3, 4] and m.ends.tolist() == [0, 1, 3, 3, 4]


def test_decomposed_syllables_map_to_their_jamo() -> None:
    original = "철" + unicodedata.normalize("NFD", "수") + "는"  # 철 ᄉ ᅮ 는
    m = offset_map(original)
    assert m is not None and m.text == "철수는"
    assert m.starts.tolist() == [0, 1, 3, 4] and m.ends.tolist() == [0, 1, 3, 4]
    assert m.apply(np.array([[1, 2], [0, 3]], dtype=np.int32)).tolist() == [[1, 3], [0, 4]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_every_nfc_span_maps_to_whole_original_characters(pieces: list[str]) -> None:
    original = "".join(pieces)
    m = offset_map(original)
    if m is None:
        assert unicodedata.is_normalized("NFC", original)
        return
    assert m.text == unicodedata.normalize("NFC", original)
    n = len(m.text)
    assert m.starts[0] == m.ends[0] == 0 and m.starts[n] == m.ends[n] == len(original)
    for a in range(n + 1):
        for b in range(a, n + 1):
            assert m.text[a:b] in unicodedata.normalize("NFC", original[m.starts[a] : m.ends[b]])


@pytest.fixture(scope="module")
def windower() -> WindowTokenizer:
    return WindowTokenizer(char_wordpiece(korean_alphabet()))


@pytest.mark.parametrize("form", FORMS)
def test_windows_of_any_form_are_the_nfc_windows_with_offsets_into_the_original(windower: WindowTokenizer,
                                                                              form: str) -> None:
    questions = ["철수는 어디에 삽니까?", "영희는 무엇을 합니까?"]
    contexts = ["영희는 부산에 삽니다. 철수는 서울에 삽니다. " * 40, "영희는 학교에서 한국어를 가르칩니다."]
    want = windower.windows(questions, contexts)
    given_contexts = [in_form(c, form) for c in contexts]
    got = windower.windows([in_form(q, form) for q in questions], given_contexts)
    assert len(got) > len(contexts)  # the first context spans several windows
    assert np.array_equal(got.input_ids, want.input_ids) and np.array_equal(got.context_mask, want.context_mask)
    for row in range(len(got)):
        context = given_contexts[got.example_index[row]]
        for (s, e), (ws, we) in zip(got.offsets[row][got.context_mask[row]], want.offsets[row][want.context_mask[row]]):
            assert unicodedata.normalize("NFC", context[s:e]) == contexts[got.example_index[row]][ws:we]
            assert len(unicodedata.normalize("NFC", context[:s])) == ws
