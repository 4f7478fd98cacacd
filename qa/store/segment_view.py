"""A segment as one version of the index serves it: the first chunk and sentence id
the version gives it (its bases), and its rows that later versions deleted. Ids are
unique across a version; rows are local to a segment.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from qa.records import SegmentInfo
from qa.store.segment_reader import Segment

# The chunk rows a filter allows: a boolean mask for each segment, in the order of Index.views.
Allowed = list[npt.NDArray[np.bool_]]


class SegmentView:
    """A segment as one version serves it: its id bases and its deleted rows."""

    def __init__(self, segment: Segment, info: SegmentInfo, deleted: frozenset[str]) -> None:
        self.segment = segment
        self.info = info
        self.deleted = deleted
        self.deleted_chunks, self.deleted_sentences = segment.rows_of(sorted(deleted))
        self.allowed: Any = None
        # Masks of the deleted rows, for BM25's statistics; None when there are none.
        self.deleted_chunk_mask = _mask(self.deleted_chunks, info.chunks)
        self.deleted_sentence_mask = _mask(self.deleted_sentences, info.sentences)
        if self.deleted_chunks.size:
            allowed = np.ones(info.chunks, dtype=bool)
            allowed[self.deleted_chunks] = False
            # FAISS skips the deleted rows during the search itself: a search for k
            # chunks still returns k when k live ones exist.
            self._bitmap = np.packbits(allowed, bitorder="little")
            self.allowed = faiss.IDSelectorBitmap(info.chunks, faiss.swig_ptr(self._bitmap))


def _mask(rows: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.bool_] | None:
    if not rows.size:
        return None
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask


def segment_of(bases: Sequence[int], global_id: int) -> tuple[int, int]:
    """The position, among segments whose first ids are ``bases`` (ascending), of the
    one that holds ``global_id``, and its row there. Unchecked: position -1 or a row
    past the segment's end for an id that no segment holds."""
    position = bisect.bisect_right(bases, global_id) - 1
    return position, global_id - bases[position]


# One segment's candidates for a search: its base, and the scores and rows it found.
Candidates = tuple[int, npt.NDArray[np.float32], npt.NDArray[np.int64]]


def best_first(found: Iterable[Candidates], limit: int) -> list[tuple[int, float]]:
    """The ``limit`` best of every segment's candidates, as (id, score), best first.

    ``found`` holds, for each segment, its base and the scores and rows of its
    candidates; ties go to the lower id, so that results do not depend on the order
    the segments were searched in.
    """
    ranked = sorted(
        (-float(score), base + int(row))
        for base, scores, rows in found
        for score, row in zip(scores, rows, strict=True)
    )
    return [(global_id, -negative) for negative, global_id in ranked[:limit]]
