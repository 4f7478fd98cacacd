"""A request's time limit (``limits.request_timeout_seconds``): work still running at
its deadline is cancelled, and the client answered 503."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio

from qa.errors import RequestTimeoutError

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    """When a request is answered 503 (``at``, a ``time.monotonic()`` value), ``seconds``
    after it started."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)


@contextmanager
def before(deadline: Deadline) -> Iterator[None]:
    """Cancel the work inside at ``deadline``, answering 503 (at once if it has passed:
    work started then would only race the cancellation)."""
    left = deadline.at - time.monotonic()
    if left <= 0:
        raise RequestTimeoutError(f"the request took longer than {deadline.seconds:g} s")
    try:
        with anyio.fail_after(left):
            yield
    except TimeoutError as exc:
        raise RequestTimeoutError(f"the request took longer than {deadline.seconds:g} s") from exc


async def in_time(deadline: Deadline, work: Callable[[], T]) -> T:
    """Run blocking ``work`` in a worker thread, answering 503 at ``deadline``.

    A thread cannot be interrupted: the work is given the deadline too and stops at
    its next check (the embedder's queue, the search), but the client gets its
    answer (an error) on time and the server stays responsive.
    """
    with before(deadline):
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
