"""Deterministic synthetic Korean extractive-QA data (SQuAD layout) for training and checking a tiny model offline.

Contexts are 1-4 template sentences about 1-4 people and some animals; every sentence carries one fact and gets
one question whose answer is the fact's value, a span that stops before the particle attached to it (서울|에).
The "train" and "heldout" splits draw person names and place-like answers (cities, towns, venues, furniture) from
disjoint pools, fixed independently of the seed, so held-out questions test generalisation to unseen names.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, TextIO

log = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
HELDOUT_FRACTION = 0.25  # share of each name/place candidate list reserved for the heldout split
SINGLE_SENTENCE_RATE = 0.15
SEED_PATTERN_RATE = 0.5  # share of single-sentence contexts using the two seed patterns (lives in / sits on)
FULL_NAME_RATE = 0.2  # people named surname + given name instead of the given name alone
TOWN_RATE = 0.3  # places drawn from invented towns rather than real cities
SENTENCES = (2, 4)  # sentences per multi-sentence context, inclusive range
_POOL_SEED = "qa-engine/synthetic-pools/v1"  # fixes the train/heldout partition, whatever the generate() seed

# ---- vocabulary -------------------------------------------------------------------------------------------------
SURNAMES = tuple("김이박최강조윤장임한오신권황안송홍문양배백허남심노곽")
# Given-name syllables share nothing with SURNAMES or particle heads (은는이가을를의에와과로도입).
GIVEN_SYLLABLES = tuple("민수영희철지현준서연우진혜하동성미경태재유나라소예승훈호석빈아원선숙기혁건채솔율별규찬결온린주다")
SEED_NAMES = ("철수", "영희", "민수")
CITIES = tuple(
    "서울 부산 대구 인천 광주 대전 울산 세종 수원 성남 용인 창원 청주 전주 천안 안산 안양 포항 김해 제주 춘천 원주 "
    "강릉 목포 여수 순천 경주 구미 진주 군산 익산 평택 파주 김포 의정부 속초 통영 안동 충주 제천 서산 당진 아산 논산 "
    "공주 보령 나주 광양 거제 양산 밀양 사천 김천 영주 상주 문경 삼척 동해 태백 정읍 남원 김제 영월 단양 담양 보성 "
    "완도 울진 영덕 거창 합천 남해 평창 홍천 횡성 철원 양평 가평 이천 여주 오산 하남 광명 시흥 군포 의왕 구리 남양주 "
    "동두천 포천 부천 도쿄 오사카 교토 베이징 상하이 홍콩 방콕 하노이 마닐라 자카르타 싱가포르 뭄바이 두바이 카이로 "
    "런던 파리 베를린 로마 마드리드 리스본 프라하 모스크바 뉴욕 시카고 토론토 밴쿠버 시드니 멜버른 리마".split()
)
TOWN_SYLLABLES = tuple("가람솔빛누새들벌내마루바울구름노푸단비보해달청금")
TOWN_SUFFIXES = ("시", "군", "읍", "마을")
VENUES = tuple(
    "도서관 공원 시장 병원 박물관 미술관 영화관 백화점 우체국 카페 식당 체육관 수영장 동물원 놀이공원 서점 빵집 "
    "편의점 약국 경찰서 공항 기차역 해변 호숫가 바닷가 시청 성당 교회 꽃집 문구점 마트 세탁소 미용실 운동장 캠핑장 "
    "식물원 과학관 전시장 학원".split()
)
FURNITURE = tuple(
    "의자 책상 소파 침대 식탁 탁자 선반 방석 벤치 창틀 계단 바닥 이불 베개 카펫 상자 바구니 지붕 담장 울타리 창가 "
    "마루 쿠션 그네 담요 책장 옷장 장롱 피아노 냉장고".split()
)
ANIMALS = tuple(
    "고양이 강아지 새 토끼 햄스터 앵무새 거북이 오리 병아리 다람쥐 원숭이 여우 곰 닭 비둘기 참새 너구리 염소 고슴도치 "
    "펭귄 코알라 판다 사슴".split()
)
SEED_PLACES = ("서울",)
SEED_FURNITURE = ("의자",)
SEED_ANIMALS = ("고양이",)  # kept out of the heldout animal pool
OBJECTS = (
    ("책", "권"), ("공책", "권"), ("사전", "권"), ("자전거", "대"), ("컴퓨터", "대"), ("노트북", "대"), ("카메라", "대"),
    ("휴대폰", "대"), ("사과", "개"), ("우산", "개"), ("가방", "개"), ("모자", "개"), ("시계", "개"), ("인형", "개"),
    ("공", "개"), ("컵", "개"), ("접시", "개"), ("빵", "개"), ("케이크", "개"), ("연필", "자루"), ("볼펜", "자루"),
    ("신발", "켤레"), ("양말", "켤레"), ("운동화", "켤레"), ("장갑", "켤레"), ("꽃", "송이"), ("장미", "송이"),
    ("셔츠", "벌"), ("바지", "벌"), ("치마", "벌"), ("우유", "병"), ("주스", "병"), ("커피", "잔"),
)
READING = tuple("신문 소설 잡지 시집 만화책 동화책 교과서 편지 일기 보고서 논문".split())
FOODS = tuple(
    "김치찌개 된장찌개 비빔밥 불고기 라면 떡볶이 김밥 냉면 피자 치킨 짜장면 삼겹살 갈비 만두 국수 초밥 햄버거 "
    "샌드위치 떡국 잡채 칼국수 순두부찌개 볶음밥 카레 스파게티".split()
)
FRUITS = tuple("사과 귤 바나나 복숭아 딸기 자두 감 키위 망고 토마토 오렌지".split())
COLORS = tuple("빨간색 파란색 노란색 초록색 보라색 검은색 흰색 분홍색 주황색 회색 하늘색 갈색 남색".split())
VEHICLES = tuple("기차 버스 비행기 배 자전거 택시 지하철 자동차 오토바이 고속버스".split())
JOBS = tuple(
    "의사 교사 요리사 경찰관 간호사 기자 변호사 가수 화가 소방관 농부 작가 배우 회사원 과학자 프로그래머 디자이너 "
    "은행원 약사 군인 공무원 미용사 건축가 사진작가 통역사 번역가 엔지니어 운동선수 음악가".split()
)
RELATIONS = tuple("친구 동생 형 누나 언니 오빠 짝꿍 이웃 동료 사촌 선배 후배 남편 아내 룸메이트 삼촌 이모 고모 조카".split())
COMPANY_PREFIXES = tuple(
    "한빛 미래 대한 새솔 푸른 하나 누리 별빛 은하 바다 태양 새벽 금강 백두 한강 아람 다온 가온 참빛 우리 세계 동방 "
    "한결 나래 보람 으뜸 희망 행복 초록 파랑".split()
)
COMPANY_SUFFIXES = tuple("전자 건설 식품 은행 자동차 항공 화학 제약 통신 출판사 물산 증권 보험 여행사 제과".split())
SCHOOL_SUFFIXES = ("초등학교", "중학교", "고등학교", "대학교")
UNITS = ("년", "월", "일", "시", "살", "세", "명", "마리", "학년", "권", "개")

# ---- particles --------------------------------------------------------------------------------------------------
_JOSA_FORMS = (("은", "는"), ("이", "가"), ("을", "를"), ("과", "와"), ("으로", "로"))
_JOSA = {form: pair for pair in _JOSA_FORMS for form in pair}
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
_SLOT = re.compile(r"\{([A-Za-z]+)(?:\|([^}]+))?\}")


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
    _p("lie", "A", "{A|이} {F}에 누워 있습니다.", F=("{A|이} 어디에 누워 있습니까?",)),
    _p("jump", "A", "{A|이} {F} 위로 뛰어올랐습니다.", F=("{A|이} 어디 위로 뛰어올랐습니까?",)),
    _p("count", "A", "{W}에 {A|이} {Z} 있습니다.", Z=("{W}에 {A|이} 몇 마리 있습니까?",), W=("{A|이} {Z} 있는 곳은 어디입니까?",)),
)


def _slots(template: str) -> list[str]:
    return [m.group(1) for m in _SLOT.finditer(template)]


def _render(template: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """Fill `template`; return the text and where each slot's value starts in it."""
    parts: list[str] = []
    starts: dict[str, int] = {}
    pos = length = 0
    for m in _SLOT.finditer(template):
        literal = template[pos : m.start()]
        value = values[m.group(1)]
        starts.setdefault(m.group(1), length + len(literal))
        filled = josa(value, m.group(2)) if m.group(2) else value
        parts += [literal, filled]
        length += len(literal) + len(filled)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), starts


# ---- split pools ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pools:
    """The names and place-like answers one split may use."""

    given: tuple[str, ...]
    cities: tuple[str, ...]
    towns: tuple[str, ...]
    venues: tuple[str, ...]
    furniture: tuple[str, ...]
    animals: tuple[str, ...]


def _partition(candidates: Iterable[str], forced_train: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split candidates into (train, heldout) by a fixed shuffle; `forced_train` never lands in heldout."""
    items = sorted(set(candidates))
    random.Random(f"{_POOL_SEED}/{items[0]}").shuffle(items)
    forced = set(forced_train)
    n_heldout = round(len(items) * HELDOUT_FRACTION)
    heldout = [w for w in items if w not in forced][:n_heldout]
    chosen = set(heldout)
    return sorted(w for w in items if w not in chosen), sorted(heldout)


class _Corpus:
    """Every string a set of words can put into a context, with any particle or template text after them."""

    def __init__(self, words: Iterable[str], followers: Iterable[str]) -> None:
        self.inner: set[str] = set()
        self.tails: set[str] = set()
        for w in words:
            for i in range(len(w)):
                self.tails.add(w[i:])
                self.inner.update(w[i:j] for j in range(i + 1, len(w) + 1))
        self.heads = {f[:j] for f in followers for j in range(1, len(f) + 1)}

    def contains(self, s: str) -> bool:
        """Whether `s` can occur inside a word or straddle a word and what follows it."""
        return s in self.inner or any(s[:k] in self.tails and s[k:] in self.heads for k in range(1, len(s)))


def _template_texts() -> tuple[list[str], list[str]]:
    """(literal words of every template, strings that directly follow a slot in a context sentence)."""
    literal: list[str] = []
    followers = [form for pair in _JOSA_FORMS for form in pair]
    for pattern in PATTERNS:
        for template in (pattern.sentence, *(q for qs in pattern.questions.values() for q in qs)):
            literal += _SLOT.sub(" ", template).split()
        for m in _SLOT.finditer(pattern.sentence):
            rest = pattern.sentence[m.end():]
            if pattern.sentence[m.start() - 1 : m.start()] not in ("", " "):
                raise ValueError(f"slot glued to the text before it in {pattern.sentence!r}")
            followers.append(rest.split(" ", 1)[0])
    return literal, followers


def _shared_words() -> list[str]:
    """Words both splits use: objects, foods, jobs, companies, ... and the units of numbers."""
    companies = [p + s for p in COMPANY_PREFIXES for s in COMPANY_SUFFIXES]
    return [
        *ANIMALS, *(o for o, _ in OBJECTS), *(c for _, c in OBJECTS), *READING, *FOODS, *FRUITS, *COLORS,
        *VEHICLES, *JOBS, *RELATIONS, *companies, *SCHOOL_SUFFIXES, *UNITS,
    ]


def _split_words(given: Iterable[str], places: Iterable[str], other: Iterable[str]) -> list[str]:
    """All words a split's pools put in contexts, full names and school names included."""
    given, places = list(given), list(places)
    full = [s + g for s in SURNAMES for g in given]
    schools = [p + s for p in places for s in SCHOOL_SUFFIXES]
    return [*given, *full, *places, *schools, *other]


def _towns(stems: Iterable[str]) -> list[str]:
    """Invented place names: a two-syllable stem and an administrative suffix (가람시, 솔빛마을)."""
    return [stem + suffix for stem in stems for suffix in TOWN_SUFFIXES]


@lru_cache(maxsize=None)
def pools(split: str) -> Pools:
    """The fixed pools of `split`; heldout names and place-like words never occur in any train context."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    literal, followers = _template_texts()
    shared = _shared_words()
    stems = [a + b for a in TOWN_SYLLABLES for b in TOWN_SYLLABLES if a != b]
    towns = _towns(stems)
    # A name must not hide inside, or be, any other word of any split.
    clash = _Corpus(_split_words((), [*CITIES, *towns], [*VENUES, *FURNITURE, *shared, *literal]), followers)
    names = [a + b for a in GIVEN_SYLLABLES for b in GIVEN_SYLLABLES if a != b]
    names = [n for n in names if n in SEED_NAMES or not clash.contains(n)]
    parts = {
        "given": _partition(names, SEED_NAMES),
        "cities": _partition(CITIES, SEED_PLACES),
        "towns": tuple(map(_towns, _partition(stems, ()))),
        "venues": _partition(VENUES, ()),
        "furniture": _partition(FURNITURE, SEED_FURNITURE),
    }
    if split == "train":
        train = {k: tuple(v[0]) for k, v in parts.items()}
        return Pools(**train, animals=ANIMALS)
    train_words = _split_words(parts["given"][0], parts["cities"][0] + parts["towns"][0],
                               [*parts["venues"][0], *parts["furniture"][0], *shared, *literal])
    train_corpus = _Corpus(train_words, followers)
    syllables = {ch for w in train_words for ch in w}
    heldout = {}
    for key, (_, candidates) in parts.items():
        kept = [w for w in candidates if set(w) <= syllables and not train_corpus.contains(w)]
        log.debug("heldout %s: kept %d of %d candidates", key, len(kept), len(candidates))
        if len(kept) < 4:
            raise RuntimeError(f"heldout pool {key!r} has only {len(kept)} usable words")
        heldout[key] = tuple(kept)
    return Pools(**heldout, animals=tuple(a for a in ANIMALS if a not in SEED_ANIMALS))


@lru_cache(maxsize=None)
def alphabet() -> str:
    """Every Hangul syllable either split can emit (all occur in train text), e.g. for the tokenizer's alphabet."""
    literal, followers = _template_texts()
    p = pools("train")
    words = _split_words(p.given, p.cities + p.towns, [*p.venues, *p.furniture, *_shared_words(), *literal, *followers])
    return "".join(sorted({ch for w in words for ch in w if "\uac00" <= ch <= "\ud7a3"}))


# ---- contexts ---------------------------------------------------------------------------------------------------
@dataclass
class _Context:
    """What one context has used so far, so that every question has exactly one answer."""

    people: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every person mentioned, subjects or not
    species: set[str] = field(default_factory=set)  # every animal mentioned
    groups: set[tuple[str, str]] = field(default_factory=set)
    questions: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Fact:
    sentence: str
    question: str
    answer: str
    answer_start: int  # within the sentence


def _fresh_name(rng: random.Random, p: Pools, taken: set[str]) -> str:
    while True:
        name = rng.choice(p.given)
        if rng.random() < FULL_NAME_RATE:
            name = rng.choice(SURNAMES) + name
        if all(name not in t and t not in name for t in taken):
            return name


def _fresh_species(rng: random.Random, p: Pools, taken: set[str]) -> str:
    return rng.choice([a for a in p.animals if a not in taken])


def _place(rng: random.Random, p: Pools) -> str:
    return rng.choice(p.towns if rng.random() < TOWN_RATE else p.cities)


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1950, 2024)}년 {rng.randint(1, 12)}월 {rng.randint(1, 28)}일"


_SAMPLERS: dict[str, Callable[[random.Random, Pools], str]] = {
    "L": _place,
    "W": lambda r, p: r.choice(p.venues),
    "F": lambda r, p: r.choice(p.furniture),
    "S": lambda r, p: _place(r, p) + r.choice(SCHOOL_SUFFIXES),
    "C": lambda r, p: r.choice(COMPANY_PREFIXES) + r.choice(COMPANY_SUFFIXES),
    "D": lambda r, p: _date(r),
    "Y": lambda r, p: f"{r.randint(1950, 2024)}년",
    "M": lambda r, p: f"{r.randint(1, 12)}월",
    "G": lambda r, p: f"{r.randint(1, 6)}학년",
    "T": lambda r, p: f"{r.randint(5, 90)}살",
    "U": lambda r, p: f"{r.randint(20, 90)}세",
    "H": lambda r, p: f"{r.randint(5, 11)}시",
    "X": lambda r, p: f"{r.randint(15, 40)}명",
    "FM": lambda r, p: f"{r.randint(2, 7)}명",
    "Z": lambda r, p: f"{r.randint(2, 9)}마리",
    "K": lambda r, p: f"{r.randint(2, 15)}권",
    "FN": lambda r, p: f"{r.randint(2, 6)}개",
    "B": lambda r, p: r.choice(READING),
    "E": lambda r, p: r.choice(FOODS),
    "FR": lambda r, p: r.choice(FRUITS),
    "CO": lambda r, p: r.choice(COLORS),
    "V": lambda r, p: r.choice(VEHICLES),
    "J": lambda r, p: r.choice(JOBS),
    "R": lambda r, p: r.choice(RELATIONS),
}


def _values(pattern: Pattern, subject: str, rng: random.Random, p: Pools, ctx: _Context) -> dict[str, str]:
    """Sample every slot the pattern's sentence and questions use; the subject fills P or A."""
    values = {pattern.subject: subject}
    for slot in _slots(pattern.sentence):
        if slot in values:
            continue
        if slot == "Q":
            others = [n for n in ctx.people if n != subject]
            values[slot] = rng.choice(others) if others and rng.random() < 0.5 else _fresh_name(rng, p, ctx.names)
        elif slot == "PA":
            values[slot] = _fresh_species(rng, p, ctx.species)
        elif slot in ("O", "N", "c"):
            obj, counter = rng.choice(OBJECTS)
            values.update(O=obj, c=counter, N=f"{rng.randint(2, 12)}{counter}")
        else:
            values[slot] = _SAMPLERS[slot](rng, p)
    return values


def _try_fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, kind: str,
              choices: list[Pattern]) -> _Fact | None:
    """One fact about `subject`, or None when the draw would make some question of the context ambiguous."""
    pattern = rng.choices(choices, weights=[c.weight for c in choices])[0]
    values = _values(pattern, subject, rng, p, ctx)
    group = (subject, pattern.group.format(**values))
    slot = rng.choice(sorted(pattern.questions))
    question, _ = _render(rng.choice(pattern.questions[slot]), values)
    if group in ctx.groups or question in ctx.questions:
        return None
    sentence, starts = _render(pattern.sentence, values)
    ctx.groups.add(group)
    ctx.questions.add(question)
    if "Q" in values:
        ctx.names.add(values["Q"])
    if "PA" in values:
        ctx.species.add(values["PA"])
    return _Fact(sentence, question, values[slot], starts[slot])


def _fact(rng: random.Random, p: Pools, ctx: _Context, subject: str, kind: str, choices: list[Pattern]) -> _Fact:
    for _ in range(100):
        fact = _try_fact(rng, p, ctx, subject, kind, choices)
        if fact is not None:
            return fact
    raise RuntimeError(f"could not find an unambiguous fact about {subject!r}")


def _context_facts(rng: random.Random, p: Pools) -> list[_Fact]:
    """The facts of one context, in sentence order."""
    ctx = _Context()
    choices = {k: [q for q in PATTERNS if q.subject == k] for k in ("P", "A")}
    if rng.random() < SINGLE_SENTENCE_RATE:
        kind = rng.choice(("P", "A"))
        if rng.random() < SEED_PATTERN_RATE:
            choices[kind] = [LIVE_SEED if kind == "P" else SIT_SEED]
        subjects = [(_fresh_name(rng, p, ctx.names) if kind == "P" else _fresh_species(rng, p, ctx.species), kind)]
    else:
        n_sentences = rng.randint(*SENTENCES)
        n_people = rng.randint(2, min(4, n_sentences))
        n_animals = min(rng.choice((0, 0, 0, 1, 2)), n_sentences - n_people)
        subjects = []
        for _ in range(n_people):
            subjects.append((_fresh_name(rng, p, ctx.names), "P"))
            ctx.names.add(subjects[-1][0])
        for _ in range(n_animals):
            subjects.append((_fresh_species(rng, p, ctx.species), "A"))
            ctx.species.add(subjects[-1][0])
        subjects += [rng.choice(subjects) for _ in range(n_sentences - len(subjects))]
    ctx.people = [s for s, k in subjects if k == "P"]
    ctx.names.update(ctx.people)
    ctx.species.update(s for s, k in subjects if k == "A")
    facts = [_fact(rng, p, ctx, s, k, choices[k]) for s, k in subjects]
    rng.shuffle(facts)
    return facts


def generate(n_contexts: int, seed: int = 0, split: str = "train") -> list[dict]:
    """`n_contexts` synthetic contexts as flat SQuAD-style records (one per question), identical for equal args."""
    p = pools(split)
    rng = random.Random(f"{split}/{seed}")
    records: list[dict] = []
    for c in range(n_contexts):
        facts = _context_facts(rng, p)
        title = f"{split}-{seed}-{c:06d}"
        context = " ".join(f.sentence for f in facts)
        offset = 0
        for q, fact in enumerate(facts):
            start = offset + fact.answer_start
            assert context[start : start + len(fact.answer)] == fact.answer, (context, fact)
            records.append({
                "id": f"{title}-q{q}",
                "title": title,
                "question": fact.question,
                "context": context,
                "answers": {"text": [fact.answer], "answer_start": [start]},
            })
            offset += len(fact.sentence) + 1
    log.info("generated %d %s questions over %d contexts (seed %d)", len(records), split, n_contexts, seed)
    return records


# ---- writing ----------------------------------------------------------------------------------------------------
def _atomic_write(path: str | Path, write: Callable[[TextIO], None]) -> None:
    """Write through a temporary file in the target's directory, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(records: Iterable[dict], path: str | Path) -> None:
    """Write flat records as JSON Lines, atomically."""
    def write(f: TextIO) -> None:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    _atomic_write(path, write)


def write_squad_json(records: Iterable[dict], path: str | Path) -> None:
    """Write flat records as nested SQuAD v1.1 JSON (one paragraph per distinct context of a title), atomically."""
    articles: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        answers = zip(r["answers"]["text"], r["answers"]["answer_start"])
        qa = {"id": r["id"], "question": r["question"], "answers": [{"text": t, "answer_start": s} for t, s in answers]}
        articles.setdefault(r.get("title", ""), {}).setdefault(r["context"], []).append(qa)
    doc = {
        "version": "1.1",
        "data": [
            {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()
        ],
    }
    _atomic_write(path, lambda f: json.dump(doc, f, ensure_ascii=False))
