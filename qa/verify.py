"""Checks a written answer against the evidence it cites. No HTTP, no model calls.

A model's answer is split into sentences, each with the evidence numbers it cites
(``[2][5]``). A sentence is kept only when all of these hold:

* it cites at least one evidence sentence, and every number it cites exists;
* every number in it (a year, a date, a count; Western or Arabic-Indic digits, or
  a number written out in English or Arabic) is written in a cited span;
* every name in an English sentence (a capitalized word) is in a cited span,
  matched across scripts by its consonants;
* it is close in meaning to a cited span: the embedding model is multilingual, so
  an English sentence is compared with its Arabic span directly.

Anything else is removed and reported with the reason, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qa.embed import Embedder, Vectors
from qa.normalize import normalize, stems

# A citation marker: [3], [3, 5], [٣]; several may follow each other.
_MARKER = re.compile(
    r"\[\s*([0-9\u0660-\u0669\u06F0-\u06F9]+(?:\s*[,،]\s*[0-9\u0660-\u0669\u06F0-\u06F9]+)*)\s*\]"
)
# An answer sentence ends at . ! ? ؟ … (then any markers) before white space that is
# followed by something other than another marker.
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?؟…])(?<!\b[A-Z]\.)((?:\s*\[[^\]\n]{1,20}\])*)[ \t]*(?:\n+|[ \t]+(?=[^\s\[]))|\n+"
)


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of a model's answer: its words (markers removed) and what it cites."""

    raw: str
    claim: str
    cites: tuple[int, ...]


@dataclass(frozen=True)
class Span:
    """An evidence sentence as the verifier sees it: its text, the title of its
    article (names and dates the sentence leaves to it), and its stored vector."""

    text: str
    title: str
    vector: Vectors


@dataclass(frozen=True)
class Verdict:
    sentence: AnswerSentence
    # None when kept; else why the sentence was removed.
    reason: str | None
    # Similarity of the sentence to each span it cites, by evidence number.
    similarity: Mapping[int, float]


def _quotes(claim: str, span: str) -> bool:
    """Whether ``claim`` is a word-for-word quote of ``span`` (normalized, punctuation aside)."""
    words = _WORDS.findall(normalize(claim))
    return bool(words) and " ".join(words) in " ".join(_WORDS.findall(normalize(span)))


def _is_arabic(text: str) -> bool:
    """Whether most letters of ``text`` are Arabic."""
    letters = [char for char in text if char.isalpha()]
    return sum("\u0600" <= char <= "\u06ff" for char in letters) * 2 > len(letters)


def split_answer(text: str) -> list[AnswerSentence]:
    """The sentences of ``text``, each with the evidence numbers its markers name."""
    sentences = []
    for piece in _pieces(text):
        numbers: list[int] = []
        for match in _MARKER.finditer(piece):
            for part in re.split(r"\s*[,،]\s*", match.group(1)):
                number = int(normalize(part))
                if number not in numbers:
                    numbers.append(number)
        claim = re.sub(r"\s+", " ", _MARKER.sub(" ", piece)).strip()
        claim = re.sub(r"\s+([.!?؟…,،:;])", r"\1", claim)
        sentences.append(AnswerSentence(piece, claim, tuple(numbers)))
    return sentences


def complete_sentences(text: str) -> tuple[list[str], str]:
    """The sentences of a growing ``text`` that are certainly complete, and the rest.

    The last piece is held back: more markers, or the rest of the sentence, may
    still come.
    """
    pieces = _pieces(text)
    if not pieces:
        return [], text
    rest_start = text.rfind(pieces[-1])
    return pieces[:-1], text[rest_start:]


def _pieces(text: str) -> list[str]:
    pieces = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        end = match.start() + len(match.group(1) or "")
        if text[start:end].strip():
            pieces.append(text[start:end].strip())
        start = match.end()
    if text[start:].strip():
        pieces.append(text[start:].strip())
    return pieces


class Verifier:
    """Decides which answer sentences their cited spans support."""

    def __init__(
        self, embedder: Embedder, min_similarity: float, min_similarity_cross_language: float
    ) -> None:
        self.embedder = embedder
        # A sentence and a span in one language score higher for the same support than
        # an English sentence does against an Arabic span: each has its threshold.
        self.min_similarity = min_similarity
        self.min_similarity_cross_language = min_similarity_cross_language

    def check(self, sentences: Sequence[AnswerSentence], evidence: Mapping[int, Span]) -> list[Verdict]:
        """One verdict a sentence, in order. The claims are embedded in one call."""
        verdicts: list[Verdict | None] = []
        to_embed: list[int] = []
        for position, sentence in enumerate(sentences):
            reason = self._reason_before_meaning(sentence, evidence)
            quoted = {
                n: 1.0 for n in sentence.cites if reason is None and _quotes(sentence.claim, evidence[n].text)
            }
            if reason or quoted:
                # A sentence that quotes its span word for word needs no embedding.
                verdicts.append(Verdict(sentence, reason, quoted))
            else:
                verdicts.append(None)
                to_embed.append(position)
        if to_embed:
            vectors = self.embedder.embed_queries([sentences[p].claim for p in to_embed])
            for position, vector in zip(to_embed, vectors, strict=True):
                sentence = sentences[position]
                similarity = {n: float(evidence[n].vector @ vector) for n in sentence.cites}
                best_n = max(similarity, key=lambda n: similarity[n])
                best = similarity[best_n]
                threshold = self.min_similarity
                if _is_arabic(sentence.claim) != _is_arabic(evidence[best_n].text):
                    threshold = self.min_similarity_cross_language
                reason = None
                if best < threshold:
                    reason = f"not close enough in meaning to the cited text ({best:.2f} < {threshold:.2f})"
                verdicts[position] = Verdict(sentence, reason, similarity)
        return [v for v in verdicts if v is not None]

    def _reason_before_meaning(self, sentence: AnswerSentence, evidence: Mapping[int, Span]) -> str | None:
        if not sentence.cites:
            return "cites no evidence"
        unknown = [n for n in sentence.cites if n not in evidence]
        if unknown:
            return "cites " + ", ".join(f"[{n}]" for n in unknown) + ", which is not an evidence sentence"
        if not re.search(r"\w", sentence.claim):
            return "has no words"
        cited = " ".join(f"{evidence[n].title} {evidence[n].text}" for n in sentence.cites)
        missing_numbers = sorted(numbers(sentence.claim) - numbers(cited), key=float)
        if missing_numbers:
            return "names " + ", ".join(missing_numbers) + ", which the cited text does not"
        missing_names = unsupported_names(sentence.claim, cited)
        if missing_names:
            return "names " + ", ".join(missing_names) + ", which the cited text does not"
        return None


# --- numbers -------------------------------------------------------------------------

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
_WORDS = re.compile(r"[^\W\d_]+")


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
    words = _WORDS.findall(folded.replace("-", " "))
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


# --- names ---------------------------------------------------------------------------

# Capitalized English words that are not names: sentence openings, months, days,
# titles, and the common nouns of proper names (the "University" of a university).
_NOT_NAMES_TEXT = """
    a an the this that these those he she it they we i his her its their our in on at by for of to
    from with as after before during when while according but and or also however both all some many most
    more mr mrs ms dr sir president prime minister king queen prince princess sheikh emir sultan caliph
    pope foreign secretary general chief head leader january february march april may june july august
    september october november december monday tuesday wednesday thursday friday saturday sunday there
    here what who whom which where why how under over between about against since until if so yet no not
    one first second third last next new north south east west central western eastern northern southern
    world war cup prize award university college school institute academy company organization
    organisation council committee party army navy force forces republic kingdom state states union
    league museum bank revolution front movement ministry parliament assembly court church mosque day
    games olympic olympics festival treaty agreement conference summit club team empire dynasty
    caliphate islamic muslim muslims arab arabs arabic christian christians jewish sunni shia english
    french national international federation association society city province region river sea ocean
    island islands mount desert gulf peninsula lake valley dam bridge tower palace hospital airport
    station street square liberation independence declaration constitution charter article chapter
    book film prophet imam saint holy great old estimates according world's"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
# English names of places and bodies that Arabic does not transliterate, with the
# normalized Arabic words that name them.
_EXONYMS = {
    "egypt": "مصر", "egyptian": "مصر", "japan": "اليابان", "japanese": "اليابان", "jordan": "الاردن",
    "jordanian": "الاردن", "morocco": "المغرب", "moroccan": "المغرب", "germany": "المانيا",
    "german": "المانيا", "greece": "اليونان", "greek": "اليونان", "india": "الهند", "indian": "الهند",
    "china": "الصين", "chinese": "الصين", "algeria": "الجزاير", "algerian": "الجزاير",
    "netherlands": "هولندا", "dutch": "هولندا", "austria": "النمسا", "sweden": "السويد",
    "america": "امريكا اميركا الامريكيه الاميركيه الامريكي الاميركي المتحده",
    "american": "امريكا اميركا الامريكيه الاميركيه الامريكي الاميركي المتحده",
    "united": "المتحده", "nations": "الامم", "us": "المتحده", "usa": "المتحده", "un": "الامم",
    "nato": "الناتو الاطلسي", "atlantic": "الاطلسي", "mediterranean": "المتوسط", "red": "الاحمر",
    "arabia": "السعوديه العربيه", "saudi": "السعوديه", "emirates": "الامارات", "uae": "الامارات",
    "bahrain": "البحرين", "yemen": "اليمن", "sudan": "السودان", "lebanon": "لبنان", "kuwait": "الكويت",
    "britain": "بريطانيا البريطاني البريطانيه", "british": "بريطانيا البريطاني البريطانيه",
    "uk": "بريطانيا المتحده", "england": "انجلترا انكلترا", "russia": "روسيا الروسي الروسيه",
    "russian": "روسيا الروسي الروسيه", "turkey": "تركيا التركي التركيه", "turkish": "تركيا التركي التركيه",
    "syria": "سوريا السوري السوريه", "syrian": "سوريا السوري السوريه", "iraq": "العراق",
    "iraqi": "العراق", "iran": "ايران", "iranian": "ايران", "palestine": "فلسطين", "palestinian": "فلسطين",
    "israel": "اسرايل", "israeli": "اسرايل", "ottoman": "العثمانيه العثماني العثمانيين",
    "ottomans": "العثمانيه العثماني العثمانيين", "europe": "اوروبا الاوروبي", "european": "اوروبا الاوروبي",
    "africa": "افريقيا الافريقي", "african": "افريقيا الافريقي", "asia": "اسيا الاسيوي الاسيويه",
    "asian": "اسيا الاسيويه", "islam": "الاسلام", "quran": "القران", "koran": "القران",
    "kremlin": "الكرملين", "pentagon": "البنتاغون", "white": "الابيض", "house": "البيت",
    "west": "الغرب", "middle": "الاوسط", "mecca": "مكه", "medina": "المدينه", "jerusalem": "القدس",
    "cairo": "القاهره", "damascus": "دمشق", "baghdad": "بغداد", "beirut": "بيروت", "riyadh": "الرياض",
}  # fmt: skip
_LATIN_NAME = re.compile(r"\b[A-Z][A-Za-z'’-]*[A-Za-z]")
# Consonant classes that Arabic and English spellings of one name share. Vowels,
# h, w, y and the Arabic long vowels, hamza and ain are left out: transliterations
# differ most there.
_ARABIC_CLASS = {
    "ب": "B", "پ": "B", "ت": "T", "ث": "T", "ط": "T", "د": "D", "ذ": "D", "ض": "D", "ظ": "D",
    "ج": "G", "غ": "G", "ك": "K", "ق": "K", "خ": "K", "س": "S", "ص": "S", "ز": "S", "ش": "X",
    "ر": "R", "ل": "L", "م": "M", "ن": "N", "ف": "F", "ڤ": "F",
}  # fmt: skip
_LATIN_RULES = (
    ("sch", "X"), ("sh", "X"), ("ch", "X"), ("th", "T"), ("ph", "F"), ("kh", "K"), ("gh", "G"),
    ("dh", "D"), ("ck", "K"), ("qu", "K"), ("ng", "N"), ("x", "KS"), ("b", "B"), ("p", "B"),
    ("t", "T"), ("d", "D"), ("j", "G"), ("g", "G"), ("k", "K"), ("q", "K"), ("c", "K"), ("s", "S"),
    ("z", "S"), ("r", "R"), ("l", "L"), ("m", "M"), ("n", "N"), ("f", "F"), ("v", "F"),
)  # fmt: skip
# Classes one spelling may use where the other uses the neighbour (Palestine/فلسطين,
# Bashar/بشار, George's g as ج, Osman/عثمان).
_ALIKE = frozenset({("B", "F"), ("K", "G"), ("S", "X"), ("T", "D"), ("S", "T")})
MIN_NAME_CLASSES = 2
# Two skeletons spell one name when their common subsequence covers this share of the longer.
MIN_NAME_OVERLAP = 0.6


def unsupported_names(claim: str, cited: str) -> list[str]:
    """The names in an English ``claim`` that the cited text does not write, in
    either script: a name matches a word of the cited text with the same consonants
    (Cameron/كاميرون, Sarajevo/سراييفو), or a known exonym (Egypt/مصر)."""
    cited_words = set(_WORDS.findall(normalize(cited)))
    cited_forms = {form for word in cited_words for form in stems(word)} | cited_words
    skeletons = {
        _arabic_skeleton(form) for word in cited_words if not word.isascii() for form in _name_forms(word)
    }
    skeletons |= {_latin_skeleton(word) for word in cited_words if word.isascii()}
    skeletons = {skeleton for skeleton in skeletons if len(skeleton) >= MIN_NAME_CLASSES}
    missing = []
    for name in _latin_names(claim):
        folded = name.casefold()
        if folded in cited_words or any(word in cited_forms for word in _EXONYMS.get(folded, "").split()):
            continue
        skeleton = _latin_skeleton(folded)
        if len(skeleton) < MIN_NAME_CLASSES:
            continue  # too short to tell (Al, IS)
        if not any(_skeletons_match(skeleton, other) for other in skeletons):
            missing.append(name)
    return missing


def _name_forms(word: str) -> set[str]:
    """An Arabic word as a name may be written: itself, without its article, or without
    a glued و ف ب ل (not ك, a rare clitic that would turn كاميرون into اميرون, Macron)."""
    forms = {word}
    stemmed = stems(word)
    if len(stemmed) == 1:
        forms.add(stemmed[0])
    elif word[0] in "وفبل":
        forms.add(word[1:])
    return forms


def _latin_names(claim: str) -> list[str]:
    names = []
    for match in _LATIN_NAME.finditer(claim):
        word = re.sub(r"['’]s$", "", match.group())
        folded = word.casefold()
        if folded not in _NOT_NAMES and folded not in _EN_NUMBERS and folded not in _EN_ORDINALS:
            names.append(word)
    return names


def _latin_skeleton(word: str) -> str:
    word = re.sub(r"['’-]", "", word)
    classes = []
    position = 0
    while position < len(word):
        for pattern, value in _LATIN_RULES:
            if word.startswith(pattern, position):
                classes.append(value)
                position += len(pattern)
                break
        else:
            position += 1
    return _collapse("".join(classes))


def _arabic_skeleton(word: str) -> str:
    return _collapse("".join(_ARABIC_CLASS.get(char, "") for char in word))


def _collapse(skeleton: str) -> str:
    """Doubled consonants are one (Mohammed/محمد, Hassan/حسن)."""
    return re.sub(r"(.)\1+", r"\1", skeleton)


def _skeletons_match(name: str, other: str) -> bool:
    """Whether two skeletons spell one name: they start alike, and their longest
    common subsequence covers MIN_NAME_OVERLAP of the longer one (classes in _ALIKE
    count as equal)."""
    longest = max(len(name), len(other))
    if not _alike(name[0], other[0]) or min(len(name), len(other)) / longest < MIN_NAME_OVERLAP:
        return False
    table = [[0] * (len(other) + 1) for _ in range(len(name) + 1)]
    for i, a in enumerate(name, start=1):
        for j, b in enumerate(other, start=1):
            same = _alike(a, b)
            table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1] / longest >= MIN_NAME_OVERLAP


def _alike(a: str, b: str) -> bool:
    return a == b or (a, b) in _ALIKE or (b, a) in _ALIKE
