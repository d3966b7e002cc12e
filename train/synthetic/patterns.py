"""Sentence patterns (data) and the Korean grammar that fills them: particles that follow the final consonant.

A pattern is one fact's sentence with slots ({P|은} is a person followed by 은 or 는) and the questions that
ask for each slot's value; the generator fills slots from the lexicon.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# ---- particles --------------------------------------------------------------------------------------------------
JOSA_FORMS = (("은", "는"), ("이", "가"), ("을", "를"), ("과", "와"), ("으로", "로"))
_JOSA = {form: pair for pair in JOSA_FORMS for form in pair}
_RIEUL = 8  # jongseong index of ㄹ, which takes 로 rather than 으로


def _jongseong(word: str) -> int:
    ch = word[-1]
    return (ord(ch) - 0xAC00) % 28 if "\uac00" <= ch <= "\ud7a3" else 0


def josa(word: str, particle: str) -> str:
    """`word` followed by the form of `particle` (은/는, 이/가, 을/를, 과/와, 으로/로) its last syllable calls for."""
    after_consonant, after_vowel = _JOSA[particle]
    jong = _jongseong(word)
    if after_consonant == "으로":
        return word + (after_vowel if jong in (0, _RIEUL) else after_consonant)
    return word + (after_consonant if jong else after_vowel)


# ---- sentence patterns ------------------------------------------------------------------------------------------
SLOT = re.compile(r"\{([A-Za-z]+)(?:\|([^}]+))?\}")


@dataclass(frozen=True)
class Pattern:
    """One fact's sentence, with question phrasings keyed by the slot that answers them."""

    group: str  # facts of one group share a subject at most once per context ("{R}" is filled from the values)
    subject: str  # "P" (a person) or "A" (an animal)
    sentence: str
    questions: dict[str, tuple[str, ...]]
    weight: float = 1.0


def _p(group: str, subject: str, sentence: str, weight: float = 1.0, **questions: tuple[str, ...]) -> Pattern:
    return Pattern(group, subject, sentence, questions, weight)


LIVE_SEED = _p("live", "P", "{P|은} {L}에 삽니다.", 3.0,
               L=("{P|은} 어디에 삽니까?", "{P|이} 사는 곳은 어디입니까?", "{P|은} 어디에 살고 있습니까?"))
SIT_SEED = _p("sit", "A", "{A|이} {F}에 앉습니다.", 3.0,
              F=("{A|이} 어디에 앉습니까?", "{A|이} 앉는 곳은 어디입니까?"))
PATTERNS: tuple[Pattern, ...] = (
    LIVE_SEED,
    _p("live", "P", "{P|은} {L}에 살고 있습니다.",
       L=("{P|은} 어디에 살고 있습니까?", "{P|은} 어디에 삽니까?", "{P|이} 사는 곳은 어디입니까?")),
    _p("live", "P", "{P|은} {L}에서 산다.", L=("{P|은} 어디에서 삽니까?", "{P|은} 어디에 삽니까?")),
    _p("live", "P", "{P|이} 사는 곳은 {L}입니다.", L=("{P|이} 사는 곳은 어디입니까?", "{P|은} 어디에 삽니까?")),
    _p("live", "P", "{P|은} {Y}부터 {L}에 살고 있습니다.",
       L=("{P|은} 어디에 살고 있습니까?",), Y=("{P|은} 언제부터 {L}에 살고 있습니까?",)),
    _p("work", "P", "{P|은} {L}에서 일합니다.", L=("{P|은} 어디에서 일합니까?", "{P|이} 일하는 곳은 어디입니까?")),
    _p("work", "P", "{P|은} {L}에 있는 {C}에서 일합니다.",
       L=("{P|이} 일하는 회사는 어디에 있습니까?",),
       C=("{P|은} 어느 회사에서 일합니까?", "{P|이} 일하는 회사의 이름은 무엇입니까?")),
    _p("work", "P", "{P|은} {L}에서 {J|으로} 일합니다.",
       J=("{P|은} {L}에서 무슨 일을 합니까?",), L=("{P|은} 어디에서 {J|으로} 일합니까?",)),
    _p("work", "P", "{P|은} {C}에 다닙니다.",
       C=("{P|은} 어느 회사에 다닙니까?", "{P|이} 다니는 회사의 이름은 무엇입니까?")),
    _p("school", "P", "{P|은} {S}에 다닙니다.",
       S=("{P|은} 어느 학교에 다닙니까?", "{P|이} 다니는 학교의 이름은 무엇입니까?")),
    _p("school", "P", "{P|은} {S} {G}입니다.", S=("{P|은} 어느 학교에 다닙니까?",), G=("{P|은} 몇 학년입니까?",)),
    _p("go", "P", "{P|은} {D}에 {L|으로} 갔습니다.",
       L=("{P|은} {D}에 어디로 갔습니까?", "{P|은} 어디로 갔습니까?"),
       D=("{P|은} 언제 {L|으로} 갔습니까?", "{P|이} {L|으로} 간 날은 언제입니까?")),
    _p("go", "P", "{P|은} 주말에 {W}에 갔습니다.",
       W=("{P|은} 주말에 어디에 갔습니까?", "{P|이} 주말에 간 곳은 어디입니까?")),
    _p("go", "P", "{P|은} {Q|과} 함께 {W}에 갔습니다.",
       Q=("{P|은} 누구와 함께 {W}에 갔습니까?", "{P|은} {W}에 누구와 갔습니까?"),
       W=("{P|은} {Q|과} 함께 어디에 갔습니까?",)),
    _p("go", "P", "{P|은} {V|을} 타고 {L}에 갔습니다.",
       V=("{P|은} 무엇을 타고 {L}에 갔습니까?", "{P|은} {L}에 무엇을 타고 갔습니까?"),
       L=("{P|은} {V|을} 타고 어디에 갔습니까?",)),
    _p("go", "P", "{P|은} {M}에 {L|으로} 여행을 떠났습니다.",
       L=("{P|은} 어디로 여행을 떠났습니까?",),
       M=("{P|은} 몇 월에 여행을 떠났습니까?", "{P|은} 언제 {L|으로} 여행을 떠났습니까?")),
    _p("born", "P", "{P|은} {Y}에 {L}에서 태어났습니다.",
       L=("{P|은} 어디에서 태어났습니까?", "{P|이} 태어난 곳은 어디입니까?"),
       Y=("{P|은} 몇 년에 태어났습니까?", "{P|은} 언제 태어났습니까?")),
    _p("born", "P", "{P|은} {D}에 태어났습니다.", D=("{P|은} 언제 태어났습니까?", "{P}의 생일은 언제입니까?")),
    _p("born", "P", "{P|이} 태어난 곳은 {L}입니다.", L=("{P|이} 태어난 곳은 어디입니까?", "{P|은} 어디에서 태어났습니까?")),
    _p("event", "P", "{P|은} {D}에 결혼했습니다.", D=("{P|은} 언제 결혼했습니까?", "{P|이} 결혼한 날은 언제입니까?")),
    _p("event", "P", "{P|은} {Y}에 대학을 졸업했습니다.",
       Y=("{P|은} 몇 년에 대학을 졸업했습니까?", "{P|은} 언제 대학을 졸업했습니까?")),
    _p("event", "P", "{P|은} {M}에 {L|으로} 이사했습니다.",
       M=("{P|은} 몇 월에 이사했습니까?", "{P|은} 언제 {L|으로} 이사했습니까?"),
       L=("{P|은} 어디로 이사했습니까?", "{P|이} 이사한 곳은 어디입니까?")),
    _p("event", "P", "{P|은} {YM}에 {L|으로} 이사했습니다.",
       YM=("{P|은} 언제 {L|으로} 이사했습니까?", "{P|이} 이사한 때는 언제입니까?"), L=("{P|은} 어디로 이사했습니까?",)),
    _p("event", "P", "{P|은} {D}에 {C}에 입사했습니다.",
       D=("{P|은} 언제 {C}에 입사했습니까?",), C=("{P|은} 어느 회사에 입사했습니까?",)),
    _p("buy", "P", "{P|은} {W}에서 {O|을} 샀습니다.",
       O=("{P|은} {W}에서 무엇을 샀습니까?", "{P|이} 산 것은 무엇입니까?"), W=("{P|은} 어디에서 {O|을} 샀습니까?",)),
    _p("buy", "P", "{P|은} {O|을} {N} 샀습니다.", N=("{P|은} {O|을} 몇 {c} 샀습니까?",), O=("{P|은} 무엇을 {N} 샀습니까?",)),
    _p("buy", "P", "{P|은} 어제 {O|을} 샀습니다.", O=("{P|은} 어제 무엇을 샀습니까?", "{P|이} 어제 산 것은 무엇입니까?")),
    _p("read", "P", "{P|은} 어제 {B|을} 읽었습니다.", B=("{P|은} 어제 무엇을 읽었습니까?", "{P|이} 읽은 것은 무엇입니까?")),
    _p("read", "P", "{P|은} 지난달에 책을 {K} 읽었습니다.", K=("{P|은} 지난달에 책을 몇 권 읽었습니까?",)),
    _p("eat", "P", "{P|은} 점심으로 {E|을} 먹었습니다.",
       E=("{P|은} 점심으로 무엇을 먹었습니까?", "{P|이} 점심에 먹은 음식은 무엇입니까?")),
    _p("eat", "P", "{P|은} 아침에 {FR|을} {FN} 먹었습니다.",
       FN=("{P|은} 아침에 {FR|을} 몇 개 먹었습니까?",), FR=("{P|은} 아침에 무엇을 먹었습니까?",)),
    _p("likefood", "P", "{P|이} 가장 좋아하는 음식은 {E}입니다.",
       E=("{P|이} 가장 좋아하는 음식은 무엇입니까?", "{P|은} 어떤 음식을 가장 좋아합니까?")),
    _p("likefood", "P", "{P|은} {E|을} 좋아합니다.", E=("{P|은} 무엇을 좋아합니까?", "{P|이} 좋아하는 음식은 무엇입니까?")),
    _p("likecolor", "P", "{P|이} 좋아하는 색은 {CO}입니다.",
       CO=("{P|이} 좋아하는 색은 무엇입니까?", "{P|은} 무슨 색을 좋아합니까?")),
    _p("give", "P", "{P|은} {Q}에게 {O|을} 주었습니다.",
       Q=("{P|은} 누구에게 {O|을} 주었습니까?",), O=("{P|은} {Q}에게 무엇을 주었습니까?", "{P|이} {Q}에게 준 것은 무엇입니까?")),
    _p("give", "P", "{P|은} {Q}에게 {O|을} 선물했습니다.",
       Q=("{P|은} 누구에게 {O|을} 선물했습니까?", "{P|이} {O|을} 선물한 사람은 누구입니까?"),
       O=("{P|은} {Q}에게 무엇을 선물했습니까?",)),
    _p("rel-{R}", "P", "{P}의 {R|은} {Q}입니다.", Q=("{P}의 {R|은} 누구입니까?",)),
    _p("rel-{R}", "P", "{Q|은} {P}의 {R}입니다.", Q=("{P}의 {R|은} 누구입니까?",)),
    _p("meet", "P", "{P|은} {D}에 {W}에서 {Q|을} 만났습니다.",
       Q=("{P|은} {D}에 {W}에서 누구를 만났습니까?", "{P|이} {W}에서 만난 사람은 누구입니까?"),
       W=("{P|은} 어디에서 {Q|을} 만났습니까?",), D=("{P|은} 언제 {Q|을} 만났습니까?",)),
    _p("job", "P", "{P|은} {J}입니다.", J=("{P}의 직업은 무엇입니까?", "{P|은} 무슨 일을 합니까?")),
    _p("job", "P", "{P}의 직업은 {J}입니다.", J=("{P}의 직업은 무엇입니까?",)),
    _p("age", "P", "{P|은} {T}입니다.", T=("{P|은} 몇 살입니까?", "{P}의 나이는 몇 살입니까?")),
    _p("age", "P", "{P}의 나이는 {U}입니다.", U=("{P}의 나이는 몇 세입니까?", "{P|은} 몇 세입니까?")),
    _p("age", "P", "{P|은} 올해 {T}이 되었습니다.", T=("{P|은} 올해 몇 살이 되었습니까?", "{P|은} 몇 살입니까?")),
    _p("wake", "P", "{P|은} 매일 아침 {H}에 일어납니다.",
       H=("{P|은} 매일 아침 몇 시에 일어납니까?", "{P|은} 몇 시에 일어납니까?")),
    _p("class", "P", "{P}의 반에는 학생이 {X} 있습니다.", X=("{P}의 반에는 학생이 몇 명 있습니까?",)),
    _p("family", "P", "{P}의 가족은 모두 {FM}입니다.", FM=("{P}의 가족은 모두 몇 명입니까?", "{P}의 가족은 몇 명입니까?")),
    _p("pet", "P", "{P|은} {PA|을} {Z} 키웁니다.",
       Z=("{P|은} {PA|을} 몇 마리 키웁니까?",), PA=("{P|이} 키우는 동물은 무엇입니까?", "{P|은} 무엇을 키웁니까?")),
    _p("pet", "P", "{P}의 {PA|은} {F}에 앉아 있습니다.", F=("{P}의 {PA|은} 어디에 앉아 있습니까?",)),
    SIT_SEED,
    _p("sit", "A", "{A|이} {F}에 앉아 있습니다.", F=("{A|이} 어디에 앉아 있습니까?", "{A|이} 어디에 앉습니까?")),
    _p("sleep", "A", "{A|은} 밤마다 {F}에서 잡니다.", F=("{A|은} 밤마다 어디에서 잡니까?", "{A|이} 자는 곳은 어디입니까?")),
    _p("sleep", "A", "{A|이} {F}에서 잠을 잡니다.", F=("{A|이} 어디에서 잠을 잡니까?", "{A|은} 어디에서 잡니까?")),
    _p("lie", "A", "{A|이} {F}에 누워 있습니다.", F=("{A|이} 어디에 누워 있습니까?", "{A|이} 어디에 눕습니까?")),
    _p("lie", "A", "{A|이} {F}에 눕습니다.", F=("{A|이} 어디에 눕습니까?", "{A|이} 어디에 누워 있습니까?")),
    _p("play", "A", "{A|은} {W}에서 놉니다.", W=("{A|은} 어디에서 놉니까?", "{A|이} 노는 곳은 어디입니까?")),
    _p("jump", "A", "{A|이} {F} 위로 뛰어올랐습니다.", F=("{A|이} 어디 위로 뛰어올랐습니까?",)),
    _p("count", "A", "{W}에 {A|이} {Z} 있습니다.", Z=("{W}에 {A|이} 몇 마리 있습니까?",), W=("{A|이} {Z} 있는 곳은 어디입니까?",)),
)


def slots(template: str) -> list[str]:
    return [m.group(1) for m in SLOT.finditer(template)]


def render(template: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """Fill `template`; return the text and where each slot's value starts in it."""
    parts: list[str] = []
    starts: dict[str, int] = {}
    pos = length = 0
    for m in SLOT.finditer(template):
        literal = template[pos : m.start()]
        value = values[m.group(1)]
        starts.setdefault(m.group(1), length + len(literal))
        filled = josa(value, m.group(2)) if m.group(2) else value
        parts += [literal, filled]
        length += len(literal) + len(filled)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), starts


def template_texts() -> tuple[list[str], list[str]]:
    """(literal words of every template, strings that directly follow a slot in a context sentence)."""
    literal: list[str] = []
    followers = [form for pair in JOSA_FORMS for form in pair]
    for pattern in PATTERNS:
        for template in (pattern.sentence, *(q for qs in pattern.questions.values() for q in qs)):
            literal += SLOT.sub(" ", template).split()
        for m in SLOT.finditer(pattern.sentence):
            rest = pattern.sentence[m.end():]
            if pattern.sentence[m.start() - 1 : m.start()] not in ("", " "):
                raise ValueError(f"slot glued to the text before it in {pattern.sentence!r}")
            followers.append(rest.split(" ", 1)[0])
    return literal, followers
