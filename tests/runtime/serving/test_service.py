"""The example FastAPI service: started with uvicorn on loopback, concurrent requests get the engine's answers."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from qa_engine import QAEngine  # noqa: E402

APP_DIR = Path(__file__).resolve().parents[3] / "examples" / "service"
CONTEXTS = [
    "세종대왕은 조선의 제4대 임금으로 1443년에 훈민정음을 창제하였다. 그는 집현전을 설치하여 학자들을 길렀다.",
    "이순신은 조선 중기의 무신으로 임진왜란 때 거북선을 이끌고 한산도 대첩에서 승리하였다.",
    "서울은 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. 인구는 약 천만 명이다.",
]
QUESTIONS = ["누가 훈민정음을 창제하였나?", "거북선을 이끈 사람은?", "대한민국의 수도는?", "집현전을 설치한 임금은?"]


MAX_BODY, MAX_CONTEXT = 20_000, 2_000


def _uvicorn(port: int, env: dict[str, str], log: IO[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(APP_DIR), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app under uvicorn in a subprocess, ready to answer."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("service") / "uvicorn.log").open("w+")
    env = {**os.environ, "QA_ENGINE_MODEL": str(random_artifact), "QA_ENGINE_PROVIDER": "cpu",
           "QA_ENGINE_PRECISION": "fp32", "QA_ENGINE_WORKERS": "2", "QA_ENGINE_INTRA_OP_THREADS": "1",
           "QA_ENGINE_MAX_BODY_BYTES": str(MAX_BODY), "QA_ENGINE_MAX_CONTEXT_CHARS": str(MAX_CONTEXT)}
    proc = _uvicorn(port, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"the service exited with {proc.returncode}:\n{log.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the service did not start within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_concurrent_requests_get_the_engines_answers(service: str, engine: QAEngine) -> None:
    pairs = [(QUESTIONS[i % len(QUESTIONS)], CONTEXTS[i % len(CONTEXTS)]) for i in range(24)]

    async def ask() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/answer", json={"question": q, "context": c}) for q, c in pairs)
            )

    for response, (q, c) in zip(asyncio.run(ask()), pairs):
        assert response.status_code == 200, response.text
        got, want = response.json(), engine.answer(q, c)
        assert set(got) == {"answer", "score", "start", "end"}
        assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
        assert got["score"] == pytest.approx(want["score"], rel=1e-3, abs=1e-6)
        assert c[got["start"]:got["end"]] == got["answer"]


@pytest.mark.parametrize("body, status", [
    ({"question": "", "context": CONTEXTS[0]}, 400),
    ({"question": "세종대왕 " * 400, "context": CONTEXTS[0]}, 400),
    ({"question": "질문"}, 422),
    ({"question": 3, "context": CONTEXTS[0]}, 422),
])
def test_bad_input_is_refused(service: str, body: dict, status: int) -> None:
    response = httpx.post(f"{service}/answer", json=body, timeout=60)
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["detail"]


def test_the_longest_context_allowed_is_answered_and_one_more_character_is_413(service: str, engine: QAEngine) -> None:
    context = ("가" * MAX_CONTEXT)[: MAX_CONTEXT - len(CONTEXTS[0])] + CONTEXTS[0]
    response = httpx.post(f"{service}/answer", json={"question": QUESTIONS[0], "context": context}, timeout=60)
    assert response.status_code == 200, response.text
    got, want = response.json(), engine.answer(QUESTIONS[0], context)
    assert want["answer"] and (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
    response = httpx.post(f"{service}/answer", json={"question": QUESTIONS[0], "context": "가" + context}, timeout=60)
    assert response.status_code == 413
    assert response.json()["detail"] == (f"context has {MAX_CONTEXT + 1} characters; this service accepts at most "
                                         f"{MAX_CONTEXT} (QA_ENGINE_MAX_CONTEXT_CHARS)")


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(service: str, chunked: bool) -> None:
    body = json.dumps({"question": QUESTIONS[0], "context": "x" * MAX_BODY}).encode()
    content = iter([body[i:i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    response = httpx.post(f"{service}/answer", content=content, headers={"Content-Type": "application/json"},
                          timeout=60)
    assert response.status_code == 413
    assert "larger than 20000 bytes" in response.json()["detail"] and "QA_ENGINE_MAX_BODY_BYTES" in response.json()[
        "detail"]
    assert httpx.get(f"{service}/health", timeout=10).status_code == 200  # the service is still up


def test_a_bad_limit_setting_stops_the_service_with_its_name(random_artifact: Path, tmp_path: Path) -> None:
    env = {**os.environ, "QA_ENGINE_MODEL": str(random_artifact), "QA_ENGINE_MAX_CONTEXT_CHARS": "lots"}
    with (tmp_path / "uvicorn.log").open("w+") as log:
        proc = _uvicorn(_free_port(), env, log)
        assert proc.wait(60) != 0
        log.seek(0)
        assert "QA_ENGINE_MAX_CONTEXT_CHARS must be a positive integer, got 'lots'" in log.read()
