"""A segment's documents as arrays, for filters (``documents.npz``). No HTTP.

A filter is applied inside the search: each segment turns it into the mask of its
chunk rows that may be returned, from this table read whole when it is opened.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qa.records import Filters, Meta

_NO_DATE = np.iinfo(np.int32).min


def day_number(published: str | None) -> int:
    """The calendar day of an ISO 8601 date or date-time, as an ordinal; _NO_DATE for none."""
    if not published:
        return _NO_DATE
    try:
        return datetime.datetime.fromisoformat(published).date().toordinal()
    except ValueError:
        return _NO_DATE


class DocumentTable:
    """A segment's documents as arrays, for filters: each document's publication
    day, its metadata as an inverted index ((key, value) to document ordinals), and
    the document of each chunk row. Written beside the segment when it is built and
    read back whole when the segment is opened (on disk about 4 bytes a chunk and 8
    a document; 12 bytes a chunk in memory), where reading them from the store took
    seconds at a million chunks."""

    def __init__(
        self,
        days: npt.NDArray[np.int32],
        chunk_documents: npt.NDArray[np.intp],
        postings: Mapping[tuple[str, str], npt.NDArray[np.int32]],
    ) -> None:
        self.days = days
        # The document ordinal of each chunk row (as intp: numpy indexes with int32
        # only after converting them, which doubles the cost of a filter).
        self.chunk_documents = chunk_documents
        # And each chunk row's day: a date range is then two comparisons, with no
        # pass from documents to chunks (the costliest step of a filter, at 1M chunks).
        self.chunk_days = days[chunk_documents]
        self.postings = postings

    @classmethod
    def build(cls, documents: Sequence[tuple[str | None, Meta, int]]) -> DocumentTable:
        """From each document's date, metadata and number of chunks, in row order."""
        postings: dict[tuple[str, str], list[int]] = {}
        for ordinal, (_, meta, _) in enumerate(documents):
            for key, values in meta.items():
                for value in values:
                    postings.setdefault((key, value), []).append(ordinal)
        return cls(
            np.array([day_number(published) for published, _, _ in documents], dtype=np.int32),
            np.repeat(np.arange(len(documents), dtype=np.intp), [chunks for _, _, chunks in documents]),
            {pair: np.array(ordinals, dtype=np.int32) for pair, ordinals in postings.items()},
        )

    def save(self, path: Path) -> None:
        pairs = list(self.postings)
        lists = [self.postings[pair] for pair in pairs]
        with path.open("wb") as file:
            np.savez(
                file,
                days=self.days,
                chunk_documents=self.chunk_documents.astype(np.int32),
                pairs=np.array(json.dumps(pairs, ensure_ascii=False)),
                offsets=np.cumsum([0, *(len(ordinals) for ordinals in lists)], dtype=np.int64),
                ordinals=np.concatenate(lists) if lists else np.zeros(0, dtype=np.int32),
            )

    @classmethod
    def load(cls, path: Path) -> DocumentTable:
        with np.load(path) as stored:
            pairs, offsets, ordinals = json.loads(str(stored["pairs"])), stored["offsets"], stored["ordinals"]
            postings = {
                (key, value): ordinals[offsets[n] : offsets[n + 1]] for n, (key, value) in enumerate(pairs)
            }
            return cls(stored["days"], stored["chunk_documents"].astype(np.intp), postings)

    def allowed_chunks(
        self, filters: Filters, doc_ordinals: npt.NDArray[np.int64], deleted_chunks: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Which chunk rows belong to documents that match ``filters`` (whose
        ``doc_ids`` are the documents of ordinals ``doc_ordinals`` here), less the
        ``deleted_chunks`` rows (those of documents later versions replaced or removed)."""
        documents: npt.NDArray[np.bool_] | None = None  # the documents allowed, if chosen by them
        if filters.doc_ids:
            documents = np.zeros(len(self.days), dtype=bool)
            documents[doc_ordinals] = True
        for key, values in filters.meta.items():
            chosen = np.zeros(len(self.days), dtype=bool)
            for value in values:
                chosen[self.postings.get((key, value), [])] = True
            documents = chosen if documents is None else documents & chosen
        rows = None if documents is None else documents[self.chunk_documents]
        if filters.published_from or filters.published_to:
            # _NO_DATE is below every day: outside any range, open-ended or not.
            low = filters.published_from.toordinal() if filters.published_from else _NO_DATE + 1
            in_range = self.chunk_days >= low
            if filters.published_to:
                in_range &= self.chunk_days <= filters.published_to.toordinal()
            rows = in_range if rows is None else rows & in_range
        if rows is None:
            rows = np.ones(len(self.chunk_days), dtype=bool)
        rows[deleted_chunks] = False
        return rows
