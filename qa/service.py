"""The question-answering service, free of any web framework.

Checks the input of a request, then runs retrieval and answering on the loaded
index. ``qa ask`` and the HTTP layer both go through it, so they answer alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from qa.answer import Answerer
from qa.config import Settings
from qa.embed import Embedder, make_embedder
from qa.errors import InvalidRequestError
from qa.index import Index, load_index
from qa.records import Answer, Article, Passage
from qa.retrieve import Retriever


class QAService:
    def __init__(self, settings: Settings, embedder: Embedder, index: Index) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.retriever = Retriever(index, embedder)
        self.answerer = Answerer(index, settings.answer)

    @classmethod
    def open(cls, settings: Settings, *, embedder: Embedder | None = None) -> QAService:
        """Load the embedder and the index the settings name."""
        embedder = embedder or make_embedder(settings.embedding)
        index = load_index(settings.index.path, model=embedder.model_id, dimension=embedder.dimension)
        # The first embedding call pays the engine's one-time set-up; pay it here,
        # not in the first user's request.
        embedder.embed_queries(["warm-up"])
        return cls(settings, embedder, index)

    def close(self) -> None:
        self.index.close()

    def ask(self, question: str, k: int | None = None) -> Answer:
        question = self._checked_question(question)
        retrieval = self.retriever.retrieve(question, self._checked_k(k))
        return self.answerer.answer(question, retrieval)

    def search(self, query: str, k: int | None = None) -> tuple[Passage, ...]:
        query = self._checked_question(query)
        return self.retriever.retrieve(query, self._checked_k(k)).passages

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

    def _checked_k(self, k: int | None) -> int:
        retrieval = self.settings.retrieval
        if k is None:
            return retrieval.default_k
        if not 1 <= k <= retrieval.max_k:
            raise InvalidRequestError(f"k must be between 1 and {retrieval.max_k}, not {k}")
        return k
