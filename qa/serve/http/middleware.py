"""What wraps the routes: the access log, the cap on one client's requests running at
once, and the rate limit (its set-up and the purge of its counts)."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from qa.config import LimitSettings
from qa.errors import TooManyRequestsError
from qa.serve.http.errors import loggable

access_log = logging.getLogger("qa.access")

# How often the rate limit's counts of clients gone quiet are dropped.
RATE_LIMIT_PURGE_SECONDS = 60.0
RATE_LIMIT_STORE = "rate_limit"
# Paths the rate limit leaves alone, anchored: health checks, the widget's script
# and the schema are not what a flood costs. Article pages and the API are counted.
RATE_LIMIT_EXCLUDE = [r"^/healthz$", r"^/widget\.js$", r"^/schema(/|$)"]

# Logged for a request whose client went away before it was answered (nginx's 499).
CLIENT_CLOSED_REQUEST = 499


def route_middleware(limits: LimitSettings) -> list[Any]:
    """The rate limit and the per-client cap, each unless turned off (0)."""
    middleware: list[Any] = []
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
    return middleware


async def purge_rate_limits(app: Litestar) -> None:
    """Drop the rate limit's expired counts: the memory store forgets a client only
    when the same client comes back, so one-time addresses would pile up for good."""
    store = app.stores.get(RATE_LIMIT_STORE)
    while True:
        await anyio.sleep(RATE_LIMIT_PURGE_SECONDS)
        if isinstance(store, MemoryStore):
            await store.delete_expired()


def log_requests(app: ASGIApp) -> ASGIApp:
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
