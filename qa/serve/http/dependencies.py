"""What a route is given (Litestar dependencies): the served service, read once per
request so that a request never mixes two index versions; the request's deadline;
and a search's parameters, checked against the configured limits.

No ``from __future__ import annotations`` here: the search parameters' constraints
are built from the app's settings in :func:`search_request`, so their annotations
must be evaluated there, not resolved later from this module's names.
"""

import datetime
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import QueryParameter

from qa.config import Settings
from qa.records import Filters
from qa.search.filters import MAX_FILTER_VALUES, parse_filters
from qa.serve.http.deadline import Deadline
from qa.serve.http.schemas import K_DESCRIPTION, NOT_BLANK, QUESTION_DESCRIPTION
from qa.serve.reload import LiveService
from qa.serve.service import QAService


@dataclass(frozen=True)
class SearchRequest:
    """The parameters of ``GET /api/search``, checked."""

    q: str
    k: int | None
    filters: Filters
    # The same results, newest article first.
    newest: bool


def _live(state: State) -> LiveService:
    live: LiveService = state.live
    return live


def _service(state: State) -> QAService:
    """The served version, read once per request: a request never mixes two versions."""
    return _live(state).current


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _deadline(state: State) -> Deadline:
    return Deadline.after(_settings(state).limits.request_timeout_seconds)


def search_request(settings: Settings) -> Provide:
    """The parameters of a search, their limits those of ``settings`` (Litestar checks
    them, and the OpenAPI schema states them)."""
    limits, retrieval = settings.limits, settings.retrieval

    def searched(
        request: Request[Any, Any, Any],
        q: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=limits.max_question_chars,
                pattern=NOT_BLANK,
                description=QUESTION_DESCRIPTION,
            ),
        ],
        k: Annotated[
            int | None,
            QueryParameter(
                ge=1, le=retrieval.max_k, description=K_DESCRIPTION.format(default_k=retrieval.default_k)
            ),
        ] = None,
        published_from: Annotated[
            datetime.date | None, QueryParameter(description="Earliest publication date, YYYY-MM-DD.")
        ] = None,
        published_to: Annotated[
            datetime.date | None, QueryParameter(description="Latest publication date, YYYY-MM-DD.")
        ] = None,
        doc_id: Annotated[
            list[str] | None,
            QueryParameter(description="Only these documents (repeat it).", max_items=MAX_FILTER_VALUES),
        ] = None,
        sort: Annotated[
            Literal["relevance", "newest"],
            QueryParameter(
                description="relevance (default), or newest: the same results, newest article first."
            ),
        ] = "relevance",
    ) -> SearchRequest:
        # Repeated meta.KEY=VALUE: keys are the source's, so not named parameters.
        meta: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            if name.startswith("meta."):
                meta.setdefault(name.removeprefix("meta."), []).append(value)
        filters = parse_filters(published_from, published_to, doc_id or [], meta)
        return SearchRequest(q, k, filters, newest=sort == "newest")

    return Provide(searched, sync_to_thread=False)


def dependencies() -> dict[str, Provide]:
    """The dependencies of every route, by the parameter name a route asks for them with
    (the search's own, :func:`search_request`, are given to its route only: Litestar
    would take their ``doc_id`` query parameter for the documents' path parameter)."""
    return {
        "settings": Provide(_settings, sync_to_thread=False),
        "live": Provide(_live, sync_to_thread=False),
        "service": Provide(_service, sync_to_thread=False),
        "deadline": Provide(_deadline, sync_to_thread=False),
    }


def doc_id_of(request: Request[Any, Any, Any], prefix: str) -> str:
    """The document id of a ``{doc_id:path}`` route, exactly as sent (``/`` as is or
    as ``%2F``): read from the raw path, as Litestar's ``path`` parameter is a
    ``pathlib.Path`` and its routing folds ``a//b`` into ``a/b``."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    return urllib.parse.unquote_to_bytes(raw).decode("utf-8", "replace").removeprefix(prefix)
