"""BM25 over normalized Arabic-aware tokens: one lexical index a segment, scored with
the statistics of the whole version.

A segment stores, for each term, its posting list: the rows that hold the term and
the term-frequency part of their BM25 weight (Lucene's variant, as bm25s computes
it: k1 = 1.5, b = 0.75). Lengths are weighed against one average for the whole
index, the one of its first build, which later segments and merges inherit: a
merge then changes no weight. The inverse document frequency is computed at query
time over every segment of the version, so a term that is rare in a small new
segment but common in the archive weighs the same in both, and an index of one
segment scores exactly as bm25s did over the same texts. Deleted rows are left out
of the statistics (a term's deleted rows are counted in its posting list at query
time), so that scores do not change when a merge drops them.

Terms are stored as sorted 64-bit hashes, postings as flat arrays: a segment opens
by mapping four files, without reading a vocabulary into memory.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]
Hashes = npt.NDArray[np.uint64]

K1 = 1.5
B = 0.75
_FILES = ("terms.npy", "offsets.npy", "rows.npy", "weights.npy")


def term_hashes(terms: Sequence[str]) -> Hashes:
    """Stable 64-bit hashes of ``terms``, in order (duplicates kept)."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") for t in terms],
        dtype=np.uint64,
    )


class LexicalWriter:
    """Collects the token lists of a segment's rows, in row order, then saves them."""

    def __init__(self) -> None:
        self._columns: dict[str, int] = {}
        self._rows = array("i")
        self._terms = array("i")
        self._frequencies = array("f")
        self._lengths = array("i")

    def add(self, tokens: Sequence[str]) -> None:
        row = len(self._lengths)
        for term, frequency in Counter(tokens).items():
            self._rows.append(row)
            self._terms.append(self._columns.setdefault(term, len(self._columns)))
            self._frequencies.append(frequency)
        self._lengths.append(len(tokens))

    def average_length(self) -> float:
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        return float(lengths.mean()) if lengths.size and lengths.mean() > 0 else 1.0

    def save(self, folder: Path, average_length: float) -> None:
        """Write the postings, lengths weighed against ``average_length``."""
        folder.mkdir()
        lengths = np.frombuffer(self._lengths, dtype=np.int32).astype(np.float32)
        rows = np.frombuffer(self._rows, dtype=np.int32)
        frequencies = np.frombuffer(self._frequencies, dtype=np.float32)
        average = average_length
        weights = frequencies / (frequencies + K1 * (1 - B + B * lengths[rows] / average))
        hashes = term_hashes(list(self._columns))
        # Column c of the writer becomes position rank[c] of the sorted hashes.
        order = np.argsort(hashes, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        positions = rank[np.frombuffer(self._terms, dtype=np.int32)] if rows.size else rows
        # Stable: rows were appended in increasing order, so each posting list stays sorted.
        by_term = np.argsort(positions, kind="stable")
        offsets = np.zeros(hashes.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(positions, minlength=hashes.size), out=offsets[1:])
        np.save(folder / "terms.npy", hashes[order])
        np.save(folder / "offsets.npy", offsets)
        np.save(folder / "rows.npy", rows[by_term])
        np.save(folder / "weights.npy", weights[by_term].astype(np.float32))
        (folder / "lexical.json").write_text(json.dumps({"rows": len(self._lengths)}))


class LexicalSegment:
    """One segment's postings, memory-mapped."""

    def __init__(self, folder: Path) -> None:
        self.rows: int = json.loads((folder / "lexical.json").read_text())["rows"]
        terms, offsets, rows, weights = (np.load(folder / name, mmap_mode="r") for name in _FILES)
        self._terms: Hashes = terms
        self._offsets: npt.NDArray[np.int64] = offsets
        self._rows: npt.NDArray[np.int32] = rows
        self._weights: Scores = weights

    def deleted_in(self, posting: tuple[int, int], deleted: npt.NDArray[np.bool_]) -> int:
        """How many rows of a posting list are deleted rows."""
        return int(np.count_nonzero(deleted[self._rows[posting[0] : posting[1]]]))

    def postings(self, hashes: Hashes) -> list[tuple[int, int]]:
        """The range of each term's posting list in the flat arrays; empty when absent."""
        positions = np.searchsorted(self._terms, hashes)
        ranges = []
        for term, position in zip(hashes, positions, strict=True):
            if position < self._terms.size and self._terms[position] == term:
                ranges.append((int(self._offsets[position]), int(self._offsets[position + 1])))
            else:
                ranges.append((0, 0))
        return ranges

    def scores(self, ranges: Sequence[tuple[int, int]], idf: npt.NDArray[np.float64]) -> Scores:
        """BM25 of every row for a query whose terms have these postings and weights."""
        scores = np.zeros(self.rows, dtype=np.float32)
        for (start, stop), weight in zip(ranges, idf, strict=True):
            if stop > start:
                # A row occurs once in a posting list, so the fancy-index sum is exact.
                scores[self._rows[start:stop]] += np.float32(weight) * self._weights[start:stop]
        return scores

    def row_scores(
        self, ranges: Sequence[tuple[int, int]], idf: npt.NDArray[np.float64], rows: npt.NDArray[np.int64]
    ) -> Scores:
        """BM25 of the given rows only (sorted): each is looked up in each posting list
        by binary search, so the cost follows the rows asked, not the archive."""
        scores = np.zeros(rows.size, dtype=np.float32)
        for (start, stop), weight in zip(ranges, idf, strict=True):
            if stop <= start or not rows.size:
                continue
            posting = self._rows[start:stop]
            found = np.minimum(np.searchsorted(posting, rows), stop - start - 1)
            hit = posting[found] == rows
            scores[hit] += np.float32(weight) * self._weights[start + found[hit]]
        return scores


@dataclass(frozen=True)
class LexicalQuery:
    """A question's terms looked up in every segment, with the version's statistics."""

    # postings[s][t]: the range of term t in segment s.
    postings: list[list[tuple[int, int]]]
    idf: npt.NDArray[np.float64]
    # The share of the question's tokens that occur anywhere in the version.
    coverage: float


def lookup(
    segments: Sequence[LexicalSegment],
    deleted: Sequence[npt.NDArray[np.bool_] | None],
    query_tokens: Sequence[str],
) -> LexicalQuery:
    """Look ``query_tokens`` up in ``segments`` and weigh them over the rows of all of
    them that are not ``deleted`` (a mask a segment, or None when none is).

    The coverage is low for a question in another language than the archive (an
    English question over Arabic articles): its few matches are then noise.
    """
    hashes = term_hashes(query_tokens)
    postings = [segment.postings(hashes) for segment in segments]
    frequency = np.zeros(len(query_tokens), dtype=np.float64)
    total = 0
    for segment, ranges, mask in zip(segments, postings, deleted, strict=True):
        frequency += [stop - start for start, stop in ranges]
        total += segment.rows
        if mask is not None:
            frequency -= [segment.deleted_in(posting, mask) for posting in ranges]
            total -= int(np.count_nonzero(mask))
    idf = np.log(1 + (total - frequency + 0.5) / (frequency + 0.5))
    coverage = float((frequency > 0).mean()) if len(query_tokens) else 0.0
    return LexicalQuery(postings, idf, coverage)
