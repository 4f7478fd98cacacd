"""The sentences of retrieved passages that an answer may cite: the one walk over them.

Both answer modes cite sentences of the passages retrieval returned, never a heading,
each sentence once even where chunks overlap, and cut its text from its passage (itself
a slice of the article, so a quote's offsets point into the article). Extractive
answers score these sentences; generated answers number them as the model's evidence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qa.records import Passage, PassageSentence, SentenceKind


@dataclass(frozen=True)
class CitableSentence:
    """A sentence of a passage that an answer may cite, with its exact text."""

    passage: Passage
    sentence: PassageSentence
    text: str
    # The heading right above it in its passage, if any: it says what the sentence is
    # about (a news section's lead sits under its heading).
    heading: PassageSentence | None

    @property
    def sentence_id(self) -> int:
        return self.sentence.sentence_id


def citable_sentences(passages: Sequence[Passage]) -> Iterator[CitableSentence]:
    """The sentences of ``passages`` other than headings, best passage first and each
    passage's in text order; a sentence two passages share comes with the first."""
    seen: set[int] = set()
    for passage in passages:
        previous: PassageSentence | None = None
        for sentence in passage.sentences:
            if sentence.kind is not SentenceKind.HEADING and sentence.sentence_id not in seen:
                seen.add(sentence.sentence_id)
                heading = previous if previous is not None and previous.kind is SentenceKind.HEADING else None
                yield CitableSentence(passage, sentence, _quote(passage, sentence), heading)
            previous = sentence


def _quote(passage: Passage, sentence: PassageSentence) -> str:
    """The sentence's exact text, cut from its passage."""
    return passage.text[sentence.start - passage.start : sentence.end - passage.start]
