"""Question + context -> model windows: doc-stride overflow windows with character offsets.

Contexts and questions are tokenized separately (each unique context once) and the windows are
cut in numpy exactly as the Rust tokenizer's `only_second` truncation with a stride would cut
them, then framed by the tokenizer's own special-token template. The tokenizer object is never
reconfigured, so one instance is safe to share between threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from .config import WindowConfig


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens framing a pair: prefix A middle B suffix, with each part's type id."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    question_type: int
    context_type: int
    cls_id: int | None
    pad_id: int

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> "PairTemplate":
        """Read the template off the tokenizer's post-processor by encoding a probe pair."""
        enc = tokenizer.encode("a", "b", add_special_tokens=True)
        seq = enc.sequence_ids
        ids, types = enc.ids, enc.type_ids
        a = [i for i, s in enumerate(seq) if s == 0]
        b = [i for i, s in enumerate(seq) if s == 1]
        if not a or not b:
            raise ValueError("tokenizer cannot encode a question/context pair (no pair post-processor?)")
        parts = {
            "prefix": range(0, a[0]),
            "middle": range(a[-1] + 1, b[0]),
            "suffix": range(b[-1] + 1, len(ids)),
        }
        cls_id = tokenizer.token_to_id("[CLS]")
        if cls_id is None:
            cls_id = tokenizer.token_to_id("<s>")
        pad_id = tokenizer.token_to_id("[PAD]")
        if pad_id is None:
            pad_id = tokenizer.token_to_id("<pad>")
        return cls(
            prefix=tuple(ids[i] for i in parts["prefix"]),
            middle=tuple(ids[i] for i in parts["middle"]),
            suffix=tuple(ids[i] for i in parts["suffix"]),
            prefix_types=tuple(types[i] for i in parts["prefix"]),
            middle_types=tuple(types[i] for i in parts["middle"]),
            suffix_types=tuple(types[i] for i in parts["suffix"]),
            question_type=types[a[0]],
            context_type=types[b[0]],
            cls_id=cls_id,
            pad_id=0 if pad_id is None else pad_id,
        )


@dataclass
class Windows:
    """Model windows for a batch of questions, padded to the longest; row i belongs to example_index[i].

    offsets are character offsets into the example's original context (0, 0 outside the context);
    context_mask marks context tokens, the only ones an answer may use.
    """

    input_ids: np.ndarray  # int64 [N, L]
    token_type_ids: np.ndarray  # int64 [N, L]
    attention_mask: np.ndarray  # int64 [N, L]
    context_mask: np.ndarray  # bool [N, L]
    offsets: np.ndarray  # int32 [N, L, 2]
    lengths: np.ndarray  # int32 [N]
    example_index: np.ndarray  # int32 [N]
    cls_id: int | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def select(self, rows: np.ndarray, width: int | None = None) -> "Windows":
        """A subset of rows, cut to `width` columns (default: their longest)."""
        width = int(self.lengths[rows].max()) if width is None else width
        return Windows(
            self.input_ids[rows, :width],
            self.token_type_ids[rows, :width],
            self.attention_mask[rows, :width],
            self.context_mask[rows, :width],
            self.offsets[rows, :width],
            self.lengths[rows],
            self.example_index[rows],
            self.cls_id,
        )

    def softmax_mask(self) -> np.ndarray:
        """Tokens that enter the start/end softmax: context plus CLS, as the HF pipeline's p_mask has it."""
        mask = self.context_mask.copy()
        if self.cls_id is not None:
            mask |= self.input_ids == self.cls_id
        return mask


def window_starts(n_tokens: int, budget: int, stride: int) -> list[int]:
    """Start positions of the context chunks: tokenizers' overflow rule (step budget - stride, stop at the end)."""
    if n_tokens <= budget:
        return [0]
    step = budget - stride
    starts = []
    for start in range(0, n_tokens, step):
        starts.append(start)
        if start + budget >= n_tokens:
            break
    return starts


class WindowTokenizer:
    """Turns (question, context) pairs into `Windows` with one Rust tokenizer and fixed window settings."""

    def __init__(self, tokenizer: Tokenizer, config: WindowConfig = WindowConfig()):
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.config = config
        self.template = PairTemplate.from_tokenizer(tokenizer)

    @classmethod
    def from_file(cls, path: str | Path, config: WindowConfig = WindowConfig()) -> "WindowTokenizer":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise ValueError(f"{path}: not a valid tokenizers JSON file ({e})") from e
        return cls(tok, config)

    def max_question_tokens(self) -> int:
        """Longest question (in tokens) that still leaves more than doc_stride context tokens per window."""
        return self.config.max_length - self.template.n_special - self.config.doc_stride - 1

    def windows(self, questions: Sequence[str], contexts: Sequence[str]) -> Windows:
        """All windows of all pairs; raises ValueError naming the pair when a question is too long."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        t, cfg = self.template, self.config
        unique = {c: i for i, c in enumerate(dict.fromkeys(contexts))}
        ctx_enc = self.tokenizer.encode_batch(list(unique), add_special_tokens=False)
        q_enc = self.tokenizer.encode_batch(list(questions), add_special_tokens=False)
        rows: list[tuple[int, list[int], list[int], list[tuple[int, int]]]] = []
        limit = self.max_question_tokens()
        for i, (q, c) in enumerate(zip(q_enc, (ctx_enc[unique[c]] for c in contexts))):
            nq = len(q.ids)
            if nq > limit:
                raise ValueError(
                    f"question {i} is too long: {nq} tokens, at most {limit} fit max_length "
                    f"{cfg.max_length} with doc_stride {cfg.doc_stride}"
                )
            budget = cfg.max_length - t.n_special - nq
            c_ids, c_off = c.ids, c.offsets
            for s in window_starts(len(c_ids), budget, cfg.doc_stride):
                rows.append((i, q.ids, c_ids[s : s + budget], c_off[s : s + budget]))
        return self._assemble(rows)

    def _assemble(self, rows) -> Windows:
        t = self.template
        n = len(rows)
        head = len(t.prefix)
        lengths = np.fromiter(
            (t.n_special + len(q) + len(c) for _, q, c, _ in rows), dtype=np.int32, count=n
        )
        width = int(lengths.max()) if n else 0
        ids = np.full((n, width), t.pad_id, dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        ctx_mask = np.zeros((n, width), dtype=bool)
        offsets = np.zeros((n, width, 2), dtype=np.int32)
        example_index = np.fromiter((r[0] for r in rows), dtype=np.int32, count=n)
        for r, (_, q, c, off) in enumerate(rows):
            a0 = head
            a1 = a0 + len(q)
            b0 = a1 + len(t.middle)
            b1 = b0 + len(c)
            ids[r, :a0] = t.prefix
            ids[r, a0:a1] = q
            ids[r, a1:b0] = t.middle
            ids[r, b0:b1] = c
            ids[r, b1 : b1 + len(t.suffix)] = t.suffix
            types[r, :a0] = t.prefix_types
            types[r, a0:a1] = t.question_type
            types[r, a1:b0] = t.middle_types
            types[r, b0:b1] = t.context_type
            types[r, b1 : b1 + len(t.suffix)] = t.suffix_types
            ctx_mask[r, b0:b1] = True
            if off:
                offsets[r, b0:b1] = off
        attention = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        return Windows(ids, types, attention, ctx_mask, offsets, lengths, example_index, t.cls_id)


def answer_char_spans(texts: Sequence[str], starts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each answer with surrounding whitespace trimmed: tokens never cover whitespace."""
    lo = np.array([s + len(t) - len(t.lstrip()) for t, s in zip(texts, starts)], dtype=np.int64)
    hi = np.array([s + len(t.rstrip()) for t, s in zip(texts, starts)], dtype=np.int64)
    return lo, hi


def answer_token_spans(windows: Windows, char_starts: np.ndarray, char_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training labels: per window, the token span covering [char_start, char_end) of its example's answer
    when the whole answer lies inside the window's context, else (0, 0), the CLS position.

    char_starts/char_ends are per example; the span is the last context token starting at or before the
    answer start and the first context token ending at or after the answer end (HF run_qa's rule).
    """
    a = char_starts[windows.example_index][:, None]
    b = char_ends[windows.example_index][:, None]
    ctx = windows.context_mask
    tok_start = windows.offsets[..., 0]
    tok_end = windows.offsets[..., 1]
    big = np.iinfo(np.int32).max
    first_ctx = np.where(ctx, tok_start, big).min(axis=1)
    last_ctx = np.where(ctx, tok_end, -1).max(axis=1)
    inside = (first_ctx <= a[:, 0]) & (last_ctx >= b[:, 0])
    cols = np.arange(ctx.shape[1])[None, :]
    start_tok = np.where(ctx & (tok_start <= a), cols, -1).max(axis=1)
    end_tok = np.where(ctx & (tok_end >= b), cols, big).min(axis=1)
    start_tok = np.where(inside, start_tok, 0)
    end_tok = np.where(inside, end_tok, 0)
    return start_tok.astype(np.int64), end_tok.astype(np.int64)
