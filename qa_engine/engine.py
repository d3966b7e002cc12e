"""QAEngine: answers questions in batches from an exported artifact with onnxruntime and Rust tokenizers."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import onnxruntime as ort

from . import runtime
from .batching import plan_batches
from .config import DecodeConfig, WindowConfig
from .features import Windows, WindowTokenizer
from .manifest import Manifest, sha256_file
from .spans import Answer, WindowSpans, best_spans, merge_answers

if TYPE_CHECKING:
    from .batcher import MicroBatcher

log = logging.getLogger(__name__)

PREFERRED = {"cuda": ("fp16", "fp32"), "cpu": ("int8", "fp32")}
STAGES = ("tokenize", "bucket", "run", "decode")
# On CPU a model call of about four full windows runs faster per window than bigger ones (activations stay
# in cache; measured +7-10% at batch 32 on the mBERT shape, benchmarks/results/); CUDA wants whole batches.
CPU_WINDOWS_PER_CALL = 4


@dataclass(frozen=True)
class EngineSettings:
    window: WindowConfig = WindowConfig()
    decode: DecodeConfig = DecodeConfig()
    batch_size: int = 32
    token_budget: int | None = None  # padded tokens per model call; None: the device default (see budget)
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    precision: str = "fp32"
    device: str = "cpu"

    def budget(self, batch_size: int) -> int:
        """Padded tokens per model call: the setting, else 4 full windows on CPU and the whole batch on CUDA."""
        if self.token_budget is not None:
            return self.token_budget
        windows = min(batch_size, CPU_WINDOWS_PER_CALL) if self.device == "cpu" else batch_size
        return windows * self.window.max_length


def _check_texts(name: str, values: Sequence) -> None:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"{name} {i} must be a string, got {type(v).__name__}")
        if not v.strip():
            raise ValueError(f"{name} {i} is empty")


@contextmanager
def _timed(profile: dict | None, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    if profile is not None:
        profile[stage] = profile.get(stage, 0.0) + time.perf_counter() - t0


class QAEngine:
    """Holds one onnxruntime session, one tokenizer and settings; safe to share between threads."""

    def __init__(self, session: ort.InferenceSession, tokenizer: WindowTokenizer, settings: EngineSettings):
        self.session = session
        self.tokenizer = tokenizer
        self.settings = settings

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        provider: str | Sequence = "auto",
        precision: str | None = None,
        intra_op_threads: int | None = None,
        verify: bool = True,
        **overrides,
    ) -> "QAEngine":
        """Load an artifact folder; precision None picks the best variant for the provider (int8 on CPU, fp16 on CUDA)."""
        path = Path(path)
        manifest = Manifest.read(path)
        tok_path = path / manifest.tokenizer_file
        if not tok_path.is_file():
            raise FileNotFoundError(f"{tok_path}: tokenizer missing from the artifact")
        window = WindowConfig(
            overrides.pop("max_length", manifest.max_length), overrides.pop("doc_stride", manifest.doc_stride)
        )
        decode = DecodeConfig(max_answer_length=overrides.pop("max_answer_length", manifest.max_answer_length))
        session, chosen, device = _open_session(path, manifest, provider, precision, intra_op_threads, verify)
        settings = EngineSettings(
            window=window, decode=decode, input_names=tuple(manifest.input_names),
            precision=chosen, device=device, **overrides,
        )
        log.info("loaded %s (%s on %s)", path, chosen, device)
        return cls(session, WindowTokenizer.from_file(tok_path, window), settings)

    def batcher(self, **kwargs) -> "MicroBatcher":
        """A `MicroBatcher` over this engine (see qa_engine.batcher for the keyword arguments)."""
        from .batcher import MicroBatcher

        return MicroBatcher(self, **kwargs)

    def answer(self, question: str, context: str, **kwargs) -> dict | list[dict]:
        """Answer one question: {"answer", "score", "start", "end"} (a list of them when top_k > 1)."""
        return self.answer_batch([question], [context], **kwargs)[0]

    def answer_batch(
        self,
        questions: Sequence[str],
        contexts: Sequence[str],
        batch_size: int | None = None,
        top_k: int = 1,
        max_answer_length: int | None = None,
        handle_impossible_answer: bool = False,
        profile: dict | None = None,
    ) -> list[dict | list[dict]]:
        """Answer many questions; results in input order, `context[start:end] == answer` on the given strings.

        `profile`, when given, accumulates seconds per stage (tokenize, bucket, run, decode).
        """
        if isinstance(questions, str) or isinstance(contexts, str):
            raise ValueError("questions and contexts must be sequences of strings; use answer() for one pair")
        questions, contexts = list(questions), list(contexts)
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        _check_texts("question", questions)
        _check_texts("context", contexts)
        decode = replace(
            self.settings.decode, top_k=top_k, handle_impossible_answer=handle_impossible_answer,
            max_answer_length=max_answer_length or self.settings.decode.max_answer_length,
        )
        if not questions:
            return []
        with _timed(profile, "tokenize"):
            windows = self.tokenizer.windows(questions, contexts)
        spans = self._spans(windows, batch_size or self.settings.batch_size, decode, profile)
        with _timed(profile, "decode"):
            merged = merge_answers(
                spans, windows.offsets, windows.example_index, contexts, decode.top_k, decode.handle_impossible_answer
            )
            return [_format(answers, decode.top_k) for answers in merged]

    def _spans(self, w: Windows, batch_size: int, decode: DecodeConfig, profile: dict | None) -> WindowSpans:
        """Run the model over length-bucketed batches and decode each batch as it comes back."""
        n, k = len(w), decode.top_k
        starts = np.zeros((n, k), dtype=np.int64)
        ends = np.zeros((n, k), dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        null = np.zeros(n, dtype=np.float32)
        budget = self.settings.budget(batch_size)
        softmax_mask = w.softmax_mask()
        for rows, width in plan_batches(w.lengths, batch_size, budget):
            with _timed(profile, "bucket"):
                feed = self._feed(w, rows, width)
            with _timed(profile, "run"):
                start_logits, end_logits = runtime.run(self.session, feed, self.settings.device)[:2]
            with _timed(profile, "decode"):
                cols = min(width, w.input_ids.shape[1])
                ws = best_spans(
                    start_logits[:, :cols], end_logits[:, :cols], softmax_mask[rows, :cols],
                    w.context_mask[rows, :cols], decode.max_answer_length, k,
                )
                starts[rows], ends[rows], scores[rows], null[rows] = ws.starts, ws.ends, ws.scores, ws.null_scores
        return WindowSpans(starts, ends, scores, null)

    def _feed(self, w: Windows, rows: np.ndarray, width: int) -> dict[str, np.ndarray]:
        """The batch's model inputs padded to `width` (a multiple of 8 that may exceed the longest window)."""
        arrays = {"input_ids": w.input_ids, "attention_mask": w.attention_mask, "token_type_ids": w.token_type_ids}
        feed = {}
        for name in self.settings.input_names:
            src = arrays[name][rows, : min(width, arrays[name].shape[1])]
            if src.shape[1] < width:
                fill = self.tokenizer.template.pad_id if name == "input_ids" else 0
                src = np.pad(src, ((0, 0), (0, width - src.shape[1])), constant_values=fill)
            feed[name] = np.ascontiguousarray(src)
        return feed


def _format(answers: list[Answer], top_k: int) -> dict | list[dict]:
    dicts = [a.as_dict() for a in answers] or [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
    return dicts[0] if top_k == 1 else dicts


def _pick_variant(manifest: Manifest, device: str, precision: str | None) -> str:
    if precision is not None:
        if precision not in manifest.variants:
            raise ValueError(f"precision {precision!r} not in the artifact (has: {', '.join(manifest.variants)})")
        return precision
    for p in PREFERRED[device]:
        if p in manifest.variants:
            return p
    raise ValueError(f"the artifact has no variant usable on {device} (has: {', '.join(manifest.variants)})")


def _model_path(folder: Path, manifest: Manifest, precision: str, verify: bool) -> Path:
    variant = manifest.variants[precision]
    path = folder / variant.file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file of the {precision} variant is missing")
    if verify and sha256_file(path) != variant.sha256:
        raise ValueError(f"{path}: checksum does not match the manifest (corrupt or replaced file)")
    return path


def _open_session(folder: Path, manifest: Manifest, provider, precision, threads, verify):
    """(session, precision, device) for the provider request; 'auto' falls back to CPU with one log line."""
    if not isinstance(provider, str):
        names = [runtime.PROVIDER_NAMES.get(p, p) if isinstance(p, str) else p[0] for p in provider]
        device = "cuda" if runtime.CUDA in names else "cpu"
        chosen = _pick_variant(manifest, device, precision)
        session = runtime.explicit_session(_model_path(folder, manifest, chosen, verify), provider, threads, chosen)
        return session, chosen, device
    if provider not in ("auto", "cpu", "cuda"):
        raise ValueError(f"provider must be 'auto', 'cpu', 'cuda' or a list of onnxruntime providers, got {provider!r}")
    cuda_variant = precision in manifest.variants if precision else any(p in manifest.variants for p in PREFERRED["cuda"])
    if provider == "cuda" or (provider == "auto" and cuda_variant):
        chosen = _pick_variant(manifest, "cuda", precision)
        session = runtime.cuda_session(_model_path(folder, manifest, chosen, verify), chosen, threads)
        if session is not None:
            return session, chosen, "cuda"
        if provider == "cuda":
            raise RuntimeError("provider 'cuda' was requested but onnxruntime cannot run CUDA on this machine")
        log.info("CUDA is not usable here; running on CPU")
    chosen = _pick_variant(manifest, "cpu", precision)
    if "cpu" not in manifest.variants[chosen].providers:
        log.warning("the %s variant is meant for %s; running it on CPU", chosen, "/".join(manifest.variants[chosen].providers))
    return runtime.cpu_session(_model_path(folder, manifest, chosen, verify), threads), chosen, "cpu"
