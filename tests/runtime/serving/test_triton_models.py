"""The Triton python-backend models' batch path, with a stand-in of the backend's utilities module: every request
gets a response whatever the engine or session raises (KeyboardInterrupt included), and a hung engine is bounded by
the batch timeout."""
from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qa_engine.serving.triton import models as tm

PAIR = ("철수는 어디에 삽니까?", "철수는 서울에 삽니다.")


class TritonError:
    INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

    def __init__(self, message: str, code: str = INTERNAL):
        self.message, self.code = message, code


class InferenceResponse:
    def __init__(self, output_tensors: list | None = None, error: TritonError | None = None):
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


class Tensor:
    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


@pytest.fixture(autouse=True)
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """triton_python_backend_utils as the models use it; a request is a dict of input Tensors."""
    module = types.ModuleType("triton_python_backend_utils")
    module.TritonError, module.InferenceResponse, module.Tensor = TritonError, InferenceResponse, Tensor
    module.get_input_tensor_by_name = lambda request, name: request.get(name)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


def _request(question: str, context: str) -> dict[str, Tensor]:
    return {name: Tensor(name, np.array([[text.encode("utf-8")]], dtype=np.object_))
            for name, text in (("question", question), ("context", context))}


def _engine_model(engine: Any, batch_timeout_s: float | None = None) -> tm.EngineModel:
    model = tm.EngineModel()
    model.engine, model.batch_timeout_s = engine, batch_timeout_s
    return model


class Raises:
    def __init__(self, error: BaseException):
        self.error = error

    def answer_batch(self, questions, contexts, **options):
        raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()],
                         ids=["KeyboardInterrupt", "SystemExit", "GeneratorExit"])
def test_an_engine_raising_any_base_exception_gives_every_request_an_error(error: BaseException) -> None:
    responses = _engine_model(Raises(error)).execute([_request(*PAIR) for _ in range(5)])
    assert len(responses) == 5
    for r in responses:
        assert r.error.code == TritonError.INTERNAL
        assert r.error.message.startswith(f"RunnerError: the model runner raised {type(error).__name__}")


def test_a_failing_request_gets_its_own_error_and_the_others_their_answers(engine) -> None:
    too_long = "세종대왕 " * 400  # more question tokens than any window holds: the engine raises ValueError
    requests = [_request(*PAIR), _request(too_long, PAIR[1]), _request(*PAIR), {"question": _request(*PAIR)["question"]}]
    responses = _engine_model(engine).execute(requests)
    assert [r.error.code if r.error else None for r in responses] == [None, "INVALID_ARG", None, "INVALID_ARG"]
    assert "too long" in responses[1].error.message and "'context' is missing" in responses[3].error.message
    want = engine.answer(*PAIR)
    for r in (responses[0], responses[2]):
        assert r.outputs["answer"][0, 0].decode("utf-8") == want["answer"]
        assert (r.outputs["start"][0, 0], r.outputs["end"][0, 0]) == (want["start"], want["end"])


def test_a_hung_engine_is_bounded_by_the_batch_timeout() -> None:
    release = threading.Event()

    class Hangs:
        def answer_batch(self, questions, contexts, **options):
            release.wait()
            return []

    responses: list = []
    caller = threading.Thread(target=lambda: responses.extend(
        _engine_model(Hangs(), batch_timeout_s=2.0).execute([_request(*PAIR), _request(*PAIR)])))
    caller.start()
    caller.join(60)  # a guard against a hang, far beyond the timeout; not what the test measures
    release.set()
    assert not caller.is_alive() and len(responses) == 2
    for r in responses:
        assert r.error.code == TritonError.INTERNAL
        assert "BatchTimeoutError: a batch of 2 questions did not return within the batch timeout of 2 s" in r.error.message


def test_the_onnx_model_gives_every_request_an_error_when_its_session_raises(random_artifact: Path) -> None:
    model = tm.OnnxModel()
    model.initialize({"model_config": '{"parameters": {"artifact": {"string_value": "%s"}, '
                                      '"precision": {"string_value": "fp32"}}}' % random_artifact})

    class Interrupting:
        def run(self, *args: Any) -> None:
            raise KeyboardInterrupt

    model.session = Interrupting()
    ids = np.ones((1, 8), dtype=np.int64)
    request = {name: Tensor(name, ids) for name in model.input_names}
    responses = model.execute([request, dict(request)])
    assert [r.error.code for r in responses] == [TritonError.INTERNAL] * 2
    assert all("the model runner raised KeyboardInterrupt" in r.error.message for r in responses)


def test_the_batch_timeout_reaches_the_engine_models_parameters(random_artifact: Path, tmp_path: Path) -> None:
    from qa_engine.serving.triton.server import ServeOptions, write_repository

    write_repository(random_artifact, tmp_path, ServeOptions(batch_timeout_s=7.5))
    config = (tmp_path / "qa" / "config.pbtxt").read_text(encoding="utf-8")
    assert 'key: "batch_timeout_s"' in config and 'string_value: "7.5"' in config
    with pytest.raises(ValueError, match="batch_timeout_s must be > 0"):
        ServeOptions(batch_timeout_s=0)
