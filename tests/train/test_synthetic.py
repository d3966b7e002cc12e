"""Synthetic Korean QA data and the syllable WordPiece tokenizer: alignment, split disjointness, determinism."""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache

import pytest

from qa_engine.train import synthetic
from qa_engine.train.tokenizer import SPECIAL_TOKENS, char_wordpiece, save_tokenizer_dir, train_wordpiece

SEED_CASES = [
    ("철수는 서울에 삽니다.", "철수는 어디에 삽니까?", "서울"),
    ("고양이가 의자에 앉습니다.", "고양이가 어디에 앉습니까?", "의자"),
]


@lru_cache(maxsize=None)
def _records(split: str, n: int, seed: int, mix: synthetic.Mix = synthetic.Mix()) -> tuple[dict, ...]:
    return tuple(synthetic.generate(n, seed=seed, split=split, mix=mix))


@lru_cache(maxsize=None)
def _tokenizer():
    train = _records("train", 600, 0)
    texts = sorted({r["context"] for r in train}) + [r["question"] for r in train]
    return train_wordpiece(texts, vocab_size=2000, extra_alphabet=synthetic.alphabet())


def _is_name_or_place_question(record: dict) -> bool:
    return "어디" in record["question"] or "누구" in record["question"]


# ---- generator --------------------------------------------------------------------------------------------------
def test_same_arguments_give_identical_records_and_other_seeds_differ():
    assert synthetic.generate(50, seed=3) == synthetic.generate(50, seed=3)
    assert synthetic.generate(50, seed=3) != synthetic.generate(50, seed=4)
    assert synthetic.generate(50, seed=3, split="heldout") == synthetic.generate(50, seed=3, split="heldout")


@pytest.mark.parametrize("split", synthetic.SPLITS)
def test_every_answer_indexes_its_context_and_ends_before_a_particle_or_verb(split):
    records = _records(split, 800, 0)
    for r in records:
        (text,), (start,) = r["answers"]["text"], r["answers"]["answer_start"]
        assert text and r["context"][start : start + len(text)] == text, r
        assert r["context"][start + len(text)] in "에의으로이을를은는과와입부위 ", r
        assert r["question"].endswith("?"), r


@pytest.mark.parametrize("split", synthetic.SPLITS)
def test_ids_are_unique_and_contexts_have_one_to_four_questions(split):
    records = _records(split, 800, 0)
    assert len({r["id"] for r in records}) == len(records)
    per_context: dict[str, list[dict]] = {}
    for r in records:
        per_context.setdefault(r["title"], []).append(r)
    sizes = [len(v) for v in per_context.values()]
    assert min(sizes) == 1 and max(sizes) == synthetic.SENTENCES[1]
    assert 0.08 < sizes.count(1) / len(sizes) < 0.25  # single-sentence contexts, like the seed examples
    for qs in per_context.values():
        assert len({q["question"] for q in qs}) == len(qs)  # one answer per question within a context
        assert len({q["context"] for q in qs}) == 1


def _per_context(records) -> dict[str, list[dict]]:
    contexts: dict[str, list[dict]] = {}
    for r in records:
        contexts.setdefault(r["context"], []).append(r)
    return contexts


def _subject(question: str) -> str:
    return question.split()[0]  # the subject with its particle (철수는, 고양이가, 철수의)


def test_multi_sentence_contexts_ask_about_several_subjects_or_one_subject_several_things():
    several = [qs for c, qs in _per_context(_records("train", 800, 0)).items() if c.count(".") >= 2]
    assert len(several) > 500
    one_subject = [qs for qs in several if len({_subject(q["question"]) for q in qs}) == 1]
    assert 0.03 < len(one_subject) / len(several) < 0.25
    for qs in one_subject:  # the same person, a different predicate each time
        assert len({q["answers"]["text"][0] for q in qs}) == len(qs)


def _sentence_regex(template: str) -> re.Pattern:
    """A pattern's sentence as a regex: slots match any text, particles either of their two forms."""
    parts, pos = [], 0
    for m in synthetic.patterns.SLOT.finditer(template):
        parts.append(re.escape(template[pos : m.start()]) + ".+?")
        if m.group(2):
            pair = next(p for p in synthetic.patterns.JOSA_FORMS if m.group(2) in p)
            parts.append("(?:" + "|".join(pair) + ")")
        pos = m.end()
    return re.compile("".join(parts) + re.escape(template[pos:]) + "$")


def test_distractor_contexts_give_several_subjects_one_predicate_and_different_answers():
    regexes = [_sentence_regex(p.sentence) for p in synthetic.PATTERNS]
    contexts = _per_context(_records("heldout", 200, 5, synthetic.DISTRACTORS))
    assert len(contexts) == 200
    for context, qs in contexts.items():
        sentences = [s + "." for s in context.rstrip(".").split(". ")]
        assert 2 <= len(sentences) == len(qs) <= 4, context
        shared = set(range(len(regexes)))
        for s in sentences:
            shared &= {i for i, rx in enumerate(regexes) if rx.match(s)}
        assert shared, context  # one sentence pattern fits every sentence
        assert len({q["answers"]["text"][0] for q in qs}) == len(qs), context
        assert len({_subject(q["question"]) for q in qs}) == len(qs), context
    train = _per_context(_records("train", 800, 0))
    shared_share = sum(len({_subject(q["question"]) for q in qs}) == len(qs) >= 2 and
                       any(all(rx.match(s + ".") for s in c.rstrip(".").split(". ")) for rx in regexes)
                       for c, qs in train.items()) / len(train)
    assert 0.3 < shared_share < 0.6  # Mix.shared (0.4) plus free mixes that happen to share a pattern


def test_train_invents_names_from_syllables_the_lexicon_never_uses():
    outside = set(synthetic.outside_syllables())
    assert len(outside) > 1500 and not outside & set(synthetic.alphabet())
    train_text = "".join({r["context"] for r in _records("train", 800, 0)})
    assert len(outside & set(train_text)) > 500
    heldout_text = "".join({r["context"] + r["question"] for r in _records("heldout", 800, 1)})
    assert not outside & set(heldout_text)


def test_seed_patterns_are_generated():
    pairs = {(r["context"], r["question"]) for r in _records("train", 800, 0)}
    lives = [(c, q) for c, q in pairs if c.count(".") == 1 and c.endswith("에 삽니다.")]
    sits = [(c, q) for c, q in pairs if c.count(".") == 1 and c.endswith("에 앉습니다.")]
    assert len(lives) >= 10 and len(sits) >= 10
    assert sum(q.endswith("어디에 삽니까?") for _, q in lives) >= 3
    assert sum(q.endswith("어디에 앉습니까?") for _, q in sits) >= 3


def test_heldout_names_and_places_never_occur_in_train_contexts():
    train_text = "\n".join({r["context"] for r in _records("train", 3000, 0)})
    heldout = [r for r in _records("heldout", 800, 1) if _is_name_or_place_question(r)]
    assert len(heldout) > 500
    leaked = {r["answers"]["text"][0] for r in heldout if r["answers"]["text"][0] in train_text}
    assert not leaked


def test_pools_are_disjoint_and_seed_words_stay_in_train():
    train, heldout = synthetic.pools("train"), synthetic.pools("heldout")
    for key in ("given", "cities", "towns", "venues", "furniture"):
        assert not set(getattr(train, key)) & set(getattr(heldout, key)), key
    assert {"철수", "영희", "민수"} <= set(train.given) and "서울" in train.cities and "의자" in train.furniture
    assert "고양이" in train.animals and "고양이" not in heldout.animals
    assert "서울" not in heldout.cities and "의자" not in heldout.furniture


def test_heldout_names_and_places_use_only_syllables_that_train_text_contains():
    train_syllables = {ch for r in _records("train", 3000, 0) for ch in r["context"] + r["question"]}
    heldout = _records("heldout", 800, 1)
    answers = {ch for r in heldout if _is_name_or_place_question(r) for ch in r["answers"]["text"][0]}
    assert answers <= train_syllables
    heldout_syllables = {ch for r in heldout for ch in r["context"] + r["question"] if "\uac00" <= ch <= "\ud7a3"}
    assert heldout_syllables <= set(synthetic.alphabet())


@pytest.mark.parametrize("word, particle, expected", [
    ("철수", "은", "철수는"), ("서울", "는", "서울은"), ("고양이", "이", "고양이가"), ("책", "가", "책이"),
    ("사과", "을", "사과를"), ("책", "를", "책을"), ("영희", "과", "영희와"), ("민준", "와", "민준과"),
    ("서울", "으로", "서울로"), ("부산", "로", "부산으로"), ("파리", "으로", "파리로"), ("교사", "으로", "교사로"),
])
def test_particle_follows_the_final_consonant(word, particle, expected):
    assert synthetic.josa(word, particle) == expected


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split"):
        synthetic.generate(1, split="test")


def test_writers_produce_jsonl_and_nested_squad(tmp_path):
    records = list(_records("train", 20, 0))
    synthetic.write_jsonl(records, tmp_path / "d.jsonl")
    synthetic.write_squad_json(records, tmp_path / "d.json")
    lines = (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records
    doc = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    flat = [
        (qa["id"], para["context"], qa["answers"][0]["text"], qa["answers"][0]["answer_start"])
        for article in doc["data"] for para in article["paragraphs"] for qa in para["qas"]
    ]
    assert flat == [(r["id"], r["context"], r["answers"]["text"][0], r["answers"]["answer_start"][0]) for r in records]
    assert len(doc["data"]) == 20 and all(len(a["paragraphs"]) == 1 for a in doc["data"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.jsonl"]  # no temporary files left


# ---- tokenizer --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _char_tokenizer():
    return char_wordpiece()


def test_char_tokenizer_knows_every_hangul_syllable_jamo_and_ascii_in_both_forms():
    vocab = _char_tokenizer().get_vocab()
    chars = [chr(c) for lo, hi in ((0xAC00, 0xD7A3), (0x3131, 0x318E), (0x1100, 0x11FF)) for c in range(lo, hi + 1)]
    chars += [chr(c) for c in range(0x21, 0x7F)]
    missing = [c for c in chars if c not in vocab or "##" + c not in vocab]
    assert not missing, missing[:20]
    unk = _char_tokenizer().token_to_id("[UNK]")
    for text in ("뷁쀍 똠방각하 ㅋㅋ ㅠㅠ", "Python 3.11과 GPU-서버, “인용”… 50%", "한국어"):
        assert unk not in _char_tokenizer().encode(text).ids, text


def test_char_tokenizer_marks_word_starts_and_splits_before_particles():
    tok = _char_tokenizer()
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    enc = tok.encode("철수는 서울에 삽니다.", add_special_tokens=False)
    assert enc.tokens == ["철", "##수", "##는", "서", "##울", "##에", "삽", "##니", "##다", "."]
    assert enc.offsets[3:6] == [(4, 5), (5, 6), (6, 7)]
    assert all(len(t.removeprefix("##")) == 1 for t in tok.get_vocab() if t not in SPECIAL_TOKENS)


def test_char_tokenizer_aligns_every_heldout_answer_without_unknown_tokens():
    tok = _char_tokenizer()
    for r in _records("heldout", 100, 1):
        enc = tok.encode(r["question"], r["context"])
        assert tok.token_to_id("[UNK]") not in enc.ids, r["id"]
        start = r["answers"]["answer_start"][0]
        end = start + len(r["answers"]["text"][0])
        ctx = [o for o, s in zip(enc.offsets, enc.type_ids) if s == 1]
        assert any(a == start for a, _ in ctx) and any(b == end for _, b in ctx), r["id"]


def test_special_token_ids_and_no_truncation_or_padding():
    tok = _tokenizer()
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tok.truncation is None and tok.padding is None


@pytest.mark.parametrize("context, question, answer", SEED_CASES)
def test_answer_before_particle_is_token_aligned(context, question, answer):
    enc = _tokenizer().encode(question, context)
    ctx_tokens = [(t, o) for t, o, s in zip(enc.tokens, enc.offsets, enc.type_ids) if s == 1 and t != "[SEP]"]
    start = context.index(answer)
    assert [t for t, _ in ctx_tokens][:5] == list(context.replace(" ", "")[:5])
    assert (start, start + 1) in [o for _, o in ctx_tokens]
    assert (start + len(answer) - 1, start + len(answer)) in [o for _, o in ctx_tokens]
    assert "[UNK]" not in enc.tokens


def test_offsets_map_back_to_the_given_string_and_hangul_is_never_recomposed():
    tok = _tokenizer()
    for text in ("고양이가 의자에 앉습니다.", unicodedata.normalize("NFD", "고양이가 의자에 앉습니다.")):
        assert tok.normalizer.normalize_str(text) == text
        enc = tok.encode(text, add_special_tokens=False)
        assert "".join(text[a:b] for a, b in enc.offsets) == text.replace(" ", "")
    nfc = tok.encode("고양이가 의자에 앉습니다.", add_special_tokens=False).tokens
    assert nfc[:4] == ["고", "양", "이", "가"] and nfc[4:7] == ["의", "자", "에"]


def test_tokens_per_character_is_realistic_and_heldout_has_no_unknown_tokens():
    tok = _tokenizer()
    contexts = sorted({r["context"] for r in _records("heldout", 200, 1)})
    encs = tok.encode_batch(contexts, add_special_tokens=False)
    assert sum(len(e.ids) for e in encs) / sum(map(len, contexts)) >= 0.6
    assert not any(tok.token_to_id("[UNK]") in e.ids for e in encs)


def test_digits_get_wordpiece_merges():
    tok = _tokenizer()
    assert tok.encode("2019년", add_special_tokens=False).tokens[0] in ("2019", "20")
    assert any(t.startswith("##") for t in tok.get_vocab())


def test_auto_tokenizer_round_trip_matches_the_raw_tokenizer(tmp_path):
    """Loadable by transformers 4.57 and 5 alike, whichever wrote it: 5 writes no special_tokens_map.json (export
    copies it) and a class name, TokenizersBackend, that 4.57 does not know."""
    from transformers import AutoTokenizer

    tok = _tokenizer()
    save_tokenizer_dir(tok, tmp_path, model_max_length=384)
    assert json.loads((tmp_path / "special_tokens_map.json").read_text(encoding="utf-8")) == {
        "unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert loaded.is_fast and loaded.model_max_length == 384 and loaded.padding_side == "right"
    assert (loaded.pad_token_id, loaded.unk_token_id, loaded.cls_token_id, loaded.sep_token_id,
            loaded.mask_token_id) == (0, 1, 2, 3, 4)
    for context, question, _ in SEED_CASES:
        raw = tok.encode(question, context)
        got = loaded(question, context, return_offsets_mapping=True)
        assert got["input_ids"] == raw.ids
        assert [tuple(o) for o in got["offset_mapping"]] == raw.offsets
        assert got["token_type_ids"] == raw.type_ids
