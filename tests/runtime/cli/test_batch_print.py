"""`qa-engine batch --print`: each answer beside the expected one when the input carries answers, and the share right."""
from __future__ import annotations

import pytest

from qa_engine.cli.commands import _print_answers


def _rows(predictions: dict[str, str], expected: dict[str, tuple[str, ...]]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(qid, text, expected.get(qid, ())) for qid, text in predictions.items()]


def test_answers_are_shown_beside_the_expected_ones_with_the_share_right(capsys: pytest.CaptureFixture) -> None:
    predictions = {"a": "서울", "b": "광주", "c": "침대", "d": "의자"}
    expected = {"a": ("서울",), "b": ("대전",), "c": ("소파", "침대")}
    _print_answers(_rows(predictions, expected), limit=2)
    assert capsys.readouterr().out.splitlines() == [
        "a\t서울\tright (expected 서울)",
        "b\t광주\tWRONG (expected 대전)",
        "right: 2 of 3 questions with an expected answer (67%)",  # all answers count, not only those shown
    ]
    _print_answers(_rows(predictions, expected), limit=4)
    assert capsys.readouterr().out.splitlines()[2:4] == ["c\t침대\tright (expected 소파 | 침대)", "d\t의자"]


def test_inputs_without_answers_print_only_the_answers(capsys: pytest.CaptureFixture) -> None:
    _print_answers(_rows({"a": "서울", "b": "의자"}, {}), limit=5)
    assert capsys.readouterr().out.splitlines() == ["a\t서울", "b\t의자"]
