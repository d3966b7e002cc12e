"""A minimal HTTP service: POST /answer {question, context} -> the pipeline's {answer, score, start, end}.

    QA_ENGINE_MODEL=artifact/ uvicorn app:app --app-dir examples/service --host 0.0.0.0 --port 8000

Concurrent requests are coalesced by qa-engine's MicroBatcher into batched model calls.
Settings from the environment:
  QA_ENGINE_MODEL             artifact folder or Hugging Face hub repo id (required)
  QA_ENGINE_PROVIDER          auto (default), cpu or cuda
  QA_ENGINE_PRECISION         fp32, int8 or fp16 (default: the best for the device)
  QA_ENGINE_MAX_BATCH         questions per batch (32)
  QA_ENGINE_MAX_WAIT_MS       longest wait for a fuller batch (2)
  QA_ENGINE_WORKERS           batcher threads (1)
  QA_ENGINE_INTRA_OP_THREADS  onnxruntime threads per call (default: the cores)
  QA_ENGINE_MAX_BODY_BYTES    largest request body accepted (1000000); larger ones get 413 unread
  QA_ENGINE_MAX_CONTEXT_CHARS longest context accepted, in characters (100000); longer ones get 413
On CPU, WORKERS=<cores> with INTRA_OP_THREADS=1 keeps every core busy. The limits bound the work and memory
one request can take (a context costs model calls in proportion to its length).
"""
from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from qa_engine import QAEngine
from qa_engine.core.types import AnswerResult
from qa_engine.serving.batcher import QueueFullError

log = logging.getLogger("qa_engine.service")

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def _limit(name: str, default: int) -> int:
    """A positive integer setting from the environment; a bad value stops the service at start with its name."""
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        value = 0
    if value < 1:
        raise RuntimeError(f"{name} must be a positive integer, got {raw!r}")
    return value


MAX_BODY_BYTES = _limit("QA_ENGINE_MAX_BODY_BYTES", 1_000_000)
MAX_CONTEXT_CHARS = _limit("QA_ENGINE_MAX_CONTEXT_CHARS", 100_000)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 without being read further (a declared
    Content-Length is checked first; a chunked body is counted as it arrives)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._too_large(send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Callable[[dict], Awaitable[None]]) -> None:
        detail = (f"request body is larger than {self.max_bytes} bytes, the limit of this service "
                  "(QA_ENGINE_MAX_BODY_BYTES)")
        payload = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


class Question(BaseModel):
    question: str
    context: str


class Answer(BaseModel):
    answer: str
    score: float
    start: int
    end: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the engine and start the batcher once; on shutdown, answer what is queued, then stop."""
    model = os.environ.get("QA_ENGINE_MODEL")
    if not model:
        raise RuntimeError("set QA_ENGINE_MODEL to an artifact folder")
    threads = os.environ.get("QA_ENGINE_INTRA_OP_THREADS")
    engine = QAEngine.from_pretrained(
        model,
        provider=os.environ.get("QA_ENGINE_PROVIDER", "auto"),
        precision=os.environ.get("QA_ENGINE_PRECISION") or None,
        intra_op_threads=int(threads) if threads else None,
    )
    app.state.batcher = engine.batcher(
        max_batch_size=int(os.environ.get("QA_ENGINE_MAX_BATCH", "32")),
        max_wait_ms=float(os.environ.get("QA_ENGINE_MAX_WAIT_MS", "2")),
        workers=int(os.environ.get("QA_ENGINE_WORKERS", "1")),
    )
    log.info("serving %s (%s on %s)", model, engine.settings.precision, engine.settings.device)
    with app.state.batcher:
        yield


app = FastAPI(title="qa-engine", lifespan=lifespan)
app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)


@app.post("/answer", response_model=Answer)
async def answer(body: Question) -> AnswerResult:
    """Answer one question; 400 for input the engine refuses, 413 over the size limits, 503 when the queue is full."""
    if len(body.context) > MAX_CONTEXT_CHARS:
        raise HTTPException(status_code=413, detail=f"context has {len(body.context)} characters; this service "
                                                    f"accepts at most {MAX_CONTEXT_CHARS} (QA_ENGINE_MAX_CONTEXT_CHARS)")
    try:
        return await app.state.batcher.answer_async(body.question, body.context)
    except ValueError as e:
        raise HTTPException(status_code=400, detail=str(e)) from e
    except QueueFullError as e:
        raise HTTPException(status_code=503, detail=str(e), headers={"Retry-After": "1"}) from e


@app.get("/health")
async def health() -> dict:
    """Liveness: the engine is loaded once this answers."""
    return {"status": "ok"}
