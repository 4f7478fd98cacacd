"""A model's answer -> its sentences, each with the evidence numbers it cites.

An answer sentence ends at . ! ? ؟ … and the citation markers after it (``[2][5]``,
``[3, 5]``, ``[٣]``); a streamed answer is split as it grows, its last piece held back
until more comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.text.normalize import normalize

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
