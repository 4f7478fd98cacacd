"""Filters on a search: a date range, document ids and metadata values. No HTTP.

A filter is applied inside the search, not after it: each segment turns it into the
set of its chunk rows that may be returned (:class:`DocumentTable`), FAISS skips the
other rows while it searches, and BM25 scores only the allowed ones, so a request
for k passages gets k whenever k allowed chunks exist.

Semantics: values of one metadata key are alternatives (OR), different keys and the
other fields all apply (AND). Dates are inclusive and compared by calendar day; an
article without a date never matches a date filter.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from qa.errors import InvalidRequestError
from qa.records import Meta

# Most values a filter may list (document ids, or values of one key), and most keys.
MAX_FILTER_VALUES = 100
MAX_FILTER_KEYS = 10
_NO_DATE = np.iinfo(np.int32).min


@dataclass(frozen=True)
class Filters:
    published_from: datetime.date | None = None
    published_to: datetime.date | None = None
    doc_ids: tuple[str, ...] = ()
    meta: Meta = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.published_from or self.published_to or self.doc_ids or self.meta)


def parse_filters(
    published_from: datetime.date | str | None = None,
    published_to: datetime.date | str | None = None,
    doc_ids: Sequence[str] = (),
    meta: Mapping[str, Sequence[str]] | None = None,
) -> Filters:
    """Filters from request values; InvalidRequestError naming the problem."""
    start, end = _date("published_from", published_from), _date("published_to", published_to)
    if start and end and start > end:
        raise InvalidRequestError(f"filter published_from {start} is after published_to {end}")
    if len(doc_ids) > MAX_FILTER_VALUES:
        raise InvalidRequestError(f"filter doc_ids has {len(doc_ids)} values; at most {MAX_FILTER_VALUES}")
    meta = meta or {}
    if len(meta) > MAX_FILTER_KEYS:
        raise InvalidRequestError(f"filter meta has {len(meta)} keys; at most {MAX_FILTER_KEYS}")
    for key, values in meta.items():
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidRequestError(
                f"filter meta.{key} has {len(values)} values; at most {MAX_FILTER_VALUES}"
            )
    # A key listed without values asks for nothing.
    chosen = {key: tuple(values) for key, values in meta.items() if values}
    return Filters(start, end, tuple(doc_ids), chosen)


def _date(name: str, value: datetime.date | str | None) -> datetime.date | None:
    if value is None or isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"filter {name} {value!r} is not a date (YYYY-MM-DD)") from None


def day_number(published: str | None) -> int:
    """The calendar day of an ISO 8601 date or date-time, as an ordinal; _NO_DATE for none."""
    if not published:
        return _NO_DATE
    try:
        return datetime.datetime.fromisoformat(published).date().toordinal()
    except ValueError:
        return _NO_DATE


class DocumentTable:
    """A segment's documents as arrays for filtering: their ids, days and metadata
    (as an inverted index), and the document of every chunk row."""

    def __init__(
        self,
        documents: Sequence[tuple[str, str | None, Meta]],
        chunk_documents: npt.NDArray[np.int64],
    ) -> None:
        self.ordinal = {doc_id: n for n, (doc_id, _, _) in enumerate(documents)}
        self.days = np.array([day_number(published) for _, published, _ in documents], dtype=np.int32)
        self.postings: dict[tuple[str, str], list[int]] = {}
        for n, (_, _, meta) in enumerate(documents):
            for key, values in meta.items():
                for value in values:
                    self.postings.setdefault((key, value), []).append(n)
        # The document ordinal of each chunk row.
        self.chunk_documents = chunk_documents

    def allowed_chunks(
        self, filters: Filters, deleted_chunks: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """The sorted chunk rows of the documents that match ``filters``, less the
        ``deleted_chunks`` rows (those of documents later versions replaced or removed)."""
        allowed = np.ones(len(self.days), dtype=bool)
        if filters.published_from or filters.published_to:
            allowed &= self.days != _NO_DATE
            if filters.published_from:
                allowed &= self.days >= filters.published_from.toordinal()
            if filters.published_to:
                allowed &= self.days <= filters.published_to.toordinal()
        if filters.doc_ids:
            chosen = np.zeros(len(self.days), dtype=bool)
            chosen[[self.ordinal[d] for d in filters.doc_ids if d in self.ordinal]] = True
            allowed &= chosen
        for key, values in filters.meta.items():
            chosen = np.zeros(len(self.days), dtype=bool)
            for value in values:
                chosen[self.postings.get((key, value), [])] = True
            allowed &= chosen
        rows = allowed[self.chunk_documents]
        rows[deleted_chunks] = False
        return np.flatnonzero(rows).astype(np.int64)
