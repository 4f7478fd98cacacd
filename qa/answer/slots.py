"""What a news question asks for, and whether a sentence fills it. No HTTP.

A question that asks for a name ("who", "what is the name", من، ما اسم), a number
("how many", كم), a date ("when", متى) or a place ("where", أين) is answered only by a
sentence that holds a filler of that kind which the question does not already hold:
"What are the names of the two men arrested?" over a sentence that says two men were
arrested is close in meaning and says no name. Names and places come from the
dictionaries of ``qa.text.gazetteer``; a Latin word capitalized inside a sentence
counts as a name too.

The question's own names and places are also looked for in the evidence, across
scripts: an English question's "Harbi" is found in an Arabic article as حربي.
"""

from __future__ import annotations

import re
from enum import StrEnum

from qa.text.gazetteer import Gazetteer, gazetteer
from qa.text.normalize import normalize
from qa.text.tokens import tokens


class Slot(StrEnum):
    NAME = "name"
    NUMBER = "number"
    DATE = "date"
    PLACE = "place"


# Question openings (after normalization), by the slot they ask for; the first match wins,
# so "in which year" is a date before "in which" is a place.
_SLOTS = [
    (Slot.DATE, re.compile(
        r"^(متي|في اي (عام|سنه|يوم|شهر|تاريخ|ساعه)|في اي وقت|ما تاريخ|when\b|(in |on )?(what|which) "
        r"(year|date|day|month)\b|on what date)"
    )),
    (Slot.NUMBER, re.compile(
        r"^(كم\b|ما (عدد|قيمه|نسبه|مبلغ|حجم|مده)|how (many|much|long|old)\b|what (is |was )?(the )?"
        r"(number|amount|value|percentage|share|total|cost|price|budget)\b|for how (many|long))"
    )),
    (Slot.PLACE, re.compile(
        r"^(اين\b|الي اين|من اين|في اي (مدينه|ولايه|بلد|دوله|منطقه|مكان|معتمديه)|where\b|(in |to |from )?"
        r"(which|what) (city|country|town|region|governorate|place|village)\b)"
    )),
    (Slot.NAME, re.compile(
        r"^(من\b|ما (اسم|هو اسم|اسماء|هي اسماء)|who\b|whom\b|whose\b|what (is|are|was|were) the names?\b|"
        r"(which|what) (person|company|firm|official|minister|team|club|party|organi[sz]ation|body|"
        r"university|journal|newspaper|school|agency|player|coach)\b)"
    )),
]  # fmt: skip

_NUMBER_WORDS = frozenset(
    tokens(
        "واحد واحده اثنان اثنين اثنتان ثلاث ثلاثه اربع اربعه خمس خمسه ست سته سبع سبعه ثمان ثمانيه تسع تسعه "
        "عشر عشره عشرون عشرين ثلاثون ثلاثين اربعون اربعين خمسون خمسين مائه مايه مئات الف الاف الفا مليون "
        "ملايين مليار مليارات نصف ربع ثلث بالمائه بالمايه "
        "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred "
        "hundreds thousand thousands million millions billion half quarter percent"
    )
)
_DATE_WORDS = frozenset(
    tokens(
        "يناير فيفري فبراير مارس افريل ابريل ماي مايو جوان يونيو جويليه يوليو اوت اغسطس سبتمبر اكتوبر "
        "نوفمبر ديسمبر جانفي كانون شباط اذار نيسان ايار حزيران تموز ايلول تشرين "
        "الاثنين الثلاثاء الاربعاء الخميس الجمعه السبت الاحد امس غدا "
        "january february march april may june july august september october november december "
        "monday tuesday wednesday thursday friday saturday sunday yesterday tomorrow"
    )
)
_YEAR_OR_DAY = re.compile(r"^\d{1,4}$")
# A Latin word capitalized inside a sentence (not after its end): a name, most often.
_CAPITALIZED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}")


def warm_slots() -> None:
    """Read the dictionaries now, so that no question waits for them."""
    gazetteer()


def asked_slot(question: str) -> Slot | None:
    """The kind of filler the question asks for, if it asks for one."""
    opening = normalize(question).strip()
    for slot, pattern in _SLOTS:
        if pattern.match(opening):
            return slot
    return None


def slot_filled(slot: Slot, question: str, sentence: str) -> bool:
    """Whether ``sentence`` holds a filler of ``slot`` that ``question`` does not."""
    found = set(tokens(sentence)) - set(tokens(question))
    if slot is Slot.NUMBER:
        return any(t.isdigit() or t in _NUMBER_WORDS for t in found)
    if slot is Slot.DATE:
        return any(bool(_YEAR_OR_DAY.match(t)) or t in _DATE_WORDS for t in found)
    places = gazetteer()
    if slot is Slot.PLACE:
        return any(places.is_place(t) for t in found)
    capitalized = {w.lower() for w in _CAPITALIZED.findall(sentence)} - set(tokens(question))
    return bool(capitalized) or any(places.is_name(t) for t in found)


def entities_missing(question: str, evidence: str) -> float:
    """The share of the question's names and places (by the dictionaries) that
    ``evidence`` holds in no script; 0 when it names none."""
    known = gazetteer()
    named = _entities(question, known)
    if not named:
        return 0.0
    held = set(tokens(evidence))
    return sum(1 for forms in named if not forms & held) / len(named)


def _entities(question: str, known: Gazetteer) -> list[frozenset[str]]:
    """Each name or place of the question, as the stems it may be written as."""
    # A Latin word counts when capitalized and the dictionaries know its Arabic form: the
    # others ("Secretary", a name they lack) could not be looked for in an Arabic article.
    capitalized = {w.lower() for w in _CAPITALIZED.findall(question)}
    named = []
    for stem in dict.fromkeys(tokens(question)):
        forms = known.forms(stem)
        latin = stem.isascii() and stem in capitalized and len(forms) > 1
        if latin or (not stem.isascii() and (known.is_name(stem) or known.is_place(stem))):
            named.append(forms)
    return named
