"""Reading SQuAD-format QA data (nested SQuAD v1.1 JSON, JSON Lines, or a hub dataset) into checked examples."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from qa_engine.core.inputs import check_text
from qa_engine.formats.utf8 import iter_lines, read_text

if TYPE_CHECKING:
    from qa_engine.core.windows import WindowTokenizer

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A record or file that cannot be used, named in the message."""


@dataclass(frozen=True)
class Example:
    """One question over one context; answers are character spans of the original context string."""

    id: str
    question: str
    context: str
    answer_texts: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    title: str = ""


def _check_text(value: Any, what: str, where: str) -> str:
    try:
        return check_text(value, what)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def _answers(raw: Any, where: str) -> tuple[list[str], list[int]]:
    """Accept {'text': [...], 'answer_start': [...]} (datasets layout) or [{'text', 'answer_start'}] (SQuAD)."""
    if raw is None:
        return [], []
    if isinstance(raw, dict):
        texts, starts = raw.get("text", []), raw.get("answer_start", [])
    elif isinstance(raw, list):
        try:
            texts = [a["text"] for a in raw]
            starts = [a["answer_start"] for a in raw]
        except (KeyError, TypeError) as e:
            raise DataError(f"{where}: each answer needs 'text' and 'answer_start'") from e
    else:
        raise DataError(f"{where}: answers must be a dict or a list, got {type(raw).__name__}")
    if len(texts) != len(starts):
        raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer starts")
    for t, s in zip(texts, starts):
        if not isinstance(t, str) or isinstance(s, bool) or not isinstance(s, int):
            raise DataError(f"{where}: answer text must be a string and answer_start an integer")
    return list(texts), list(starts)


def make_example(record: dict, where: str) -> Example:
    """Validate one flat record (id, question, context, answers) into an Example; answers are not aligned yet."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    qid = record.get("id")
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        raise DataError(f"{where}: record has no 'id'")
    where = f"{where} (id {qid})"
    question = _check_text(record.get("question"), "question", where)
    context = _check_text(record.get("context"), "context", where)
    texts, starts = _answers(record.get("answers"), where)
    return Example(str(qid), question, context, tuple(texts), tuple(starts), str(record.get("title") or ""))


def _iter_squad_json(path: Path) -> Iterator[tuple[dict, str]]:
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: not SQuAD layout (expected a top-level object with a 'data' list)")
    for a, article in enumerate(doc["data"]):
        title = article.get("title", "") if isinstance(article, dict) else ""
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: data[{a}] has no 'paragraphs' list")
        for p, para in enumerate(paragraphs):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise DataError(f"{path}: data[{a}].paragraphs[{p}] needs 'context' and a 'qas' list")
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise DataError(f"{path}: data[{a}].paragraphs[{p}].qas[{q}] is not an object")
                yield (
                    {**qa, "context": para.get("context"), "title": title},
                    f"{path}: data[{a}].paragraphs[{p}].qas[{q}]",
                )


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line that holds something."""
    for n, line in iter_lines(path):
        if line.strip():
            yield n, line


def _parse_line(path: Path, n: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: malformed JSON line ({e})") from e


def _iter_jsonl(path: Path) -> Iterator[tuple[dict, str]]:
    for n, line in _jsonl_lines(path):
        yield _parse_line(path, n, line), f"{path}:{n}"


def iter_records(path: str | Path) -> Iterator[tuple[dict, str]]:
    """Raw flat records with a location string, streamed for JSON Lines, whole-file for SQuAD JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix in (".jsonl", ".ndjson"):
        return _iter_jsonl(path)
    return _iter_squad_json(path)


def iter_examples(path: str | Path) -> Iterator[Example]:
    """Validated examples from a local file, answers left as given (for prediction inputs)."""
    for record, where in iter_records(path):
        yield make_example(record, where)


@dataclass(frozen=True)
class Refused:
    """A question record that cannot be used: its number (the line in JSON Lines, the question's position in SQuAD
    JSON), its id when it has one, and why."""

    number: int
    id: str | None
    reason: str


def _example_or_refusal(number: int, where: str, parse: Callable[[], Any]) -> Example | Refused:
    record = None
    try:
        record = parse()
        return make_example(record, where)
    except DataError as e:
        qid = record.get("id") if isinstance(record, dict) else None
        return Refused(number, None if qid is None else str(qid), str(e))


def iter_parsed(path: str | Path) -> Iterator[tuple[int, Example | Refused]]:
    """(number, example) per question record in file order, a `Refused` in place of each record that cannot be
    used, so a reader may skip bad records and go on; a file that is not JSON Lines or SQuAD JSON raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix in (".jsonl", ".ndjson"):
        for n, line in _jsonl_lines(path):
            yield n, _example_or_refusal(n, f"{path}:{n}", functools.partial(_parse_line, path, n, line))
    else:
        for n, (record, where) in enumerate(_iter_squad_json(path), 1):
            yield n, _example_or_refusal(n, where, lambda: record)


def count_questions(path: str | Path) -> int:
    """How many question records a file holds, bad ones included: its non-blank lines for JSON Lines (not
    parsed), its qas for SQuAD JSON."""
    path = Path(path)
    if path.suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for _ in _iter_squad_json(path))


def _hub_records(dataset_id: str, split: str) -> Iterator[tuple[dict, str]]:
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"{dataset_id!r} is not a local file, and reading hub datasets needs 'datasets' "
                        "(pip install 'qa-engine[train]')") from e
    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as e:  # datasets raises many types when offline or the id is unknown
        raise DataError(f"could not load dataset {dataset_id!r} split {split!r}: {e}") from e
    for i, record in enumerate(ds):
        yield record, f"{dataset_id}[{split}][{i}]"


def load_examples(source: str | Path, split: str = "train") -> list[Example]:
    """Labelled examples from a local SQuAD JSON / JSON Lines file or a hub dataset id (answer offsets as given:
    training checks them against the context, train.labels)."""
    path = Path(source)
    if path.exists():
        records = iter_records(path)
    elif str(source).endswith((".json", ".jsonl")) or "/" not in str(source) and path.suffix:
        raise FileNotFoundError(f"data file not found: {source}")
    else:
        records = _hub_records(str(source), split)
    examples = [make_example(r, where) for r, where in records]
    if not examples:
        raise DataError(f"{source}: no examples")
    return examples


def references(examples: Iterable[Example]) -> dict[str, list[str]]:
    """id -> reference answer texts, the evaluator's input."""
    return {ex.id: list(ex.answer_texts) for ex in examples}


def split_by_fit(examples: Sequence[Example], windower: "WindowTokenizer") -> tuple[list[Example], list[Example]]:
    """(examples whose question gets windows, examples whose question alone leaves no room for the context);
    the latter are logged by id."""
    fits = windower.question_fits([ex.question for ex in examples])
    kept = [ex for ex, ok in zip(examples, fits) if ok]
    too_long = [ex for ex, ok in zip(examples, fits) if not ok]
    if too_long:
        log.warning("%d questions are longer than %d tokens and get no window (ids: %s)", len(too_long),
                    windower.max_question_tokens(), ", ".join(ex.id for ex in too_long[:20]))
    return kept, too_long
