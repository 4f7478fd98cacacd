"""Passages -> an answer made of quoted sentences, each one a citation. No HTTP.

The answer is extractive: the best-scoring sentence of the top passages, plus
its neighbour when that completes it, so every word of the answer is a quote
whose offsets point into the article. A sentence's score (weights tuned on the
ARCD dev set, README "Answer quality"):

    dense(sentence) + (score(its passage) - score(top passage))
                    + ANSWER_TYPE_BONUS if a "when" question meets a date or a
                      "how many" question a number

Whether to answer at all is the answerability model's call (``qa.answer.confidence``):
its confidence that the answer is right, from the scores of the passages and the
sentence, the question's words met, the numbers it names and its language; below
``answer.min_confidence`` the answer says the sources do not answer.

The passage term keeps the answer in the passages retrieval trusts most, which
already weigh the question's words met in one sentence (``qa.search.retrieve``); a
sentence-level BM25 term on top of it measured no better on the dev set.
A heading is never an answer, but it says what the sentence right under it (a
news section's lead) is about, so that sentence is as relevant as its heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.answer.confidence import AnswerabilityModel, Signals
from qa.config import AnswerSettings
from qa.records import Answer, Citation, Passage, SentenceKind
from qa.search.retrieve import Retrieval
from qa.store.index import Index, StoredSentence
from qa.text.normalize import normalize, tokens

# How many of the top passages are searched for the answer sentence.
ANSWER_PASSAGES = 3
ANSWER_TYPE_BONUS = 0.02
# A neighbour joins the answer when the best sentence is shorter than this (a
# fragment), or when it scores within NEIGHBOUR_MARGIN of the best: two sentences
# that match the question almost equally often share the answer between them.
MIN_ANSWER_CHARS = 40
NEIGHBOUR_MARGIN = 0.03

# Question openings (after normalization) that ask for a date or for a number.
_ASKS_WHEN = re.compile(r"^(متي|في اي (عام|سنه|يوم|شهر)|when\b|(in )?what year|in which year|on what date)")
_ASKS_NUMBER = re.compile(r"^(كم|how (many|much|long|old))\b")
_MONTHS = (
    "يناير|فبراير|مارس|ابريل|مايو|يونيو|يوليو|اغسطس|سبتمبر|اكتوبر|نوفمبر|ديسمبر"
    "|كانون|شباط|اذار|نيسان|ايار|حزيران|تموز|اب|ايلول|تشرين"
)
_DATE = re.compile(rf"\d{{3,4}}|\b({_MONTHS})\b")
_NUMBER = re.compile(r"\d")

# Numbers of three digits or more in a question (years, counts), after normalization
# (Arabic-Indic digits are folded to ASCII ones).
_QUESTION_NUMBER = re.compile(r"\d{3,}")

NO_ANSWER = "The sources do not answer this question."
NO_ANSWER_AR = "لا تجيب المصادر المتاحة عن هذا السؤال."
_ARABIC_LETTER = re.compile(r"[\u0621-\u064A]")


@dataclass(frozen=True)
class _Candidate:
    passage: Passage
    stored: StoredSentence
    score: float


class Answerer:
    def __init__(self, index: Index, settings: AnswerSettings, model: AnswerabilityModel) -> None:
        self.index = index
        self.settings = settings
        self.model = model

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        candidates = self._candidates(question, retrieval)
        confidence = self._confidence(question, retrieval, candidates)
        if not candidates or confidence < self.settings.min_confidence:
            return Answer(question, refusal(question), False, (), retrieval.passages, confidence=confidence)
        best = max(candidates.values(), key=lambda c: c.score)
        chosen = [best]
        if self.settings.max_sentences > 1:
            neighbour = self._completing_neighbour(best, candidates)
            if neighbour is not None:
                chosen = sorted([best, neighbour], key=lambda c: c.stored.sentence_id)
        citations = tuple(self._cite(n, c) for n, c in enumerate(chosen, start=1))
        text = " ".join(c.quote for c in citations)
        return Answer(question, text, True, citations, retrieval.passages, confidence=confidence)

    def confidence(self, question: str, retrieval: Retrieval) -> float:
        """How likely the answer to ``question`` from these passages is right, in [0, 1]."""
        return self._confidence(question, retrieval, self._candidates(question, retrieval))

    def signals(self, question: str, retrieval: Retrieval) -> Signals | None:
        """What the confidence is computed from; None without any sentence to answer with."""
        return self._signals(question, retrieval, self._candidates(question, retrieval))

    def _confidence(self, question: str, retrieval: Retrieval, candidates: dict[int, _Candidate]) -> float:
        signals = self._signals(question, retrieval, candidates)
        return 0.0 if signals is None else round(self.model.confidence(signals), 4)

    def _signals(
        self, question: str, retrieval: Retrieval, candidates: dict[int, _Candidate]
    ) -> Signals | None:
        passages = retrieval.passages
        if not candidates:
            return None
        best = max(candidates.values(), key=lambda c: c.score)
        quote = _quote(best.passage, best.stored)
        # A question that names a number (a year, a count) is rarely answered by
        # passages that never write it, however close in meaning: "who won the 2019
        # cup" over an article about the 2015 one.
        numbers = set(_QUESTION_NUMBER.findall(normalize(question)))
        evidence = normalize(" ".join(p.text for p in passages[:ANSWER_PASSAGES]))
        wanted = _answer_type(question)
        asked = set(tokens(question))
        return Signals(
            top_score=passages[0].score,
            sentence_score=best.score,
            sentence_similarity=retrieval.sentence_similarity[best.stored.sentence_id],
            coverage=retrieval.coverage,
            sentence_overlap=len(asked & set(tokens(quote))) / len(asked) if asked else 0.0,
            has_number=float(bool(numbers)),
            number_missing=float(any(number not in evidence for number in numbers)),
            type_unmet=float(wanted is not None and not wanted.search(normalize(quote))),
            cross_language=float(asks_in_arabic(question) != asks_in_arabic(passages[0].text)),
        )

    def _candidates(self, question: str, retrieval: Retrieval) -> dict[int, _Candidate]:
        passages = retrieval.passages[:ANSWER_PASSAGES]
        if not passages:
            return {}
        wanted = _answer_type(question)
        candidates: dict[int, _Candidate] = {}
        for passage in passages:
            first, stop = self.index.sentence_range(passage.chunk_id)
            stored = self.index.sentences(first, stop)
            similarity = [retrieval.sentence_similarity[s.sentence_id] for s in stored]
            for position, item in enumerate(stored):
                if item.sentence.kind is SentenceKind.HEADING or item.sentence_id in candidates:
                    continue
                score = similarity[position]
                if position > 0 and stored[position - 1].sentence.kind is SentenceKind.HEADING:
                    score = max(score, similarity[position - 1])
                score += passage.score - passages[0].score
                if wanted is not None and wanted.search(normalize(_quote(passage, item))):
                    score += ANSWER_TYPE_BONUS
                candidates[item.sentence_id] = _Candidate(passage, item, score)
        return candidates

    def _completing_neighbour(self, best: _Candidate, candidates: dict[int, _Candidate]) -> _Candidate | None:
        """The sentence before or after ``best`` that completes it, if any."""
        neighbours = [
            candidates[i]
            for i in (best.stored.sentence_id - 1, best.stored.sentence_id + 1)
            if i in candidates and candidates[i].passage.doc_id == best.passage.doc_id
        ]
        if not neighbours:
            return None
        sentence = best.stored.sentence
        if sentence.end - sentence.start < MIN_ANSWER_CHARS:
            following = [c for c in neighbours if c.stored.sentence_id > best.stored.sentence_id]
            return following[0] if following else None
        runner_up = max(neighbours, key=lambda c: c.score)
        return runner_up if runner_up.score >= best.score - NEIGHBOUR_MARGIN else None

    def _cite(self, n: int, candidate: _Candidate) -> Citation:
        sentence = candidate.stored.sentence
        passage = candidate.passage
        return Citation(
            n=n,
            doc_id=passage.doc_id,
            title=passage.title,
            start=sentence.start,
            end=sentence.end,
            quote=_quote(passage, candidate.stored),
            score=round(candidate.score, 4),
        )


def asks_in_arabic(question: str) -> bool:
    return bool(_ARABIC_LETTER.search(question))


def refusal(question: str) -> str:
    """The answer that says the sources do not answer, in the question's language."""
    return NO_ANSWER_AR if asks_in_arabic(question) else NO_ANSWER


def _answer_type(question: str) -> re.Pattern[str] | None:
    """What a sentence must hold to answer a question that asks for a date or a number."""
    opening = normalize(question)
    if _ASKS_WHEN.match(opening):
        return _DATE
    if _ASKS_NUMBER.match(opening):
        return _NUMBER
    return None


def _quote(passage: Passage, stored: StoredSentence) -> str:
    """The sentence's exact text, cut from its passage (itself a slice of the article)."""
    return passage.text[stored.sentence.start - passage.start : stored.sentence.end - passage.start]
