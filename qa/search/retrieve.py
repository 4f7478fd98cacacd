"""Question -> ranked passages by hybrid dense + lexical retrieval. No HTTP.

Candidates are the best chunks by dense similarity and by BM25, each scored on both
over the chunk and its sentences (``qa.search.fusion``). A passage returned carries
its article's title and date and its sentences with their similarity to the query,
so that answering needs nothing more from the index.

Syndicated copies (the same story in several papers, grouped at ingest by
``qa.ingest.copies``) answer once: after filters and fusion, the passages of the
documents of one group collapse into those of its best-ranked document, which carry
``also_in``, the other copies among the candidates. Filters apply before, so a filter
on one source returns that source's copy. Enough candidates are ranked that ``k``
distinct passages remain (up to ``COPY_FACTOR * k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qa.embed.base import Embedder
from qa.records import Article, Chunk, CopyRef, Filters, Passage, PassageSentence
from qa.search.fusion import Fusion
from qa.store.index import Index
from qa.store.segment_view import Allowed
from qa.text.tokens import tokens
from qa.types import Vectors

# Candidates taken from each ranking before scoring.
CANDIDATES = 50
# Where copies collapse, up to this many times k candidates are ranked for k passages.
COPY_FACTOR = 3


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
        """The ``k`` best passages for ``query``, best first, copies of one story collapsed
        into one; with ``filters``, only passages of the articles they allow (k of them
        whenever k exist)."""
        index = self.index
        if isinstance(query, str):
            query = self.query(query)
        allowed = index.allowed(filters) if filters is not None and not filters.empty else None
        pool = max(CANDIDATES, k)
        scored = self._scored(query, pool, allowed)
        kept, copies = self._collapsed(scored.ranked, k)
        if len(kept) < k and len(scored.ranked) >= pool and pool < COPY_FACTOR * k:
            # Copies took places that distinct passages would have had: rank more candidates
            # (only then, so that results without copies are as they were).
            scored = self._scored(query, COPY_FACTOR * k, allowed)
            kept, copies = self._collapsed(scored.ranked, k)
        return Retrieval(tuple(self._passages(scored, kept, copies)), scored.coverage)

    def _scored(self, query: Query, pool: int, allowed: Allowed | None) -> _Scored:
        """The ``pool`` best chunks of each ranking, scored and ranked best first."""
        index = self.index
        question, query_vector = query.text, query.vector
        lexical = index.lexical(tokens(question), allowed)
        dense = dict(index.search(query_vector, pool, allowed))
        candidates = sorted(set(dense) | set(lexical.top(pool)))
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
        ranked = sorted(candidates, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
        return _Scored(ranked, scores, sentence_vectors, sentence_similarity, lexical.coverage)

    def _collapsed(
        self, ranked: Sequence[int], k: int
    ) -> tuple[list[tuple[int, Chunk]], dict[str, list[str]]]:
        """The ``k`` best chunks once copies collapse, and the other copies among the
        candidates of each group kept, by the group's kept document, best first.

        A group is answered by its best-ranked document: that document's passages stay
        (each a part of the story), those of the group's other documents go, and those
        documents are the copies the kept passages name. Only the first
        ``COPY_FACTOR * k`` candidates are read."""
        walk = list(ranked[: COPY_FACTOR * k])
        chunks = self.index.chunks(walk)
        groups = self.index.copy_groups(sorted({chunk.doc_id for chunk in chunks}))
        kept: list[tuple[int, Chunk]] = []
        answering: dict[str, str] = {}  # the kept document of each group
        copies: dict[str, list[str]] = {}
        for chunk_id, chunk in zip(walk, chunks, strict=True):
            group = groups.get(chunk.doc_id, chunk.doc_id)
            first = answering.setdefault(group, chunk.doc_id)
            if first != chunk.doc_id:
                others = copies.setdefault(first, [])
                if chunk.doc_id not in others:
                    others.append(chunk.doc_id)
            elif len(kept) < k:
                kept.append((chunk_id, chunk))
        return kept, copies

    def _passages(
        self, scored: _Scored, kept: Sequence[tuple[int, Chunk]], copies: dict[str, list[str]]
    ) -> list[Passage]:
        index = self.index
        passages = []
        # Several passages often come from one article: read each article once.
        articles: dict[str, Article] = {}

        def article_of(doc_id: str) -> Article:
            if doc_id not in articles:
                articles[doc_id] = index.document(doc_id)
            return articles[doc_id]

        for chunk_id, chunk in kept:
            article = article_of(chunk.doc_id)
            (first, stop), vectors = scored.sentence_vectors[chunk_id]
            sentences = tuple(
                PassageSentence(stored.sentence_id, stored.sentence.start, stored.sentence.end,
                                stored.sentence.kind, scored.sentence_similarity[stored.sentence_id], vector)
                for stored, vector in zip(index.sentences(first, stop), vectors, strict=True)
            )  # fmt: skip
            also_in = tuple(
                CopyRef(copy.doc_id, copy.title, copy.url, copy.published)
                for copy in map(article_of, copies.get(chunk.doc_id, ()))
            )
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    doc_id=chunk.doc_id,
                    title=article.title,
                    start=chunk.start,
                    end=chunk.end,
                    text=article.text[chunk.start : chunk.end],
                    score=round(scored.scores[chunk_id], 4),
                    published=article.published,
                    sentences=sentences,
                    also_in=also_in,
                )
            )
        return passages


@dataclass(frozen=True)
class _Scored:
    """The candidates of one retrieval, ranked, with what their passages are made of."""

    ranked: list[int]
    scores: dict[int, float]
    # Each candidate's sentence ids and vectors.
    sentence_vectors: dict[int, tuple[tuple[int, int], Vectors]]
    # The similarity of each candidate sentence to the query.
    sentence_similarity: dict[int, float]
    coverage: float
