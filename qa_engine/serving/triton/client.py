"""Answer questions with a model served by Triton: qa-engine's windows and span decoding around a remote infer call.

The model call is the only remote step: questions are cut into windows, length-bucketed and decoded
here exactly as `QAEngine` does it, with the remote call as the engine's model runner.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qa_engine.artifacts import loader
from qa_engine.artifacts.manifest import Manifest
from qa_engine.core.config import DecodeConfig, WindowConfig
from qa_engine.core.constants import TRITON_MAX_BATCH_SIZE
from qa_engine.core.runner import CallRunner
from qa_engine.core.types import AnswerResult
from qa_engine.core.windows import WindowTokenizer
from qa_engine.engine import EngineSettings, QAEngine

log = logging.getLogger(__name__)

Infer = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]  # model inputs -> (start_logits, end_logits)


def http_infer(url: str, model_name: str, output_names: Sequence[str], **client_kwargs: Any) -> Infer:
    """An `Infer` sending each batch to a Triton server over HTTP (tritonclient[http]); not thread-safe."""
    try:
        import tritonclient.http as httpclient
        from tritonclient.utils import np_to_triton_dtype
    except ImportError as e:
        raise ImportError("the Triton client needs tritonclient[http]: pip install 'qa-engine[serve]'") from e
    client = httpclient.InferenceServerClient(url=url, **client_kwargs)

    def infer(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        inputs = []
        for name, array in feed.items():
            tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        requested = [httpclient.InferRequestedOutput(name) for name in output_names]
        result = client.infer(model_name, inputs, outputs=requested)
        return [result.as_numpy(name) for name in output_names]

    return infer


class TritonQAClient:
    """`answer()` / `answer_batch()` with QAEngine's results, the model running on a Triton server.

    The artifact folder supplies the tokenizer and window settings; its ONNX file is what
    `export/triton.py` put in the Triton repository. Batches hold at most `max_batch_size` windows,
    the model's max_batch_size in config.pbtxt.
    """

    def __init__(self, artifact_dir: str | Path, infer: Infer, max_batch_size: int = TRITON_MAX_BATCH_SIZE):
        artifact = loader.local_artifact(artifact_dir)
        loader.check_manifest(artifact)
        manifest = artifact.manifest
        window = WindowConfig(manifest.max_length, manifest.doc_stride)
        settings = EngineSettings(
            window=window,
            decode=DecodeConfig(max_answer_length=manifest.max_answer_length),
            batch_size=max_batch_size,
            device="triton",
        )
        tokenizer = WindowTokenizer.from_file(loader.support_files(artifact, [manifest.tokenizer_file])[manifest.tokenizer_file], window)
        runner = CallRunner(infer, tuple(manifest.input_names), device="triton")
        self.engine = QAEngine(runner, tokenizer, settings)

    @classmethod
    def connect(
        cls, artifact_dir: str | Path, url: str = "localhost:8000", model_name: str = "qa_engine",
        max_batch_size: int = TRITON_MAX_BATCH_SIZE, **client_kwargs: Any,
    ) -> "TritonQAClient":
        """A client for the Triton server at `url` serving `model_name`."""
        output_names = Manifest.read(artifact_dir).output_names[:2]
        log.info("answering with Triton model %s at %s", model_name, url)
        return cls(artifact_dir, http_infer(url, model_name, output_names, **client_kwargs), max_batch_size)

    def answer(self, question: str, context: str, **kwargs: Any) -> AnswerResult:
        """One question, as QAEngine.answer."""
        return self.engine.answer(question, context, **kwargs)

    def answer_batch(
        self, questions: Sequence[str], contexts: Sequence[str], **kwargs: Any
    ) -> list[AnswerResult]:
        """Many questions, as QAEngine.answer_batch; each model batch is one Triton request."""
        return self.engine.answer_batch(questions, contexts, **kwargs)
