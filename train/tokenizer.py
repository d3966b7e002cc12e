"""BERT-style WordPiece tokenizers for Korean QA trained locally with `tokenizers`.

`train_wordpiece` learns merges like mBERT's vocabulary does (realistic sequence lengths for benchmarks);
`char_wordpiece` keeps one token per character, word-initial or ##continuation, for the tiny offline model.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order
HANGUL_SYLLABLE = "[\uac00-\ud7a3]"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"


def _hangul(text: str) -> set[str]:
    return {ch for ch in text if "\uac00" <= ch <= "\ud7a3"}


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000, extra_alphabet: str = "") -> Tokenizer:
    """Train a WordPiece tokenizer that splits Hangul into syllables, so answers before particles stay token-aligned."""
    texts = list(texts)
    syllables: set[str] = set()
    for text in texts:
        syllables |= _hangul(text)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = _normalizer()  # before training: the trainer must see the text the tokenizer will see
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Split(Regex(HANGUL_SYLLABLE), "isolated")]
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=sorted(syllables | set(extra_alphabet)),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    _finish(tok)
    log.info("trained WordPiece on %d texts: %d tokens, %d Hangul syllables", len(texts), tok.get_vocab_size(),
             len(syllables | _hangul(extra_alphabet)))
    return tok


# Characters the character tokenizer always knows, so no Korean word becomes [UNK]: every Hangul syllable, the
# conjoining and compatibility jamo, printable ASCII and common CJK / typographic punctuation.
CHAR_RANGES = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3131, 0x318E), (0x21, 0x7E))
PUNCTUATION = "·…‘’“”「」『』《》〈〉【】〔〕※～、。・°%‰₩€£¥±×÷→←↑↓"


def char_alphabet() -> str:
    """The characters `char_wordpiece` always covers (about 11.6k)."""
    return "".join(chr(c) for lo, hi in CHAR_RANGES for c in range(lo, hi + 1)) + PUNCTUATION


def char_wordpiece(texts: Iterable[str] = (), extra_alphabet: str = "") -> Tokenizer:
    """A merge-free WordPiece tokenizer over `char_alphabet()` (plus the texts' other characters), each in a
    word-initial and a ## form.

    "서울에" becomes 서 ##울 ##에: every answer boundary before a particle is a token boundary, and
    unlike splitting every syllable into its own word the model still sees where whitespace words start,
    which is what lets a tiny model find the stem of a name it never saw."""
    chars: set[str] = set(char_alphabet()) | set(extra_alphabet)
    for text in texts:
        chars.update(ch for ch in text if not ch.isspace())
    alphabet = sorted(chars)
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *alphabet, *("##" + c for c in alphabet)])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    _finish(tok)
    log.info("character WordPiece: %d tokens over %d characters", tok.get_vocab_size(), len(alphabet))
    return tok


def _normalizer() -> normalizers.Normalizer:
    """BertNormalizer without accent stripping or lowercasing: Hangul stays composed (no NFD), offsets intact."""
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)


def _finish(tok: Tokenizer) -> None:
    """Special-token ids check, [CLS]/[SEP] template and decoder shared by both tokenizers."""
    for i, token in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} got id {tok.token_to_id(token)}, expected {i}")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")


BERT_SPECIALS = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}


def save_tokenizer_dir(
    tokenizer: Tokenizer,
    out_dir: str | Path,
    model_max_length: int = 512,
    model_input_names: Sequence[str] = ("input_ids", "token_type_ids", "attention_mask"),
    special_tokens: Mapping[str, str] = BERT_SPECIALS,
) -> None:
    """Write `tokenizer` so that transformers.AutoTokenizer.from_pretrained(out_dir) loads it offline as a fast one.

    `model_input_names` must match the model's forward (DistilBERT takes no token_type_ids), or the HF
    pipeline passes inputs the model rejects; `special_tokens` names the tokenizer's own (BERT's by default)."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        padding_side="right",
        model_input_names=list(model_input_names),
        **special_tokens,
    )
    save_tokenizer(wrapped, out_dir)
    log.info("saved tokenizer (%d tokens) to %s", tokenizer.get_vocab_size(), out_dir)


V5_FAST_CLASS = "TokenizersBackend"  # transformers 5's name for PreTrainedTokenizerFast, unknown to 4.x


def save_tokenizer(tokenizer: "PreTrainedTokenizerBase", out_dir: str | Path) -> None:
    """tokenizer.save_pretrained(out_dir), in files that transformers 4.57 and 5 both load (`portable_files`)."""
    tokenizer.save_pretrained(str(out_dir))
    portable_files(tokenizer, out_dir)


def portable_files(tokenizer: "PreTrainedTokenizerBase", out_dir: str | Path) -> None:
    """Make the folder `tokenizer` was just saved to load on transformers 4.57 and 5 alike, with the files export
    copies: transformers 5 writes no special_tokens_map.json and names a plain fast tokenizer's class
    TokenizersBackend, which 4.57's AutoTokenizer refuses; this writes the map and the name 4.57 knows (which 5
    reads as its own class)."""
    out_dir = Path(out_dir)
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == V5_FAST_CLASS:
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    special_map = out_dir / SPECIAL_TOKENS_MAP
    if not special_map.is_file():
        tokens = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        special_map.write_text(json.dumps(tokens, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
