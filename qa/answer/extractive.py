"""Passages -> an answer made of quoted sentences, each one a citation. No HTTP.

The answer is extractive: the best-scoring sentence of the top passages, plus
its neighbour when that completes it, so every word of the answer is a quote
whose offsets point into the article. A sentence's score (weights tuned on the
ARCD dev set, docs/quality.md):

    dense(sentence) + (score(its passage) - score(top passage))
                    + ANSWER_TYPE_BONUS if a "when" question meets a date or a
                      "how many" question a number

Whether to answer at all is the answerability model's call (``qa.answer.confidence``):
its confidence that the answer is right, from the scores of the passages and the
sentence, the question's words met, the numbers it names and its language. At
``answer.min_confidence`` or above the outcome is ``answered``; down to
``answer.related_min_confidence`` it is ``related`` (the passages are shown as the
closest the archive has, the best sentence is not presented as the answer); below,
``not_found``, and the answer says the sources do not answer.

The passage term keeps the answer in the passages retrieval trusts most, which
already weigh the question's words met in one sentence (``qa.search.fusion``); a
sentence-level BM25 term on top of it measured no better on the dev set.
A heading is never an answer, but it says what the sentence right under it (a
news section's lead) is about, so that sentence is as relevant as its heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.answer.confidence import AnswerabilityModel, Signals
from qa.answer.evidence import CitableSentence, citable_sentences
from qa.answer.slots import asked_slot, entities_missing, slot_filled, warm_slots
from qa.config import AnswerSettings
from qa.records import Answer, Citation, Outcome
from qa.search.retrieve import Retrieval
from qa.text.language import has_arabic_letter
from qa.text.normalize import normalize
from qa.text.tokens import tokens

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
RELATED = "The archive may not answer this directly. The closest passages:"
RELATED_AR = "قد لا يجيب الأرشيف عن هذا مباشرة. أقرب المقاطع:"


@dataclass(frozen=True)
class _Candidate:
    citable: CitableSentence
    score: float

    @property
    def sentence_id(self) -> int:
        return self.citable.sentence_id

    @property
    def doc_id(self) -> str:
        return self.citable.passage.doc_id


class ExtractiveAnswerer:
    """Answers with quoted sentences of the retrieved passages (see the module)."""

    def __init__(self, settings: AnswerSettings, model: AnswerabilityModel) -> None:
        self.settings = settings
        self.model = model
        # The name and place dictionaries of the slot signals, read now (about a second,
        # once a process) rather than by the first question.
        warm_slots()

    def answer(self, question: str, retrieval: Retrieval) -> Answer:
        candidates = self._candidates(question, retrieval)
        confidence = self._confidence(question, retrieval, candidates)
        if not candidates or confidence < self.settings.related_min_confidence:
            return Answer(question, refusal(question), False, (), retrieval.passages, confidence=confidence)
        if confidence < self.settings.min_confidence:
            return Answer(question, related(question), False, (), retrieval.passages,
                          confidence=confidence, outcome=Outcome.RELATED)  # fmt: skip
        best = max(candidates.values(), key=lambda c: c.score)
        chosen = [best]
        if self.settings.max_sentences > 1:
            neighbour = self._completing_neighbour(best, candidates)
            if neighbour is not None:
                chosen = sorted([best, neighbour], key=lambda c: c.sentence_id)
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
        quote = best.citable.text
        # A question that names a number (a year, a count) is rarely answered by
        # passages that never write it, however close in meaning: "who won the 2019
        # cup" over an article about the 2015 one.
        numbers = set(_QUESTION_NUMBER.findall(normalize(question)))
        evidence = normalize(" ".join(p.text for p in passages[:ANSWER_PASSAGES]))
        slot = asked_slot(question)
        asked = set(tokens(question))
        article = " ".join(p.text for p in passages if p.doc_id == best.doc_id)
        return Signals(
            top_score=passages[0].score,
            sentence_score=best.score,
            sentence_similarity=best.citable.sentence.similarity,
            coverage=retrieval.coverage,
            sentence_overlap=len(asked & set(tokens(quote))) / len(asked) if asked else 0.0,
            has_number=float(bool(numbers)),
            number_missing=float(any(number not in evidence for number in numbers)),
            slot_asked=float(slot is not None),
            slot_unmet=float(slot is not None and not slot_filled(slot, question, quote)),
            entities_missing=entities_missing(question, article),
            cross_language=float(has_arabic_letter(question) != has_arabic_letter(passages[0].text)),
        )

    def _candidates(self, question: str, retrieval: Retrieval) -> dict[int, _Candidate]:
        passages = retrieval.passages[:ANSWER_PASSAGES]
        if not passages:
            return {}
        wanted = _answer_type(question)
        candidates: dict[int, _Candidate] = {}
        for citable in citable_sentences(passages):
            score = citable.sentence.similarity
            if citable.heading is not None:
                score = max(score, citable.heading.similarity)
            score += citable.passage.score - passages[0].score
            if wanted is not None and wanted.search(normalize(citable.text)):
                score += ANSWER_TYPE_BONUS
            candidates[citable.sentence_id] = _Candidate(citable, score)
        return candidates

    def _completing_neighbour(self, best: _Candidate, candidates: dict[int, _Candidate]) -> _Candidate | None:
        """The sentence before or after ``best`` that completes it, if any."""
        neighbours = [
            candidates[i]
            for i in (best.sentence_id - 1, best.sentence_id + 1)
            if i in candidates and candidates[i].doc_id == best.doc_id
        ]
        if not neighbours:
            return None
        sentence = best.citable.sentence
        if sentence.end - sentence.start < MIN_ANSWER_CHARS:
            following = [c for c in neighbours if c.sentence_id > best.sentence_id]
            return following[0] if following else None
        runner_up = max(neighbours, key=lambda c: c.score)
        return runner_up if runner_up.score >= best.score - NEIGHBOUR_MARGIN else None

    def _cite(self, n: int, candidate: _Candidate) -> Citation:
        sentence = candidate.citable.sentence
        passage = candidate.citable.passage
        return Citation(
            n=n,
            doc_id=passage.doc_id,
            title=passage.title,
            start=sentence.start,
            end=sentence.end,
            quote=candidate.citable.text,
            score=round(candidate.score, 4),
            also_in=passage.also_in,
        )


def refusal(question: str) -> str:
    """The answer that says the sources do not answer, in the question's language."""
    return NO_ANSWER_AR if has_arabic_letter(question) else NO_ANSWER


def related(question: str) -> str:
    """What a ``related`` answer says before its passages, in the question's language."""
    return RELATED_AR if has_arabic_letter(question) else RELATED


def _answer_type(question: str) -> re.Pattern[str] | None:
    """What a sentence must hold to answer a question that asks for a date or a number."""
    opening = normalize(question)
    if _ASKS_WHEN.match(opening):
        return _DATE
    if _ASKS_NUMBER.match(opening):
        return _NUMBER
    return None
