"""The `qa-engine` command. Runtime subcommands live here; `train`, `export` and `bench` register
themselves through the `qa_engine.cli.commands` entry-point group, so this package never imports them."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib.metadata import entry_points
from typing import Callable, Sequence

from qa_engine.formats.metrics import METRICS, evaluate
from qa_engine.formats.squad import DataError, iter_examples, references
from qa_engine.formats.utf8 import read_text

log = logging.getLogger("qa_engine")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    refs = references(iter_examples(args.data))
    try:
        preds = json.loads(read_text(args.predictions))
    except json.JSONDecodeError as e:
        raise DataError(f"{args.predictions}: malformed JSON ({e})") from e
    if not isinstance(preds, dict):
        raise DataError(f"{args.predictions}: expected an object mapping question id to answer text")
    score = evaluate(refs, preds, args.metric)
    if score.missing:
        log.warning("%d of %d questions have no prediction and score 0 (first: %s)",
                    len(score.missing), score.total, ", ".join(score.missing[:10]))
    print(json.dumps(score.as_dict()))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a predictions file (id -> answer) with EM/F1")
    p.add_argument("--data", required=True, help="SQuAD-format JSON or JSON Lines with reference answers")
    p.add_argument("--predictions", required=True, help="JSON object mapping question id to predicted answer")
    p.add_argument("--metric", choices=sorted(METRICS), default="korquad")
    p.set_defaults(func=_cmd_evaluate)


def _runtime_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from qa_engine.cli import commands
    from qa_engine.runners import doctor
    from qa_engine.serving.triton import server as triton_serve

    return [_add_evaluate, doctor.register, *commands.REGISTER, triton_serve.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa-engine", description="Korean extractive question answering: train, export, answer, benchmark."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _runtime_commands():
        register(sub)
    for ep in sorted(entry_points(group="qa_engine.commands"), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except ImportError as e:  # a stage whose package is not installed
            log.debug("subcommand %s unavailable: %s", ep.name, e)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line, for what records how an output was made (export's provenance)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as e:  # OSError: missing files, hub and network failures
        print(f"qa-engine {args.command}: error: {e}", file=sys.stderr)
        return 2

