"""Clauses of a text, and whether a claim quotes whole clauses of a span.

A clause is a part of a text between clause punctuation (, ; : — – ، ؛ brackets,
quotation marks, sentence ends) or before a word that opens a clause (but, however,
لكن, بل, بينما, غير أن, إلا أن). The negation check reads negations clause by clause,
and a word-for-word quote passes without an embedding only when it is whole clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.text.normalize import normalize


def word_set(text: str) -> frozenset[str]:
    """The normalized words of a list written one word after another."""
    return frozenset(normalize(word) for word in text.split())


# Diacritics and tatweel may sit inside an Arabic word; normalize() drops them.
_MARKS = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640"
# A word as written (an English "'s" or "n't" kept on it), a number, or punctuation that
# ends a clause.
_TOKEN = re.compile(
    rf"(?P<word>(?:[^\W\d_]|[{_MARKS}])+(?:['’](?:[^\W\d_])+)?)"
    r"|(?P<number>\d+(?:[.,٫٬،]\d+)*)"
    r"|(?P<mark>[,;:()\[\]{}«»\"“”‘’،؛—–!?؟…]|\.+|(?<!\w)['-](?!\w))"
)
# Words that open a clause of their own: what follows "but" is not said by what precedes it.
_CLAUSE_OPENERS = word_set("""but however whereas although though لكن لكنه لكنها لكنهم لكنهما ولكن ولكنه
    ولكنها ولكنهم بل وبل بينما وبينما""")
# غير أن, إلا أن: "however". (غير alone negates: غير ساحلي, landlocked.)
THAT = word_set("أن أنه أنها أنهم أنهما")
_OPENER_BEFORE_THAT = word_set("غير وغير إلا")
# Conjunctions a quote may leave off the start of a clause.
_LEADING_CONJUNCTIONS = word_set("and but so yet however و ف لكن ولكن بل ثم")


@dataclass(frozen=True)
class Token:
    """A word or number of a text: as written, normalized, and where it is."""

    text: str
    norm: str
    start: int
    end: int


def split_clauses(text: str) -> list[list[Token]]:
    """The words of ``text`` by clause: split at clause punctuation (, ; : — ، ؛ quotes,
    brackets, sentence ends) and before a word that opens a clause (but, لكن, بل, بينما,
    غير أن, إلا أن)."""
    tokens: list[Token | None] = []
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "mark":
            tokens.append(None)
        else:
            tokens.append(Token(match.group(), normalize(match.group()), match.start(), match.end()))
    clauses: list[list[Token]] = [[]]
    for position, token in enumerate(tokens):
        if token is None:
            clauses.append([])
            continue
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        if token.norm in _CLAUSE_OPENERS or (
            token.norm in _OPENER_BEFORE_THAT and following is not None and following.norm in THAT
        ):
            clauses.append([])
        clauses[-1].append(token)
    return [clause for clause in clauses if clause]


def quotes(claim: str, span: str) -> bool:
    """Whether ``claim`` is word for word (normalized, punctuation aside) one or more whole
    clauses of ``span`` in a row, or all of it.

    A part of a clause is no quote: "the minister resigned on Monday" is in "Officials
    denied reports that the minister resigned on Monday" and says the opposite. The
    first word may lose a glued و or ف, and a clause its opening "and"/"but"/لكن.
    """
    words = [token.norm for clause in split_clauses(claim) for token in clause]
    if not words:
        return False
    clauses = [[token.norm for token in clause] for clause in split_clauses(span)]
    for first, clause in enumerate(clauses):
        for start in _clause_starts(clause):
            run = list(start)
            following = first + 1
            while len(run) < len(words) and following < len(clauses):
                run += clauses[following]
                following += 1
            if len(run) == len(words) and _same_words(words, run):
                return True
    return False


def _clause_starts(clause: list[str]) -> list[list[str]]:
    """A clause as a quote may begin it: whole, or without its opening conjunctions."""
    starts = [clause]
    while clause and clause[0] in _LEADING_CONJUNCTIONS:
        clause = clause[1:]
        starts.append(clause)
    return [start for start in starts if start]


def _same_words(claim: list[str], span: list[str]) -> bool:
    first, other = claim[0], span[0]
    same_first = first == other or (other[:1] in ("و", "ف") and other[1:] == first)
    return same_first and claim[1:] == span[1:]
