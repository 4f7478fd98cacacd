"""What a question may be, and what it may cost: the checks of a request's question,
history and ``k`` against ``[limits]`` and ``[retrieval]``, the text embedded for it
within its token budget, and the turns questions take at the embedder."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from qa.config import LimitSettings, RetrievalSettings
from qa.errors import InvalidRequestError, RequestTimeoutError, ServiceBusyError
from qa.records import Turn
from qa.search.retrieve import Retrieval


def contextual_query(question: str, history: Sequence[str] = ()) -> str:
    """The text retrieved for ``question`` asked after the questions in ``history``.

    The earlier questions (most recent last) go in front of the new one, so that a
    follow-up such as "and when?" is resolved against what the conversation is
    about. Blank entries are dropped; with no history the question is unchanged.
    """
    earlier = [item.strip() for item in history if item.strip()]
    return "\n".join([*earlier, question])


def bounded_query(
    question: str,
    history: Sequence[str],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    max_history: int,
) -> str:
    """The :func:`contextual_query` of ``question`` within ``max_tokens`` tokens: the
    question (cut at a word if it alone is longer), then as many of the last
    ``max_history`` earlier questions as fit, most recent first.

    Embedding costs grow faster than the text: a 1,000-character question with five
    1,000-character turns was about 1,460 tokens, some 140 times the work of a
    normal question. The budget keeps every question's cost within a small multiple.
    """
    question = cut_to_tokens(question, count_tokens, max_tokens)
    recent = [item.strip() for item in history if item.strip()]
    recent = recent[len(recent) - max_history :] if max_history else []
    chosen: list[str] = []
    for earlier in reversed(recent):
        if count_tokens(contextual_query(question, [earlier, *chosen])) > max_tokens:
            break
        chosen.insert(0, earlier)
    return contextual_query(question, chosen)


def cut_to_tokens(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    """The longest start of ``text`` within ``max_tokens`` tokens, at a word boundary
    when there is one in its second half."""
    if count_tokens(text) <= max_tokens:
        return text
    fits, too_long = 0, len(text)  # a binary search: about ten counts for 1,000 characters
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            fits = middle
        else:
            too_long = middle
    cut = text[:fits]
    boundary = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:boundary] if boundary > len(cut) // 2 else cut).rstrip()


# Control characters (C0, DEL, C1) other than tab and newline: a question starting
# with U+0000 reached the C engine as an empty string.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def without_control_characters(text: str) -> str:
    return _CONTROL.sub(" ", text)


@dataclass(frozen=True)
class Question:
    """A request's question, history and ``k``, checked and cleaned."""

    question: str
    turns: tuple[Turn, ...]
    k: int


@dataclass(frozen=True)
class Asked:
    """A checked question with the passages retrieved for it: what answering starts from."""

    question: str
    turns: tuple[Turn, ...]
    retrieval: Retrieval


class QuestionChecks:
    """The checks of a request against the configured limits: InvalidRequestError,
    with a message that says which limit, for anything beyond them."""

    def __init__(self, limits: LimitSettings, retrieval: RetrievalSettings) -> None:
        self.limits = limits
        self.retrieval = retrieval

    def checked(self, question: str, k: int | None, history: Sequence[str | Turn]) -> Question:
        question = self._question(question)
        turns = tuple(Turn(t) if isinstance(t, str) else t for t in self._history(history))
        return Question(question, turns, self._k(k))

    def _question(self, question: str) -> str:
        limit = self.limits.max_question_chars
        if len(question) > limit:
            raise InvalidRequestError(
                f"the question is {len(question)} characters long; the limit is {limit}"
            )
        question = without_control_characters(question).strip()
        if not question:
            raise InvalidRequestError("the question is empty")
        return question

    def _history(self, history: Sequence[str | Turn]) -> list[str | Turn]:
        limit = self.limits.max_question_chars
        turns, answer_chars = self.limits.max_history_turns, self.limits.max_history_answer_chars
        if len(history) > turns:
            raise InvalidRequestError(f"the history has {len(history)} questions; the limit is {turns}")
        for number, item in enumerate(history, start=1):
            question = item if isinstance(item, str) else item.question
            if len(question) > limit:
                raise InvalidRequestError(
                    f"history question {number} is {len(question)} characters long; the limit is {limit}"
                )
            if not isinstance(item, str) and len(item.answer) > answer_chars:
                raise InvalidRequestError(
                    f"history answer {number} is {len(item.answer)} characters long; "
                    f"the limit is {answer_chars}"
                )
        return [
            without_control_characters(item)
            if isinstance(item, str)
            else Turn(without_control_characters(item.question), without_control_characters(item.answer))
            for item in history
        ]

    def _k(self, k: int | None) -> int:
        retrieval = self.retrieval
        if k is None:
            return retrieval.default_k
        if not 1 <= k <= retrieval.max_k:
            raise InvalidRequestError(f"k must be between 1 and {retrieval.max_k}, not {k}")
        return k


class QueryGate:
    """Questions take turns at the embedder, each waiting at most ``wait_seconds``
    (or until its request's deadline): a flood queues no unbounded work, and a
    question whose client was already answered 503 is dropped, not embedded."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._turn = threading.Lock()

    @contextmanager
    def turn(self, deadline: float | None = None) -> Iterator[None]:
        wait = self.wait_seconds
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        if wait <= 0 or not self._turn.acquire(timeout=wait):
            if deadline is not None and time.monotonic() >= deadline:
                raise RequestTimeoutError("the request ran out of time waiting for the embedder")
            raise ServiceBusyError(
                f"the service is busy: no embedder was free within {self.wait_seconds:g} s; try again"
            )
        try:
            yield
        finally:
            self._turn.release()
