"""Triton python-backend models: the engine behind a "qa" model, and the raw ONNX model with export's signature.

These classes run inside Triton's python-backend stub process, which provides `triton_python_backend_utils`;
the model.py files qa_engine.serving.triton.server writes only import them. Triton's dynamic batcher hands `execute` the
requests it gathered; each gets its own answer or its own error, so one malformed request never fails the others.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Sequence, TypeVar, cast

import numpy as np

from qa_engine.core.inputs import check_text
from qa_engine.core.types import AnswerDict

log = logging.getLogger(__name__)

# config.pbtxt parameters of the models (all strings), written by qa_engine.serving.triton.server
ARTIFACT, PRECISION, PROVIDER, THREADS, MODEL_BATCH, MAX_ANSWER, IMPOSSIBLE = (
    "artifact", "precision", "provider", "intra_op_threads", "model_batch_size", "max_answer_length",
    "handle_impossible_answer",
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


T = TypeVar("T")


def _answer_each(requests: Sequence[T], run: Callable[[list[T]], list[Any]]) -> list[Any]:
    """`run` over all requests at once; if it fails, over each request alone, so only a faulty one gets the error."""
    try:
        return run(list(requests))
    except Exception as e:  # noqa: BLE001 - handed back to the callers as Triton errors, never kills the model
        if len(requests) == 1:
            return [_error(str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}", isinstance(e, ValueError))]
        log.debug("batch of %d requests failed (%s); answering them one by one", len(requests), e)
        return [_answer_each([r], run)[0] for r in requests]


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
        for (i, _, _), response in zip(jobs, _answer_each(jobs, self._answer)):
            responses[i] = response
        return responses

    def _answer(self, jobs: list[tuple[int, list[str], list[str]]]) -> list[Any]:
        """One engine call for every row of these requests; each request's rows back in its own response."""
        pb = _pb()
        answers = self.engine.answer_batch([q for _, qs, _ in jobs for q in qs], [c for _, _, cs in jobs for c in cs],
                                           top_k=1)
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
            for request, response in zip(group, _answer_each(group, self._run)):
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
