"""What answering needs of a chat model: messages in, a reply whole or in pieces.

:class:`ChatModel` is the one seam between answering and a model server:
``qa.llm.client.ChatClient`` speaks it over HTTP, and a test may put anything that
has these methods in its place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Completion:
    """A whole reply; ``finish_reason`` is "stop", or "length" when cut at max_tokens."""

    text: str
    finish_reason: str | None
    model_ms: float


@dataclass
class StreamState:
    """What a streamed reply said about itself by the time it ended."""

    finish_reason: str | None = None
    model_ms: float = 0.0


class ChatModel(Protocol):
    """A chat model; every failure is an LLMError (``qa.errors``)."""

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        """The whole reply to ``messages``."""
        ...

    def stream(self, messages: Sequence[ChatMessage], state: StreamState) -> AsyncIterator[str]:
        """The reply's text pieces as they come; ``state`` holds its finish reason once done."""
        ...

    async def aclose(self) -> None:
        """Release the model's connections."""
        ...
