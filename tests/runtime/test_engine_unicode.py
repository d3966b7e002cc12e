"""The engine on Korean text in any Unicode form answers as on the NFC text, in whole characters of the input."""
from __future__ import annotations

import pytest

from qa_engine import QAEngine
from tests.unicode_forms import FORMS, assert_nfc_answer, in_form

QUESTIONS = ["철수는 어디에 삽니까?", "누가 훈민정음을 창제하였나?", "한강은 어디를 흐르나?"]
CONTEXTS = [
    "영희는 부산에 삽니다. 철수는 서울에 삽니다.",
    "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. " * 30,  # several windows
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다.",
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"handle_impossible_answer": True}])
def test_answers_on_any_form_are_the_nfc_answers(engine: QAEngine, form: str, options: dict) -> None:
    contexts = [in_form(c, form) for c in CONTEXTS]
    got = engine.answer_batch([in_form(q, form) for q in QUESTIONS], contexts, **options)
    want = engine.answer_batch(QUESTIONS, CONTEXTS, **options)
    for g, w, context in zip(got, want, contexts):
        assert_nfc_answer(g, w, context)


@pytest.mark.parametrize("form", FORMS)
def test_nfc_question_over_a_decomposed_context_and_back(engine: QAEngine, form: str) -> None:
    want = engine.answer_batch(QUESTIONS, CONTEXTS, top_k=2)
    for questions, contexts in ((QUESTIONS, [in_form(c, form) for c in CONTEXTS]),
                                ([in_form(q, form) for q in QUESTIONS], CONTEXTS)):
        got = list(engine.answer_stream(zip(questions, contexts), top_k=2))
        for g, w, context in zip(got, want, contexts):
            assert_nfc_answer(g, w, context)
