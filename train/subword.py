"""RoBERTa- and XLM-RoBERTa-style tokenizers trained locally with `tokenizers`, for Korean QA from scratch.

`byte_level_bpe` is RoBERTa's kind: byte-level BPE, `<s> q </s></s> c </s>` through RobertaProcessing with
trim_offsets (a token's leading space stays out of its offsets). `unigram` is XLM-RoBERTa's kind: a
SentencePiece-style Unigram over Metaspace ▁ pieces with the same template, laid out as transformers converts
the SentencePiece model. Both put <s> <pad> </s> <unk> <mask> at ids 0-4, so RoBERTa configs' ids (pad 1) fit.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from .tokenizer import save_tokenizer_dir

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # ids 0..4, in this order
METASPACE = "▁"


def byte_level_bpe(texts: Iterable[str], vocab_size: int = 2000) -> Tokenizer:
    """A byte-level BPE tokenizer as RoBERTa's: every byte is in the alphabet, so no text is unknown."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    _check_special_tokens(tok)
    tok.post_processor = processors.RobertaProcessing(  # sep, cls by position: tokenizers 0.23 renamed cls
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False,
    )
    log.info("byte-level BPE: %d tokens", tok.get_vocab_size())
    return tok


def unigram(texts: Iterable[str], vocab_size: int = 2000, extra_alphabet: str = "") -> Tokenizer:
    """A Unigram tokenizer as XLM-RoBERTa's (NFKC standing in for its precompiled charsmap).

    `extra_alphabet` (e.g. every Hangul syllable the data may use) keeps unseen names off <unk>."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), METASPACE),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        unk_token="<unk>",
        initial_alphabet=sorted(set(extra_alphabet)),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    _check_special_tokens(tok)
    cls, sep = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", cls), ("</s>", sep)],
    )
    log.info("Unigram: %d tokens", tok.get_vocab_size())
    return tok


def _check_special_tokens(tok: Tokenizer) -> None:
    for i, token in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} got id {tok.token_to_id(token)}, expected {i}")


ROBERTA_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                    "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}


def save_subword_tokenizer(
    tokenizer: Tokenizer,
    out_dir: str | Path,
    model_max_length: int = 512,
    model_input_names: Sequence[str] = ("input_ids", "attention_mask"),
) -> None:
    """Write `tokenizer` so that transformers.AutoTokenizer.from_pretrained(out_dir) loads it offline as a fast
    one with RoBERTa's special tokens (<s> as CLS, so the QA pipeline keeps it in the softmax)."""
    save_tokenizer_dir(tokenizer, out_dir, model_max_length, model_input_names, ROBERTA_SPECIALS)
