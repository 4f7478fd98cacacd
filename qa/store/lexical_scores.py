"""BM25 of a question across every segment of a version: each segment's postings
(``qa.store.lexical``) scored with the statistics of the whole version, deleted rows
left out of both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from qa.store.lexical import Scores, lookup
from qa.store.segment_view import Allowed, SegmentView, best_first, segment_of


class LexicalScores:
    """BM25 of a question against every live chunk of a version, and against the
    sentences of the chunks asked about."""

    def __init__(
        self, views: Sequence[SegmentView], query_tokens: Sequence[str], allowed: Allowed | None = None
    ) -> None:
        self._views = views
        chunk_query = lookup(
            [v.segment.chunk_lexical for v in views], [v.deleted_chunk_mask for v in views], query_tokens
        )
        self._sentence_query = lookup(
            [v.segment.sentence_lexical for v in views],
            [v.deleted_sentence_mask for v in views],
            query_tokens,
        )
        self.coverage = chunk_query.coverage
        self._chunks = [_masked(v.segment.chunk_lexical.scores(chunk_query.postings[i], chunk_query.idf),
                                v.deleted_chunks) for i, v in enumerate(views)]  # fmt: skip
        if allowed is not None:  # a filter: only its rows score
            for scores, mask in zip(self._chunks, allowed, strict=True):
                scores[~mask] = 0
        self.chunk_max = max((float(s.max()) for s in self._chunks if s.size), default=0.0)
        self._chunk_bases = [v.info.chunk_base for v in views]
        self._sentence_bases = [v.info.sentence_base for v in views]

    def top(self, limit: int) -> list[int]:
        """Chunk ids of the ``limit`` highest positive scores, best first."""
        found = []
        for base, scores in zip(self._chunk_bases, self._chunks, strict=True):
            rows = _top(scores, limit)
            found.append((base, scores[rows], rows))
        return [chunk_id for chunk_id, _ in best_first(found, limit)]

    def chunk(self, chunk_id: int) -> float:
        segment, row = segment_of(self._chunk_bases, chunk_id)
        return float(self._chunks[segment][row])

    def sentences(self, ranges: Sequence[tuple[int, int]]) -> list[Scores]:
        """BM25 of the sentences of each range of sentence ids (one chunk's each).

        Only these sentences are scored: a question's common words occur in millions
        of sentences, and scoring them all would cost more than the rest of a search.
        """
        wanted = np.array(sorted({i for first, stop in ranges for i in range(first, stop)}), dtype=np.int64)
        scores = np.zeros(wanted.size, dtype=np.float32)
        bounds = np.searchsorted(wanted, [*self._sentence_bases, np.iinfo(np.int64).max])
        for position, view in enumerate(self._views):
            low, high = int(bounds[position]), int(bounds[position + 1])
            if high > low:
                rows = wanted[low:high] - view.info.sentence_base
                postings = self._sentence_query.postings[position]
                scores[low:high] = view.segment.sentence_lexical.row_scores(
                    postings, self._sentence_query.idf, rows
                )
        return [
            scores[np.searchsorted(wanted, first) : np.searchsorted(wanted, stop)] for first, stop in ranges
        ]


def _masked(scores: Scores, deleted: npt.NDArray[np.int64]) -> Scores:
    scores[deleted] = 0
    return scores


def _top(scores: Scores, limit: int) -> npt.NDArray[np.int64]:
    """Rows of the ``limit`` highest positive scores."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > limit:
        positive = positive[np.argpartition(-scores[positive], limit - 1)[:limit]]
    return positive.astype(np.int64)
