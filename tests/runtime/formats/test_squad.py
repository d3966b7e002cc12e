"""Reading SQuAD JSON / JSON Lines into checked examples."""
import json

import pytest

from qa_engine.formats.squad import DataError, iter_examples, load_examples


def _squad(path, qas, context="철수는 서울에 삽니다. 영희는 부산에 삽니다."):
    doc = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _qa(qid, text, start, question="어디에 삽니까?"):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def test_reads_nested_squad_and_keeps_text_as_given(tmp_path):
    ex = load_examples(_squad(tmp_path / "d.json", [_qa("1", "서울", 4)]))
    assert len(ex) == 1 and ex[0].answer_starts == (4,) and ex[0].context[4:6] == "서울"


def test_reads_jsonl_in_datasets_layout(tmp_path):
    rec = {"id": "x", "question": "q?", "context": "고양이가 의자에 앉습니다.",
           "answers": {"text": ["의자"], "answer_start": [5]}}
    (tmp_path / "d.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n\n", encoding="utf-8")
    ex = load_examples(tmp_path / "d.jsonl")
    assert ex[0].answer_texts == ("의자",)


@pytest.mark.parametrize(
    "qa, message",
    [
        ({"id": "1", "question": "  ", "answers": []}, "question is empty"),
        ({"id": "1", "question": None, "answers": []}, "question must be a string"),
        ({"question": "q", "answers": []}, "no 'id'"),
        ({"id": "1", "question": "q", "answers": [{"text": "x"}]}, "answer_start"),
    ],
)
def test_bad_records_name_the_record(tmp_path, qa, message):
    with pytest.raises(DataError, match=message):
        list(iter_examples(_squad(tmp_path / "d.json", [qa])))


def test_malformed_and_empty_inputs(tmp_path):
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(DataError, match="malformed JSON"):
        load_examples(tmp_path / "bad.json")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1"):
        load_examples(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "missing.json")
    with pytest.raises(DataError, match="empty"):
        load_examples(_squad(tmp_path / "blank.json", [_qa("1", "a", 0)], context=" \n"))


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "\n\n"])
def test_jsonl_keeps_a_last_line_without_its_newline(tmp_path, ending):
    rows = [{"id": str(i), "question": "어디에 삽니까?", "context": f"철수는 {place}에 삽니다.",
             "answers": {"text": [place], "answer_start": [4]}} for i, place in enumerate(["서울", "부산", "대구"])]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + ending, encoding="utf-8")
    assert [ex.id for ex in iter_examples(path)] == ["0", "1", "2"]
    assert [ex.answer_texts for ex in load_examples(path)] == [("서울",), ("부산",), ("대구",)]
