"""Passages -> an answer made of quoted sentences, each one a citation. No HTTP.

The answer is extractive: it is the best-scoring sentence of the retrieved
passages (plus its neighbour when that sentence alone is a fragment), so every
word of it is a quote whose offsets point into the article.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.config import AnswerSettings
from qa.index import Index, StoredSentence
from qa.records import Answer, Citation, Passage, SentenceKind
from qa.retrieve import Retrieval

# How many of the top passages are searched for the answer sentence.
ANSWER_PASSAGES = 3
# A sentence's score is its own similarity to the question, plus this share of its
# passage's score: the passage (with its heading and title as context) tells which
# part of the archive is about the question, the sentence says which words answer it.
PASSAGE_WEIGHT = 0.5
# Below this many characters a sentence is taken to be a fragment and its next
# sentence is added to the answer.
MIN_ANSWER_CHARS = 40

NO_ANSWER = "The sources do not answer this question."


@dataclass(frozen=True)
class _Candidate:
    passage: Passage
    stored: StoredSentence
    score: float


class Answerer:
    def __init__(self, index: Index, settings: AnswerSettings) -> None:
        self.index = index
        self.settings = settings

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        candidates = self._candidates(retrieval)
        if not candidates:
            return Answer(question, NO_ANSWER, False, (), retrieval.passages)
        best = max(candidates, key=lambda c: c.score)
        chosen = [best]
        following = [
            c
            for c in candidates
            if c.passage is best.passage and c.stored.sentence_id == best.stored.sentence_id + 1
        ]
        if (
            self.settings.max_sentences > 1
            and following
            and best.stored.sentence.end - best.stored.sentence.start < MIN_ANSWER_CHARS
        ):
            chosen.append(following[0])
        citations = tuple(self._cite(n, c) for n, c in enumerate(chosen, start=1))
        text = " ".join(c.quote for c in citations)
        return Answer(question, text, True, citations, retrieval.passages)

    def _candidates(self, retrieval: Retrieval) -> list[_Candidate]:
        candidates: list[_Candidate] = []
        seen: set[int] = set()
        for passage in retrieval.passages[:ANSWER_PASSAGES]:
            stored = self.index.sentences_in(passage.doc_id, passage.start, passage.end)
            if not stored:
                continue
            vectors = self.index.sentence_vectors[[s.sentence_id for s in stored]]
            similarity = [float(s) for s in vectors @ retrieval.query_vector]
            for position, item in enumerate(stored):
                if item.sentence.kind is SentenceKind.HEADING or item.sentence_id in seen:
                    continue
                seen.add(item.sentence_id)
                score = similarity[position]
                # A heading is never an answer, but it says what the sentence right
                # under it (a news section's lead) is about: that sentence is as
                # relevant as its heading.
                if position > 0 and stored[position - 1].sentence.kind is SentenceKind.HEADING:
                    score = max(score, similarity[position - 1])
                candidates.append(_Candidate(passage, item, score + PASSAGE_WEIGHT * passage.score))
        return candidates

    def _cite(self, n: int, candidate: _Candidate) -> Citation:
        sentence = candidate.stored.sentence
        passage = candidate.passage
        offset = sentence.start - passage.start
        quote = passage.text[offset : offset + sentence.end - sentence.start]
        return Citation(
            n=n,
            doc_id=passage.doc_id,
            title=passage.title,
            start=sentence.start,
            end=sentence.end,
            quote=quote,
            score=round(candidate.score, 4),
        )
