"""Question + context -> model windows: doc-stride overflow windows with character offsets.

Contexts and questions are tokenized separately (each unique context once) and the windows are
cut in numpy exactly as the Rust tokenizer's `only_second` truncation with a stride would cut
them, then framed by the tokenizer's own special-token template. The tokenizer object is never
reconfigured, so one instance is safe to share between threads. Text is tokenized in NFC (see qa_engine.core.unicode),
and offsets point into the strings as given.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from qa_engine.core.config import WindowConfig
from qa_engine.core.unicode import nfc, offset_map


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


def window_counts(n_tokens: np.ndarray, budgets: np.ndarray, stride: int) -> np.ndarray:
    """Context chunks per pair under tokenizers' overflow rule: chunk k starts at k * (budget - stride), and
    chunks are added until one reaches the end (one chunk when everything fits, empty contexts included)."""
    n_tokens = np.asarray(n_tokens, dtype=np.int64)
    budgets = np.asarray(budgets, dtype=np.int64)
    step = budgets - stride
    over = np.maximum(n_tokens - budgets, 0)
    return 1 + -(-over // step)


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..lengths[0]), [0..lengths[1]), ... as one flat array."""
    firsts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(firsts, lengths)


@dataclass(frozen=True)
class _Flat:
    """Encodings laid end to end: ids and offsets of all of them, each one's first position and length."""

    ids: np.ndarray  # int64 [T]
    offsets: np.ndarray  # int32 [T, 2]
    first: np.ndarray  # int64 [n]
    length: np.ndarray  # int64 [n]

    @classmethod
    def of(cls, encodings: list, with_offsets: bool) -> "_Flat":
        length = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        total = int(length.sum())
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=total)
        offsets = (
            np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)),
                        dtype=np.int32, count=2 * total).reshape(total, 2)
            if with_offsets else np.zeros((0, 2), dtype=np.int32)
        )
        return cls(ids, offsets, np.cumsum(length) - length, length)

    def parts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each encoding's (ids, offsets), as views into the flat arrays."""
        cuts = self.first[1:]
        return list(zip(np.split(self.ids, cuts), np.split(self.offsets, cuts)))

    @classmethod
    def join(cls, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> "_Flat":
        length = np.fromiter((len(ids) for ids, _ in parts), dtype=np.int64, count=len(parts))
        ids = np.concatenate([ids for ids, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([o for _, o in parts]) if parts else np.zeros((0, 2), dtype=np.int32)
        return cls(ids, offsets, np.cumsum(length) - length, length)


class ContextCache:
    """Encoded contexts (ids and offsets) kept between `windows` calls, least recently used dropped past
    `max_tokens` or `max_entries`: the chunks of one answer_batch or answer_stream call then encode each context
    once. It keeps copies, not views into a chunk's arrays, so its memory is its own token count (16 bytes a token)
    plus its entries' keys and bookkeeping (about 1 KB each for short contexts), which `max_entries` bounds.

    Not thread-safe: one call's chunks are tokenized one after another."""

    def __init__(self, max_tokens: int = 1 << 21, max_entries: int = 4096):
        self.max_tokens, self.max_entries = max_tokens, max_entries
        self.tokens = 0
        self._parts: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, context: str) -> tuple[np.ndarray, np.ndarray] | None:
        part = self._parts.get(context)
        if part is not None:
            self._parts.move_to_end(context)
        return part

    def put(self, context: str, part: tuple[np.ndarray, np.ndarray]) -> None:
        if context in self._parts or len(part[0]) > self.max_tokens:
            return
        self._parts[context] = (part[0].copy(), part[1].copy())
        self.tokens += len(part[0])
        while (self.tokens > self.max_tokens or len(self._parts) > self.max_entries) and self._parts:
            _, (ids, _) = self._parts.popitem(last=False)
            self.tokens -= len(ids)


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

    def question_lengths(self, questions: Sequence[str]) -> np.ndarray:
        """Each question's length in tokens."""
        encoded = self.tokenizer.encode_batch_fast([nfc(q) for q in questions], add_special_tokens=False)
        return np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))

    def question_fits(self, questions: Sequence[str]) -> np.ndarray:
        """Per question, whether it is short enough to get windows (`windows` refuses the others)."""
        return self.question_lengths(questions) <= self.max_question_tokens()

    def too_long(self, what: str, n_tokens: int) -> ValueError:
        """The error for a question of `n_tokens` that leaves no room for the context, naming it `what`."""
        cfg = self.config
        return ValueError(f"{what} is too long: {n_tokens} tokens, at most {self.max_question_tokens()} fit "
                          f"max_length {cfg.max_length} with doc_stride {cfg.doc_stride}")

    def windows(self, questions: Sequence[str], contexts: Sequence[str], first: int = 0,
                cache: ContextCache | None = None) -> Windows:
        """All windows of all pairs; raises ValueError naming the pair when a question is too long (numbered from
        `first`: the position of questions[0] in the caller's input).

        Each unique context (not already in `cache`) and each question is encoded once by Rust; the windows are
        then cut and framed with array operations over all pairs at once (no loop over windows or rows)."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        cfg = self.config
        unique = {c: i for i, c in enumerate(dict.fromkeys(contexts))}
        ctx = self._contexts(list(unique), cache)
        # questions need no offsets: the fast encoder skips computing them
        qst = _Flat.of(self.tokenizer.encode_batch_fast([nfc(q) for q in questions], add_special_tokens=False),
                       with_offsets=False)
        limit = self.max_question_tokens()
        too_long = np.flatnonzero(qst.length > limit)
        if len(too_long):
            i = int(too_long[0])
            raise self.too_long(f"question {first + i}", int(qst.length[i]))
        pair_ctx = np.fromiter((unique[c] for c in contexts), dtype=np.int64, count=len(contexts))
        budgets = cfg.max_length - self.template.n_special - qst.length
        counts = window_counts(ctx.length[pair_ctx], budgets, cfg.doc_stride)
        pair = np.repeat(np.arange(len(questions), dtype=np.int64), counts)
        chunk_start = _ragged_arange(counts) * (budgets - cfg.doc_stride)[pair]
        chunk_len = np.minimum(budgets[pair], ctx.length[pair_ctx[pair]] - chunk_start)
        return self._assemble(qst, ctx, pair, ctx.first[pair_ctx[pair]] + chunk_start, chunk_len)

    def _contexts(self, unique: list[str], cache: ContextCache | None) -> _Flat:
        """The unique contexts' tokens end to end, encoding only those the cache does not hold."""
        if cache is None:
            return self._encode_contexts(unique)
        parts = {c: part for c in unique if (part := cache.get(c)) is not None}
        missing = [c for c in unique if c not in parts]
        if missing:
            new = self._encode_contexts(missing)
            for context, part in zip(missing, new.parts()):
                parts[context] = part
                cache.put(context, part)
        return _Flat.join([parts[c] for c in unique])

    def _encode_contexts(self, contexts: list[str]) -> _Flat:
        """Contexts encoded in NFC, with offsets into the strings as given (whole characters of them)."""
        maps = [offset_map(c) for c in contexts]
        texts = [c if m is None else m.text for c, m in zip(contexts, maps)]
        flat = _Flat.of(self.tokenizer.encode_batch(texts, add_special_tokens=False), with_offsets=True)
        for m, first, length in zip(maps, flat.first, flat.length):
            if m is not None:
                flat.offsets[first : first + length] = m.apply(flat.offsets[first : first + length])
        return flat

    def _assemble(self, qst: _Flat, ctx: _Flat, pair: np.ndarray, chunk_first: np.ndarray,
                  chunk_len: np.ndarray) -> Windows:
        """Frame every window as prefix, question, middle, context chunk, suffix and padding with one gather.

        Window r holds question pair[r] and the context tokens ctx.ids[chunk_first[r] : chunk_first[r] + chunk_len[r]].
        All tokens sit end to end in one source table (template parts, a run of padding, questions, contexts);
        each cell's region (0 prefix, 1 question, 2 middle, 3 context, 4 suffix and padding) picks a per-row
        shift, and column + shift is the cell's index into that table."""
        t = self.template
        n = len(pair)
        q_len = qst.length[pair]
        a0 = len(t.prefix)
        a1 = a0 + q_len  # [N] question end = middle start
        b0 = a1 + len(t.middle)  # [N] context start
        b1 = b0 + chunk_len  # [N] context end = suffix start
        lengths = (b1 + len(t.suffix)).astype(np.int32)
        width = int(lengths.max()) if n else 0

        m0 = len(t.prefix)  # source table: prefix | middle | suffix | width x pad | questions | contexts
        s0 = m0 + len(t.middle)
        q0 = s0 + len(t.suffix) + width
        c0 = q0 + len(qst.ids)
        src_ids = np.concatenate([np.array(t.prefix + t.middle + t.suffix, dtype=np.int64),
                                  np.full(width, t.pad_id, dtype=np.int64), qst.ids, ctx.ids])
        src_types = np.concatenate([
            np.array(t.prefix_types + t.middle_types + t.suffix_types, dtype=np.int64),
            np.zeros(width, dtype=np.int64),
            np.full(len(qst.ids), t.question_type, dtype=np.int64),
            np.full(len(ctx.ids), t.context_type, dtype=np.int64),
        ])
        src_offsets = np.zeros((len(src_ids), 2), dtype=np.int32)
        src_offsets[c0:] = ctx.offsets
        shift = np.stack([
            np.zeros(n, dtype=np.int64), q0 + qst.first[pair] - a0, m0 - a1, c0 + chunk_first - b0, s0 - b1,
        ], axis=1)
        cols = np.arange(width)[None, :]
        region = (cols >= a0).view(np.int8) + (cols >= a1[:, None]).view(np.int8)
        region += (cols >= b0[:, None]).view(np.int8)
        region += (cols >= b1[:, None]).view(np.int8)
        index = np.take_along_axis(shift, region.astype(np.intp), axis=1)
        index += cols
        return Windows(
            input_ids=src_ids[index],
            token_type_ids=src_types[index],
            attention_mask=(cols < lengths[:, None]).astype(np.int64),
            context_mask=region == 3,
            offsets=src_offsets[index],
            lengths=lengths,
            example_index=pair.astype(np.int32),
            cls_id=t.cls_id,
        )
