"""Arabic normalization for matching: diacritics removed, letter variants folded.
Pure ``str`` functions; the word tokens built on it are ``qa.text.tokens``.

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
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Text with diacritics and tatweel removed, letter variants folded, spaces collapsed."""
    folded = _DIACRITICS.sub("", text).translate(_CHAR_MAP).casefold()
    return _SPACE.sub(" ", folded).strip()
