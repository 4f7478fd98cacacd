"""Running the HTTP application with uvicorn, as it must run on the open internet.

uvicorn closes a connection idle between requests (``timeout_keep_alive``) but
never one that trickles its request: a client that sends a header line every few
seconds, or a body one byte at a time, or that opens connections and sends nothing,
holds a file descriptor for as long as it likes, and nothing caps how many it holds
(190 such connections took a server with 200 descriptors down). So the HTTP
protocol here is uvicorn's own with three more limits (``[server]`` settings):

* ``max_connections``: a connection beyond this many is closed on arrival;
* ``header_timeout_seconds``: a request's headers must be complete this long after
  its first byte (or after the connection opened);
* ``body_timeout_seconds``: its body, this long after its headers.

``qa serve`` runs the application through :func:`run`; every other uvicorn
setting stays uvicorn's (``keep_alive_seconds`` is its ``timeout_keep_alive``,
``forwarded_allow_ips`` its trusted proxies).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from qa.config import ServerSettings

logger = logging.getLogger("qa.serve.http.server")


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_seconds: float
    body_timeout_seconds: float

    @classmethod
    def of(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(server.max_connections, server.header_timeout_seconds, server.body_timeout_seconds)


# Where the limits travel on uvicorn's Config: it is what reaches each worker
# process of `qa serve --workers N` (pickled with the config).
LIMITS_ATTRIBUTE = "qa_connection_limits"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections beyond the cap and requests whose
    headers or body arrive too slowly."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, LIMITS_ATTRIBUTE)
        self._read_timer: asyncio.TimerHandle | None = None
        # What the timer waits for: "headers" or "body"; None while nothing is awaited.
        self._awaiting: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            logger.warning("closing a connection: %d are open already", self.limits.max_connections)
            transport.close()
            return
        self._await("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request may already be under way; an idle connection is left to
        # uvicorn's keep-alive timer, until its next request's first byte.
        self._follow_request(idle_ok=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._await(None)
        super().connection_lost(exc)

    def _follow_request(self, *, idle_ok: bool = False) -> None:
        """Time what the connection still owes: its request's headers, or its body."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if not idle_ok:
                self._await("headers")
        elif state is h11.SEND_BODY:
            self._await("body")
        else:
            self._await(None)

    def _await(self, part: str | None) -> None:
        if part == self._awaiting:
            return
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._awaiting = part
        if part is not None:
            limits = self.limits
            seconds = limits.header_timeout_seconds if part == "headers" else limits.body_timeout_seconds
            self._read_timer = self.loop.call_later(seconds, self._too_slow, part, seconds)

    def _too_slow(self, part: str, seconds: float) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        logger.warning("closing a connection that did not send its request %s within %g s", part, seconds)
        self.transport.close()


def run(app: Any, server: ServerSettings, **options: Any) -> None:
    """Serve ``app`` (an application, or with ``workers > 1`` the import string of a
    factory) as ``uvicorn.run`` would, through :class:`GuardedH11Protocol`."""
    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        workers=server.workers,
        http=GuardedH11Protocol,
        timeout_keep_alive=server.keep_alive_seconds,
        proxy_headers=True,
        forwarded_allow_ips=list(server.forwarded_allow_ips),
        **options,
    )
    setattr(config, LIMITS_ATTRIBUTE, ConnectionLimits.of(server))
    if server.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
