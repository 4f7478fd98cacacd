"""Question -> ranked passages. No answer building, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from qa.embed import Embedder, Vectors
from qa.index import Index
from qa.records import Passage


@dataclass(frozen=True)
class Retrieval:
    """The passages found for a question, and the question's vector for reuse."""

    query_vector: Vectors
    passages: tuple[Passage, ...]


class Retriever:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def retrieve(self, question: str, k: int) -> Retrieval:
        """The ``k`` passages most similar to ``question``, best first."""
        query_vector = self.embedder.embed_queries([question])[0]
        ranked = self.index.search(query_vector, k)
        chunks = self.index.chunks([chunk_id for chunk_id, _ in ranked])
        passages = []
        for (chunk_id, score), chunk in zip(ranked, chunks, strict=True):
            article = self.index.document(chunk.doc_id)
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    doc_id=chunk.doc_id,
                    title=article.title,
                    start=chunk.start,
                    end=chunk.end,
                    text=article.text[chunk.start : chunk.end],
                    score=round(score, 4),
                )
            )
        return Retrieval(query_vector, tuple(passages))
