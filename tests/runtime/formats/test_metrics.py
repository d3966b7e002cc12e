"""KorQuAD 1.0 vs SQuAD v1.1 metrics on hand-made cases that tell them apart, and the evaluate command."""
import json

import pytest

from qa_engine.cli.main import main
from qa_engine.formats.metrics import (
    evaluate,
    korquad_f1,
    normalize_korquad,
    normalize_squad,
    squad_f1,
)


def test_korquad_normalization_spaces_quotes_and_brackets():
    assert normalize_korquad("《서울》") == "서울"
    assert normalize_korquad("〈반지의 제왕〉") == "반지의 제왕"
    assert normalize_korquad("‘A’  (B)") == "a b"
    assert normalize_korquad("1,000원.") == "1000원"


@pytest.mark.parametrize("mark", list("'\"《》<>〈〉()‘’"))
def test_korquad_turns_each_quote_and_bracket_mark_into_a_space(mark):
    """The official script's list: each mark becomes a space (between words, not nothing), ASCII ones included."""
    assert normalize_korquad(f"반지의{mark}제왕") == "반지의 제왕"
    assert korquad_f1(f"반지의{mark}제왕", "반지의 제왕") == 1.0


def test_korquad_keeps_marks_the_official_script_keeps():
    assert normalize_korquad("“서울”") == "“서울”"  # curly double quotes are not in its list, nor ASCII punctuation
    assert normalize_korquad("「서울」") == "「서울」"
    assert normalize_korquad("서울-부산") == "서울부산"  # ASCII punctuation is dropped, not spaced


def test_squad_removes_articles_korquad_does_not():
    assert normalize_squad("The Beatles") == "beatles"
    assert normalize_korquad("The Beatles") == "the beatles"


def test_korquad_f1_is_character_level_squad_f1_is_token_level():
    # one whitespace token differs but most characters overlap
    assert squad_f1("서울특별시", "서울") == 0.0
    assert korquad_f1("서울특별시", "서울") == pytest.approx(2 * (2 / 5) * 1.0 / (2 / 5 + 1.0))
    # whitespace is not a character for KorQuAD F1
    assert korquad_f1("서울 특별시", "서울특별시") == 1.0
    assert squad_f1("서울 특별시", "서울특별시") == 0.0


def test_character_multiset_counts_repeats():
    assert korquad_f1("아아", "아") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_evaluate_max_over_references_and_missing_ids():
    refs = {"q1": ["서울", "서울특별시"], "q2": ["의자"], "q3": ["1990년"]}
    preds = {"q1": "서울특별시", "q2": "의자에"}
    score = evaluate(refs, preds)
    assert score.missing == ["q3"]
    assert score.exact_match == pytest.approx(100 / 3)
    assert score.f1 == pytest.approx(100 * (1.0 + 0.8) / 3)
    squad = evaluate(refs, preds, metric="squad")
    assert squad.f1 == pytest.approx(100 / 3)  # "의자에" vs "의자" is a different token


def test_evaluate_rejects_unknown_metric_and_non_string():
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate({"a": ["x"]}, {"a": "x"}, metric="bleu")
    with pytest.raises(ValueError, match="must be a string"):
        evaluate({"a": ["x"]}, {"a": 3})


def test_evaluate_command(tmp_path, capsys):
    data = {"data": [{"title": "t", "paragraphs": [{"context": "철수는 서울에 삽니다.", "qas": [
        {"id": "a", "question": "철수는 어디에 삽니까?", "answers": [{"text": "서울", "answer_start": 4}]},
        {"id": "b", "question": "누가 서울에 삽니까?", "answers": [{"text": "철수", "answer_start": 0}]},
    ]}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "pred.json").write_text(json.dumps({"a": "서울에"}, ensure_ascii=False), encoding="utf-8")
    assert main(["evaluate", "--data", str(tmp_path / "dev.json"), "--predictions", str(tmp_path / "pred.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact_match"] == 0.0
    assert out["f1"] == pytest.approx(100 * 0.8 / 2)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert main(["evaluate", "--data", str(tmp_path / "dev.json"), "--predictions", str(tmp_path / "bad.json")]) == 2
    assert "malformed JSON" in capsys.readouterr().err
