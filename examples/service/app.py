"""A minimal HTTP service: POST /answer {question, context} -> the pipeline's {answer, score, start, end}.

    QA_ENGINE_MODEL=artifact/ uvicorn app:app --app-dir examples/service --host 0.0.0.0 --port 8000

Concurrent requests are coalesced by qa-engine's MicroBatcher into batched model calls.
Settings from the environment:
  QA_ENGINE_MODEL             artifact folder (required)
  QA_ENGINE_PROVIDER          auto (default), cpu or cuda
  QA_ENGINE_PRECISION         fp32, int8 or fp16 (default: the best for the device)
  QA_ENGINE_MAX_BATCH         questions per batch (32)
  QA_ENGINE_MAX_WAIT_MS       longest wait for a fuller batch (2)
  QA_ENGINE_WORKERS           batcher threads (1)
  QA_ENGINE_INTRA_OP_THREADS  onnxruntime threads per call (default: the cores)
On CPU, WORKERS=<cores> with INTRA_OP_THREADS=1 keeps every core busy.
"""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from qa_engine import QAEngine
from qa_engine.batcher import QueueFullError

log = logging.getLogger("qa_engine.service")


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


@app.post("/answer", response_model=Answer)
async def answer(body: Question) -> dict:
    """Answer one question; 400 for input the engine refuses, 503 when the queue is full."""
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
