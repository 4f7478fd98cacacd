"""What the HTTP API reads and sends: its request and response types.

Records of the package (``qa.records``) never go out as they are: each response
type here names exactly the fields a client gets, so a field added to a record for
answering (a passage's sentences, say) is not sent by accident. The wire types
that mirror a record keep its name (``Passage``, ``Citation`` ...), which is also
their name in the OpenAPI schema.

The numeric limits of a request (question length, ``k``, history) are the
configured ones: the service enforces them, and :func:`state_limits` writes them
into the OpenAPI schema of the app created with those settings.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar.openapi.spec import Components, OpenAPIType, Reference, Schema
from litestar.params import KwargDefinition

from qa import records
from qa.config import Settings
from qa.records import AnswerMode, Outcome, Turn
from qa.search.filters import MAX_FILTER_KEYS, MAX_FILTER_VALUES, parse_filters

# A character Python's str.strip() keeps (JavaScript's \s, which JSON Schema
# patterns use, lacks U+001C-U+001F and U+0085).
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
QUESTION_DESCRIPTION = "The question."
K_DESCRIPTION = "How many passages to retrieve (default {default_k})."


@dataclass(frozen=True)
class HistoryTurn:
    """An earlier turn of the conversation: the question and the answer it got."""

    question: str
    answer: str = ""


class FiltersRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only passages of the articles these allow: published within the dates
    (inclusive; an article without a date never matches), among ``doc_ids``, and with
    one of the listed values of every ``meta`` key."""

    published_from: datetime.date | None = None
    published_to: datetime.date | None = None
    doc_ids: Annotated[list[str], msgspec.Meta(max_length=MAX_FILTER_VALUES)] = msgspec.field(
        default_factory=list
    )
    meta: Annotated[
        dict[str, Annotated[list[str], msgspec.Meta(max_length=MAX_FILTER_VALUES)]],
        msgspec.Meta(max_length=MAX_FILTER_KEYS),
    ] = msgspec.field(default_factory=dict)

    def parsed(self) -> records.Filters:
        return parse_filters(self.published_from, self.published_to, self.doc_ids, dict(self.meta))


@dataclass(frozen=True)
class AskRequest:
    question: Annotated[
        str, KwargDefinition(min_length=1, pattern=NOT_BLANK, description=QUESTION_DESCRIPTION)
    ]
    k: Annotated[int, KwargDefinition(ge=1)] | None = None
    filters: FiltersRequest | None = None
    # The earlier turns of this conversation, most recent last: each a question, or
    # a question with its answer (a model configured sees the answers too).
    history: tuple[str | HistoryTurn, ...] = ()

    def turns(self) -> tuple[str | Turn, ...]:
        return tuple(
            item if isinstance(item, str) else Turn(item.question, item.answer) for item in self.history
        )


@dataclass(frozen=True)
class CopyRef:
    """Another copy of the same syndicated story, in another source: its article's id,
    title, address and date."""

    doc_id: str
    title: str
    url: str | None = None
    published: str | None = None

    @classmethod
    def of(cls, copy: records.CopyRef) -> CopyRef:
        return cls(copy.doc_id, copy.title, copy.url, copy.published)


@dataclass(frozen=True)
class Passage:
    """A retrieved passage as clients get it (``qa.records.Passage`` less what answering reads)."""

    chunk_id: int
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    # The other copies of this story among the results (the same article run by other
    # sources), which this passage stands for.
    also_in: list[CopyRef] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, passage: records.Passage) -> Passage:
        return cls(
            passage.chunk_id, passage.doc_id, passage.title, passage.start, passage.end, passage.text,
            passage.score, [CopyRef.of(c) for c in passage.also_in],
        )  # fmt: skip


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    start: int
    end: int
    quote: str
    score: float
    # The other copies of the quoted story (the same article run by other sources).
    also_in: list[CopyRef] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, citation: records.Citation) -> Citation:
        c = citation
        return cls(
            c.n, c.doc_id, c.title, c.start, c.end, c.quote, c.score, [CopyRef.of(x) for x in c.also_in]
        )


@dataclass(frozen=True)
class RemovedSentence:
    # None where the text is withheld (see AskResponse.removed).
    text: str | None
    reason: str

    @classmethod
    def of(cls, removed: records.RemovedSentence, *, with_text: bool) -> RemovedSentence:
        return cls(removed.text if with_text else None, removed.reason)


@dataclass(frozen=True)
class Timings:
    prompt_ms: float
    model_ms: float
    verify_ms: float

    @classmethod
    def of(cls, timings: records.Timings) -> Timings:
        return cls(timings.prompt_ms, timings.model_ms, timings.verify_ms)


@dataclass(frozen=True)
class AskResponse:
    question: str
    answer: str
    found: bool
    # "answered" (found is true: the answer and its citations), "related" (the archive
    # may not answer directly: the answer says so, there are no citations, and the
    # passages are the closest it has) or "not_found" (the answer says the sources do
    # not answer). found stays for the clients that read it: it is outcome == "answered".
    outcome: Outcome
    citations: list[Citation]
    passages: list[Passage]
    took_ms: float
    # "generated" (written by the model, every sentence verified) or "extractive" (quotes).
    mode: AnswerMode
    # Sentences of the model's answer that failed verification: why, and (for admin
    # requests or with server.removed_text) the text; never shown.
    removed: list[RemovedSentence]
    # Why the answer is not a generated one, when a model is configured.
    llm_error: str | None
    timings: Timings | None
    # How likely the answer is right, in [0, 1]; found is false below answer.min_confidence,
    # and the outcome not_found below answer.related_min_confidence.
    confidence: float

    @classmethod
    def of(cls, answer: records.Answer, took_ms: float, *, removed_text: bool) -> AskResponse:
        """The response to send; the removed sentences' texts only with ``removed_text``."""
        return cls(
            question=answer.question,
            answer=answer.answer,
            found=answer.found,
            outcome=answer.outcome,
            citations=[Citation.of(c) for c in answer.citations],
            passages=[Passage.of(p) for p in answer.passages],
            took_ms=took_ms,
            mode=answer.mode,
            removed=[RemovedSentence.of(r, with_text=removed_text) for r in answer.removed],
            llm_error=answer.llm_error,
            confidence=answer.confidence,
            timings=Timings.of(answer.timings) if answer.timings else None,
        )


@dataclass(frozen=True)
class SearchResponse:
    query: str
    results: list[Passage]
    took_ms: float


@dataclass(frozen=True)
class DocumentResponse:
    doc_id: str
    title: str
    text: str
    url: str | None
    published: str | None
    # The article's metadata from the source, e.g. {"section": ["politics"]}.
    meta: dict[str, list[str]]

    @classmethod
    def of(cls, article: records.Article) -> DocumentResponse:
        meta = {key: list(values) for key, values in article.meta.items()}
        return cls(article.doc_id, article.title, article.text, article.url, article.published, meta)


class HealthResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """``status`` and the served version for anyone; the rest only for admin requests."""

    status: str
    version: str
    # The served version's manifest (model, counts, segments).
    index: dict[str, Any] | None = None
    problem: str | None = None
    reload_error: str | None = None
    # The model that generates answers: configured, last success, last error, paused.
    llm: dict[str, Any] | None = None
    # The process that answered: with server.workers > 1, each holds its own version.
    worker: int | None = None


@dataclass(frozen=True)
class ErrorResponse:
    status_code: int
    detail: str


def as_json(wire: Any) -> dict[str, Any]:
    """A response type as the JSON object it is sent as (for server-sent events)."""
    return dataclasses.asdict(wire)


def state_limits(components: Components, settings: Settings) -> None:
    """Write the configured limits into the request types' schemas (the service
    enforces them), and say that an unknown filter field is refused (msgspec's
    ``forbid_unknown_fields``, which Litestar's schema does not state by itself)."""
    schemas = components.schemas or {}
    limits, retrieval = settings.limits, settings.retrieval
    schemas["FiltersRequest"].additional_properties = False
    ask = schemas["AskRequest"].properties or {}
    _schema(ask["question"]).max_length = limits.max_question_chars
    k = _member(ask["k"], OpenAPIType.INTEGER)
    k.maximum = retrieval.max_k
    k.description = K_DESCRIPTION.format(default_k=retrieval.default_k)
    history = _schema(ask["history"])
    history.max_items = limits.max_history_turns
    _member(history.items, OpenAPIType.STRING).max_length = limits.max_question_chars
    turn = schemas["HistoryTurn"].properties or {}
    _schema(turn["question"]).max_length = limits.max_question_chars
    _schema(turn["answer"]).max_length = limits.max_history_answer_chars


def _schema(schema: Schema | Reference | None) -> Schema:
    if not isinstance(schema, Schema):
        raise TypeError(f"expected an inline schema, not {schema!r}")
    return schema


def _member(schema: Schema | Reference | None, kind: OpenAPIType) -> Schema:
    """The member of ``schema``'s ``oneOf`` of type ``kind`` (``int | None`` is one)."""
    return next(s for s in _schema(schema).one_of or () if isinstance(s, Schema) and s.type == kind)
