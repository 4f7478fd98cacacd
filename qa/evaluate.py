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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from qa.errors import SourceError
from qa.normalize import normalize
from qa.records import Answer, AnswerMode
from qa.service import QAService
from qa.verify import split_answer


@dataclass(frozen=True)
class EvalQuestion:
    """A question; ``doc_id`` is None when the corpus does not answer it."""

    qid: str
    question: str
    doc_id: str | None = None
    answer_start: int = 0
    answer_end: int = 0
    answer: str = ""


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
        return "\n".join(lines)


def load_questions(path: Path, lang: str, *, limit: int | None = None) -> list[EvalQuestion]:
    """Questions from JSONL: ``question_<lang>`` (or ``question``) and, when answerable,
    ``doc_id``, ``answer_start``, ``answer_end`` and ``answers_<lang>`` or ``answers_ar``."""
    questions: list[EvalQuestion] = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read questions ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = row.get(f"question_{lang}") or row.get("question")
            if not isinstance(text, str):
                raise KeyError(f"question_{lang}")
            if "doc_id" in row:
                answers = row.get("answers_ar") or row.get(f"answers_{lang}") or [""]
                questions.append(
                    EvalQuestion(
                        str(row["qid"]),
                        text,
                        row["doc_id"],
                        int(row["answer_start"]),
                        int(row["answer_end"]),
                        answers[0],
                    )
                )
            else:
                questions.append(EvalQuestion(str(row.get("qid", number)), text))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{path}:{number}: not a question record ({exc})") from exc
        if limit is not None and len(questions) >= limit:
            break
    return questions


def evaluate(
    service: QAService, questions: Sequence[EvalQuestion], *, k: int = 5, written: bool = False
) -> EvalReport:
    """Ask every question through the service and score the answers.

    ``written``: answers come from the configured model (the path of ``POST /api/ask``
    with ``[llm]`` set), and an answer hits when a citation covers the gold span (a
    written answer paraphrases, often in another language than the span).
    """

    async def answers() -> list[tuple[Answer, float]]:
        results = []
        for question in questions:
            started = time.perf_counter()
            asked = service.retrieve(question.question, k)
            answer = await service.written(asked) if written else service.extractive(asked)
            results.append((answer, (time.perf_counter() - started) * 1000))
        return results

    # One event loop for all questions: the model client's connections belong to it.
    answered = anyio.run(answers)
    latencies: list[float] = []
    hits_1: list[bool] = []
    hits_5: list[bool] = []
    answer_hits: list[bool] = []
    found: list[bool] = []
    abstained: list[bool] = []
    valid: list[bool] = []
    lengths: list[int] = []
    texts: dict[str, str] = {}
    for question, (answer, latency) in zip(questions, answered, strict=True):
        latencies.append(latency)
        for citation in answer.citations:
            if citation.doc_id not in texts:
                texts[citation.doc_id] = service.document(citation.doc_id).text
            valid.append(texts[citation.doc_id][citation.start : citation.end] == citation.quote)
        if question.doc_id is None:
            abstained.append(not answer.found)
            continue
        found.append(answer.found)
        first, any_of_top = _retrieval_hits(answer, question)
        hits_1.append(first)
        hits_5.append(any_of_top)
        answer_hits.append(answer.found and _contains_gold(answer, question))
        if answer.found:
            lengths.append(len(answer.answer))
    ordered = sorted(latencies)
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


def _overlaps(doc_id: str, start: int, end: int, question: EvalQuestion) -> bool:
    return doc_id == question.doc_id and start < question.answer_end and question.answer_start < end


def _retrieval_hits(answer: Answer, question: EvalQuestion) -> tuple[bool, bool]:
    passages = [_overlaps(p.doc_id, p.start, p.end, question) for p in answer.passages]
    citations = [_overlaps(c.doc_id, c.start, c.end, question) for c in answer.citations]
    first = bool(passages[:1] and passages[0]) or bool(citations[:1] and citations[0])
    return first, any(passages[:5]) or any(citations)


def _contains_gold(answer: Answer, question: EvalQuestion) -> bool:
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
