"""QAEngine: answers questions in batches from an exported artifact with onnxruntime and Rust tokenizers."""
from __future__ import annotations

import itertools
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from . import hub, runtime
from .batching import plan_batches
from .config import DecodeConfig, WindowConfig
from .features import Windows, WindowTokenizer
from .manifest import Manifest, sha256_file
from .spans import Answer, WindowSpans, best_spans, merge_answers
from .types import AnswerDict, AnswerResult

if TYPE_CHECKING:
    from .batcher import MicroBatcher

log = logging.getLogger(__name__)

PREFERRED = {"cuda": ("fp16", "fp32"), "cpu": ("int8", "fp32")}
STAGES = ("tokenize", "bucket", "run", "decode")
# On CPU a model call of about four full windows runs faster per window than bigger ones (activations stay
# in cache; measured +7-10% at batch 32 on the mBERT shape, benchmarks/results/); CUDA wants whole batches.
CPU_WINDOWS_PER_CALL = 4
STREAM_CHUNK_BATCHES = 16  # answer_stream answers this many batches' worth of questions together (length bucketing)


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


# EngineSettings fields from_pretrained takes as keyword arguments (the others come from the artifact and device)
SETTABLE = {f.name for f in fields(EngineSettings)} - {"window", "decode", "input_names", "precision", "device"}


def _check_texts(name: str, values: Sequence[object], first: int = 0) -> None:
    for i, v in enumerate(values, first):
        if not isinstance(v, str):
            raise ValueError(f"{name} {i} must be a string, got {type(v).__name__}")
        if not v.strip():
            raise ValueError(f"{name} {i} is empty")


def _unpack(block: list[Any], first: int) -> tuple[list[str], list[str]]:
    """Questions and contexts of a chunk of answer_stream's input; errors name the pair's position in the stream."""
    questions, contexts = [], []
    for i, item in enumerate(block, first):
        if isinstance(item, Mapping):
            if "question" not in item or "context" not in item:
                raise ValueError(f"pair {i}: a dict needs 'question' and 'context' keys, got {sorted(map(str, item))}")
            question, context = item["question"], item["context"]
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            question, context = item
        else:
            raise ValueError(f"pair {i} must be a (question, context) pair or a dict with 'question' and 'context', "
                             f"got {type(item).__name__}")
        questions.append(question)
        contexts.append(context)
    _check_texts("question", questions, first)
    _check_texts("context", contexts, first)
    return questions, contexts


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
        path_or_repo_id: str | Path,
        provider: str | Sequence[str | tuple[str, dict[str, Any]]] = "auto",
        precision: str | None = None,
        intra_op_threads: int | None = None,
        verify: bool = True,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> "QAEngine":
        """Load an artifact from a local folder or a Hugging Face hub repo id.

        Args:
            path_or_repo_id: an artifact folder written by `qa-engine export`, or a hub repo id ("org/name").
                A folder of that name wins; a repo is downloaded into the hub cache file by file: the
                manifest, then only the chosen variant's ONNX file and the tokenizer (needs `qa-engine[hub]`).
            provider: "auto" (CUDA when it really runs here and the artifact has a CUDA variant, else CPU),
                "cpu", "cuda", or a list of onnxruntime providers (names or (name, options) pairs).
            precision: "int8", "fp16" or "fp32"; None picks the best variant for the device (int8 on CPU,
                fp16 on CUDA, else fp32).
            intra_op_threads: onnxruntime threads per model call (default: the physical cores).
            verify: check the model file's SHA-256 against the manifest before loading it.
            revision: hub branch, tag or commit (default: the main branch); ignored for a local folder.
            cache_dir: hub cache folder (default: huggingface_hub's, HF_HUB_CACHE).
            local_files_only: never go online: resolve the repo from the hub cache only (as HF_HUB_OFFLINE=1 does).
            token: hub token for private or gated repos (default: the logged-in one, HF_TOKEN).
            **overrides: window settings `max_length`, `doc_stride`; decode settings `top_k`,
                `max_answer_length`, `handle_impossible_answer` (defaults of every answer call); and the
                `EngineSettings` fields such as `batch_size` and `token_budget`. Unset ones come from the manifest.

        Raises FileNotFoundError for a missing folder, repo or file (offline: one not in the cache),
        ValueError for a malformed manifest, a checksum mismatch or an unusable option, and ImportError
        with the install command when a repo id is given without huggingface_hub.
        """
        artifact = hub.open_artifact(path_or_repo_id, revision, cache_dir, local_files_only, token)
        manifest = artifact.manifest
        tok_path = artifact.fetch(manifest.tokenizer_file)
        if not tok_path.is_file():
            raise FileNotFoundError(f"{tok_path}: tokenizer missing from the artifact")
        window = WindowConfig(
            overrides.pop("max_length", manifest.max_length), overrides.pop("doc_stride", manifest.doc_stride)
        )
        decode = DecodeConfig(
            max_answer_length=overrides.pop("max_answer_length", manifest.max_answer_length),
            top_k=overrides.pop("top_k", 1),
            handle_impossible_answer=overrides.pop("handle_impossible_answer", False),
        )
        unknown = sorted(set(overrides) - SETTABLE)
        if unknown:
            raise TypeError(f"from_pretrained() got unexpected keyword arguments: {', '.join(unknown)}")
        session, chosen, device = _open_session(artifact, provider, precision, intra_op_threads, verify)
        settings = EngineSettings(
            window=window, decode=decode, input_names=tuple(manifest.input_names),
            precision=chosen, device=device, **overrides,
        )
        log.info("loaded %s (%s on %s)", path_or_repo_id, chosen, device)
        return cls(session, WindowTokenizer.from_file(tok_path, window), settings)

    def batcher(self, **kwargs: Any) -> "MicroBatcher":
        """A `MicroBatcher` over this engine (see qa_engine.batcher for the keyword arguments)."""
        from .batcher import MicroBatcher

        return MicroBatcher(self, **kwargs)

    def answer(self, question: str, context: str, **kwargs: Any) -> AnswerResult:
        """Answer one question: {"answer", "score", "start", "end"} (a list of them when top_k > 1)."""
        return self.answer_batch([question], [context], **kwargs)[0]

    def answer_stream(
        self,
        pairs: Iterable[tuple[str, str] | Mapping[str, str]],
        batch_size: int | None = None,
        chunk_size: int | None = None,
        top_k: int | None = None,
        max_answer_length: int | None = None,
        handle_impossible_answer: bool | None = None,
        profile: dict[str, float] | None = None,
    ) -> Iterator[AnswerResult]:
        """Answer (question, context) pairs or {"question", "context"} dicts from any iterable, lazily, in input order.

        `chunk_size` questions at a time (default STREAM_CHUNK_BATCHES x batch_size) are read and answered together,
        so memory stays bounded however long the input is; the other arguments are answer_batch's.
        """
        if isinstance(pairs, (str, Mapping)):
            raise ValueError("pairs must be an iterable of (question, context) pairs or dicts; use answer() for one")
        batch_size = batch_size or self.settings.batch_size
        chunk = chunk_size or STREAM_CHUNK_BATCHES * batch_size
        if chunk < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        items, done = iter(pairs), 0
        while block := list(itertools.islice(items, chunk)):
            questions, contexts = _unpack(block, done)
            try:
                results = self.answer_batch(
                    questions, contexts, batch_size=batch_size, top_k=top_k, max_answer_length=max_answer_length,
                    handle_impossible_answer=handle_impossible_answer, profile=profile,
                )
            except ValueError as e:
                raise ValueError(f"in pairs {done}-{done + len(block) - 1}: {e}") from e
            done += len(block)
            yield from results

    def answer_batch(
        self,
        questions: Sequence[str],
        contexts: Sequence[str],
        batch_size: int | None = None,
        top_k: int | None = None,
        max_answer_length: int | None = None,
        handle_impossible_answer: bool | None = None,
        profile: dict[str, float] | None = None,
    ) -> list[AnswerResult]:
        """Answer many questions; results in input order, `context[start:end] == answer` on the given strings.

        Decode arguments left None take the engine's settings (`settings.decode`, set at load time).
        `profile`, when given, accumulates seconds per stage (tokenize, bucket, run, decode).
        """
        if isinstance(questions, str) or isinstance(contexts, str):
            raise ValueError("questions and contexts must be sequences of strings; use answer() for one pair")
        questions, contexts = list(questions), list(contexts)
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        _check_texts("question", questions)
        _check_texts("context", contexts)
        default = self.settings.decode
        decode = DecodeConfig(
            default.max_answer_length if max_answer_length is None else max_answer_length,
            default.top_k if top_k is None else top_k,
            default.handle_impossible_answer if handle_impossible_answer is None else handle_impossible_answer,
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


def _format(answers: list[Answer], top_k: int) -> AnswerResult:
    dicts = [a.as_dict() for a in answers] or [AnswerDict(answer="", score=0.0, start=0, end=0)]
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


def _model_path(artifact: hub.Artifact, precision: str, verify: bool) -> Path:
    variant = artifact.manifest.variants[precision]
    path = artifact.fetch(variant.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file of the {precision} variant is missing")
    if verify and sha256_file(path) != variant.sha256:
        raise ValueError(f"{path}: checksum does not match the manifest (corrupt or replaced file)")
    return path


def _open_session(
    artifact: hub.Artifact, provider: str | Sequence[str | tuple[str, dict[str, Any]]], precision: str | None,
    threads: int | None, verify: bool,
) -> tuple[ort.InferenceSession, str, str]:
    """(session, precision, device) for the provider request; 'auto' falls back to CPU with one log line."""
    manifest = artifact.manifest
    if not isinstance(provider, str):
        names = [runtime.PROVIDER_NAMES.get(p, p) if isinstance(p, str) else p[0] for p in provider]
        device = "cuda" if runtime.CUDA in names else "cpu"
        chosen = _pick_variant(manifest, device, precision)
        session = runtime.explicit_session(_model_path(artifact, chosen, verify), provider, threads, chosen)
        return session, chosen, device
    if provider not in ("auto", "cpu", "cuda"):
        raise ValueError(f"provider must be 'auto', 'cpu', 'cuda' or a list of onnxruntime providers, got {provider!r}")
    cuda_variant = precision in manifest.variants if precision else any(p in manifest.variants for p in PREFERRED["cuda"])
    if provider == "cuda" or (provider == "auto" and cuda_variant):
        chosen = _pick_variant(manifest, "cuda", precision)
        # a hub repo's CUDA variant is downloaded only where CUDA runs
        runs = provider == "cuda" or artifact.is_local or hub.cuda_runs()
        session = runtime.cuda_session(_model_path(artifact, chosen, verify), chosen, threads) if runs else None
        if session is not None:
            return session, chosen, "cuda"
        if provider == "cuda":
            raise RuntimeError("provider 'cuda' was requested but onnxruntime cannot run CUDA on this machine")
        log.info("CUDA is not usable here; running on CPU")
    chosen = _pick_variant(manifest, "cpu", precision)
    if "cpu" not in manifest.variants[chosen].providers:
        log.warning("the %s variant is meant for %s; running it on CPU", chosen, "/".join(manifest.variants[chosen].providers))
    return runtime.cpu_session(_model_path(artifact, chosen, verify), threads), chosen, "cpu"
