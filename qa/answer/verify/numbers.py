"""The numbers a text writes, in any script or in words, as canonical strings.

A generated sentence may name only numbers its cited spans write: "1958", "١٩٥٨",
"fifteen" and "خمسة عشر" are each one number however written.
"""

from __future__ import annotations

import re

from qa.text.normalize import normalize
from qa.text.tokens import stems

# Ordinals count as their number ("the third largest" is 3); "first" is left out,
# like "one": it is mostly not a rank ("for the first time").
_EN_ORDINALS = {
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
}  # fmt: skip
_EN_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
}  # fmt: skip
# Arabic number words with their usual variants (normalized when the table is built).
# "One" (واحد, one) is left out on purpose: it is mostly not a count ("one of the leaders").
_AR_NUMBER_WORDS = {
    20: "عشرون عشرين", 30: "ثلاثون ثلاثين", 40: "أربعون أربعين", 50: "خمسون خمسين", 60: "ستون ستين",
    70: "سبعون سبعين", 80: "ثمانون ثمانين", 90: "تسعون تسعين", 100: "مائة مئة مئات",
    200: "مئتا مئتان مئتين مائتا مائتان مائتين", 300: "ثلاثمائة ثلاثمئة", 400: "أربعمائة أربعمئة",
    500: "خمسمائة خمسمئة", 600: "ستمائة ستمئة", 700: "سبعمائة سبعمئة", 800: "ثمانمائة ثمانمئة",
    900: "تسعمائة تسعمئة", 1000: "ألف آلاف", 2000: "ألفان ألفين", 1_000_000: "مليون ملايين",
    1_000_000_000: "مليار مليارات",
    # Ordinals, masculine and feminine.
    2: "اثنان اثنين اثنتان اثنتين اثنا اثنتا ثاني ثانية", 3: "ثلاث ثلاثة ثالث ثالثة",
    4: "أربع أربعة رابع رابعة", 5: "خمس خمسة خامس خامسة", 6: "ست ستة سادس سادسة",
    7: "سبع سبعة سابع سابعة", 8: "ثماني ثمان ثمانية ثامن ثامنة", 9: "تسع تسعة تاسع تاسعة",
    10: "عشر عشرة عاشر عاشرة",
}  # fmt: skip
_AR_NUMBERS = {normalize(word): value for value, words in _AR_NUMBER_WORDS.items() for word in words.split()}
# أحد عشر (11): "one" counts only before "ten".
_ELEVEN = normalize("أحد")
_DIGITS = re.compile(r"\d+(?:[.,٫٬،]\d+)*")
# A word: a run of letters.
WORDS = re.compile(r"[^\W\d_]+")


def numbers(text: str) -> set[str]:
    """The numbers ``text`` writes, as canonical strings: digits of any script
    ("١٩٥٨" -> "1958", "1,000" -> "1000"), number words ("fifteen", "خمسة عشر" -> "15"),
    and "twenty-three"/"ثلاثة وعشرون" -> "23"."""
    folded = normalize(text)
    found: set[str] = set()
    for match in _DIGITS.finditer(folded):
        digits = match.group().replace("٫", ".").replace("٬", ",").replace("،", ",")
        # "1,000,000" is one number; "3,5" in an Arabic text is three and a half.
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")
        found.add(digits.replace(",", "."))
    words = WORDS.findall(folded.replace("-", " "))
    values = [_word_value(word) for word in words]
    for position, word in enumerate(words[:-1]):
        if word in (_ELEVEN, "eleven") and values[position + 1] == 10:
            values[position] = 1
    position = 0
    while position < len(values):
        value = values[position]
        following = values[position + 1] if position + 1 < len(values) else None
        position += 1
        if value is None:
            continue
        # Two words that make one number: خمسة عشر (15), ثلاثة وعشرون (23), twenty three.
        if following is not None and (
            (value < 10 and (following == 10 or 20 <= following < 100))
            or (20 <= value < 100 and following < 10)
        ):
            found.add(str(value + following))
            position += 1
            continue
        found.add(str(value))
    return found


def _word_value(word: str) -> int | None:
    if word in _EN_NUMBERS:
        return _EN_NUMBERS[word]
    if word in _EN_ORDINALS:
        return _EN_ORDINALS[word]
    for form in (word, *stems(word)):
        if form in _AR_NUMBERS:
            return _AR_NUMBERS[form]
        # و glued to a number word: وعشرون
        if form.startswith("و") and form[1:] in _AR_NUMBERS:
            return _AR_NUMBERS[form[1:]]
    return None


def is_english_number_word(word: str) -> bool:
    """Whether a casefolded English word is a number or an ordinal ("three", "third")."""
    return word in _EN_NUMBERS or word in _EN_ORDINALS
