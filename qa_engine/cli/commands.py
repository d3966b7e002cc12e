"""Runtime subcommands: `answer` (one question), `batch` (a file of questions, streamed) and `push` (to the hub)."""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar

from qa_engine.artifacts.atomic import atomic_open
from qa_engine.core.constants import PRECISIONS, PROVIDERS
from qa_engine.formats.records import output_record, summary, write_predictions
from qa_engine.formats.squad import iter_examples

if TYPE_CHECKING:
    from tqdm import tqdm

    from qa_engine.engine import QAEngine

log = logging.getLogger(__name__)
T = TypeVar("T")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="artifact folder written by `qa-engine export`, or a Hugging Face hub repo id (org/name)")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit of a repo id (default: main)")
    p.add_argument("--provider", default="auto", choices=PROVIDERS)
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="model variant (default: int8 on CPU, fp16 on CUDA, else fp32)")
    p.add_argument("--top-k", type=int, default=None, help="answers per question (default 1)")
    p.add_argument("--max-answer-length", type=int, default=None, help="tokens (default: the artifact's)")
    p.add_argument("--handle-impossible-answer", action="store_true", default=None)


def _engine(args: argparse.Namespace) -> "QAEngine":
    from qa_engine.engine import QAEngine

    return QAEngine.from_pretrained(args.model, provider=args.provider, precision=args.precision,
                                    revision=args.revision)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"top_k": args.top_k, "max_answer_length": args.max_answer_length,
            "handle_impossible_answer": args.handle_impossible_answer}


def _cmd_answer(args: argparse.Namespace) -> int:
    if args.context_file:
        context = Path(args.context_file).read_text(encoding="utf-8")
    elif args.context is not None:
        context = args.context
    else:
        raise ValueError("give --context or --context-file")
    result = _engine(args).answer(args.question, context, **_options(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _progress(total: int | None) -> "tqdm[Any] | None":
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="q", desc="answering", file=sys.stderr, disable=None)


class _Stopwatch(Iterator[T]):
    """Iterates `items`, adding up the seconds spent waiting for each next item."""

    def __init__(self, items: Iterable[T]):
        self.items, self.seconds = iter(items), 0.0

    def __next__(self) -> T:
        t0 = time.perf_counter()
        try:
            return next(self.items)
        finally:
            self.seconds += time.perf_counter() - t0


def _cmd_batch(args: argparse.Namespace) -> int:
    if args.ray:
        return _cmd_batch_ray(args)
    engine = _engine(args)
    examples, asked = itertools.tee(iter_examples(args.input))  # tee holds what answer_stream has read ahead
    answers = _Stopwatch(engine.answer_stream(((e.question, e.context) for e in asked),
                                              batch_size=args.batch_size, **_options(args)))
    bar = _progress(None)
    predictions: dict[str, str] = {}
    expected: dict[str, tuple[str, ...]] = {}  # the inputs' own answers, where they carry any
    answered = 0
    with atomic_open(args.output) as out:
        for ex, res in zip(examples, answers):
            out.write(json.dumps(output_record(ex.id, ex.question, res), ensure_ascii=False) + "\n")
            predictions[ex.id] = (res if isinstance(res, dict) else res[0])["answer"]
            if ex.answer_texts:
                expected[ex.id] = ex.answer_texts
            answered += 1
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    if args.predictions_json:
        write_predictions(args.predictions_json, predictions)
    done = summary(answered, answers.seconds)
    log.info("answered %d questions in %.2f s: %.1f questions/s (%s on %s)", answered, answers.seconds,
             done["questions_per_s"], engine.settings.precision, engine.settings.device)
    if args.print:
        _print_answers(predictions, expected, args.print)
    print(json.dumps(done))
    return 0


def _print_answers(predictions: dict[str, str], expected: dict[str, tuple[str, ...]], limit: int) -> None:
    """The first `limit` answers, each beside its expected answer when the input has one, then the share right."""
    for qid, text in itertools.islice(predictions.items(), limit):
        gold = expected.get(qid)
        print(f"{qid}\t{text}" if gold is None else
              f"{qid}\t{text}\t{'right' if text in gold else 'WRONG'} (expected {' | '.join(gold)})")
    if expected:
        right = sum(predictions[qid] in gold for qid, gold in expected.items())
        share = 100 * right / len(expected)
        print(f"right: {right} of {len(expected)} questions with an expected answer ({share:.0f}%)")


def _cmd_batch_ray(args: argparse.Namespace) -> int:
    if args.print:
        raise ValueError("--print is not available with --ray; read the output file")
    from qa_engine.serving.ray_batch import answer_dataset_ray

    summary = answer_dataset_ray(
        args.model, args.input, args.output, num_workers=args.num_workers, provider=args.provider,
        precision=args.precision, revision=args.revision, model_batch_size=args.batch_size,
        predictions_path=args.predictions_json,
        **_options(args),
    )
    print(json.dumps(summary))
    return 0


def _add_answer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("answer", help="answer one question about one context; prints JSON")
    _add_engine_args(p)
    p.add_argument("--question", required=True)
    p.add_argument("--context")
    p.add_argument("--context-file", help="read the context from this UTF-8 file")
    p.set_defaults(func=_cmd_answer)


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="answer a JSON Lines or SQuAD JSON file of questions")
    _add_engine_args(p)
    p.add_argument("--input", required=True, help="JSON Lines (id, question, context) or SQuAD-format JSON")
    p.add_argument("--output", required=True, help="JSON Lines of answers, written atomically")
    p.add_argument("--predictions-json", help="also write {id: answer} for `qa-engine evaluate`")
    p.add_argument("--batch-size", type=int, default=32, help="windows per model call")
    p.add_argument("--print", type=int, default=0, metavar="N", help="print the first N answers")
    p.add_argument("--ray", action="store_true",
                   help="answer on a pool of Ray actors (RAY_ADDRESS or a local cluster); needs qa-engine[serve]")
    p.add_argument("--num-workers", type=int, default=2, help="Ray actors, one engine each (with --ray)")
    p.set_defaults(func=_cmd_batch)


def _cmd_push(args: argparse.Namespace) -> int:
    from qa_engine.artifacts.hub import push_artifact
    from qa_engine.artifacts.model_card import card_for

    url = push_artifact(args.artifact, args.repo_id, card=card_for(args.artifact, args.repo_id), private=args.private,
                        revision=args.revision, commit_message=args.message)
    print(url)
    return 0


def _add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="upload an artifact folder to a Hugging Face hub model repo, with a generated model card",
        description="Checksums are verified first; a README.md in the folder is uploaded instead of the generated "
                    "card. The token is the logged-in one (`hf auth login`) or HF_TOKEN; needs qa-engine[hub].",
    )
    p.add_argument("artifact", help="artifact folder written by `qa-engine export`")
    p.add_argument("repo_id", help="hub model repo, org/name (created if it does not exist)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private (if it is new)")
    p.add_argument("--revision", default=None, help="branch to upload to (created if needed; default: main)")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=_cmd_push)


REGISTER = [_add_answer, _add_batch, _add_push]
