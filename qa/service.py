"""The question-answering service, free of any web framework.

Checks the input of a request, then runs retrieval and answering on the loaded
index. ``qa ask`` and the HTTP layer both go through it, so they answer alike.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from qa.answer import Answerer
from qa.answerability import AnswerabilityModel
from qa.config import Settings
from qa.embed import Embedder, make_embedder
from qa.errors import InvalidRequestError, LLMError, QAError
from qa.filters import Filters, day_number
from qa.generate import AnswerWriter
from qa.index import Index, load_index
from qa.records import Answer, AnswerPiece, Article, Passage, Turn
from qa.retrieve import Retrieval, Retriever

logger = logging.getLogger("qa.service")

# A follow-up question is retrieved together with at most this many earlier questions.
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
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.retriever = Retriever(index, embedder)
        self.answerability = answerability or AnswerabilityModel.load()
        self.answerer = Answerer(index, settings.answer, self.answerability)
        # Writes answers with a model when [llm] is configured; outlives index reloads.
        self.writer = writer

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
    ) -> Asked:
        """Check the request and retrieve its passages (of the articles ``filters``
        allow); InvalidRequestError if it is wrong."""
        question = self._checked_question(question)
        turns = tuple(Turn(t) if isinstance(t, str) else t for t in self._checked_history(history))
        query = contextual_query(question, [t.question for t in turns])
        return Asked(question, turns, self.retriever.retrieve(query, self._checked_k(k), filters))

    def extractive(self, asked: Asked) -> Answer:
        return self.answerer.answer(asked.question, asked.retrieval)

    async def written(self, asked: Asked) -> Answer:
        """The model's verified answer, or the quoted one (with ``llm_error`` if the
        model failed or is paused) when the model is not to be asked or fails.

        A written answer carries the confidence of the evidence it was written from;
        a "not answered" reply, or one with no sentence verified, is ``found: false``
        whatever that confidence."""
        confidence = self.answerer.confidence(asked.question, asked.retrieval)
        writer = self._writer_for(confidence)
        if not isinstance(writer, AnswerWriter):
            return await self._quoted(asked, writer)
        try:
            answer = await writer.write(self.index, asked.question, asked.retrieval.passages, asked.turns)
        except LLMError as exc:
            return await self._failed(writer, asked, exc)
        writer.health.record_success()
        return dataclasses.replace(answer, confidence=confidence)

    async def written_stream(self, asked: Asked) -> AsyncIterator[AnswerPiece | Answer]:
        """Verified sentences of the model's answer as they come, then the whole answer;
        the quoted answer alone (with ``llm_error``) if the model fails before a sentence."""
        confidence = self.answerer.confidence(asked.question, asked.retrieval)
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
        self, query: str, k: int | None = None, filters: Filters | None = None, *, newest: bool = False
    ) -> tuple[Passage, ...]:
        """The ``k`` passages most relevant to ``query``; with ``newest``, those same
        passages ordered by their articles' publication day, newest first (relevance
        breaks ties, and articles without a date come last)."""
        query = self._checked_question(query)
        passages = self.retriever.retrieve(query, self._checked_k(k), filters).passages
        if not newest:
            return passages
        # Several passages often come from one article: read each article once.
        days = {d: day_number(self.index.document(d).published) for d in {p.doc_id for p in passages}}
        return tuple(sorted(passages, key=lambda p: (-days[p.doc_id], -p.score)))

    def document(self, doc_id: str) -> Article:
        return self.index.document(doc_id)

    def index_summary(self) -> dict[str, Any]:
        summary = dataclasses.asdict(self.index.manifest)
        summary["path"] = str(self.settings.index.path)
        return summary

    def _checked_question(self, question: str) -> str:
        limit = self.settings.limits.max_question_chars
        if not question.strip():
            raise InvalidRequestError("the question is empty")
        if len(question) > limit:
            raise InvalidRequestError(
                f"the question is {len(question)} characters long; the limit is {limit}"
            )
        return question.strip()

    def _checked_history(self, history: Sequence[str | Turn]) -> Sequence[str | Turn]:
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
        return history

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
                served.settings, served.embedder, index, served.writer, served.answerability
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
