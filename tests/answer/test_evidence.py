"""The walk over the sentences of retrieved passages that answers may cite."""

from __future__ import annotations

import numpy as np

from qa.answer.evidence import citable_sentences
from qa.records import Passage, PassageSentence, SentenceKind

ARTICLE = "Summit\nLeaders met in Antalya. They spoke of Syria. Talks ended."
VECTOR = np.zeros(4, np.float32)


def sentence(sentence_id: int, text: str, kind: SentenceKind = SentenceKind.SENTENCE) -> PassageSentence:
    start = ARTICLE.index(text)
    return PassageSentence(sentence_id, start, start + len(text), kind, 0.1 * sentence_id, VECTOR)


HEADING = sentence(0, "Summit", SentenceKind.HEADING)
MET = sentence(1, "Leaders met in Antalya.")
SPOKE = sentence(2, "They spoke of Syria.")
ENDED = sentence(3, "Talks ended.")


def passage(chunk_id: int, sentences: tuple[PassageSentence, ...], score: float) -> Passage:
    start, end = sentences[0].start, sentences[-1].end
    return Passage(chunk_id, "doc", "Title", start, end, ARTICLE[start:end], score, None, sentences)


def test_headings_are_never_cited_but_go_with_the_sentence_under_them() -> None:
    (met, spoke) = citable_sentences([passage(0, (HEADING, MET, SPOKE), 1.0)])
    assert (met.text, met.heading) == ("Leaders met in Antalya.", HEADING)
    assert (spoke.text, spoke.heading) == ("They spoke of Syria.", None)


def test_a_sentence_two_passages_share_comes_once_with_the_better_passage() -> None:
    best, overlapping = passage(7, (SPOKE, ENDED), 2.0), passage(6, (HEADING, MET, SPOKE), 1.0)
    walked = [(c.passage.chunk_id, c.sentence_id, c.text) for c in citable_sentences([best, overlapping])]
    assert walked == [
        (7, 2, "They spoke of Syria."),
        (7, 3, "Talks ended."),
        (6, 1, "Leaders met in Antalya."),
    ]
