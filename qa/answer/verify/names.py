"""The names in an English claim that its cited text does not write, in either script.

A name (a capitalized word that is not a sentence opening, a month, a title ...)
matches a word of the cited text with the same consonants (Cameron/كاميرون,
Sarajevo/سراييفو), or a known exonym (Egypt/مصر).
"""

from __future__ import annotations

import re

from qa.answer.verify.numbers import WORDS, is_english_number_word
from qa.text.normalize import normalize
from qa.text.tokens import stems

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
    cited_words = set(WORDS.findall(normalize(cited)))
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
        if folded not in _NOT_NAMES and not is_english_number_word(folded):
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
