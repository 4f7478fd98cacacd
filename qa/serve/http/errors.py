"""Package errors and Litestar's own mapped to status codes and JSON error bodies,
here and nowhere else; and what a client or a log line may be told of a message."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from qa.errors import (
    IndexUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    QAError,
    RequestTimeoutError,
    ServiceBusyError,
    TooManyRequestsError,
    UnauthorizedError,
)
from qa.serve.http.schemas import ErrorResponse

logger = logging.getLogger("qa.http")

_STATUS_OF: dict[type[QAError], int] = {
    InvalidRequestError: HTTP_400_BAD_REQUEST,
    NotFoundError: HTTP_404_NOT_FOUND,
    PayloadTooLargeError: HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    IndexUnavailableError: HTTP_503_SERVICE_UNAVAILABLE,
    UnauthorizedError: HTTP_401_UNAUTHORIZED,
    TooManyRequestsError: HTTP_429_TOO_MANY_REQUESTS,
    ServiceBusyError: HTTP_503_SERVICE_UNAVAILABLE,
    RequestTimeoutError: HTTP_503_SERVICE_UNAVAILABLE,
}
# Seconds a client is asked to wait before it tries again, by status.
RETRY_AFTER = {HTTP_429_TOO_MANY_REQUESTS: "1", HTTP_503_SERVICE_UNAVAILABLE: "5"}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        code: ResponseSpec(data_container=ErrorResponse, description=HTTPStatus(code).phrase)
        for code in codes
    }


def status_of(exc: QAError) -> int:
    # The most specific class wins, so subclasses may map to their own status.
    return next(
        (code for cls in type(exc).__mro__ for known, code in _STATUS_OF.items() if cls is known),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _qa_error(request: Request[Any, Any, Any], exc: QAError) -> Response[ErrorResponse]:
    status = status_of(exc)
    if isinstance(exc, IndexUnavailableError):
        logger.error("index unavailable on %s %s: %s", request.method, loggable(request.url.path), exc)
    retry = {"Retry-After": RETRY_AFTER[status]} if status in RETRY_AFTER else None
    return Response(ErrorResponse(status, without_paths(str(exc)) or ""), status_code=status, headers=retry)


# An absolute path in a message, for without_paths: it keeps the last component.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"()]+/)*([^\s/'\"()]*)")


def without_paths(message: str | None) -> str | None:
    """``message`` with every absolute path cut to its last component: a client is
    never told where the service keeps its files."""
    return None if message is None else _ABSOLUTE_PATH.sub(r"\1", message)


# Characters that would break a log line or forge another: C0, DEL, C1, and the
# Unicode line and paragraph separators.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def loggable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x0a``), for a log line."""
    return _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        # Litestar says "Validation failed for POST /api/ask"; say which field and why.
        problems = [
            f"{item.get('key') or 'body'}: {_readable(str(item.get('message')))}"
            if isinstance(item, dict)
            else str(item)
            for item in exc.extra
        ]
        detail = "invalid request: " + "; ".join(problems)
    elif exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        detail = "request body too large"
    return Response(ErrorResponse(exc.status_code, detail), status_code=exc.status_code, headers=exc.headers)


def _readable(message: str) -> str:
    # The pattern that rejects blank text reads as a regular expression; say what it means.
    if "matching regex" in message:
        return "must not be empty or only spaces"
    return message


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    if isinstance(exc, RecursionError):
        # msgspec refuses JSON nested deeper than it can decode; that is the client's doing.
        detail = "invalid request: the JSON body is nested too deeply"
        return Response(ErrorResponse(HTTP_400_BAD_REQUEST, detail), status_code=HTTP_400_BAD_REQUEST)
    # Log the traceback for operators; never send internals to the client.
    logger.exception("unhandled error on %s %s", request.method, loggable(request.url.path))
    return Response(
        ErrorResponse(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    QAError: _qa_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}
