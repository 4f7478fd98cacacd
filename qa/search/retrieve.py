"""Question -> ranked passages by hybrid dense + lexical retrieval. No HTTP.

Candidates are the best chunks by dense similarity and by BM25, each scored on both
over the chunk and its sentences (``qa.search.fusion``). A passage returned carries
its article's title and date and its sentences with their similarity to the query,
so that answering needs nothing more from the index.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.embed.base import Embedder
from qa.records import Article, Filters, Passage, PassageSentence
from qa.search.fusion import Fusion
from qa.store.index import Index
from qa.text.tokens import tokens
from qa.types import Vectors

# Candidates taken from each ranking before scoring.
CANDIDATES = 50


@dataclass(frozen=True)
class Query:
    """The text retrieved for, and its embedding."""

    text: str
    vector: Vectors


@dataclass(frozen=True)
class Retrieval:
    """The passages found for a question, with what answering reuses."""

    passages: tuple[Passage, ...]
    # Share of the question's tokens found in the archive at all.
    coverage: float


class Retriever:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def query(self, question: str) -> Query:
        """``question`` embedded and tokenized, ready to retrieve with."""
        return Query(question, self.embedder.embed_queries([question])[0])

    def retrieve(self, query: Query | str, k: int, filters: Filters | None = None) -> Retrieval:
        """The ``k`` best passages for ``query``, best first; with ``filters``, only
        passages of the articles they allow (k of them whenever k exist)."""
        index = self.index
        if isinstance(query, str):
            query = self.query(query)
        question, query_vector = query.text, query.vector
        allowed = index.allowed(filters) if filters is not None and not filters.empty else None
        lexical = index.lexical(tokens(question), allowed)
        dense = dict(index.search(query_vector, max(CANDIDATES, k), allowed))
        candidates = sorted(set(dense) | set(lexical.top(max(CANDIDATES, k))))
        missing = [chunk_id for chunk_id in candidates if chunk_id not in dense]
        if missing:
            dense.update(zip(missing, index.chunk_similarities(missing, query_vector), strict=True))

        ranges = [index.sentence_range(chunk_id) for chunk_id in candidates]
        sentence_lexical = lexical.sentences(ranges)
        fusion = Fusion.of(lexical.coverage, lexical.chunk_max, sentence_lexical)
        scores: dict[int, float] = {}
        # Each candidate's sentence ids and vectors, kept for the passages returned.
        sentence_vectors: dict[int, tuple[tuple[int, int], Vectors]] = {}
        # A sentence of two overlapping chunks gets the similarity of the later one: one
        # product of another batch of rows may differ in its last bit, and answering
        # must see one value a sentence.
        sentence_similarity: dict[int, float] = {}
        for chunk_id, (first, stop), sentence_bm25 in zip(candidates, ranges, sentence_lexical, strict=True):
            vectors = index.sentence_vectors(first, stop)
            similarities = vectors @ query_vector
            sentence_vectors[chunk_id] = (first, stop), vectors
            sentence_similarity.update(zip(range(first, stop), (float(s) for s in similarities), strict=True))
            scores[chunk_id] = fusion.score(
                dense[chunk_id], similarities, lexical.chunk(chunk_id), sentence_bm25
            )

        best = sorted(candidates, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:k]
        passages = []
        # Several passages often come from one article: read each article once.
        articles: dict[str, Article] = {}
        for chunk_id, chunk in zip(best, index.chunks(best), strict=True):
            if chunk.doc_id not in articles:
                articles[chunk.doc_id] = index.document(chunk.doc_id)
            article = articles[chunk.doc_id]
            (first, stop), vectors = sentence_vectors[chunk_id]
            sentences = tuple(
                PassageSentence(stored.sentence_id, stored.sentence.start, stored.sentence.end,
                                stored.sentence.kind, sentence_similarity[stored.sentence_id], vector)
                for stored, vector in zip(index.sentences(first, stop), vectors, strict=True)
            )  # fmt: skip
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    doc_id=chunk.doc_id,
                    title=article.title,
                    start=chunk.start,
                    end=chunk.end,
                    text=article.text[chunk.start : chunk.end],
                    score=round(scores[chunk_id], 4),
                    published=article.published,
                    sentences=sentences,
                )
            )
        return Retrieval(tuple(passages), lexical.coverage)
