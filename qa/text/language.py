"""Whether a text is Arabic: the one place that tells, by two named rules.

The two rules answer different questions, and their callers need each as it is:

* :func:`has_arabic_letter`: any letter of the Arabic alphabet proper (hamza to
  yeh, U+0621-U+064A). A question is asked in Arabic when it writes one Arabic
  word, whatever Latin names or numbers it holds; what a refusal and a generated
  answer are written in, and the answerability model's ``cross_language`` signal
  (its weights were fitted with this rule), follow it.
* :func:`is_mostly_arabic`: most of its letters are of the Arabic block
  (U+0600-U+06FF). A verified sentence and its cited span are compared as one
  language or two by it: an English sentence that quotes one Arabic name is
  still English.
"""

from __future__ import annotations

import re

_ARABIC_LETTER = re.compile(r"[\u0621-\u064A]")


def has_arabic_letter(text: str) -> bool:
    """Whether ``text`` writes any letter of the Arabic alphabet (U+0621-U+064A)."""
    return bool(_ARABIC_LETTER.search(text))


def is_mostly_arabic(text: str) -> bool:
    """Whether more than half of the letters of ``text`` are in the Arabic block
    (U+0600-U+06FF); False for a text without letters."""
    letters = [char for char in text if char.isalpha()]
    return sum("\u0600" <= char <= "\u06ff" for char in letters) * 2 > len(letters)
