"""Arabic-aware sentence splitting that keeps character offsets. Pure ``str`` functions.

A sentence ends at ``. ! ? ؟ ؛ …`` (with any closing quotes or brackets) followed by
white space, and at every line break. A short line with no end punctuation is a
heading. A sentence longer than ``max_chars`` is cut at the last comma (``،`` ``,``)
or semicolon that keeps it under the limit, else at white space, so that no
sentence outgrows the embedder's window.
"""

from __future__ import annotations

import re

from qa.records import Sentence, SentenceKind

MAX_SENTENCE_CHARS = 600
MAX_HEADING_CHARS = 80

_SENTENCE_END = re.compile(r"[.!?؟؛…]+[\"'»”’)\]]*(?=\s|$)")
_END_PUNCTUATION = frozenset(".!?؟؛…:،,;")
_CLOSERS = "\"'»”’)]"
_SOFT_BREAK = re.compile(r"[،,;؛:]\s+")
_LINE = re.compile(r"[^\n]+")


def split_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[Sentence]:
    """Split ``text`` into sentences and headings; ``text[s.start:s.end]`` is each one, stripped."""
    sentences: list[Sentence] = []
    paragraph = -1
    for line in _LINE.finditer(text):
        start, end = _strip(text, line.start(), line.end())
        if start == end:
            continue
        paragraph += 1
        if _is_heading(text[start:end]):
            sentences.append(Sentence(start, end, SentenceKind.HEADING, paragraph))
            continue
        piece_start = start
        for match in _SENTENCE_END.finditer(text, start, end):
            sentences.extend(_bounded(text, piece_start, match.end(), paragraph, max_chars))
            piece_start = match.end()
        if piece_start < end:
            sentences.extend(_bounded(text, piece_start, end, paragraph, max_chars))
    return sentences


def _is_heading(line: str) -> bool:
    return len(line) <= MAX_HEADING_CHARS and line.rstrip(_CLOSERS)[-1:] not in _END_PUNCTUATION


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _bounded(text: str, start: int, end: int, paragraph: int, max_chars: int) -> list[Sentence]:
    """The stripped range as sentences of at most ``max_chars`` characters each."""
    start, end = _strip(text, start, end)
    pieces: list[Sentence] = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = -1
        for match in _SOFT_BREAK.finditer(text, start + max_chars // 4, limit):
            cut = match.end()
        if cut < 0:
            cut = text.rfind(" ", start + 1, limit) + 1 or limit
        piece_start, piece_end = _strip(text, start, cut)
        pieces.append(Sentence(piece_start, piece_end, SentenceKind.SENTENCE, paragraph))
        start, end = _strip(text, cut, end)
    if start < end:
        pieces.append(Sentence(start, end, SentenceKind.SENTENCE, paragraph))
    return pieces
