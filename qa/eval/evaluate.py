"""``qa eval``: score the answering path on a question set with gold spans.

Offline tooling like the reindex pipeline: it may build an index, and it is never
imported by the service. Every question goes through :meth:`QAService.ask`, the
code path behind ``POST /api/ask``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from qa.answer.extractive import ExtractiveAnswerer
from qa.answer.verify.sentences import split_answer
from qa.errors import SourceError
from qa.records import Answer, AnswerMode, Filters, Outcome
from qa.serve.service import QAService
from qa.text.language import has_arabic_letter
from qa.text.normalize import normalize

ANSWERABLE = "answerable"
# The kinds of questions the corpus does not answer (tests/data/README.md); a file
# that does not say is "unanswerable".
UNANSWERABLE_KINDS = ("general", "near_miss", "changed_detail", "unanswerable")


@dataclass(frozen=True)
class EvalQuestion:
    """A question, answerable (with its gold span) or of a kind the corpus does not answer."""

    qid: str
    question: str
    # "ar" or "en": the language the question is asked in.
    lang: str = "ar"
    kind: str = ANSWERABLE
    # The article that answers it, or that an unanswerable question is about.
    doc_id: str | None = None
    answer_start: int = 0
    answer_end: int = 0
    answer: str = ""

    @property
    def answerable(self) -> bool:
        return self.kind == ANSWERABLE


@dataclass(frozen=True)
class Bucket:
    """Questions whose confidence is in [low, high): how many, the share answered
    right, and their mean confidence."""

    low: float
    high: float
    count: int
    right: float
    confidence: float


def calibration(
    confidences: Sequence[float], right: Sequence[bool], buckets: int = 10
) -> tuple[list[Bucket], float]:
    """The reliability table (equal-width buckets of confidence, empty ones left out)
    and the expected calibration error: the mean gap between confidence and the
    share answered right, over buckets weighted by their questions."""
    table: list[Bucket] = []
    error = 0.0
    for n in range(buckets):
        low, high = n / buckets, (n + 1) / buckets
        inside = [i for i, c in enumerate(confidences) if low <= c < high or (n == buckets - 1 and c == 1.0)]
        if not inside:
            continue
        share = sum(right[i] for i in inside) / len(inside)
        mean = sum(confidences[i] for i in inside) / len(inside)
        table.append(Bucket(low, high, len(inside), share, mean))
        error += len(inside) / len(confidences) * abs(share - mean)
    return table, error


@dataclass(frozen=True)
class OutcomeShares:
    """How the questions of one language and kind were answered: the share of each
    outcome, and of the answered ones, the share whose first citation holds the gold
    span (answerable questions only)."""

    lang: str
    kind: str
    questions: int
    answered: float
    related: float
    not_found: float
    answered_precision: float | None


def outcome_table(rows: Sequence[OutcomeShares]) -> str:
    lines = [
        "| language | kind | questions | answered | related | not found | answered precision |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        precision = "-" if r.answered_precision is None else f"{r.answered_precision:.3f}"
        lines.append(f"| {r.lang} | {r.kind} | {r.questions} | {r.answered:.3f} | {r.related:.3f} "
                     f"| {r.not_found:.3f} | {precision} |")  # fmt: skip
    return "\n".join(lines)


def reliability_table(buckets: Sequence[Bucket]) -> str:
    lines = ["| confidence | questions | answered right | mean confidence |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {b.low:.1f}-{b.high:.1f} | {b.count} | {b.right:.3f} | {b.confidence:.3f} |" for b in buckets
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class EvalReport:
    answerable: int
    unanswerable: int
    hit_at_1: float | None
    hit_at_5: float | None
    answer_hit: float | None
    found_when_answerable: float | None
    abstained_when_unanswerable: float | None
    citation_validity: float | None
    median_answer_chars: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    # Found on answerable questions by language; abstained by kind of unanswerable question.
    found_by_language: dict[str, float]
    abstained_by_kind: dict[str, float]
    # How well the confidence of each answer says whether the best answer (the one
    # given at any confidence) is right, and the expected calibration error.
    reliability: list[Bucket]
    calibration_error: float | None
    # Over every question: of the answered answers, the share whose first citation holds
    # the gold span; of the unanswerable questions, the share answered anyway.
    answered_precision: float | None = None
    unanswerable_answered: float | None = None
    # Of the answerable questions, the share answered or shown as related passages.
    shown_when_answerable: float | None = None
    # The outcomes by language and kind of question.
    outcomes: list[OutcomeShares] = dataclasses.field(default_factory=list)
    # Written answers (qa eval --llm) only: the share of answers the model wrote,
    # the share of its sentences removed by verification, the model's own time and
    # ours (prompt and verification), p50.
    written: float | None = None
    sentences_removed: float | None = None
    model_p50_ms: float | None = None
    own_p50_ms: float | None = None

    def rows(self) -> list[tuple[str, str]]:
        def fmt(value: float | None, digits: int = 3) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        return [
            ("answerable questions", str(self.answerable)),
            ("unanswerable questions", str(self.unanswerable)),
            ("retrieval hit@1", fmt(self.hit_at_1)),
            ("retrieval hit@5", fmt(self.hit_at_5)),
            ("answer hit", fmt(self.answer_hit)),
            ("found (answerable)", fmt(self.found_when_answerable)),
            ("abstained (unanswerable)", fmt(self.abstained_when_unanswerable)),
            ("answered precision", fmt(self.answered_precision)),
            ("unanswerable shown as answered", fmt(self.unanswerable_answered)),
            ("answered or related (answerable)", fmt(self.shown_when_answerable)),
            *((f"found (answerable, {lang})", fmt(v)) for lang, v in self.found_by_language.items()),
            *((f"abstained ({kind})", fmt(v)) for kind, v in self.abstained_by_kind.items()),
            ("expected calibration error", fmt(self.calibration_error)),
            ("citation validity", fmt(self.citation_validity)),
            ("median answer chars", fmt(self.median_answer_chars, 0)),
            ("latency p50 ms", fmt(self.latency_p50_ms, 1)),
            ("latency p95 ms", fmt(self.latency_p95_ms, 1)),
        ] + (
            [
                ("written by the model", fmt(self.written)),
                ("sentences removed", fmt(self.sentences_removed)),
                ("model p50 ms", fmt(self.model_p50_ms, 1)),
                ("own p50 ms (prompt, verify)", fmt(self.own_p50_ms, 1)),
            ]
            if self.written is not None
            else []
        )

    def table(self) -> str:
        width = max(len(name) for name, _ in self.rows())
        lines = [f"| {'measure':<{width}} | value |", f"| {'-' * width} | ----- |"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in self.rows()]
        if self.outcomes:
            lines += ["", "Outcomes by language and kind:", "", outcome_table(self.outcomes)]
        if self.reliability:
            lines += ["", "Reliability (confidence of every answer, against answered right):", ""]
            lines.append(reliability_table(self.reliability))
        return "\n".join(lines)


def load_questions(
    path: Path, lang: str, *, limit: int | None = None, texts: Mapping[str, str] | None = None
) -> list[EvalQuestion]:
    """Questions from JSONL: ``question_<lang>`` (or ``question``, in the row's ``lang``)
    and, when answerable, ``doc_id``, ``answer_start``, ``answer_end`` and
    ``answers_<lang>`` or ``answers_ar``; an unanswerable row may say its ``kind`` and
    the ``doc_id`` it is about.

    An answerable row may instead give its ``answer`` and the ``evidence`` sentence it
    is in, exact substrings of the article (the ANT questions): the span is found in
    the article's text, from ``texts`` (doc_id to text)."""
    questions: list[EvalQuestion] = []
    # "all": a row is asked in each language it has a question in.
    langs = ("ar", "en") if lang == "all" else (lang,)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read questions ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            asked = [(code, row[f"question_{code}"]) for code in langs if f"question_{code}" in row]
            if not asked and isinstance(row.get("question"), str):
                asked = [
                    (
                        row.get("lang") or ("ar" if has_arabic_letter(row["question"]) else "en"),
                        row["question"],
                    )
                ]
            if not asked or any(
                not isinstance(text, str) or code not in ("ar", "en") for code, text in asked
            ):
                raise KeyError(f"question_{lang}")
            qid = str(row.get("qid", number))
            if row.get("kind") == ANSWERABLE and "answer_start" not in row:
                row = {**row, **_placed(row, texts)}
            for asked_in, text in asked:
                if "answer_start" in row:
                    answers = row.get("answers_ar") or row.get(f"answers_{asked_in}") or [""]
                    questions.append(
                        EvalQuestion(qid, text, asked_in, ANSWERABLE, str(row["doc_id"]),
                                     int(row["answer_start"]), int(row["answer_end"]), answers[0])
                    )  # fmt: skip
                else:
                    kind = row.get("kind", "unanswerable")
                    if kind not in UNANSWERABLE_KINDS:
                        raise ValueError(f"unknown kind {kind!r}")
                    questions.append(EvalQuestion(qid, text, asked_in, kind, row.get("doc_id")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{path}:{number}: not a question record ({exc})") from exc
        if limit is not None and len(questions) >= limit:
            break
    return questions


def _placed(row: dict[str, object], texts: Mapping[str, str] | None) -> dict[str, object]:
    """``answer_start``, ``answer_end`` and ``answers_ar`` of a row that gives its answer
    and evidence as text: where they are in the article."""
    answer, evidence, doc_id = row.get("answer"), row.get("evidence"), row.get("doc_id")
    if not (isinstance(answer, str) and isinstance(evidence, str) and isinstance(doc_id, str)):
        raise KeyError("answer_start (or answer, evidence and doc_id)")
    if texts is None:
        raise ValueError("its span is given as evidence text: the corpus is needed to place it")
    article = texts.get(doc_id)
    at = article.find(evidence) if article is not None else -1
    within = evidence.find(answer)
    if at < 0 or within < 0:
        raise ValueError(f"the evidence or its answer is not in the text of {doc_id!r}")
    return {"answer_start": at + within, "answer_end": at + within + len(answer), "answers_ar": [answer]}


def evaluate(
    service: QAService,
    questions: Sequence[EvalQuestion],
    *,
    k: int = 5,
    written: bool = False,
    filters: Filters | None = None,
) -> EvalReport:
    """Ask every question through the service and score the answers.

    ``written``: answers come from the configured model (the path of ``POST /api/ask``
    with ``[llm]`` set), and an answer hits when a citation covers the gold span (a
    written answer paraphrases, often in another language than the span).
    """

    # The best answer whatever its confidence: what the confidence is a forecast of.
    unrefused = ExtractiveAnswerer(
        dataclasses.replace(service.settings.answer, min_confidence=0.0), service.answerability
    )
    best_is_right: list[bool] = []

    async def answers() -> list[tuple[Answer, float]]:
        results = []
        for question in questions:
            started = time.perf_counter()
            asked = service.retrieve(question.question, k, filters=filters)
            answer = await service.generated(asked) if written else service.extractive(asked)
            results.append((answer, (time.perf_counter() - started) * 1000))
            best_is_right.append(answer_is_right(unrefused.answer(asked.question, asked.retrieval), question))
        return results

    # One event loop for all questions: the model client's connections belong to it.
    answered = anyio.run(answers)
    latencies: list[float] = []
    hits_1: list[bool] = []
    hits_5: list[bool] = []
    answer_hits: list[bool] = []
    found: list[bool] = []
    shown: list[bool] = []
    abstained: list[bool] = []
    valid: list[bool] = []
    lengths: list[int] = []
    texts: dict[str, str] = {}
    by_language: dict[str, list[bool]] = {}
    by_kind: dict[str, list[bool]] = {}
    for question, (answer, latency) in zip(questions, answered, strict=True):
        latencies.append(latency)
        if question.answerable:
            by_language.setdefault(question.lang, []).append(answer.found)
        else:
            by_kind.setdefault(question.kind, []).append(not answer.found)
        for citation in answer.citations:
            if citation.doc_id not in texts:
                texts[citation.doc_id] = service.document(citation.doc_id).text
            valid.append(texts[citation.doc_id][citation.start : citation.end] == citation.quote)
        if not question.answerable:
            abstained.append(not answer.found)
            continue
        found.append(answer.found)
        shown.append(answer.outcome is not Outcome.NOT_FOUND)
        first, any_of_top = _retrieval_hits(answer, question)
        hits_1.append(first)
        hits_5.append(any_of_top)
        answer_hits.append(answer.found and answer_is_right(answer, question))
        if answer.found:
            lengths.append(len(answer.answer))
    outcomes = _outcome_shares(questions, [answer for answer, _ in answered])
    answered_right = [
        first_citation_holds(answer, q) for q, (answer, _) in zip(questions, answered, strict=True)
        if answer.outcome is Outcome.ANSWERED
    ]  # fmt: skip
    ordered = sorted(latencies)
    confidences = [answer.confidence for answer, _ in answered]
    reliability, calibration_error = calibration(confidences, best_is_right) if questions else ([], None)
    report = EvalReport(
        answerable=len(found),
        unanswerable=len(abstained),
        hit_at_1=_mean(hits_1),
        hit_at_5=_mean(hits_5),
        answer_hit=_mean(answer_hits),
        found_when_answerable=_mean(found),
        abstained_when_unanswerable=_mean(abstained),
        citation_validity=_mean(valid),
        median_answer_chars=statistics.median(lengths) if lengths else None,
        latency_p50_ms=_percentile(ordered, 0.50),
        latency_p95_ms=_percentile(ordered, 0.95),
        found_by_language={lang: sum(v) / len(v) for lang, v in sorted(by_language.items())},
        abstained_by_kind={kind: sum(v) / len(v) for kind, v in sorted(by_kind.items())},
        reliability=reliability,
        calibration_error=calibration_error,
        answered_precision=_mean(answered_right),
        unanswerable_answered=None if not abstained else 1 - sum(abstained) / len(abstained),
        shown_when_answerable=_mean(shown),
        outcomes=outcomes,
    )
    if not written:
        return report
    answers_only = [answer for answer, _ in answered]
    generated = [a for a in answers_only if a.mode is AnswerMode.GENERATED]
    kept = sum(len(split_answer(a.answer)) for a in generated if a.found)
    removed = sum(len(a.removed) for a in generated)
    timed = [a.timings for a in generated if a.timings is not None]
    return dataclasses.replace(
        report,
        written=_mean([a.mode is AnswerMode.GENERATED for a in answers_only]),
        sentences_removed=removed / (kept + removed) if kept + removed else None,
        model_p50_ms=_percentile(sorted(t.model_ms for t in timed), 0.5) if timed else None,
        own_p50_ms=_percentile(sorted(t.prompt_ms + t.verify_ms for t in timed), 0.5) if timed else None,
    )


def _outcome_shares(questions: Sequence[EvalQuestion], answers: Sequence[Answer]) -> list[OutcomeShares]:
    groups: dict[tuple[str, str], list[tuple[EvalQuestion, Answer]]] = {}
    for question, answer in zip(questions, answers, strict=True):
        groups.setdefault((question.lang, question.kind), []).append((question, answer))
    rows = []
    for (lang, kind), pairs in sorted(groups.items()):
        shares = {o: sum(a.outcome is o for _, a in pairs) / len(pairs) for o in Outcome}
        answered = [first_citation_holds(a, q) for q, a in pairs if a.outcome is Outcome.ANSWERED]
        precision = _mean(answered) if kind == ANSWERABLE else None
        rows.append(OutcomeShares(lang, kind, len(pairs), shares[Outcome.ANSWERED], shares[Outcome.RELATED],
                                  shares[Outcome.NOT_FOUND], precision))  # fmt: skip
    return rows


def first_citation_holds(answer: Answer, question: EvalQuestion) -> bool:
    """Whether the answer's first citation holds the whole gold span: in the gold
    article, or in a copy of it that the citation names (the same text, so the same
    offsets)."""
    if not question.answerable or not answer.citations:
        return False
    first = answer.citations[0]
    documents = {first.doc_id, *(copy.doc_id for copy in first.also_in)}
    holds = first.start <= question.answer_start and question.answer_end <= first.end
    return question.doc_id in documents and holds


def _overlaps(doc_id: str, start: int, end: int, question: EvalQuestion) -> bool:
    return doc_id == question.doc_id and start < question.answer_end and question.answer_start < end


def _retrieval_hits(answer: Answer, question: EvalQuestion) -> tuple[bool, bool]:
    passages = [_overlaps(p.doc_id, p.start, p.end, question) for p in answer.passages]
    citations = [_overlaps(c.doc_id, c.start, c.end, question) for c in answer.citations]
    first = bool(passages[:1] and passages[0]) or bool(citations[:1] and citations[0])
    return first, any(passages[:5]) or any(citations)


def answer_is_right(answer: Answer, question: EvalQuestion) -> bool:
    """Whether the answer (found or not) holds the gold span of an answerable question."""
    if not question.answerable:
        return False
    if answer.mode is AnswerMode.GENERATED:
        return any(_overlaps(c.doc_id, c.start, c.end, question) for c in answer.citations)
    gold = normalize(question.answer)
    quote = answer.citations[0].quote if answer.citations else ""
    return bool(gold) and (gold in normalize(answer.answer) or gold in normalize(quote))


def _mean(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(ordered: Sequence[float], share: float) -> float:
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)
