"""The HTTP API (Litestar): the only module that imports Litestar.

Routes: ``POST /api/ask``, ``POST /api/ask/stream`` (server-sent events),
``GET /api/search``, ``GET /api/documents/{doc_id}``, ``GET /healthz`` and the
OpenAPI schema at ``/schema/openapi.json``; for browsers, the chat widget at
``GET /widget.js``, a demo page at ``GET /`` and one article with a cited span
highlighted at ``GET /documents/{doc_id}?start=..&end=..``. Package errors are
mapped to status codes here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hmac
import html
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal, TypeVar

import anyio
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin
from litestar.params import FromQuery, JSONBody, KwargDefinition, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from qa import __version__
from qa.config import Settings, load_settings
from qa.embed.embedders import Embedder
from qa.errors import (
    IndexUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    QAError,
    RequestTimeoutError,
    ServiceBusyError,
    TooManyRequestsError,
    UnauthorizedError,
)
from qa.records import (
    Answer,
    AnswerMode,
    AnswerPiece,
    Citation,
    Filters,
    Passage,
    RemovedSentence,
    Timings,
    Turn,
)
from qa.search.filters import MAX_FILTER_KEYS, MAX_FILTER_VALUES, parse_filters
from qa.serve.service import MAX_HISTORY_ANSWER_CHARS, Asked, LiveService, QAService

T = TypeVar("T")

logger = logging.getLogger("qa.http")
access_log = logging.getLogger("qa.access")

STATIC = Path(__file__).resolve().parent / "static"
# Words of the answer sent per ``answer`` event of the stream.
STREAM_WORDS = 3


# The OpenAPI schema states the default limits (config.toml); the service enforces
# the configured ones, with the same 400 messages.
# A character Python's str.strip() keeps (JavaScript's \s, which JSON Schema
# patterns use, lacks U+001C-U+001F and U+0085).
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
QUESTION_RULES: dict[str, Any] = {
    "min_length": 1, "max_length": 1000, "pattern": NOT_BLANK, "description": "The question.",
}  # fmt: skip
K_RULES: dict[str, Any] = {"ge": 1, "le": 50, "description": "How many passages to retrieve (default 5)."}
Question = Annotated[str, KwargDefinition(**QUESTION_RULES)]
K = Annotated[int, KwargDefinition(**K_RULES)]


@dataclass(frozen=True)
class HistoryTurn:
    """An earlier turn of the conversation: the question and the answer it got."""

    question: Annotated[str, KwargDefinition(max_length=1000)]
    answer: Annotated[str, KwargDefinition(max_length=MAX_HISTORY_ANSWER_CHARS)] = ""


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

    def parsed(self) -> Filters:
        return parse_filters(self.published_from, self.published_to, self.doc_ids, dict(self.meta))


@dataclass(frozen=True)
class AskRequest:
    question: Question
    k: K | None = None
    filters: FiltersRequest | None = None
    # The earlier turns of this conversation, most recent last: each a question, or
    # a question with its answer (a model configured sees the answers too).
    history: Annotated[
        tuple[Annotated[str, KwargDefinition(max_length=1000)] | HistoryTurn, ...],
        KwargDefinition(max_items=5),
    ] = ()

    def turns(self) -> tuple[str | Turn, ...]:
        return tuple(
            item if isinstance(item, str) else Turn(item.question, item.answer) for item in self.history
        )


@dataclass(frozen=True)
class AskResponse:
    question: str
    answer: str
    found: bool
    citations: list[Citation]
    passages: list[Passage]
    took_ms: float
    # "generated" (written by the model, every sentence verified) or "extractive" (quotes).
    mode: AnswerMode
    # Sentences of the model's answer that failed verification: why, and (for admin
    # requests or with server.removed_text) the text; never shown.
    removed: list[RemovedSentence]
    # Why the answer is not a written one, when a model is configured.
    llm_error: str | None
    timings: Timings | None
    # How likely the answer is right, in [0, 1]; found is false below answer.min_confidence.
    confidence: float

    @classmethod
    def of(cls, answer: Answer, took_ms: float) -> AskResponse:
        """The response to send; ``answer`` as :func:`_for_client` leaves it."""
        return cls(
            question=answer.question,
            answer=answer.answer,
            found=answer.found,
            citations=list(answer.citations),
            passages=list(answer.passages),
            took_ms=took_ms,
            mode=answer.mode,
            removed=list(answer.removed),
            llm_error=answer.llm_error,
            confidence=answer.confidence,
            timings=answer.timings,
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


class HealthResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """``status`` and the served version for anyone; the rest only for admin requests."""

    status: str
    version: str
    # The served version's manifest (model, counts, segments).
    index: dict[str, Any] | None = None
    problem: str | None = None
    reload_error: str | None = None
    # The model that writes answers: configured, last success, last error, paused.
    llm: dict[str, Any] | None = None
    # The process that answered: with server.workers > 1, each holds its own version.
    worker: int | None = None


@dataclass(frozen=True)
class ErrorResponse:
    status_code: int
    detail: str


def _service(state: State) -> QAService:
    """The served version, read once per request: a request never mixes two versions."""
    live: LiveService = state.live
    return live.current


@dataclass(frozen=True)
class Deadline:
    """When a request is answered 503 (``at``, a ``time.monotonic()`` value), ``seconds``
    after it started."""

    at: float
    seconds: float


def _deadline(state: State) -> Deadline:
    settings: Settings = state.settings
    seconds = settings.limits.request_timeout_seconds
    return Deadline(time.monotonic() + seconds, seconds)


@contextmanager
def _before(deadline: Deadline) -> Iterator[None]:
    """Cancel the work inside at ``deadline``, answering 503."""
    try:
        with anyio.fail_after(max(0.0, deadline.at - time.monotonic())):
            yield
    except TimeoutError as exc:
        raise RequestTimeoutError(f"the request took longer than {deadline.seconds:g} s") from exc


async def _in_time(deadline: Deadline, work: Callable[[], T]) -> T:
    """Run blocking ``work`` in a worker thread, answering 503 at ``deadline``.

    A thread cannot be interrupted: the work is given the deadline too and stops at
    its next check (the embedder's queue, the search), but the client gets its
    answer (an error) on time and the server stays responsive.
    """
    with _before(deadline):
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)


def _is_admin(request: Request[Any, Any, Any], settings: Settings) -> bool:
    """Whether the request carries the admin token (never, while none is set)."""
    token = settings.server.admin_token
    given = request.headers.get("authorization", "").removeprefix("Bearer ")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _for_client(answer: Answer, request: Request[Any, Any, Any], settings: Settings) -> Answer:
    """The answer as this client may see it: the removed sentences' texts only for
    admin requests or with ``server.removed_text``."""
    if settings.server.removed_text or _is_admin(request, settings) or not answer.removed:
        return answer
    hidden = tuple(dataclasses.replace(r, text=None) for r in answer.removed)
    return dataclasses.replace(answer, removed=hidden)


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        code: ResponseSpec(data_container=ErrorResponse, description=HTTPStatus(code).phrase)
        for code in codes
    }


@post("/api/ask", status_code=200, responses=_errors(400, 413, 429, 503))
async def ask(data: JSONBody[AskRequest], state: State, request: Request[Any, Any, Any]) -> AskResponse:
    """Answer a question, each statement cited by document and character offsets.

    With a model configured (``[llm]``), a written answer whose every sentence was
    checked against the spans it cites; otherwise, or when the model fails, quotes.
    """
    started = time.perf_counter()
    deadline = _deadline(state)
    service = _service(state)
    asked = await _in_time(deadline, lambda: _retrieve(service, data, deadline))
    if service.writer is None:
        answer = await _in_time(deadline, lambda: service.extractive(asked))
    else:
        with _before(deadline):
            answer = await service.written(asked)
    return AskResponse.of(_for_client(answer, request, state.settings), _ms_since(started))


def _retrieve(service: QAService, data: AskRequest, deadline: Deadline) -> Asked:
    filters = data.filters.parsed() if data.filters else None
    return service.retrieve(data.question, data.k, data.turns(), filters, deadline.at)


@post(
    "/api/ask/stream", status_code=200, media_type="text/event-stream", responses=_errors(400, 413, 429, 503)
)
async def ask_stream(
    data: JSONBody[AskRequest], state: State, request: Request[Any, Any, Any]
) -> ServerSentEvent:
    """The answer to a question as server-sent events.

    A quoted answer: ``passages`` (``{"passages": [...]}``), ``citations``
    (``{"citations": [...]}``), one or more ``answer`` (``{"text": ...}``, pieces
    to append), then ``done``. A written answer: ``passages``, one ``answer`` a
    sentence as soon as it is complete and verified (its ``[n]`` markers are the
    citations' ``n``), then ``citations`` and ``done``. ``done`` is ``{"question",
    "answer", "found", "mode", "removed", "llm_error", "timings", "took_ms"}``. The
    request is checked, and its passages found, before the stream opens, so bad
    input gets the same 400 JSON error as ``POST /api/ask``. A stream still open at
    the request's time limit ends with an ``error`` event.
    """
    started = time.perf_counter()
    deadline = _deadline(state)
    service = _service(state)
    asked = await _in_time(deadline, lambda: _retrieve(service, data, deadline))
    shown = functools.partial(_for_client, request=request, settings=state.settings)
    if service.writer is None:
        answer = await _in_time(deadline, lambda: service.extractive(asked))
        return ServerSentEvent(_quoted_events(shown(answer), started))
    return ServerSentEvent(_written_events(service, asked, started, deadline, shown))


def _event(name: str, payload: dict[str, Any]) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=name, data=json.dumps(payload, ensure_ascii=False))


def _done(answer: Answer, started: float) -> ServerSentEventMessage:
    return _event(
        "done",
        {
            "question": answer.question,
            "answer": answer.answer,
            "found": answer.found,
            "confidence": answer.confidence,
            "mode": answer.mode.value,
            "removed": [dataclasses.asdict(r) for r in answer.removed],
            "llm_error": answer.llm_error,
            "timings": dataclasses.asdict(answer.timings) if answer.timings else None,
            "took_ms": _ms_since(started),
        },
    )


def _quoted_events(
    answer: Answer, started: float, *, passages: bool = True
) -> Iterator[ServerSentEventMessage]:
    if passages:
        yield _event("passages", {"passages": [dataclasses.asdict(p) for p in answer.passages]})
    yield _event("citations", {"citations": [dataclasses.asdict(c) for c in answer.citations]})
    for piece in answer_pieces(answer.answer):
        yield _event("answer", {"text": piece})
    yield _done(answer, started)


async def _written_events(
    service: QAService,
    asked: Asked,
    started: float,
    deadline: Deadline,
    shown: Callable[[Answer], Answer],
) -> AsyncIterator[ServerSentEventMessage]:
    yield _event("passages", {"passages": [dataclasses.asdict(p) for p in asked.retrieval.passages]})
    items = service.written_stream(asked)
    try:
        while True:
            # The deadline bounds each wait for the next item, not a yield (anyio
            # forbids a cancel scope around a yield in an async generator).
            with _before(deadline):
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
            if isinstance(item, AnswerPiece):
                yield _event("answer", {"text": item.text})
            elif item.mode is AnswerMode.EXTRACTIVE:
                for message in _quoted_events(shown(item), started, passages=False):
                    yield message
            else:
                yield _event("citations", {"citations": [dataclasses.asdict(c) for c in item.citations]})
                yield _done(shown(item), started)
    except RequestTimeoutError as exc:
        yield _event("error", {"status_code": HTTP_503_SERVICE_UNAVAILABLE, "detail": str(exc)})
    except Exception:  # the stream is open: say so in it rather than cut it short
        logger.exception("written answer stream failed")
        yield _event("error", {"status_code": 500, "detail": "internal server error"})
    finally:
        await items.aclose()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def answer_pieces(answer: str, words: int = STREAM_WORDS) -> list[str]:
    """``answer`` cut into runs of ``words`` words that join back to exactly ``answer``."""
    tokens = re.findall(r"\s*\S+|\s+$", answer)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)] or [answer]


@get("/api/search", responses=_errors(400, 429, 503))
async def search(
    state: State,
    request: Request[Any, Any, Any],
    q: Annotated[str, QueryParameter(**QUESTION_RULES)],
    k: Annotated[int | None, QueryParameter(**K_RULES)] = None,
    published_from: Annotated[
        datetime.date | None, QueryParameter(description="Earliest publication date, YYYY-MM-DD.")
    ] = None,
    published_to: Annotated[
        datetime.date | None, QueryParameter(description="Latest publication date, YYYY-MM-DD.")
    ] = None,
    doc_id: Annotated[
        list[str] | None, QueryParameter(description="Only these documents (repeat it).", max_items=100)
    ] = None,
    sort: Annotated[
        Literal["relevance", "newest"],
        QueryParameter(description="relevance (default), or newest: the same results, newest article first."),
    ] = "relevance",
) -> SearchResponse:
    """The passages most relevant to ``q``, best first. Filters: ``published_from``,
    ``published_to``, repeated ``doc_id``, and repeated ``meta.KEY=VALUE`` (values of
    one key are alternatives; everything else must all hold)."""
    started = time.perf_counter()
    service = _service(state)
    meta: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("meta."):
            meta.setdefault(name.removeprefix("meta."), []).append(value)
    filters = parse_filters(published_from, published_to, doc_id or [], meta)
    deadline = _deadline(state)
    passages = await _in_time(
        deadline, lambda: service.search(q, k, filters, newest=sort == "newest", deadline=deadline.at)
    )
    return SearchResponse(
        query=q, results=list(passages), took_ms=round((time.perf_counter() - started) * 1000, 1)
    )


@get("/api/documents/{doc_id:path}", sync_to_thread=True, responses=_errors(404, 429))
def document(request: Request[Any, Any, Any], state: State) -> DocumentResponse:
    """One whole article: the text that citation offsets point into. An id may hold
    ``/`` (send it as is, or as ``%2F``)."""
    article = _service(state).document(_doc_id(request, "/api/documents/"))
    meta = {key: list(values) for key, values in article.meta.items()}
    return DocumentResponse(article.doc_id, article.title, article.text, article.url, article.published, meta)


@get("/healthz", sync_to_thread=True, responses={503: ResponseSpec(HealthResponse, description="degraded")})
def healthz(state: State, request: Request[Any, Any, Any]) -> Response[HealthResponse]:
    """Whether the service is up, and which index version it serves.

    503 with ``"status": "degraded"`` when the served version's files are missing
    or damaged on disk, or what a filtered search reads fails: answers still come
    from memory, but a restart would fail. With the admin token
    (``Authorization: Bearer TOKEN``), also the details: the index's manifest, the
    problem, the last reload error, the model's state and the worker process.
    """
    live: LiveService = state.live
    problem = live.disk_problem()
    health = _health(live, problem, details=_is_admin(request, state.settings))
    return Response(health, status_code=HTTP_503_SERVICE_UNAVAILABLE if problem else 200)


def _health(live: LiveService, problem: str | None, *, details: bool) -> HealthResponse:
    status = "degraded" if problem else "ok"
    version = live.current.index.manifest.version
    if not details:
        return HealthResponse(status, version)
    return HealthResponse(
        status=status,
        version=version,
        index=live.current.index_summary(),
        problem=without_paths(problem),
        reload_error=without_paths(live.reload_error),
        llm=live.llm_summary(),
        worker=os.getpid(),
    )


@post("/admin/reload", status_code=200, include_in_schema=False)
async def admin_reload(request: Request[Any, Any, Any], state: State) -> HealthResponse:
    """Load a newly published index now instead of at the next check."""
    settings: Settings = state.settings
    if not settings.server.admin_token:
        raise NotFoundError("admin endpoints are off: set QA_SERVER_ADMIN_TOKEN to enable them")
    if not _is_admin(request, settings):
        raise UnauthorizedError("a valid admin token is required (Authorization: Bearer TOKEN)")
    live: LiveService = state.live
    await anyio.to_thread.run_sync(live.refresh)
    return _health(live, None, details=True)


@get("/widget.js", include_in_schema=False, sync_to_thread=False)
def widget_js() -> Response[bytes]:
    """The embeddable chat widget: plain JavaScript, no build step."""
    return Response(
        (STATIC / "widget.js").read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


@get("/", include_in_schema=False, sync_to_thread=False)
def demo_page() -> Response[bytes]:
    """A page showing the widget open on the served index, with example questions."""
    return Response((STATIC / "demo.html").read_bytes(), media_type="text/html")


@get("/documents/{doc_id:path}", include_in_schema=False, sync_to_thread=True)
def document_page(
    request: Request[Any, Any, Any],
    state: State,
    start: FromQuery[int | None] = None,
    end: FromQuery[int | None] = None,
) -> Response[str]:
    """One whole article as a page, the span ``start:end`` highlighted and scrolled into view."""
    article = _service(state).document(_doc_id(request, "/documents/"))
    return Response(
        render_document_page(article.doc_id, article.title, article.text, article.url, start, end),
        media_type="text/html",
        # Article text is escaped; this is the second line of defence: nothing runs.
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"},
    )


def _doc_id(request: Request[Any, Any, Any], prefix: str) -> str:
    """The document id of a ``{doc_id:path}`` route, exactly as sent (``/`` as is or
    as ``%2F``): read from the raw path, as Litestar's ``path`` parameter is a
    ``pathlib.Path`` and its routing folds ``a//b`` into ``a/b``."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    return urllib.parse.unquote_to_bytes(raw).decode("utf-8", "replace").removeprefix(prefix)


def render_document_page(
    doc_id: str, title: str, text: str, url: str | None, start: int | None, end: int | None
) -> str:
    """The HTML of an article page: every article string escaped, the span in a ``<mark>``."""
    if (start is None) != (end is None):
        raise InvalidRequestError("give both start and end, or neither")
    if start is not None and end is not None:
        if not 0 <= start < end <= len(text):
            raise InvalidRequestError(f"start and end must satisfy 0 <= start < end <= {len(text)}")
        body = (
            html.escape(text[:start])
            + '<mark data-qa-highlight id="qa-highlight">'
            + html.escape(text[start:end])
            + "</mark>"
            + html.escape(text[end:])
        )
    else:
        body = html.escape(text)
    source = (
        f'<p class="source"><a href="{html.escape(url)}" rel="noopener noreferrer">{html.escape(url)}</a></p>'
        if url and url.startswith(("http://", "https://"))
        else ""
    )
    template = Template((STATIC / "document.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=html.escape(title or doc_id), doc_id=html.escape(doc_id), source=source, body=body
    )


_STATUS_OF: dict[type[QAError], int] = {
    InvalidRequestError: HTTP_400_BAD_REQUEST,
    NotFoundError: HTTP_404_NOT_FOUND,
    PayloadTooLargeError: HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    IndexUnavailableError: HTTP_503_SERVICE_UNAVAILABLE,
    UnauthorizedError: HTTP_401_UNAUTHORIZED,
    TooManyRequestsError: HTTP_429_TOO_MANY_REQUESTS,
    ServiceBusyError: HTTP_503_SERVICE_UNAVAILABLE,
    RequestTimeoutError: HTTP_503_SERVICE_UNAVAILABLE,
}
# Seconds a client is asked to wait before it tries again, by status.
RETRY_AFTER = {HTTP_429_TOO_MANY_REQUESTS: "1", HTTP_503_SERVICE_UNAVAILABLE: "5"}


def _status_of(exc: QAError) -> int:
    # The most specific class wins, so subclasses may map to their own status.
    return next(
        (code for cls in type(exc).__mro__ for known, code in _STATUS_OF.items() if cls is known),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _qa_error(request: Request[Any, Any, Any], exc: QAError) -> Response[ErrorResponse]:
    status = _status_of(exc)
    if isinstance(exc, IndexUnavailableError):
        logger.error("index unavailable on %s %s: %s", request.method, loggable(request.url.path), exc)
    retry = {"Retry-After": RETRY_AFTER[status]} if status in RETRY_AFTER else None
    return Response(ErrorResponse(status, without_paths(str(exc)) or ""), status_code=status, headers=retry)


# An absolute path in a message, for without_paths: it keeps the last component.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"()]+/)*([^\s/'\"()]*)")


def without_paths(message: str | None) -> str | None:
    """``message`` with every absolute path cut to its last component: a client is
    never told where the service keeps its files."""
    return None if message is None else _ABSOLUTE_PATH.sub(r"\1", message)


# Characters that would break a log line or forge another: C0, DEL, C1, and the
# Unicode line and paragraph separators.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def loggable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x0a``), for a log line."""
    return _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # Litestar says "Validation failed for POST /api/ask"; say which field and why.
        problems = [
            f"{item.get('key') or 'body'}: {_readable(str(item.get('message')))}"
            if isinstance(item, dict)
            else str(item)
            for item in exc.extra
        ]
        detail = "invalid request: " + "; ".join(problems)
    elif exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        detail = "request body too large"
    return Response(ErrorResponse(exc.status_code, detail), status_code=exc.status_code, headers=exc.headers)


def _readable(message: str) -> str:
    # The pattern that rejects blank text reads as a regular expression; say what it means.
    if "matching regex" in message:
        return "must not be empty or only spaces"
    return message


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    if isinstance(exc, RecursionError):
        # msgspec refuses JSON nested deeper than it can decode; that is the client's doing.
        detail = "invalid request: the JSON body is nested too deeply"
        return Response(ErrorResponse(HTTP_400_BAD_REQUEST, detail), status_code=HTTP_400_BAD_REQUEST)
    # Log the traceback for operators; never send internals to the client.
    logger.exception("unhandled error on %s %s", request.method, loggable(request.url.path))
    return Response(
        ErrorResponse(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def _watch_index(live: LiveService, interval: float) -> None:
    """Look for a newly published index version every ``interval`` seconds."""
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(live.refresh)
        except Exception:  # a watcher that dies silently would stop all reloads
            logger.exception("index reload check failed")


# How often the rate limit's counts of clients gone quiet are dropped.
RATE_LIMIT_PURGE_SECONDS = 60.0


async def _purge_rate_limits(app: Litestar) -> None:
    """Drop the rate limit's expired counts: the memory store forgets a client only
    when the same client comes back, so one-time addresses would pile up for good."""
    store = app.stores.get(RATE_LIMIT_STORE)
    while True:
        await anyio.sleep(RATE_LIMIT_PURGE_SECONDS)
        if isinstance(store, MemoryStore):
            await store.delete_expired()


RATE_LIMIT_STORE = "rate_limit"
# Paths the rate limit leaves alone, anchored: health checks, the widget's script
# and the schema are not what a flood costs. Article pages and the API are counted.
RATE_LIMIT_EXCLUDE = [r"^/healthz$", r"^/widget\.js$", r"^/schema(/|$)"]


# Logged for a request whose client went away before it was answered (nginx's 499).
CLIENT_CLOSED_REQUEST = 499


def _log_requests(app: ASGIApp) -> ASGIApp:
    """Log method, path, status and latency of every request; never bodies or queries.

    It wraps the whole application, routing and exception handlers included, so the
    status is the one sent: a 404 for no route and the rate limit's 429 too (499 when
    the client left first). The path is escaped: a ``%0A`` in it would otherwise
    write a line of the attacker's choosing.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_and_record() -> ReceiveMessage:
            nonlocal status
            message = await receive()
            if message["type"] == "http.disconnect" and status is None:
                status = CLIENT_CLOSED_REQUEST
            return message

        try:
            await app(scope, receive_and_record, send_and_record)
        finally:
            access_log.info(
                "%s %s %s %.1fms",
                loggable(str(scope.get("method"))),
                loggable(scope["path"]),
                status or HTTP_500_INTERNAL_SERVER_ERROR,
                (time.perf_counter() - started) * 1000,
            )

    return middleware


def _cap_per_client(app: ASGIApp, limit: int, running: dict[str, int]) -> ASGIApp:
    """At most ``limit`` API requests of one client (by address) running at once; more
    are answered 429. The rate limit counts requests a minute, not what they cost:
    a few slow ones started together could still take every thread.

    ``running`` counts them by client: one dict for the whole app, as Litestar makes
    the middleware once for each route.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith("/api/"):
            await app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else ""
        if running.get(key, 0) >= limit:
            raise TooManyRequestsError(f"too many requests at once: at most {limit} from one client")
        running[key] = running.get(key, 0) + 1
        try:
            await app(scope, receive, send)
        finally:
            running[key] -= 1
            if not running[key]:
                del running[key]

    return middleware


def app_from_environment() -> Litestar:
    """The application of one worker process of ``qa serve --workers N``: its settings
    come from ``QA_CONFIG`` and the ``QA_*`` variables that ``qa serve`` set."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(load_settings())


# The interactive page of server.openapi_ui: Redoc, its version pinned, without
# Google Fonts or a favicon from outside. The reader's browser loads it from its
# CDN, which is why it is off by default; /schema/openapi.json is plain JSON.
REDOC_VERSION = "2.5.0"


def _schema_pages(settings: Settings) -> list[OpenAPIRenderPlugin]:
    pages: list[OpenAPIRenderPlugin] = [JsonRenderPlugin()]
    if settings.server.openapi_ui:
        pages.append(RedocRenderPlugin(version=REDOC_VERSION, google_fonts=False, favicon="", path="/redoc"))
    return pages


def create_app(
    settings: Settings, *, service: QAService | None = None, embedder: Embedder | None = None
) -> Litestar:
    """The Litestar application serving ``service``, or the index that ``settings`` names."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        live = LiveService(service or QAService.open(settings, embedder=embedder))
        app.state.live = live
        app.state.settings = settings
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_watch_index, live, settings.server.reload_interval_seconds)
                tasks.start_soon(_purge_rate_limits, app)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            if live.current.writer is not None:
                await live.current.writer.aclose()

    own_origin = f"http://{settings.server.host}:{settings.server.port}"
    middleware: list[Any] = []
    limits = settings.limits
    if limits.rate_limit_per_minute > 0:
        rate_limit = RateLimitConfig(
            rate_limit=("minute", limits.rate_limit_per_minute),
            exclude=RATE_LIMIT_EXCLUDE,
            store=RATE_LIMIT_STORE,
        )
        middleware.append(rate_limit.middleware)
    if limits.max_concurrent_per_client > 0:
        middleware.append(
            DefineMiddleware(_cap_per_client, limit=limits.max_concurrent_per_client, running={})
        )
    app = Litestar(
        route_handlers=[
            ask,
            ask_stream,
            search,
            document,
            healthz,
            admin_reload,
            widget_js,
            demo_page,
            document_page,
        ],
        lifespan=[lifespan],
        middleware=middleware,
        exception_handlers={
            QAError: _qa_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        cors_config=CORSConfig(allow_origins=[own_origin, *settings.server.cors_origins]),
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="News archive QA",
            version=__version__,
            path="/schema",
            render_plugins=_schema_pages(settings),
        ),
        debug=False,
    )
    # Around everything, routing included: a route's middleware never sees a request
    # for no route (a 404), nor the response an exception handler makes of an error.
    app.asgi_handler = _log_requests(app.asgi_handler)
    # An unknown filter field is refused (msgspec's forbid_unknown_fields); Litestar's
    # schema does not say so by itself.
    components = app.openapi_schema.components.schemas or {}
    if "FiltersRequest" in components:
        components["FiltersRequest"].additional_properties = False
    return app
