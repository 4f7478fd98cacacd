"""A client of OpenAI-compatible chat-completions endpoints (httpx). No prompts here.

One pooled ``httpx.AsyncClient`` lives as long as the service. It speaks only the
common subset of the OpenAI format that OpenAI, vLLM, Ollama and llama.cpp's server
all accept: ``POST {base_url}/chat/completions`` with ``model``, ``messages``,
``temperature``, ``max_tokens`` and ``stream``; a streamed reply is server-sent
events of ``choices[0].delta.content`` pieces ending with ``data: [DONE]``.

Every failure (unreachable, too slow, an HTTP error status, malformed JSON or
events, an empty reply) becomes one :class:`LLMError` whose message says what
happened without the API key or the endpoint's address. :class:`ChatClient` is the
:class:`~qa.llm.chat.ChatModel` that answering uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
from httpx_sse import SSEError, aconnect_sse

from qa.config import LLMSettings
from qa.errors import LLMError
from qa.llm.chat import ChatMessage, Completion, StreamState

_STATUS_HINTS = {
    401: "unauthorized: check QA_LLM_API_KEY",
    403: "forbidden: check QA_LLM_API_KEY",
    404: "not found: check llm.base_url and llm.model",
    429: "rate limited",
}


class ChatClient:
    """The chat model at ``llm.base_url``, over one pool of HTTP connections."""

    def __init__(self, settings: LLMSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _body(self, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_answer_tokens,
            "stream": stream,
        }

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        """The whole reply to ``messages``, within ``timeout_seconds`` in all."""
        started = time.perf_counter()
        with _mapped_errors(self.settings.timeout_seconds):
            with anyio.fail_after(self.settings.timeout_seconds):
                response = await self._http.post("/chat/completions", json=self._body(messages, stream=False))
            _check_status(response)
            try:
                choice = response.json()["choices"][0]
                text = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LLMError("the model sent a malformed reply (not a chat completion)") from exc
        if not isinstance(text, str) or not text.strip():
            raise LLMError("the model sent an empty answer")
        return Completion(text, choice.get("finish_reason"), (time.perf_counter() - started) * 1000)

    async def stream(self, messages: Sequence[ChatMessage], state: StreamState) -> AsyncIterator[str]:
        """The reply's text pieces as they come; ``state`` holds its finish reason once done.

        The whole stream must end within ``timeout_seconds``.
        """
        # No cancel scope around a yield (anyio forbids it in async generators): each
        # wait for the next event is bounded by what is left of the deadline instead.
        # Checking the clock only when an event arrives is not enough: a server that
        # sends keep-alive comments (": ping") resets httpx's read timeout and makes
        # no event, so such a stream would never stop.
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.timeout_seconds
        received = False
        with _mapped_errors(self.settings.timeout_seconds):
            body = self._body(messages, stream=True)
            # llama.cpp's server closes the connection after a stream while announcing
            # keep-alive; a pooled connection reused after it fails. One a stream.
            headers = {"Connection": "close"}
            async with aconnect_sse(
                self._http, "POST", "/chat/completions", json=body, headers=headers
            ) as source:
                _check_status(source.response)
                if "text/event-stream" not in source.response.headers.get("content-type", ""):
                    raise LLMError("the model did not answer with an event stream")
                events = source.aiter_sse()
                while True:
                    with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                        try:
                            event = await anext(events)
                        except StopAsyncIteration:
                            break
                    if event.data.strip() == "[DONE]":
                        break
                    piece, finish_reason = _delta(event.data)
                    state.finish_reason = finish_reason or state.finish_reason
                    if piece:
                        received = True
                        yield piece
        state.model_ms = (time.perf_counter() - started) * 1000
        if not received:
            raise LLMError("the model sent an empty answer")


def _delta(data: str) -> tuple[str, str | None]:
    try:
        chunk = json.loads(data)
        if "error" in chunk:
            raise LLMError("the model reported an error in its event stream")
        choices = chunk["choices"]
        if not choices:  # some servers send a last chunk with usage only
            return "", None
        piece = choices[0].get("delta", {}).get("content") or ""
        if not isinstance(piece, str):
            raise TypeError("content is not text")
        return piece, choices[0].get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError("the model sent a malformed event stream") from exc


def _check_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        hint = _STATUS_HINTS.get(response.status_code, "server error" if response.status_code >= 500 else "")
        raise LLMError(
            f"the model endpoint answered HTTP {response.status_code}" + (f" ({hint})" if hint else "")
        )


@contextmanager
def _mapped_errors(timeout: float) -> Iterator[None]:
    """Turns transport failures into LLMError messages free of URLs and keys."""
    try:
        yield
    except LLMError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise LLMError(f"the model did not answer within {timeout:g} s") from exc
    except httpx.ConnectError as exc:
        raise LLMError("the model endpoint is unreachable") from exc
    except SSEError as exc:
        raise LLMError("the model sent a malformed event stream") from exc
    except httpx.HTTPError as exc:
        raise LLMError(f"the connection to the model failed ({type(exc).__name__})") from exc
