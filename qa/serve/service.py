"""The question-answering service, free of any web framework.

Checks the input of a request, then runs retrieval and answering on the loaded
index. ``qa ask`` and the HTTP layer both go through it, so they answer alike.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from qa.answer.confidence import AnswerabilityModel
from qa.answer.extractive import Answerer
from qa.answer.generated import AnswerWriter
from qa.config import Settings
from qa.embed.embedders import Embedder, make_embedder
from qa.errors import InvalidRequestError, LLMError, QAError, RequestTimeoutError, ServiceBusyError
from qa.records import Answer, AnswerPiece, Article, Filters, Passage, Turn
from qa.search.retrieve import Query, Retrieval, Retriever
from qa.store.documents import day_number
from qa.store.index import Index, load_index

logger = logging.getLogger("qa.serve.service")

# The most earlier turns a request may send (retrieval uses the most recent
# limits.query_history_questions of them; a model configured sees them all).
MAX_HISTORY = 5
# An earlier answer sent back as a turn of the conversation (several cited sentences).
MAX_HISTORY_ANSWER_CHARS = 4000


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


@dataclass(frozen=True)
class Asked:
    """A checked question with the passages retrieved for it: what answering starts from."""

    question: str
    turns: tuple[Turn, ...]
    retrieval: Retrieval


class QAService:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        index: Index,
        writer: AnswerWriter | None = None,
        answerability: AnswerabilityModel | None = None,
        gate: QueryGate | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.retriever = Retriever(index, embedder)
        self.answerability = answerability or AnswerabilityModel.load()
        self.answerer = Answerer(index, settings.answer, self.answerability)
        # Writes answers with a model when [llm] is configured; outlives index reloads,
        # as the gate to the embedder does.
        self.writer = writer
        self.gate = gate or QueryGate(settings.limits.embed_wait_seconds)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        answerability: AnswerabilityModel | None = None,
    ) -> QAService:
        """Load the embedder and the index the settings name (and the model client, if any)."""
        embedder = embedder or make_embedder(settings.embedding)
        index = load_index(
            settings.index.path, settings.index, model=embedder.model_id, dimension=embedder.dimension
        )
        # The first embedding call pays the engine's one-time set-up; pay it here,
        # not in the first user's request.
        embedder.embed_queries(["warm-up"])
        writer = None
        if settings.llm.enabled:
            writer = AnswerWriter(settings.llm, embedder, settings.answer.max_sentences)
        return cls(settings, embedder, index, writer, answerability)

    def close(self) -> None:
        self.index.close()

    async def aclose(self) -> None:
        """Close the index and the model client's connections."""
        self.close()
        if self.writer is not None:
            await self.writer.aclose()

    def ask(self, question: str, k: int | None = None, history: Sequence[str | Turn] = ()) -> Answer:
        """The quoted (extractive) answer to ``question``; ``history`` holds the earlier
        turns of the conversation (or just their questions), most recent last.

        The history only steers retrieval; the answer's ``question`` is the user's own.
        """
        return self.extractive(self.retrieve(question, k, history))

    def retrieve(
        self,
        question: str,
        k: int | None = None,
        history: Sequence[str | Turn] = (),
        filters: Filters | None = None,
        deadline: float | None = None,
    ) -> Asked:
        """Check the request and retrieve its passages (of the articles ``filters``
        allow); InvalidRequestError if it is wrong. Past ``deadline`` (a
        ``time.monotonic()`` value: when the client is answered 503) the work stops."""
        question = self._checked_question(question)
        turns = tuple(Turn(t) if isinstance(t, str) else t for t in self._checked_history(history))
        k = self._checked_k(k)
        query = self._query(question, [t.question for t in turns], deadline)
        if deadline is not None and time.monotonic() > deadline:
            raise RequestTimeoutError("the request ran out of time before its search")
        return Asked(question, turns, self.retriever.retrieve(query, k, filters))

    def _query(self, question: str, history: Sequence[str], deadline: float | None) -> Query:
        """The question and the most recent history within the query budget, embedded
        in its turn at the embedder."""
        limits = self.settings.limits
        with self.gate.turn(deadline):
            text = bounded_query(
                question, history, self.embedder.count_tokens, limits.max_query_tokens,
                limits.query_history_questions,
            )  # fmt: skip
            return self.retriever.query(text)

    def extractive(self, asked: Asked) -> Answer:
        return self.answerer.answer(asked.question, asked.retrieval)

    async def written(self, asked: Asked) -> Answer:
        """The model's verified answer, or the quoted one (with ``llm_error`` if the
        model failed or is paused) when the model is not to be asked or fails.

        A written answer carries the confidence of the evidence it was written from;
        a "not answered" reply, or one with no sentence verified, is ``found: false``
        whatever that confidence."""
        confidence = await anyio.to_thread.run_sync(
            self.answerer.confidence, asked.question, asked.retrieval, abandon_on_cancel=True
        )
        writer = self._writer_for(confidence)
        if not isinstance(writer, AnswerWriter):
            return await self._quoted(asked, writer)
        try:
            answer = await writer.write(self.index, asked.question, asked.retrieval.passages, asked.turns)
        except LLMError as exc:
            return await self._failed(writer, asked, exc)
        writer.health.record_success()
        return dataclasses.replace(answer, confidence=confidence)

    async def written_stream(self, asked: Asked) -> AsyncGenerator[AnswerPiece | Answer, None]:
        """Verified sentences of the model's answer as they come, then the whole answer;
        the quoted answer alone (with ``llm_error``) if the model fails before a sentence."""
        confidence = await anyio.to_thread.run_sync(
            self.answerer.confidence, asked.question, asked.retrieval, abandon_on_cancel=True
        )
        writer = self._writer_for(confidence)
        if not isinstance(writer, AnswerWriter):
            yield await self._quoted(asked, writer)
            return
        try:
            async for item in writer.stream(
                self.index, asked.question, asked.retrieval.passages, asked.turns
            ):
                yield dataclasses.replace(item, confidence=confidence) if isinstance(item, Answer) else item
        except LLMError as exc:
            yield await self._failed(writer, asked, exc)
            return
        writer.health.record_success()

    def _writer_for(self, confidence: float) -> AnswerWriter | str | None:
        """The writer to ask; else None (no model configured, or evidence too weak to
        answer from at all), or why the model is paused after failures."""
        if self.writer is None or confidence < self.settings.answer.min_confidence:
            return None
        return self.writer.health.paused() or self.writer

    async def _quoted(self, asked: Asked, llm_error: str | None) -> Answer:
        answer = await anyio.to_thread.run_sync(self.extractive, asked)
        return dataclasses.replace(answer, llm_error=llm_error)

    async def _failed(self, writer: AnswerWriter, asked: Asked, exc: LLMError) -> Answer:
        writer.health.record_failure(str(exc))
        logger.warning("written answer failed, answering with quotes: %s", exc)
        return await self._quoted(asked, str(exc))

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: Filters | None = None,
        *,
        newest: bool = False,
        deadline: float | None = None,
    ) -> tuple[Passage, ...]:
        """The ``k`` passages most relevant to ``query``; with ``newest``, those same
        passages ordered by their articles' publication day, newest first (relevance
        breaks ties, and articles without a date come last)."""
        passages = self.retrieve(query, k, filters=filters, deadline=deadline).retrieval.passages
        if not newest:
            return passages
        # Several passages often come from one article: read each article once.
        days = {d: day_number(self.index.document(d).published) for d in {p.doc_id for p in passages}}
        return tuple(sorted(passages, key=lambda p: (-days[p.doc_id], -p.score)))

    def document(self, doc_id: str) -> Article:
        return self.index.document(doc_id)

    def index_summary(self) -> dict[str, Any]:
        """The served version's manifest (no paths: it is sent to admin clients)."""
        return dataclasses.asdict(self.index.manifest)

    def _checked_question(self, question: str) -> str:
        limit = self.settings.limits.max_question_chars
        if len(question) > limit:
            raise InvalidRequestError(
                f"the question is {len(question)} characters long; the limit is {limit}"
            )
        question = without_control_characters(question).strip()
        if not question:
            raise InvalidRequestError("the question is empty")
        return question

    def _checked_history(self, history: Sequence[str | Turn]) -> list[str | Turn]:
        limit = self.settings.limits.max_question_chars
        if len(history) > MAX_HISTORY:
            raise InvalidRequestError(f"the history has {len(history)} questions; the limit is {MAX_HISTORY}")
        for number, item in enumerate(history, start=1):
            question = item if isinstance(item, str) else item.question
            if len(question) > limit:
                raise InvalidRequestError(
                    f"history question {number} is {len(question)} characters long; the limit is {limit}"
                )
            if not isinstance(item, str) and len(item.answer) > MAX_HISTORY_ANSWER_CHARS:
                raise InvalidRequestError(
                    f"history answer {number} is {len(item.answer)} characters long; "
                    f"the limit is {MAX_HISTORY_ANSWER_CHARS}"
                )
        return [
            without_control_characters(item)
            if isinstance(item, str)
            else Turn(without_control_characters(item.question), without_control_characters(item.answer))
            for item in history
        ]

    def _checked_k(self, k: int | None) -> int:
        retrieval = self.settings.retrieval
        if k is None:
            return retrieval.default_k
        if not 1 <= k <= retrieval.max_k:
            raise InvalidRequestError(f"k must be between 1 and {retrieval.max_k}, not {k}")
        return k


class LiveService:
    """The service of the version published at ``index.path``, replaced by a newer one
    without a restart.

    :meth:`refresh` opens a newly published version beside the served one (mapping
    only the segments the served one does not hold) and swaps it in with one
    assignment. A request reads :attr:`current` once and is answered
    entirely from that version; the old version is freed when its last request ends.
    """

    def __init__(self, service: QAService) -> None:
        self._service = service
        self._lock = threading.Lock()
        # Why the last reload failed (the old version is still served), if it did.
        self.reload_error: str | None = None

    @property
    def current(self) -> QAService:
        return self._service

    def refresh(self) -> bool:
        """Swap in the version ``index.path`` now points at, if it is new; True if swapped."""
        with self._lock:
            served = self._service
            path = served.settings.index.path
            try:
                folder = path.resolve(strict=True)
            except OSError:
                return False  # the link is being replaced or was removed: keep serving
            if folder == served.index.folder:
                return False
            try:
                index = load_index(
                    path,
                    served.settings.index,
                    model=served.embedder.model_id,
                    dimension=served.embedder.dimension,
                    opened=served.index.segments(),
                )
            except QAError as exc:
                self.reload_error = f"could not load {folder.name}: {exc}"
                logger.error("index reload failed, still serving %s: %s", served.index.manifest.version, exc)
                return False
            self._service = QAService(
                served.settings, served.embedder, index, served.writer, served.answerability, served.gate
            )
            self.reload_error = None
            logger.info("now serving index version %s", index.manifest.version)
            return True

    def llm_summary(self) -> dict[str, Any]:
        """The model's state for /healthz: configured or not, last success and error."""
        writer = self._service.writer
        if writer is None:
            return {"configured": False}
        return writer.health.summary()

    def disk_problem(self) -> str | None:
        """What is wrong with the served version's files on disk, if anything: the
        service keeps answering from the files it holds open, but a restart would fail."""
        return self._service.index.disk_problem()
