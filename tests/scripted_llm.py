"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

A real HTTP server (``http.server`` in a thread) that answers ``POST
/v1/chat/completions``, streamed (server-sent events) or not, with whatever the
test scripts: a text, an error status, a delay, or raw bytes (malformed JSON or
events). Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    finish_reason: str = "stop"
    # Seconds to wait before answering (and between streamed pieces, if ``pace``).
    delay: float = 0.0
    pace: float = 0.0
    # Sent as the whole body instead of a well-formed reply.
    raw: bytes | None = None
    # Seconds of SSE keep-alive comments (": ping", every 0.2 s) before a stream's text.
    keep_alive: float = 0.0


Script = Callable[[dict[str, Any]], Reply]


class ScriptedLLM:
    def __init__(self) -> None:
        self.script: Script = lambda request: Reply("NO_ANSWER")
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def reply(self, reply: Reply | Script) -> None:
        """Answer every following request with ``reply`` (or what it returns)."""
        self.script = reply if callable(reply) else (lambda request: reply)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                llm.requests.append(body)
                llm.authorizations.append(self.headers.get("Authorization"))
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}', "application/json")
                    return
                reply = llm.script(body)
                time.sleep(reply.delay)
                if reply.status != 200:
                    self._send(reply.status, b'{"error": {"message": "scripted"}}', "application/json")
                elif body.get("stream"):
                    self._stream(reply)
                else:
                    content = (
                        reply.raw
                        or json.dumps(
                            {
                                "object": "chat.completion",
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": reply.text},
                                        "finish_reason": reply.finish_reason,
                                    }
                                ],
                            }
                        ).encode()
                    )
                    self._send(200, content, "application/json")

            def _send(self, status: int, content: bytes, media_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pinging = time.monotonic() + reply.keep_alive
                while time.monotonic() < pinging:
                    self.wfile.write(b": ping\n\n")
                    self.wfile.flush()
                    time.sleep(0.2)
                if reply.raw is not None:
                    self.wfile.write(reply.raw)
                    self.wfile.flush()
                    return
                for piece in re.findall(r"\S+\s*|\s+", reply.text):
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(reply.pace)
                last = {"choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]}
                self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def scripted_llm() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def evidence(request: dict[str, Any]) -> dict[int, str]:
    """The numbered evidence sentences of a request's last user message."""
    user = request["messages"][-1]["content"]
    return {int(n): text for n, text in re.findall(r"^\[(\d+)\] (.*)$", user, re.MULTILINE)}


def evidence_number(request: dict[str, Any], fragment: str) -> int:
    """The number of the evidence sentence that contains ``fragment``."""
    numbers = [n for n, text in evidence(request).items() if fragment in text]
    assert numbers, f"no evidence sentence contains {fragment!r}"
    return numbers[0]
