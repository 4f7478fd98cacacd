"""The question-answering service, free of any web framework.

``QAService`` composes the objects that do the work: the checks of a request and the
query budget (``qa.serve.questions``), retrieval on the loaded index, answering in
either mode (``qa.serve.answering``) and the order of search results
(``qa.serve.documents``). ``qa ask`` and the HTTP layer both go through it, so they
answer alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from qa.answer.confidence import AnswerabilityModel
from qa.answer.extractive import ExtractiveAnswerer
from qa.answer.generated import AnswerGenerator
from qa.config import Settings
from qa.embed.base import Embedder
from qa.embed.registry import make_embedder
from qa.errors import RequestTimeoutError
from qa.records import Answer, AnswerPiece, Article, Filters, Passage, Turn
from qa.search.retrieve import Query, Retriever
from qa.serve.answering import Answering
from qa.serve.documents import newest_first
from qa.serve.questions import Asked, QueryGate, QuestionChecks, bounded_query
from qa.store.index import Index, load_index


class QAService:
    """Questions in, answers out: checks a request, retrieves its passages and answers
    them (extractive or generated), over one loaded index. ``qa ask``, ``qa eval`` and
    the HTTP layer all go through it, so they answer alike."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        index: Index,
        generator: AnswerGenerator | None = None,
        answerability: AnswerabilityModel | None = None,
        gate: QueryGate | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.checks = QuestionChecks(settings.limits, settings.retrieval)
        self.retriever = Retriever(index, embedder)
        self.answerability = answerability or AnswerabilityModel.load()
        self.answerer = ExtractiveAnswerer(settings.answer, self.answerability)
        # The model client (when [llm] is configured) and the gate to the embedder
        # outlive index reloads: a reloaded service is given this one's.
        self.answering = Answering(settings.answer, self.answerer, generator)
        self.gate = gate or QueryGate(settings.limits.embed_wait_seconds)

    @property
    def generator(self) -> AnswerGenerator | None:
        """What generates answers with the model; None when no model is configured."""
        return self.answering.generator

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
        generator = None
        if settings.llm.enabled:
            generator = AnswerGenerator(settings.llm, embedder, settings.answer.max_sentences)
        return cls(settings, embedder, index, generator, answerability)

    def close(self) -> None:
        self.index.close()

    async def aclose(self) -> None:
        """Close the index and the model client's connections."""
        self.close()
        if self.generator is not None:
            await self.generator.aclose()

    def ask(self, question: str, k: int | None = None, history: Sequence[str | Turn] = ()) -> Answer:
        """The extractive answer to ``question``; ``history`` holds the earlier turns of
        the conversation (or just their questions), most recent last.

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
        checked = self.checks.checked(question, k, history)
        query = self._query(checked.question, [t.question for t in checked.turns], deadline)
        if deadline is not None and time.monotonic() > deadline:
            raise RequestTimeoutError("the request ran out of time before its search")
        return Asked(checked.question, checked.turns, self.retriever.retrieve(query, checked.k, filters))

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
        return self.answering.extractive(asked)

    async def generated(self, asked: Asked) -> Answer:
        """The generated answer, or the extractive one when the model is not to be
        asked or fails (see :meth:`Answering.generated`)."""
        return await self.answering.generated(asked)

    def generated_stream(self, asked: Asked) -> AsyncGenerator[AnswerPiece | Answer, None]:
        return self.answering.generated_stream(asked)

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
        passages newest article first."""
        passages = self.retrieve(query, k, filters=filters, deadline=deadline).retrieval.passages
        return newest_first(passages) if newest else passages

    def document(self, doc_id: str) -> Article:
        return self.index.document(doc_id)

    def index_summary(self) -> dict[str, Any]:
        """The served version's manifest (no paths: it is sent to admin clients)."""
        return dataclasses.asdict(self.index.manifest)

    def model_health(self) -> dict[str, Any]:
        return self.answering.model_health()
