"""Dense and lexical scores of a retrieval's candidate chunks -> one score per chunk.

Dense similarity (multilingual E5) carries paraphrases and English questions over
Arabic text; BM25 over normalized Arabic tokens carries names, numbers and rare
words that the small model blurs. They fail on different questions, so a chunk is
scored on both, over the chunk and over its sentences (weights tuned on the ARCD dev
set, docs/quality.md):

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Scores of a chunk's sentences, one a sentence: dense similarities or BM25.
SentenceScores = npt.NDArray[np.float32]

SENTENCE_WEIGHT = 1.6
SECOND_SENTENCE_WEIGHT = 0.4
LEXICAL_WEIGHT = 0.15
SENTENCE_LEXICAL_WEIGHT = 0.05


@dataclass(frozen=True)
class Fusion:
    """The scoring of one retrieval: its coverage, and the best BM25 over all chunks
    and over the sentences of the candidates, that each chunk's BM25 is divided by."""

    coverage: float
    chunk_lexical_max: float
    sentence_lexical_max: float

    @classmethod
    def of(
        cls, coverage: float, chunk_lexical_max: float, sentence_lexical: Sequence[SentenceScores]
    ) -> Fusion:
        """The fusion for a retrieval whose candidates' sentences score ``sentence_lexical``
        (one array a chunk)."""
        sentence_max = max((float(s.max()) for s in sentence_lexical if s.size), default=0.0)
        return cls(coverage, chunk_lexical_max, sentence_max)

    def score(
        self,
        chunk_dense: float,
        sentence_dense: SentenceScores,
        chunk_lexical: float,
        sentence_lexical: SentenceScores,
    ) -> float:
        """A chunk's score from its dense similarity, its sentences' dense similarities,
        its BM25 and its sentences' BM25 (see the module)."""
        best_sentence, second_sentence = two_best(sentence_dense, chunk_dense)
        score = chunk_dense + SENTENCE_WEIGHT * best_sentence + SECOND_SENTENCE_WEIGHT * second_sentence
        if self.chunk_lexical_max > 0:
            score += self.lexical_weight * chunk_lexical / self.chunk_lexical_max
        if self.sentence_lexical_max > 0 and sentence_lexical.size:
            best_lexical = float(sentence_lexical.max())
            score += self.sentence_lexical_weight * best_lexical / self.sentence_lexical_max
        return score

    @property
    def lexical_weight(self) -> float:
        return LEXICAL_WEIGHT * self.coverage**2

    @property
    def sentence_lexical_weight(self) -> float:
        return SENTENCE_LEXICAL_WEIGHT * self.coverage**2


def two_best(similarities: SentenceScores, fallback: float) -> tuple[float, float]:
    """The best and second best sentence similarity of a chunk; a chunk of one
    sentence counts it twice, a chunk without sentences scores ``fallback``."""
    if not similarities.size:
        return fallback, fallback
    ranked = np.sort(similarities)[::-1]
    return float(ranked[0]), float(ranked[min(1, ranked.size - 1)])
