"""Word tokens for lexical matching (BM25, the extractive answerer's overlap, the
verifier's words): normalized words, lightly stemmed. Pure ``str`` functions."""

from __future__ import annotations

import re

from qa.text.normalize import normalize

# Runs of digits and runs of letters: "2015م" is the number 2015 and a letter.
_WORD = re.compile(r"\d+|[^\W\d_]+")
# Light stemming: a conjunction or preposition glued to the word, then the article.
_CLITICS = "وفبلك"
_ARTICLE = "ال"
MIN_STEM = 2


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
