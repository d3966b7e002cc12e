"""Triton python-backend models: the engine behind a "qa" model, and the raw ONNX model with export's signature.

These classes run inside Triton's python-backend stub process, which provides `triton_python_backend_utils`;
the model.py files qa_engine.serving.triton.server writes only import them. Triton's dynamic batcher hands `execute` the
requests it gathered; each gets its own answer or its own error, so one malformed request never fails the others.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Sequence, cast

import numpy as np

from qa_engine.core.inputs import check_text
from qa_engine.core.types import AnswerDict
from qa_engine.serving.retry import RunnerError, answer_each, call_with_timeout

log = logging.getLogger(__name__)

# config.pbtxt parameters of the models (all strings), written by qa_engine.serving.triton.server
ARTIFACT, PRECISION, PROVIDER, THREADS, MODEL_BATCH, MAX_ANSWER, IMPOSSIBLE, BATCH_TIMEOUT = (
    "artifact", "precision", "provider", "intra_op_threads", "model_batch_size", "max_answer_length",
    "handle_impossible_answer", "batch_timeout_s",
)


def _pb() -> Any:
    """The python backend's utilities module (only importable inside Triton's stub)."""
    import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

    return pb_utils


def _parameters(args: dict[str, str]) -> dict[str, str]:
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def _error(message: str, invalid: bool = True) -> Any:
    """A response carrying a Triton error: INVALID_ARG (HTTP 400) for input the model refuses, else INTERNAL (500)."""
    pb = _pb()
    return pb.InferenceResponse(error=pb.TritonError(message, pb.TritonError.INVALID_ARG if invalid else
                                                     pb.TritonError.INTERNAL))


def _responses(outcomes: list[Any]) -> list[Any]:
    """Each outcome of `answer_each` as a response: a ValueError is the request's fault (INVALID_ARG), any other
    error the server's (INTERNAL)."""
    return [_error(str(o) if isinstance(o, ValueError) else f"{type(o).__name__}: {o}", isinstance(o, ValueError))
            if isinstance(o, Exception) else o for o in outcomes]


def _answer_all(items: Sequence[Any], run: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """One response per item, whatever `run` raises: a failed batch is run again item by item, and a BaseException
    that is not an Exception (KeyboardInterrupt, SystemExit) becomes every item's INTERNAL error."""
    try:
        outcomes: list[Any] = answer_each(items, run)
    except BaseException as e:  # noqa: BLE001 - Triton must get a response for every request
        log.error("the model runner raised %s on a batch of %d requests", type(e).__name__, len(items))
        outcomes = [RunnerError.wrapping(e)] * len(items)
    return _responses(outcomes)


def _texts(request: Any, name: str) -> list[str]:
    """One BYTES input of a request ([rows, 1]) as strings; ValueError naming the row for non-UTF-8 or empty ones."""
    tensor = _pb().get_input_tensor_by_name(request, name)
    if tensor is None:
        raise ValueError(f"input {name!r} is missing")
    texts = []
    for row, value in enumerate(tensor.as_numpy().reshape(-1)):
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as e:
            raise ValueError(f"{name} {row} is not UTF-8 ({e})") from e
        texts.append(check_text(text, f"{name} {row}"))
    return texts


def _questions_and_contexts(request: Any) -> tuple[list[str], list[str]]:
    questions, contexts = _texts(request, "question"), _texts(request, "context")
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    return questions, contexts


class EngineModel:
    """Model "qa": `question` and `context` BYTES [1] in; `answer` BYTES, `start`/`end` INT64, `score` FP32 out.

    All well-formed requests of one Triton batch are answered by one QAEngine.answer_batch call.
    """

    def initialize(self, args: dict[str, str]) -> None:
        """Load the artifact's engine with the settings in config.pbtxt's parameters."""
        from qa_engine.engine import QAEngine

        p = _parameters(args)
        overrides: dict[str, Any] = {}
        if p.get(MODEL_BATCH):
            overrides["batch_size"] = int(p[MODEL_BATCH])
        if p.get(MAX_ANSWER):
            overrides["max_answer_length"] = int(p[MAX_ANSWER])
        overrides["handle_impossible_answer"] = p.get(IMPOSSIBLE) == "true"
        self.batch_timeout_s = float(p[BATCH_TIMEOUT]) if p.get(BATCH_TIMEOUT) else None
        self.engine = QAEngine.from_pretrained(
            p[ARTIFACT], provider=p.get(PROVIDER, "cpu"), precision=p.get(PRECISION) or None,
            intra_op_threads=int(p[THREADS]) if p.get(THREADS) else None, **overrides,
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order: its answers, or an INVALID_ARG error for malformed input."""
        responses: list[Any] = [None] * len(requests)
        jobs: list[tuple[int, list[str], list[str]]] = []
        for i, request in enumerate(requests):
            try:
                jobs.append((i, *_questions_and_contexts(request)))
            except ValueError as e:
                responses[i] = _error(str(e))
        for (i, _, _), response in zip(jobs, _answer_all(jobs, self._answer)):
            responses[i] = response
        return responses

    def _answer(self, jobs: list[tuple[int, list[str], list[str]]]) -> list[Any]:
        """One engine call for every row of these requests; each request's rows back in its own response."""
        pb = _pb()
        questions, contexts = [q for _, qs, _ in jobs for q in qs], [c for _, _, cs in jobs for c in cs]
        answers = call_with_timeout(lambda: self.engine.answer_batch(questions, contexts, top_k=1),
                                    self.batch_timeout_s, f"a batch of {len(questions)} questions")
        responses, lo = [], 0
        for _, questions, _ in jobs:
            mine = cast(list[AnswerDict], answers[lo : lo + len(questions)])
            lo += len(questions)
            responses.append(pb.InferenceResponse([
                pb.Tensor("answer", np.array([[a["answer"].encode("utf-8")] for a in mine], dtype=np.object_)),
                pb.Tensor("start", np.array([[a["start"]] for a in mine], dtype=np.int64)),
                pb.Tensor("end", np.array([[a["end"]] for a in mine], dtype=np.int64)),
                pb.Tensor("score", np.array([[a["score"]] for a in mine], dtype=np.float32)),
            ]))
        return responses


class OnnxModel:
    """The artifact's ONNX variant in an onnxruntime session, with the inputs and outputs export/triton.py declares
    (what TritonQAClient sends): Triton-batched requests of one shape run as one session call."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open the variant named in config.pbtxt's parameters on the CPU, every file checked as the engine does."""
        from qa_engine.artifacts import loader

        p = _parameters(args)
        model = loader.load(loader.local_artifact(p[ARTIFACT]), "cpu", p[PRECISION],
                            int(p[THREADS]) if p.get(THREADS) else None)
        self.session = model.session
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request: its rows of every output (requests of different widths run separately)."""
        groups: dict[tuple[int, ...], list[Any]] = {}
        for request in requests:
            shape = tuple(_pb().get_input_tensor_by_name(request, self.input_names[0]).as_numpy().shape[1:])
            groups.setdefault(shape, []).append(request)
        responses = {}
        for group in groups.values():
            for request, response in zip(group, _answer_all(group, self._run)):
                responses[id(request)] = response
        return [responses[id(r)] for r in requests]

    def _run(self, batch: list[Any]) -> list[Any]:
        pb = _pb()
        feeds = [{name: pb.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names} for r in batch]
        outputs = self.session.run(self.output_names, {n: np.concatenate([f[n] for f in feeds]) for n in self.input_names})
        responses, lo = [], 0
        for feed in feeds:
            rows = len(feed[self.input_names[0]])
            responses.append(pb.InferenceResponse(
                [pb.Tensor(name, np.ascontiguousarray(out[lo : lo + rows])) for name, out in zip(self.output_names, outputs)]
            ))
            lo += rows
        return responses
