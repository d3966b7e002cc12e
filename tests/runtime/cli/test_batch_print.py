"""`qa-engine batch --print`: each answer beside the expected one when the input carries answers, and the share right
of every question with an expected answer, counted as the rows stream by."""
from __future__ import annotations

from typing import Iterator

import pytest

from qa_engine.cli.commands import _print_answers

ROWS = [("a", "서울", ("서울",)), ("b", "광주", ("대전",)), ("c", "침대", ("소파", "침대")),
        ("d", "의자", ())]


def test_answers_are_shown_beside_the_expected_ones_with_the_share_right(capsys: pytest.CaptureFixture) -> None:
    _print_answers(iter(ROWS), limit=2)
    assert capsys.readouterr().out.splitlines() == [
        "a\t서울\tright (expected 서울)",
        "b\t광주\tWRONG (expected 대전)",
        "right: 2 of 3 questions with an expected answer (67%)",  # all answers count, not only those shown
    ]
    _print_answers(iter(ROWS), limit=4)
    assert capsys.readouterr().out.splitlines()[2:4] == ["c\t침대\tright (expected 소파 | 침대)", "d\t의자"]


def test_inputs_without_answers_print_only_the_answers(capsys: pytest.CaptureFixture) -> None:
    _print_answers(iter([("a", "서울", ()), ("b", "의자", ())]), limit=5)
    assert capsys.readouterr().out.splitlines() == ["a\t서울", "b\t의자"]


def test_rows_are_read_once_as_they_come(capsys: pytest.CaptureFixture) -> None:
    def rows() -> Iterator[tuple[str, str, tuple[str, ...]]]:
        for i in range(1000):
            yield f"q{i}", "서울", ("서울",) if i % 2 else ("부산",)

    _print_answers(rows(), limit=1)
    assert capsys.readouterr().out.splitlines() == ["q0\t서울\tWRONG (expected 부산)",
                                                    "right: 500 of 1000 questions with an expected answer (50%)"]
