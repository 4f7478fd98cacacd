"""The API's routes, on Litestar controllers: asking (whole or streamed), search,
documents, health and the admin reload (behind :func:`admin_only`, a guard).

A route is given what it works with as dependencies (``qa.serve.http.dependencies``):
the served service, the request's deadline, the settings; it maps the service's
records to the response types of ``qa.serve.http.schemas``.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import anyio
from litestar import Controller, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler

from qa.config import Settings
from qa.errors import NotFoundError, UnauthorizedError
from qa.serve.http.deadline import Deadline, before, in_time
from qa.serve.http.dependencies import SearchRequest, doc_id_of, search_request
from qa.serve.http.errors import error_responses, without_paths
from qa.serve.http.events import extractive_events, generated_events, ms_since
from qa.serve.http.schemas import (
    AskRequest,
    AskResponse,
    DocumentResponse,
    HealthResponse,
    Passage,
    SearchResponse,
)
from qa.serve.questions import Asked
from qa.serve.reload import LiveService
from qa.serve.service import QAService


def is_admin(headers: Headers, settings: Settings) -> bool:
    """Whether the request carries the admin token (never, while none is set)."""
    token = settings.server.admin_token
    given = headers.get("authorization", "").removeprefix("Bearer ")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The guard of the admin routes: 404 while no admin token is set, 401 without it."""
    settings: Settings = connection.app.state.settings
    if not settings.server.admin_token:
        raise NotFoundError("admin endpoints are off: set QA_SERVER_ADMIN_TOKEN to enable them")
    if not is_admin(connection.headers, settings):
        raise UnauthorizedError("a valid admin token is required (Authorization: Bearer TOKEN)")


def _removed_text(request: Request[Any, Any, Any], settings: Settings) -> bool:
    """Whether this client may see the removed sentences' texts: admin requests, or
    all with ``server.removed_text``."""
    return settings.server.removed_text or is_admin(request.headers, settings)


async def _asked(service: QAService, data: AskRequest, deadline: Deadline) -> Asked:
    filters = data.filters.parsed() if data.filters else None
    return await in_time(
        deadline, lambda: service.retrieve(data.question, data.k, data.turns(), filters, deadline.at)
    )


class AskController(Controller):
    @post("/api/ask", status_code=200, responses=error_responses(400, 413, 429, 503))
    async def ask(
        self,
        data: JSONBody[AskRequest],
        request: Request[Any, Any, Any],
        service: NamedDependency[QAService],
        settings: NamedDependency[Settings],
        deadline: NamedDependency[Deadline],
    ) -> AskResponse:
        """Answer a question, each statement cited by document and character offsets.

        With a model configured (``[llm]``), a written answer whose every sentence was
        checked against the spans it cites; otherwise, or when the model fails, quotes.
        ``outcome`` says what the answer is: ``answered`` (``found`` is true, with
        citations), ``related`` (the archive may not answer directly: no citations, and
        ``passages`` are the closest it has, to show as passages, not as the answer) or
        ``not_found`` (the answer says the sources do not answer).
        """
        started = time.perf_counter()
        asked = await _asked(service, data, deadline)
        if service.generator is None:
            answer = await in_time(deadline, lambda: service.extractive(asked))
        else:
            with before(deadline):
                answer = await service.generated(asked)
        return AskResponse.of(answer, ms_since(started), removed_text=_removed_text(request, settings))

    @post(
        "/api/ask/stream",
        status_code=200,
        media_type="text/event-stream",
        responses=error_responses(400, 413, 429, 503),
    )
    async def ask_stream(
        self,
        data: JSONBody[AskRequest],
        request: Request[Any, Any, Any],
        service: NamedDependency[QAService],
        settings: NamedDependency[Settings],
        deadline: NamedDependency[Deadline],
    ) -> ServerSentEvent:
        """The answer to a question as server-sent events.

        A quoted answer: ``passages`` (``{"passages": [...]}``), ``citations``
        (``{"citations": [...]}``), one or more ``answer`` (``{"text": ...}``, pieces
        to append), then ``done``. A written answer: ``passages``, one ``answer`` a
        sentence as soon as it is complete and verified (its ``[n]`` markers are the
        citations' ``n``), then ``citations`` and ``done``. ``done`` is ``{"question",
        "answer", "found", "outcome", "confidence", "mode", "removed", "llm_error",
        "timings", "took_ms"}``, its ``outcome`` as in ``POST /api/ask`` (a ``related``
        answer's passages are those of the ``passages`` event). The request is checked,
        and its passages found, before the stream opens, so bad input gets the same 400
        JSON error as ``POST /api/ask``. A stream still open at the request's time limit
        ends with an ``error`` event.
        """
        started = time.perf_counter()
        asked = await _asked(service, data, deadline)
        removed_text = _removed_text(request, settings)
        if service.generator is None:
            answer = await in_time(deadline, lambda: service.extractive(asked))
            return ServerSentEvent(extractive_events(answer, started, removed_text))
        return ServerSentEvent(generated_events(service, asked, started, deadline, removed_text))


class SearchController(Controller):
    @get("/api/search", responses=error_responses(400, 429, 503))
    async def search(
        self,
        searched: NamedDependency[SearchRequest],
        service: NamedDependency[QAService],
        deadline: NamedDependency[Deadline],
    ) -> SearchResponse:
        """The passages most relevant to ``q``, best first. Filters: ``published_from``,
        ``published_to``, repeated ``doc_id``, and repeated ``meta.KEY=VALUE`` (values of
        one key are alternatives; everything else must all hold)."""
        started = time.perf_counter()
        passages = await in_time(
            deadline,
            lambda: service.search(
                searched.q, searched.k, searched.filters, newest=searched.newest, deadline=deadline.at
            ),
        )
        return SearchResponse(searched.q, [Passage.of(p) for p in passages], ms_since(started))


class DocumentController(Controller):
    @get("/api/documents/{doc_id:path}", sync_to_thread=True, responses=error_responses(404, 429))
    def document(
        self, request: Request[Any, Any, Any], service: NamedDependency[QAService]
    ) -> DocumentResponse:
        """One whole article: the text that citation offsets point into. An id may hold
        ``/`` (send it as is, or as ``%2F``)."""
        return DocumentResponse.of(service.document(doc_id_of(request, "/api/documents/")))


def _health(live: LiveService, problem: str | None, *, details: bool) -> HealthResponse:
    status = "degraded" if problem else "ok"
    service = live.current
    version = service.index.manifest.version
    if not details:
        return HealthResponse(status, version)
    return HealthResponse(
        status=status,
        version=version,
        index=service.index_summary(),
        problem=without_paths(problem),
        reload_error=without_paths(live.reload_error),
        llm=service.model_health(),
        worker=os.getpid(),
    )


class HealthController(Controller):
    @get(
        "/healthz", sync_to_thread=True, responses={503: ResponseSpec(HealthResponse, description="degraded")}
    )
    def healthz(
        self,
        request: Request[Any, Any, Any],
        live: NamedDependency[LiveService],
        settings: NamedDependency[Settings],
    ) -> Response[HealthResponse]:
        """Whether the service is up, and which index version it serves.

        503 with ``"status": "degraded"`` when the served version's files are missing
        or damaged on disk, or what a filtered search reads fails: answers still come
        from memory, but a restart would fail. With the admin token
        (``Authorization: Bearer TOKEN``), also the details: the index's manifest, the
        problem, the last reload error, the model's state and the worker process.
        """
        problem = live.disk_problem()
        health = _health(live, problem, details=is_admin(request.headers, settings))
        return Response(health, status_code=HTTP_503_SERVICE_UNAVAILABLE if problem else 200)

    @post("/admin/reload", status_code=200, include_in_schema=False, guards=[admin_only])
    async def admin_reload(self, live: NamedDependency[LiveService]) -> HealthResponse:
        """Load a newly published index now instead of at the next check."""
        await anyio.to_thread.run_sync(live.refresh)
        return _health(live, None, details=True)


def api_routes(settings: Settings) -> list[ControllerRouterHandler]:
    """The API's controllers; the search's with its parameters' limits from ``settings``."""
    search = Router(
        "/", route_handlers=[SearchController], dependencies={"searched": search_request(settings)}
    )
    return [AskController, search, DocumentController, HealthController]
