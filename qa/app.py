"""The HTTP API (Litestar): the only module that imports Litestar.

Routes: ``POST /api/ask``, ``GET /api/search``, ``GET /api/documents/{doc_id}``,
``GET /healthz`` and the OpenAPI schema at ``/schema/openapi.json``. Package
errors are mapped to status codes here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.config import OpenAPIConfig
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from qa import __version__
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import (
    IndexUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    QAError,
)
from qa.records import Citation, Passage
from qa.service import QAService

logger = logging.getLogger("qa.http")


@dataclass(frozen=True)
class AskRequest:
    question: str
    k: int | None = None


@dataclass(frozen=True)
class AskResponse:
    question: str
    answer: str
    found: bool
    citations: list[Citation]
    passages: list[Passage]
    took_ms: float


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


@dataclass(frozen=True)
class HealthResponse:
    status: str
    index: dict[str, Any]


@dataclass(frozen=True)
class ErrorResponse:
    status_code: int
    detail: str


def _service(state: State) -> QAService:
    service: QAService = state.service
    return service


@post("/api/ask", status_code=200, sync_to_thread=True)
def ask(data: JSONBody[AskRequest], state: State) -> AskResponse:
    """Answer a question with quotes of the archive, each cited by document and offsets."""
    started = time.perf_counter()
    answer = _service(state).ask(data.question, data.k)
    return AskResponse(
        question=answer.question,
        answer=answer.answer,
        found=answer.found,
        citations=list(answer.citations),
        passages=list(answer.passages),
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )


@get("/api/search", sync_to_thread=True)
def search(
    state: State,
    q: FromQuery[str],
    k: FromQuery[int | None] = None,
) -> SearchResponse:
    """The passages most relevant to ``q``, best first."""
    started = time.perf_counter()
    passages = _service(state).search(q, k)
    return SearchResponse(
        query=q, results=list(passages), took_ms=round((time.perf_counter() - started) * 1000, 1)
    )


@get("/api/documents/{doc_id:str}", sync_to_thread=True)
def document(doc_id: FromPath[str], state: State) -> DocumentResponse:
    """One whole article: the text that citation offsets point into."""
    article = _service(state).document(doc_id)
    return DocumentResponse(article.doc_id, article.title, article.text, article.url, article.published)


@get("/healthz", sync_to_thread=False)
def healthz(state: State) -> HealthResponse:
    """Whether the service is up, and which index version it serves."""
    return HealthResponse(status="ok", index=_service(state).index_summary())


_STATUS_OF: dict[type[QAError], int] = {
    InvalidRequestError: HTTP_400_BAD_REQUEST,
    NotFoundError: HTTP_404_NOT_FOUND,
    PayloadTooLargeError: HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    IndexUnavailableError: HTTP_503_SERVICE_UNAVAILABLE,
}


def _qa_error(request: Request[Any, Any, Any], exc: QAError) -> Response[ErrorResponse]:
    # The most specific class wins, so subclasses may map to their own status.
    status = next(
        (code for cls in type(exc).__mro__ for known, code in _STATUS_OF.items() if cls is known),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )
    return Response(ErrorResponse(status, str(exc)), status_code=status)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # Litestar says "Validation failed for POST /api/ask"; say which field and why.
        problems = [
            f"{item.get('key') or 'body'}: {item.get('message')}" if isinstance(item, dict) else str(item)
            for item in exc.extra
        ]
        detail = "invalid request: " + "; ".join(problems)
    elif exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        detail = "request body too large"
    return Response(ErrorResponse(exc.status_code, detail), status_code=exc.status_code, headers=exc.headers)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    # Log the traceback for operators; never send internals to the client.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        ErrorResponse(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


def create_app(
    settings: Settings, *, service: QAService | None = None, embedder: Embedder | None = None
) -> Litestar:
    """The Litestar application serving ``service``, or the index that ``settings`` names."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        app.state.service = service or QAService.open(settings, embedder=embedder)
        try:
            yield
        finally:
            app.state.service.close()

    own_origin = f"http://{settings.server.host}:{settings.server.port}"
    return Litestar(
        route_handlers=[ask, search, document, healthz],
        lifespan=[lifespan],
        exception_handlers={
            QAError: _qa_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        cors_config=CORSConfig(allow_origins=[own_origin, *settings.server.cors_origins]),
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=OpenAPIConfig(title="News archive QA", version=__version__, path="/schema"),
        debug=False,
    )
