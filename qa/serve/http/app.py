"""The HTTP API (Litestar): the only package that imports Litestar.

Routes (``qa.serve.http.routes``): ``POST /api/ask``, ``POST /api/ask/stream``
(server-sent events), ``GET /api/search``, ``GET /api/documents/{doc_id}``,
``GET /healthz`` and the OpenAPI schema at ``/schema/openapi.json``; for browsers
(``qa.serve.http.pages``), the chat widget at ``GET /widget.js``, a demo page at
``GET /`` and one article with a cited span highlighted at
``GET /documents/{doc_id}?start=..&end=..``. Errors are mapped to status codes in
``qa.serve.http.errors``. This module puts them together: :func:`create_app`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, RedocRenderPlugin

from qa import __version__
from qa.config import Settings, load_settings
from qa.embed.base import Embedder
from qa.logs import configure_logging
from qa.serve.http.dependencies import dependencies
from qa.serve.http.errors import EXCEPTION_HANDLERS
from qa.serve.http.middleware import log_requests, purge_rate_limits, route_middleware
from qa.serve.http.pages import PagesController
from qa.serve.http.routes import api_routes
from qa.serve.http.schemas import state_limits
from qa.serve.reload import LiveService, watch_index
from qa.serve.service import QAService

# The interactive page of server.openapi_ui: Redoc, its version pinned, without
# Google Fonts or a favicon from outside. The reader's browser loads it from its
# CDN, which is why it is off by default; /schema/openapi.json is plain JSON.
REDOC_VERSION = "2.5.0"


def _schema_pages(settings: Settings) -> list[OpenAPIRenderPlugin]:
    pages: list[OpenAPIRenderPlugin] = [JsonRenderPlugin()]
    if settings.server.openapi_ui:
        pages.append(RedocRenderPlugin(version=REDOC_VERSION, google_fonts=False, favicon="", path="/redoc"))
    return pages


def app_from_environment() -> Litestar:
    """The application of one worker process of ``qa serve --workers N``: its settings
    come from ``QA_CONFIG`` and the ``QA_*`` variables that ``qa serve`` set."""
    configure_logging()
    return create_app(load_settings())


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
                tasks.start_soon(watch_index, live, settings.server.reload_interval_seconds)
                tasks.start_soon(purge_rate_limits, app)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            # The model client's connections; the index stays open for a service given.
            generator = live.current.generator
            if generator is not None:
                await generator.aclose()

    own_origin = f"http://{settings.server.host}:{settings.server.port}"
    app = Litestar(
        route_handlers=[*api_routes(settings), PagesController],
        dependencies=dependencies(),
        lifespan=[lifespan],
        middleware=route_middleware(settings.limits),
        exception_handlers=EXCEPTION_HANDLERS,
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
    app.asgi_handler = log_requests(app.asgi_handler)
    state_limits(app.openapi_schema.components, settings)
    return app
