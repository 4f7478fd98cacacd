"""Question -> ranked passages by hybrid dense + lexical retrieval. No HTTP.

Dense similarity (multilingual E5) carries paraphrases and English questions over
Arabic text; BM25 over normalized Arabic tokens carries names, numbers and rare
words that the small model blurs. They fail on different questions, so a chunk is
scored on three signals (weights tuned on the ARCD dev set, README "Answer quality"):

    score = dense(chunk) + SENTENCE_WEIGHT * max dense(sentence of chunk)
            + LEXICAL_WEIGHT * coverage² * bm25(chunk) / max bm25

``coverage`` is the share of the question's tokens found in the archive at all: an
English question over Arabic text matches only stray tokens, and its lexical
scores are then noise that would otherwise be scaled up to the same weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.embed import Embedder, Vectors
from qa.index import Index
from qa.lexical import Scores
from qa.normalize import tokens
from qa.records import Article, Passage

# Candidates taken from each ranking before scoring.
CANDIDATES = 50
SENTENCE_WEIGHT = 1.0
LEXICAL_WEIGHT = 0.1


@dataclass(frozen=True)
class Retrieval:
    """The passages found for a question, with what answering reuses."""

    query_vector: Vectors
    query_tokens: tuple[str, ...]
    passages: tuple[Passage, ...]
    # Dense similarity to the question of every sentence of the returned passages.
    sentence_similarity: dict[int, float]
    # Share of the question's tokens found in the archive (see module docstring).
    lexical_coverage: float


class Retriever:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def retrieve(self, question: str, k: int) -> Retrieval:
        """The ``k`` best passages for ``question``, best first."""
        index = self.index
        query_vector = self.embedder.embed_queries([question])[0]
        query_tokens = tuple(tokens(question))
        lexical = index.chunk_lexical.scores(query_tokens)
        dense = dict(index.search(query_vector, max(CANDIDATES, k)))
        candidates = sorted(set(dense) | set(_top(lexical, max(CANDIDATES, k))))
        missing = [chunk_id for chunk_id in candidates if chunk_id not in dense]
        if missing:
            dense.update(zip(missing, index.chunk_similarities(missing, query_vector), strict=True))

        sentence_similarity: dict[int, float] = {}
        scores: dict[int, float] = {}
        coverage = index.chunk_lexical.coverage(query_tokens)
        lexical_weight = LEXICAL_WEIGHT * coverage**2
        lexical_max = float(lexical.max()) if lexical.size else 0.0
        for chunk_id in candidates:
            first, stop = (int(i) for i in index.chunk_sentences[chunk_id])
            similarities = index.sentence_vectors[first:stop] @ query_vector
            sentence_similarity.update(zip(range(first, stop), (float(s) for s in similarities), strict=True))
            best_sentence = float(similarities.max()) if stop > first else dense[chunk_id]
            scores[chunk_id] = dense[chunk_id] + SENTENCE_WEIGHT * best_sentence
            if lexical_max > 0:
                scores[chunk_id] += lexical_weight * float(lexical[chunk_id]) / lexical_max

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
            for sentence_id in range(*(int(i) for i in index.chunk_sentences[chunk_id]))
        }
        return Retrieval(query_vector, query_tokens, tuple(passages), kept, coverage)


def _top(scores: Scores, limit: int) -> list[int]:
    """Rows of the ``limit`` highest positive scores, best first."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > limit:
        positive = positive[np.argpartition(-scores[positive], limit - 1)[:limit]]
    return [int(i) for i in positive[np.argsort(-scores[positive], kind="stable")]]
