"""QAEngine: answers questions in batches from an exported artifact with onnxruntime and Rust tokenizers."""
from __future__ import annotations

import itertools
import logging
import time
from contextlib import closing, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .artifacts import hub, loader
from .core.config import DecodeConfig, EngineSettings, WindowConfig
from .core.inputs import check_context_length, check_context_lengths, check_text, check_texts
from .core.overlap import overlapped
from .core.pipeline import WindowAnswers, model_feed, plan_calls
from .core.runner import Logits, ModelRunner
from .core.spans import Answer
from .core.types import AnswerDict, AnswerResult
from .core.windows import ContextCache, WindowTokenizer

if TYPE_CHECKING:
    from .serving.batcher import MicroBatcher

log = logging.getLogger(__name__)

STAGES = ("tokenize", "bucket", "run", "decode")
# Questions are tokenized and answered in chunks of up to this many batches. With overlap (CUDA), small chunks keep
# the model fed: the model starts on a chunk only once it is cut (2,048 dev questions beside a simulated H200:
# 430 ms at 2 batches, 470 ms at 4). One after another (CPU), big chunks bucket windows by length more tightly
# (padding 0.8% at 16 batches, 2.0% at 2) and bound memory.
OVERLAP_CHUNK_BATCHES = 2
SERIAL_CHUNK_BATCHES = 16


# EngineSettings fields from_pretrained takes as keyword arguments (the others come from the artifact and device)
SETTABLE = {f.name for f in fields(EngineSettings)} - {"window", "decode", "precision", "device"}
WINDOW_AND_DECODE = {"max_length", "doc_stride", "max_answer_length", "top_k", "handle_impossible_answer"}


def _unpack(block: list[Any], first: int, max_context_chars: int) -> tuple[list[str], list[str]]:
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
    check_texts("question", questions, first)
    check_texts("context", contexts, first)
    check_context_lengths(contexts, max_context_chars, first)
    return questions, contexts


@contextmanager
def _timed(profile: dict | None, stage: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    if profile is not None:
        profile[stage] = profile.get(stage, 0.0) + time.perf_counter() - t0


class QAEngine:
    """Holds one model runner (an onnxruntime session as loaded), one tokenizer and settings; safe to share
    between threads."""

    def __init__(self, runner: ModelRunner, tokenizer: WindowTokenizer, settings: EngineSettings):
        self.runner = runner
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
        warmup: bool | None = None,
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
                manifest, then only the chosen variant's ONNX file, the tokenizer and configs (needs `qa-engine[hub]`).
            provider: "auto" (CUDA when it really runs here and the artifact has a CUDA variant, else CPU),
                "cpu", "cuda", "openvino" (the artifact's OpenVINO IR from `export --openvino`, on the CPU; needs
                `qa-engine[openvino]`), or a list of onnxruntime providers (names or (name, options) pairs).
            precision: "int8", "fp16" or "fp32" ("bf16" too with OpenVINO); None picks the best variant for the
                device (int8 on CPU and OpenVINO, fp16 on CUDA, else fp32).
            intra_op_threads: onnxruntime threads per model call (default: the physical cores).
            verify: check the manifest's own checksum and every file's SHA-256 against it before loading (the
                settings are checked against the model graph either way).
            warmup: run every model-call width at batch 1 and at the batch size once before returning, so the
                first requests pay no first-call cost per shape (about 80 ms each on CUDA); None: on CUDA only.
            revision: hub branch, tag or commit (default: the main branch); ignored for a local folder.
            cache_dir: hub cache folder (default: huggingface_hub's, HF_HUB_CACHE).
            local_files_only: never go online: resolve the repo from the hub cache only (as HF_HUB_OFFLINE=1 does).
            token: hub token for private or gated repos (default: the logged-in one, HF_TOKEN).
            **overrides: window settings `max_length`, `doc_stride`; decode settings `top_k`,
                `max_answer_length`, `handle_impossible_answer` (defaults of every answer call); and the
                `EngineSettings` fields such as `batch_size` and `token_budget`. Unset ones come from the manifest.

        Raises FileNotFoundError for a missing folder, repo or file (offline: one not in the cache),
        ValueError for a malformed manifest, a checksum mismatch, settings the model cannot take or an unusable
        option (each naming the file and the field), and ImportError
        with the install command when a repo id is given without huggingface_hub.
        """
        unknown = sorted(set(overrides) - SETTABLE - WINDOW_AND_DECODE)
        if unknown:
            raise TypeError(f"from_pretrained() got unexpected keyword arguments: {', '.join(unknown)}")
        artifact = hub.open_artifact(path_or_repo_id, revision, cache_dir, local_files_only, token)
        manifest = artifact.manifest
        model = loader.load_runner(artifact, provider, precision, intra_op_threads, verify)
        window = WindowConfig(
            overrides.pop("max_length", manifest.max_length), overrides.pop("doc_stride", manifest.doc_stride)
        )
        loader.check_window(window, model.positions, "from_pretrained")
        decode = DecodeConfig(
            max_answer_length=overrides.pop("max_answer_length", manifest.max_answer_length),
            top_k=overrides.pop("top_k", 1),
            handle_impossible_answer=overrides.pop("handle_impossible_answer", False),
        )
        runner = model.runner
        chosen, device = runner.precision, runner.device
        settings = EngineSettings(window=window, decode=decode, precision=chosen, device=device, **overrides)
        log.info("loaded %s (%s on %s, %s)", path_or_repo_id, chosen, device, type(runner).__name__)
        engine = cls(runner, WindowTokenizer.from_file(model.tokenizer, window), settings)
        if device == "cuda" if warmup is None else warmup:
            engine.warmup()
        return engine

    def batcher(self, **kwargs: Any) -> "MicroBatcher":
        """A `MicroBatcher` over this engine (see qa_engine.serving.batcher for the keyword arguments)."""
        from .serving.batcher import MicroBatcher

        return MicroBatcher(self, **kwargs)

    def answer(self, question: str, context: str, **kwargs: Any) -> AnswerResult:
        """Answer one question: {"answer", "score", "start", "end"} (a list of them when top_k > 1)."""
        check_text(question, "the question")
        check_text(context, "the context")
        check_context_length(context, self.settings.max_context_chars, "the context")
        n_tokens = int(self.tokenizer.question_lengths([question])[0])
        if n_tokens > self.tokenizer.max_question_tokens():
            raise self.tokenizer.too_long("the question", n_tokens)
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
        on_progress: Callable[[float], None] | None = None,
    ) -> Iterator[AnswerResult]:
        """Answer (question, context) pairs or {"question", "context"} dicts from any iterable, lazily, in input order.

        `chunk_size` questions at a time are read and answered together, so memory stays bounded however long the
        input is (default: one batch, then doubling up to a few batches, see `chunk_sizes`). `on_progress`, when
        given, is called after every model call with the questions' worth of windows it answered (a chunk's calls
        add up to its questions), so a long context shows progress before its chunk is done. The other arguments
        are answer_batch's.
        """
        if isinstance(pairs, (str, Mapping)):
            raise ValueError("pairs must be an iterable of (question, context) pairs or dicts; use answer() for one")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        batch_size = batch_size or self.settings.batch_size
        sizes = itertools.repeat(chunk_size) if chunk_size else self.chunk_sizes(batch_size)
        decode = self._decode(top_k, max_answer_length, handle_impossible_answer)

        def blocks() -> Iterator[tuple[int, list[str], list[str]]]:
            items, done = iter(pairs), 0
            while block := list(itertools.islice(items, next(sizes))):
                yield (done, *_unpack(block, done, self.settings.max_context_chars))
                done += len(block)

        for answers in self._answers(blocks(), batch_size, decode, profile, on_progress):
            yield from answers

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
        check_texts("question", questions)
        check_texts("context", contexts)
        check_context_lengths(contexts, self.settings.max_context_chars)
        decode = self._decode(top_k, max_answer_length, handle_impossible_answer)
        batch_size = batch_size or self.settings.batch_size

        def blocks() -> Iterator[tuple[int, list[str], list[str]]]:
            lo = 0
            for size in self.chunk_sizes(batch_size):
                if lo >= len(questions):
                    return
                yield lo, questions[lo : lo + size], contexts[lo : lo + size]
                lo += size

        return [answer for answers in self._answers(blocks(), batch_size, decode, profile) for answer in answers]

    def chunk_sizes(self, batch_size: int) -> Iterator[int]:
        """Questions per chunk: one batch, then twice as many each time up to a device-chosen number of batches
        (OVERLAP_CHUNK_BATCHES or SERIAL_CHUNK_BATCHES), so the first model call waits for one batch only."""
        most = self.full_chunk_size(batch_size)
        size = batch_size
        while True:
            yield size
            size = min(2 * size, most)

    def full_chunk_size(self, batch_size: int) -> int:
        """The most questions answered together as one chunk: OVERLAP_CHUNK_BATCHES or SERIAL_CHUNK_BATCHES batches."""
        return batch_size * (OVERLAP_CHUNK_BATCHES if self.settings.overlaps() else SERIAL_CHUNK_BATCHES)

    def _decode(self, top_k: int | None, max_answer_length: int | None,
                handle_impossible_answer: bool | None) -> DecodeConfig:
        """The call's decode settings: the arguments given, the engine's settings for those left None."""
        default = self.settings.decode
        return DecodeConfig(
            default.max_answer_length if max_answer_length is None else max_answer_length,
            default.top_k if top_k is None else top_k,
            default.handle_impossible_answer if handle_impossible_answer is None else handle_impossible_answer,
        )

    def _answers(self, blocks: Iterable[tuple[int, list[str], list[str]]], batch_size: int, decode: DecodeConfig,
                 profile: dict[str, float] | None,
                 on_progress: Callable[[float], None] | None = None) -> Iterator[list[AnswerResult]]:
        """Each block's answers, in order, as soon as its last model call is decoded. Blocks are (position of the
        first pair, questions, contexts), tokenized with one context cache (a context shared by blocks is encoded
        once); their length-bucketed calls run through one pipeline. Where overlap pays (CUDA), three threads
        work at once: the next block is tokenized, the model runs a call, and the caller builds the next feed
        and decodes the previous logits."""
        shapes = self.settings.shapes(batch_size)
        overlap, cache = self.settings.overlaps(), ContextCache()
        blocks = iter(blocks)
        many = False
        if overlap:  # a call of several blocks runs its first model call before the second block is cut
            head = list(itertools.islice(blocks, 2))
            blocks, many = itertools.chain(head, blocks), len(head) > 1

        def tokenize(block: tuple[int, list[str], list[str]]) -> WindowAnswers:
            first, questions, contexts = block
            with _timed(profile, "tokenize"):
                return WindowAnswers(self.tokenizer.windows(questions, contexts, first, cache), contexts, decode)

        def calls() -> Generator[tuple[WindowAnswers, np.ndarray, int], None, None]:
            # with overlap, the next block is tokenized on its own thread while this one's calls run
            with closing(overlapped(blocks, lambda block: block, tokenize, overlap, "qa-engine-tokenize")) as parts:
                for _, part in parts:
                    plan = plan_calls(part.windows, self.settings, batch_size)
                    part.calls_left = len(plan)
                    for rows, width in plan:
                        yield part, rows, width

        def prepare(call: tuple[WindowAnswers, np.ndarray, int]) -> dict[str, np.ndarray]:
            with _timed(profile, "bucket"):
                return model_feed(call[0].windows, call[1], call[2], self.runner.input_names,
                                  self.tokenizer.template.pad_id, shapes)

        def run(feed: dict[str, np.ndarray]) -> Logits:
            with _timed(profile, "run"):
                return self.runner.run(feed)

        with closing(calls()) as cuts:
            for (part, rows, _), (start_logits, end_logits) in overlapped(cuts, prepare, run, overlap, eager=many):
                with _timed(profile, "decode"):
                    part.add(rows, start_logits, end_logits)
                    if on_progress is not None:
                        on_progress(len(part.contexts) * len(rows) / len(part.windows))
                    answers = [_format(a, decode.top_k) for a in part.answers()] if part.calls_left == 0 else None
                if answers is not None:
                    yield answers

    def warmup(self, batch_sizes: Sequence[int] | None = None) -> float:
        """Run each model-call width once at batch 1 and at the batch size (or at `batch_sizes`), so that no request
        pays a shape's first-call cost (about 80 ms per new shape on CUDA); returns the seconds it took."""
        shapes = self.settings.shapes(self.settings.batch_size)
        widths = shapes.widths or (self.settings.window.max_length,)
        sizes = sorted({shapes.rows(b) for b in (batch_sizes or (1, self.settings.batch_size))})
        t0 = time.perf_counter()
        for width in widths:
            for rows in sizes:
                feed = {name: np.full((rows, width), self.tokenizer.template.pad_id if name == "input_ids" else
                                      int(name == "attention_mask"), dtype=np.int64)
                        for name in self.runner.input_names}
                self.runner.run(feed)
        seconds = time.perf_counter() - t0
        log.info("warm-up: %d shapes (widths %s x rows %s) in %.2f s", len(widths) * len(sizes),
                 ",".join(map(str, widths)), ",".join(map(str, sizes)), seconds)
        return seconds


def _format(answers: list[Answer], top_k: int) -> AnswerResult:
    dicts = [a.as_dict() for a in answers] or [AnswerDict(answer="", score=0.0, start=0, end=0)]
    return dicts[0] if top_k == 1 else dicts
