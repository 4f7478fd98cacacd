"""Arabic normalization and word tokens for lexical matching. Pure ``str`` functions.

Normalization is for matching only: stored text and offsets never change.
"""

from __future__ import annotations

import re

# Tashkeel (harakat, tanween, shadda, sukun), Quranic marks, superscript alef, tatweel.
_DIACRITICS = re.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
_CHAR_MAP = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ى": "ي",
        "ة": "ه",
        "ؤ": "و",
        "ئ": "ي",
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Extended (Persian) digits
    }
)
# Runs of digits and runs of letters: "2015م" is the number 2015 and a letter.
_WORD = re.compile(r"\d+|[^\W\d_]+")
_SPACE = re.compile(r"\s+")
# Light stemming: a conjunction or preposition glued to the word, then the article.
_CLITICS = "وفبلك"
_ARTICLE = "ال"
MIN_STEM = 2


def normalize(text: str) -> str:
    """Text with diacritics and tatweel removed, letter variants folded, spaces collapsed."""
    folded = _DIACRITICS.sub("", text).translate(_CHAR_MAP).casefold()
    return _SPACE.sub(" ", folded).strip()


def stems(word: str) -> tuple[str, ...]:
    """The matching forms of a normalized word: the article and a glued clitic removed.

    With the article the split is certain (والكتاب, بالمدرسه, للصحفيين -> كتاب, مدرسه,
    صحفيين). A lone leading letter may be a clitic (وقال) or part of the word (وزير,
    بوتين), so both forms are kept and each matches its own kind.
    """
    if len(word) >= MIN_STEM + 3 and word[0] in _CLITICS and word[1:3] == _ARTICLE:
        return (word[3:],)
    if len(word) >= MIN_STEM + 2 and word.startswith("لل"):
        return (word[2:],)
    if len(word) >= MIN_STEM + 2 and word.startswith(_ARTICLE):
        return (word[2:],)
    if len(word) >= MIN_STEM + 2 and word[0] in _CLITICS:
        return (word, word[1:])
    return (word,)


def tokens(text: str) -> list[str]:
    """Normalized, lightly stemmed word tokens of ``text`` for lexical retrieval."""
    return [form for word in _WORD.findall(normalize(text)) for form in stems(word)]
