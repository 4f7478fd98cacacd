"""An answer as server-sent events (``POST /api/ask/stream``).

An extractive answer: ``passages``, ``citations``, one or more ``answer`` (pieces
to append), then ``done``. A generated one: ``passages``, one ``answer`` a sentence
as soon as it is complete and verified, then ``citations`` and ``done``. ``done``
carries what the answer is (``found``, ``outcome``, ``confidence``): a ``related`` answer
(no citations) is told from an answered one there, and its passages are the
``passages`` event's. A stream that fails once open ends with an ``error`` event.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from litestar.response import ServerSentEventMessage
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE

from qa.errors import RequestTimeoutError
from qa.records import Answer, AnswerMode, AnswerPiece, Citation, Passage
from qa.serve.http import schemas
from qa.serve.http.deadline import Deadline, before
from qa.serve.questions import Asked
from qa.serve.service import QAService

logger = logging.getLogger("qa.http")

# Words of the answer sent per ``answer`` event of an extractive answer's stream.
STREAM_WORDS = 3


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def answer_pieces(answer: str, words: int = STREAM_WORDS) -> list[str]:
    """``answer`` cut into runs of ``words`` words that join back to exactly ``answer``."""
    tokens = re.findall(r"\s*\S+|\s+$", answer)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)] or [answer]


def _event(name: str, payload: dict[str, Any]) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=name, data=json.dumps(payload, ensure_ascii=False))


def _passages(passages: Sequence[Passage]) -> ServerSentEventMessage:
    return _event("passages", {"passages": [schemas.as_json(schemas.Passage.of(p)) for p in passages]})


def _citations(citations: Sequence[Citation]) -> ServerSentEventMessage:
    return _event("citations", {"citations": [schemas.as_json(schemas.Citation.of(c)) for c in citations]})


def _done(answer: Answer, started: float, removed_text: bool) -> ServerSentEventMessage:
    response = schemas.AskResponse.of(answer, ms_since(started), removed_text=removed_text)
    return _event(
        "done",
        {
            "question": response.question,
            "answer": response.answer,
            "found": response.found,
            "outcome": response.outcome.value,
            "confidence": response.confidence,
            "mode": response.mode.value,
            "removed": [schemas.as_json(r) for r in response.removed],
            "llm_error": response.llm_error,
            "timings": schemas.as_json(response.timings) if response.timings else None,
            "took_ms": response.took_ms,
        },
    )


def extractive_events(
    answer: Answer, started: float, removed_text: bool, *, passages: bool = True
) -> Iterator[ServerSentEventMessage]:
    if passages:
        yield _passages(answer.passages)
    yield _citations(answer.citations)
    for piece in answer_pieces(answer.answer):
        yield _event("answer", {"text": piece})
    yield _done(answer, started, removed_text)


async def generated_events(
    service: QAService, asked: Asked, started: float, deadline: Deadline, removed_text: bool
) -> AsyncIterator[ServerSentEventMessage]:
    yield _passages(asked.retrieval.passages)
    items = service.generated_stream(asked)
    try:
        while True:
            # The deadline bounds each wait for the next item, not a yield (anyio
            # forbids a cancel scope around a yield in an async generator).
            with before(deadline):
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
            if isinstance(item, AnswerPiece):
                yield _event("answer", {"text": item.text})
            elif item.mode is AnswerMode.EXTRACTIVE:
                for message in extractive_events(item, started, removed_text, passages=False):
                    yield message
            else:
                yield _citations(item.citations)
                yield _done(item, started, removed_text)
    except RequestTimeoutError as exc:
        yield _event("error", {"status_code": HTTP_503_SERVICE_UNAVAILABLE, "detail": str(exc)})
    except Exception:  # the stream is open: say so in it rather than cut it short
        logger.exception("generated answer stream failed")
        yield _event(
            "error", {"status_code": HTTP_500_INTERNAL_SERVER_ERROR, "detail": "internal server error"}
        )
    finally:
        await items.aclose()
