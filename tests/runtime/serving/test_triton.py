"""Triton repository and client: config.pbtxt matches the ONNX model; the client answers as QAEngine does.

Here the model call is replaced by a local onnxruntime session (tests/runtime/serving/test_triton_live.py runs a live Triton
server). Writing the repository is export's job (export.triton); those tests skip where only the runtime is installed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from qa_engine import QAEngine
from qa_engine.artifacts.manifest import Manifest, sha256_file
from qa_engine.serving.triton.client import TritonQAClient, http_infer
from qa_engine.serving.triton.config import ONNX_TO_TRITON
from qa_engine.serving.triton.models import EngineModel
from tests.unicode_forms import FORMS, assert_nfc_answer, in_form

TOKEN = re.compile(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')

QUESTIONS = ["누가 훈민정음을 창제하였나?", "거북선을 이끈 사람은?", "대한민국의 수도는?"]
CONTEXTS = [
    "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. " * 30,  # several windows
    "이순신은 조선 중기의 무신으로 임진왜란 때 거북선을 이끌고 한산도 대첩에서 승리하였다.",
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다.",
]


def _same(got, want) -> None:
    """Same spans; scores may differ in the last digits (another session, other batch padding)."""
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(g, list):
            _same(g, w)
            continue
        assert (g["answer"], g["start"], g["end"]) == (w["answer"], w["start"], w["end"])
        assert g["score"] == pytest.approx(w["score"], rel=1e-3, abs=1e-6)


def _triton_export():
    """qa_engine.export.triton (the repository writer), or a skip where only the runtime is installed."""
    return pytest.importorskip("qa_engine.export.triton")


def parse_pbtxt(text: str) -> dict:
    """A protobuf text-format message as a dict; repeated fields become lists."""
    tokens = TOKEN.findall(text)
    pos = 0

    def value(tok: str):
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end: str | None) -> dict:
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                item = message("}")
                pos += 1
            elif tokens[pos] == "[":
                pos += 1
                item = []
                while tokens[pos] != "]":
                    if tokens[pos] == "{":
                        pos += 1
                        item.append(message("}"))
                    else:
                        item.append(value(tokens[pos]))
                    pos += 1
                    if tokens[pos] == ",":
                        pos += 1
                pos += 1
            else:
                item = value(tokens[pos])
                pos += 1
            out[key] = item
        return out

    return message(None)


def _local_infer(model: Path, calls: list[dict]):
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def infer(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        calls.append(feed)
        return session.run(None, feed)[:2]

    return infer


@pytest.mark.parametrize("precision, kind", [("fp32", "cpu"), ("int8", "gpu")])
def test_config_matches_the_onnx_model(random_artifact: Path, tmp_path: Path, precision: str, kind: str) -> None:
    triton = _triton_export()
    folder = triton.write_triton_repo(random_artifact, tmp_path / "repo", precision=precision, max_batch_size=16,
                               instance_kind=kind, max_queue_delay_us=500)
    model = folder / "1" / "model.onnx"
    assert folder == tmp_path / "repo" / "qa_engine"
    assert sha256_file(model) == Manifest.read(random_artifact).variants[precision].sha256
    config = parse_pbtxt((folder / "config.pbtxt").read_text(encoding="utf-8"))
    assert config["name"] == "qa_engine"
    assert config["platform"] == "onnxruntime_onnx" and config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 16
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 500}
    assert config["instance_group"] == [{"count": 1, "kind": "KIND_GPU" if kind == "gpu" else "KIND_CPU"}]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for declared, actual in ((config["input"], session.get_inputs()), (config["output"], session.get_outputs())):
        assert [d["name"] for d in declared] == [a.name for a in actual]
        for d, a in zip(declared, actual):
            assert d["data_type"] == ONNX_TO_TRITON[a.type]
            assert not isinstance(a.shape[0], int)  # the batch dimension, left out of dims
            assert d["dims"] == [x if isinstance(x, int) else -1 for x in a.shape[1:]] == [-1]
    assert [d["name"] for d in config["input"]] == Manifest.read(random_artifact).input_names


def test_repo_options_are_checked(random_artifact: Path, tmp_path: Path) -> None:
    write_triton_repo = _triton_export().write_triton_repo
    with pytest.raises(ValueError, match="instance_kind"):
        write_triton_repo(random_artifact, tmp_path, instance_kind="tpu")
    with pytest.raises(ValueError, match="precision"):
        write_triton_repo(random_artifact, tmp_path, precision="bf16")
    write_triton_repo(random_artifact, tmp_path)
    with pytest.raises(FileExistsError):
        write_triton_repo(random_artifact, tmp_path)


def test_export_options_write_the_repo(random_artifact: Path, tmp_path: Path) -> None:
    triton = _triton_export()
    parser = argparse.ArgumentParser()
    parser.add_argument("--force", action="store_true")
    triton.add_triton_args(parser)
    assert triton.run_triton(parser.parse_args([]), random_artifact) is None
    args = parser.parse_args(
        ["--triton-repo", str(tmp_path), "--triton-instance-kind", "gpu", "--triton-max-batch-size", "8"]
    )
    config = parse_pbtxt((triton.run_triton(args, random_artifact) / "config.pbtxt").read_text(encoding="utf-8"))
    assert config["max_batch_size"] == 8 and config["instance_group"][0]["kind"] == "KIND_GPU"


def test_client_answers_as_the_engine(random_artifact: Path, engine: QAEngine) -> None:
    """The client's requests hold at most max_batch_size rows of the inputs the model declares (what the
    repository's config.pbtxt declares too, see above), and its answers are the engine's."""
    calls: list[dict] = []
    client = TritonQAClient(random_artifact, _local_infer(random_artifact / "model.fp32.onnx", calls), max_batch_size=4)
    for kw in ({}, {"top_k": 3}, {"handle_impossible_answer": True}):
        _same(client.answer_batch(QUESTIONS, CONTEXTS, **kw), engine.answer_batch(QUESTIONS, CONTEXTS, **kw))
    _same(client.answer(QUESTIONS[1], CONTEXTS[1]), engine.answer(QUESTIONS[1], CONTEXTS[1]))
    assert calls and all(1 <= len(f["input_ids"]) <= 4 for f in calls)
    assert all(list(f) == Manifest.read(random_artifact).input_names for f in calls)
    assert all(a.dtype == np.int64 for f in calls for a in f.values())
    with pytest.raises(ValueError):
        client.answer("", CONTEXTS[0])


def test_http_infer_builds_triton_requests(random_artifact: Path, monkeypatch, engine: QAEngine) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import triton_to_np_dtype

    session = ort.InferenceSession(str(random_artifact / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    seen: list[tuple[str, list[str]]] = []

    class Result:
        def __init__(self, outputs: dict[str, np.ndarray]):
            self.outputs = outputs

        def as_numpy(self, name: str) -> np.ndarray:
            return self.outputs[name]

    class FakeServer:
        def __init__(self, url: str, **kw):
            assert url == "triton:8000"

        def infer(self, model_name, inputs, outputs):
            feed = {
                i.name(): np.frombuffer(i._get_binary_data(), dtype=triton_to_np_dtype(i.datatype())).reshape(i.shape())
                for i in inputs
            }
            names = [o.name() for o in outputs]
            seen.append((model_name, names))
            return Result(dict(zip(names, session.run(names, feed))))

    monkeypatch.setattr(httpclient, "InferenceServerClient", FakeServer)
    client = TritonQAClient.connect(random_artifact, url="triton:8000", model_name="qa", max_batch_size=8)
    _same(client.answer_batch(QUESTIONS, CONTEXTS), engine.answer_batch(QUESTIONS, CONTEXTS))
    assert seen and all(s == ("qa", ["start_logits", "end_logits"]) for s in seen)


def test_http_infer_without_tritonclient_says_what_to_install(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tritonclient", None)
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)
    with pytest.raises(ImportError, match="qa-engine\\[serve\\]"):
        http_infer("localhost:8000", "qa_engine", ["start_logits", "end_logits"])


class _Tensor:
    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors: list[_Tensor] | None = None, error: Any = None):
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


def _python_backend() -> types.ModuleType:
    """The parts of Triton's triton_python_backend_utils the engine model uses, over plain dict requests."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = _Tensor  # type: ignore[attr-defined]
    pb.InferenceResponse = _Response  # type: ignore[attr-defined]
    pb.TritonError = type("TritonError", (), {"INVALID_ARG": 3, "INTERNAL": 13,  # type: ignore[attr-defined]
                                               "__init__": lambda self, message, code: None})
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    return pb


@pytest.mark.parametrize("form", FORMS)
def test_engine_model_answers_decomposed_korean_as_nfc(random_artifact: Path, engine: QAEngine, monkeypatch,
                                                       form: str) -> None:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _python_backend())
    model = EngineModel()
    params = {"artifact": str(random_artifact), "precision": "fp32", "provider": "cpu"}
    model.initialize({"model_config": json.dumps({"parameters": {k: {"string_value": v} for k, v in params.items()}})})
    asked = [(in_form(q, form), in_form(c, form)) for q, c in zip(QUESTIONS, CONTEXTS)]
    requests = [{name: _Tensor(name, np.array([[text.encode("utf-8")]], dtype=np.object_))
                 for name, text in (("question", q), ("context", c))} for q, c in asked]
    responses = model.execute(requests)
    for response, want, (_, context) in zip(responses, engine.answer_batch(QUESTIONS, CONTEXTS), asked):
        assert response.error is None
        got = {"answer": response.outputs["answer"][0, 0].decode("utf-8"), "score": float(response.outputs["score"][0, 0]),
               "start": int(response.outputs["start"][0, 0]), "end": int(response.outputs["end"][0, 0])}
        assert_nfc_answer(got, want, context)


@pytest.mark.parametrize("form", FORMS)
def test_client_answers_decomposed_korean_as_nfc(random_artifact: Path, engine: QAEngine, form: str) -> None:
    client = TritonQAClient(random_artifact, _local_infer(random_artifact / "model.fp32.onnx", []), max_batch_size=4)
    contexts = [in_form(c, form) for c in CONTEXTS]
    got = client.answer_batch([in_form(q, form) for q in QUESTIONS], contexts, top_k=2)
    for g, w, context in zip(got, engine.answer_batch(QUESTIONS, CONTEXTS, top_k=2), contexts):
        assert_nfc_answer(g, w, context)
