"""Question -> ranked passages by hybrid dense + lexical retrieval. No HTTP.

Dense similarity (multilingual E5) carries paraphrases and English questions over
Arabic text; BM25 over normalized Arabic tokens carries names, numbers and rare
words that the small model blurs. They fail on different questions, so a chunk is
scored on both, over the chunk and over its sentences (weights tuned on the ARCD dev
set, README "Answer quality"):

    score = dense(chunk) + SENTENCE_WEIGHT * dense(best sentence of chunk)
            + SECOND_SENTENCE_WEIGHT * dense(second best sentence of chunk)
            + coverage² * (LEXICAL_WEIGHT * bm25(chunk) / max bm25(any chunk)
                           + SENTENCE_LEXICAL_WEIGHT * max bm25(sentence of chunk)
                             / max bm25(sentence of any candidate chunk))

``coverage`` is the share of the question's tokens found in the archive at all: an
English question over Arabic text matches only stray tokens, and its lexical
scores are then noise that would otherwise be scaled up to the same weight. The
sentence term rewards a chunk where the question's words meet in one sentence,
not scattered over the chunk (a long chunk collects scattered words easily),
and the second sentence term a chunk that stays on the question's topic beyond
one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.embed.embedders import Embedder
from qa.records import Article, Filters, Passage
from qa.store.index import Index
from qa.text.normalize import tokens
from qa.types import Vectors

# Candidates taken from each ranking before scoring.
CANDIDATES = 50
SENTENCE_WEIGHT = 1.6
SECOND_SENTENCE_WEIGHT = 0.4
LEXICAL_WEIGHT = 0.15
SENTENCE_LEXICAL_WEIGHT = 0.05


@dataclass(frozen=True)
class Query:
    """The text retrieved for, and its embedding."""

    text: str
    vector: Vectors


@dataclass(frozen=True)
class Retrieval:
    """The passages found for a question, with what answering reuses."""

    passages: tuple[Passage, ...]
    # Dense similarity to the question of every sentence of the returned passages.
    sentence_similarity: dict[int, float]
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

        sentence_similarity: dict[int, float] = {}
        scores: dict[int, float] = {}
        lexical_weight = LEXICAL_WEIGHT * lexical.coverage**2
        sentence_lexical_weight = SENTENCE_LEXICAL_WEIGHT * lexical.coverage**2
        ranges = [index.sentence_range(chunk_id) for chunk_id in candidates]
        sentence_lexical = lexical.sentences(ranges)
        sentence_lexical_max = max((float(s.max()) for s in sentence_lexical if s.size), default=0.0)
        for chunk_id, (first, stop), sentence_bm25 in zip(candidates, ranges, sentence_lexical, strict=True):
            similarities = index.sentence_vectors(first, stop) @ query_vector
            sentence_similarity.update(zip(range(first, stop), (float(s) for s in similarities), strict=True))
            best_sentence, second_sentence = _two_best(similarities, dense[chunk_id])
            scores[chunk_id] = (
                dense[chunk_id] + SENTENCE_WEIGHT * best_sentence + SECOND_SENTENCE_WEIGHT * second_sentence
            )
            if lexical.chunk_max > 0:
                scores[chunk_id] += lexical_weight * lexical.chunk(chunk_id) / lexical.chunk_max
            if sentence_lexical_max > 0 and stop > first:
                best_lexical = float(sentence_bm25.max())
                scores[chunk_id] += sentence_lexical_weight * best_lexical / sentence_lexical_max

        best = sorted(candidates, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:k]
        passages = []
        # Several passages often come from one article: read each article once.
        articles: dict[str, Article] = {}
        for chunk_id, chunk in zip(best, index.chunks(best), strict=True):
            if chunk.doc_id not in articles:
                articles[chunk.doc_id] = index.document(chunk.doc_id)
            article = articles[chunk.doc_id]
            passages.append(
                Passage(
                    chunk_id=chunk_id,
                    doc_id=chunk.doc_id,
                    title=article.title,
                    start=chunk.start,
                    end=chunk.end,
                    text=article.text[chunk.start : chunk.end],
                    score=round(scores[chunk_id], 4),
                )
            )
        kept = {
            sentence_id: sentence_similarity[sentence_id]
            for chunk_id in best
            for sentence_id in range(*index.sentence_range(chunk_id))
        }
        return Retrieval(tuple(passages), kept, lexical.coverage)


def _two_best(similarities: Vectors, fallback: float) -> tuple[float, float]:
    """The best and second best sentence similarity of a chunk; a chunk of one
    sentence counts it twice, a chunk without sentences scores ``fallback``."""
    if not similarities.size:
        return fallback, fallback
    ranked = np.sort(similarities)[::-1]
    return float(ranked[0]), float(ranked[min(1, ranked.size - 1)])
