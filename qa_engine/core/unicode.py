"""NFC for the tokenizer, offsets for the caller: text in any Unicode form (decomposed Hangul jamo from macOS file
names, PDF extractors, NFKD) is tokenized composed, and token offsets are mapped back to whole characters of the
string the caller gave."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
HANGUL_T_COUNT = 28  # trailing-consonant slots per leading-vowel pair: syllable index % 28 == 0 has no final
FIRST_DECOMPOSABLE = 0xC0  # below U+00C0 no code point has a canonical decomposition


def nfc(text: str) -> str:
    """The NFC form of `text` (the string itself, uncopied, when it already is NFC)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def nfd_lengths(text: str) -> np.ndarray:
    """Each character's length in NFD: 1 below U+00C0, 2 or 3 for a Hangul syllable, from unicodedata otherwise
    (looked up once per distinct character)."""
    points = _code_points(text)
    lengths = np.ones(len(points), dtype=np.int64)
    hangul = (points >= HANGUL_FIRST) & (points <= HANGUL_LAST)
    lengths[hangul] = 2 + ((points[hangul] - HANGUL_FIRST) % HANGUL_T_COUNT != 0)
    other = (points >= FIRST_DECOMPOSABLE) & ~hangul
    if other.any():
        distinct, inverse = np.unique(points[other], return_inverse=True)
        table = np.fromiter((len(unicodedata.normalize("NFD", chr(p))) for p in distinct.tolist()),
                            dtype=np.int64, count=len(distinct))
        lengths[other] = table[inverse]
    return lengths


@dataclass(frozen=True)
class OffsetMap:
    """A string's NFC form and, for each position 0..len(nfc) of it, the original positions it maps to: `starts`
    rounds down to the start of the original character holding it, `ends` up to that character's end, so a span
    [starts[a], ends[b]) always covers whole original characters."""

    text: str
    starts: np.ndarray  # int32 [len(text) + 1]
    ends: np.ndarray  # int32 [len(text) + 1]

    def apply(self, offsets: np.ndarray) -> np.ndarray:
        """Token offsets [T, 2] into the NFC text -> the same tokens' offsets into the original string."""
        return np.stack([self.starts[offsets[:, 0]], self.ends[offsets[:, 1]]], axis=1)


def offset_map(text: str) -> OffsetMap | None:
    """None when `text` is NFC already (nothing to map), else its NFC form and the map back.

    NFD(NFC(s)) == NFD(s), and NFD only reorders combining marks between two starters, so positions in the NFD
    string are a coordinate both strings share: a character of either string covers the run of NFD positions of
    its own decomposition, and two positions correspond where those runs start at the same place."""
    if unicodedata.is_normalized("NFC", text):
        return None
    composed = unicodedata.normalize("NFC", text)
    original_at = np.concatenate([[0], np.cumsum(nfd_lengths(text))])
    composed_at = np.concatenate([[0], np.cumsum(nfd_lengths(composed))])
    starts = np.searchsorted(original_at, composed_at, side="right") - 1
    ends = np.searchsorted(original_at, composed_at, side="left")
    return OffsetMap(composed, starts.astype(np.int32), ends.astype(np.int32))
