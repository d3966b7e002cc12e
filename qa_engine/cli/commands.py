"""Runtime subcommands: `answer` (one question), `batch` (a file of questions, streamed) and `push` (to the hub)."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from qa_engine.cli.batch_job import BatchJob, Interrupted, Stopped, answered, run, signals_interrupt
from qa_engine.cli.numbers import non_negative_float, non_negative_int, positive_int
from qa_engine.core.config import MAX_CONTEXT_CHARS
from qa_engine.core.constants import OPENVINO, OPENVINO_PRECISIONS, PRECISIONS, PROVIDERS
from qa_engine.core.types import AnswerResult
from qa_engine.formats.utf8 import read_text

if TYPE_CHECKING:
    from qa_engine.engine import QAEngine

log = logging.getLogger(__name__)


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="artifact folder written by `qa-engine export`, or a Hugging Face hub repo id (org/name)")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit of a repo id (default: main)")
    p.add_argument("--provider", default="auto", choices=(*PROVIDERS, OPENVINO),
                   help="openvino: the artifact's OpenVINO IR (export --openvino; pip install 'qa-engine[openvino]')")
    p.add_argument("--precision", default=None, choices=tuple(dict.fromkeys((*PRECISIONS, *OPENVINO_PRECISIONS))),
                   help="model variant (default: int8 on CPU and OpenVINO, fp16 on CUDA, else fp32; bf16: OpenVINO)")
    p.add_argument("--top-k", type=positive_int, default=None, help="answers per question (default 1)")
    p.add_argument("--max-answer-length", type=positive_int, default=None, help="tokens (default: the artifact's)")
    p.add_argument("--handle-impossible-answer", action="store_true", default=None)
    p.add_argument("--max-context-chars", type=positive_int, default=MAX_CONTEXT_CHARS, metavar="N",
                   help=f"refuse contexts longer than N characters (default {MAX_CONTEXT_CHARS:,})")


def _engine(args: argparse.Namespace) -> "QAEngine":
    from qa_engine.engine import QAEngine

    return QAEngine.from_pretrained(args.model, provider=args.provider, precision=args.precision,
                                    revision=args.revision, max_context_chars=args.max_context_chars)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"top_k": args.top_k, "max_answer_length": args.max_answer_length,
            "handle_impossible_answer": args.handle_impossible_answer}


def _cmd_answer(args: argparse.Namespace) -> int:
    if args.context_file:
        context = read_text(args.context_file)
    elif args.context is not None:
        context = args.context
    else:
        raise ValueError("give --context or --context-file")
    result = _engine(args).answer(args.question, context, **_options(args))
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _settings(args: argparse.Namespace, **resolved: Any) -> dict[str, Any]:
    """What shapes a batch job's rows, stored with its partial output so that a resume must match it."""
    local = Path(args.model).is_dir()
    return {"model": str(Path(args.model).resolve()) if local else args.model, "revision": args.revision,
            "batch_size": args.batch_size, **resolved}


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    """The BatchJob fields the command line sets beyond input, output and settings."""
    output = Path(args.output)
    argv = [a for a in getattr(args, "argv", []) if a != "--resume"]
    return {"on_error": args.on_error, "resume": args.resume, "progress_every_s": args.progress_every,
            "errors": Path(args.errors) if args.errors else output.with_name(output.stem + ".errors.jsonl"),
            "predictions": Path(args.predictions_json) if args.predictions_json else None,
            "resume_command": shlex.join(["qa-engine", *argv, "--resume"])}


def _cmd_batch(args: argparse.Namespace) -> int:
    with signals_interrupt():
        try:
            done = _cmd_batch_ray(args) if args.ray else _cmd_batch_local(args)
        except Stopped as e:
            print(f"qa-engine batch: {e}", file=sys.stderr)
            return e.status
        except Interrupted as e:
            print(f"qa-engine batch: interrupted by {e} before answering; run the command again", file=sys.stderr)
            return 128 + e.signum
    if args.on_error == "skip":
        log.log(logging.WARNING if done["refused"] else logging.INFO, "%d questions refused, listed in %s",
                done["refused"], _job_options(args)["errors"])
    print(json.dumps(done))
    return 0


def _cmd_batch_local(args: argparse.Namespace) -> dict[str, Any]:
    engine = _engine(args)
    chunk = engine.full_chunk_size(args.batch_size)
    decode = engine.settings.decode
    options = _options(args)
    settings = _settings(args, precision=engine.settings.precision, device=engine.settings.device, chunk=chunk,
                         **{k: getattr(decode, k) if v is None else v for k, v in options.items()})
    job = BatchJob(Path(args.input), Path(args.output), settings, chunk, engine.settings.max_context_chars,
                   **_job_options(args))

    def answer(pairs: Iterable[tuple[str, str]], on_progress: Callable[[float], None]) -> Iterator[AnswerResult]:
        return engine.answer_stream(pairs, batch_size=args.batch_size, chunk_size=chunk, on_progress=on_progress,
                                    **options)

    done = run(job, answer)
    log.info("answered %d questions in %.2f s: %.1f questions/s (%s on %s)", done["questions"], done["seconds"],
             done["questions_per_s"], engine.settings.precision, engine.settings.device)
    if args.print:
        _print_answers(answered(job), args.print)
    return done


def _print_answers(rows: Iterable[tuple[str, str, tuple[str, ...]]], limit: int) -> None:
    """The first `limit` answers, each beside its expected answer when the input has one, then the share right of
    all the questions with an expected answer (counted as the rows go by: nothing is held per question)."""
    right = expected = 0
    for i, (qid, text, gold) in enumerate(rows):
        if i < limit:
            print(f"{qid}\t{text}" if not gold else
                  f"{qid}\t{text}\t{'right' if text in gold else 'WRONG'} (expected {' | '.join(gold)})")
        if gold:
            expected += 1
            right += text in gold
    if expected:
        print(f"right: {right} of {expected} questions with an expected answer ({100 * right / expected:.0f}%)")


def _cmd_batch_ray(args: argparse.Namespace) -> dict[str, Any]:
    if args.print:
        raise ValueError("--print is not available with --ray; read the output file")
    from qa_engine.serving.ray_batch import answer_dataset_ray

    return answer_dataset_ray(
        args.model, args.input, args.output, num_workers=args.num_workers, provider=args.provider,
        precision=args.precision, revision=args.revision, model_batch_size=args.batch_size,
        max_context_chars=args.max_context_chars, job_options=_job_options(args), **_options(args),
    )


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
    p.add_argument("--output", required=True,
                   help="JSON Lines of answers (Parquet for a .parquet name with --ray); until the job is done its "
                        "answers so far are in OUTPUT.partial, which --resume continues")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run that left OUTPUT.partial (same input and settings)")
    p.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                   help="a bad record stops the job (answers so far kept, resumable), or is skipped and listed")
    p.add_argument("--errors", metavar="PATH",
                   help="where --on-error skip lists refused records (default: OUTPUT's name + .errors.jsonl)")
    p.add_argument("--progress-every", type=non_negative_float, default=30.0, metavar="SECONDS",
                   help="a progress line this often when stderr is not a terminal (default 30)")
    p.add_argument("--predictions-json", help="also write {id: answer} for `qa-engine evaluate`")
    p.add_argument("--batch-size", type=positive_int, default=32, help="windows per model call")
    p.add_argument("--print", type=non_negative_int, default=0, metavar="N", help="print the first N answers")
    p.add_argument("--ray", action="store_true",
                   help="answer on a pool of Ray actors (RAY_ADDRESS or a local cluster); needs qa-engine[serve]")
    p.add_argument("--num-workers", type=positive_int, default=2, help="Ray actors, one engine each (with --ray)")
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
