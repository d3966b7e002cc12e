"""Korean text in other Unicode forms than NFC, and the check that an answer on it is the NFC text's answer."""
from __future__ import annotations

import unicodedata
from typing import Any

import pytest

FORMS = ("NFD", "NFKD", "mixed", "partial")


def in_form(text: str, form: str) -> str:
    """`text` as NFD or NFKD; "mixed": every other character decomposed; "partial": each syllable with a final
    consonant split into its composed syllable without the final and the final jamo (LV + T)."""
    if form in ("NFD", "NFKD"):
        return unicodedata.normalize(form, text)
    if form == "mixed":
        return "".join(unicodedata.normalize("NFD", ch) if i % 2 else ch for i, ch in enumerate(text))
    if form == "partial":
        return "".join(_split_final(ch) for ch in text)
    raise ValueError(form)


def _split_final(ch: str) -> str:
    index = ord(ch) - 0xAC00
    if not 0 <= index < 11172 or index % 28 == 0:
        return ch
    return chr(0xAC00 + index - index % 28) + chr(0x11A7 + index % 28)


def assert_nfc_answer(got: Any, want: Any, context: str) -> None:
    """`got` (answers on `context`, any form) is `want` (the NFC context's answers): the same texts in NFC and
    scores, each a slice [start, end) of `context` at the place `want`'s offsets name in the NFC text."""
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert context[g["start"] : g["end"]] == g["answer"]
        assert unicodedata.normalize("NFC", g["answer"]) == w["answer"]
        assert len(unicodedata.normalize("NFC", context[: g["start"]])) == w["start"]
        assert len(unicodedata.normalize("NFC", context[: g["end"]])) == w["end"]
        assert g["score"] == pytest.approx(w["score"], rel=1e-3, abs=1e-6)
