"""Filters on a search: a date range, document ids and metadata values. No HTTP.

A filter is applied inside the search, not after it: each segment turns it into the
mask of its chunk rows that may be returned (:class:`DocumentTable`), FAISS skips the
other rows while it searches, and BM25 scores only the allowed ones, so a request
for k passages gets k whenever k allowed chunks exist.

Semantics: values of one metadata key are alternatives (OR), different keys and the
other fields all apply (AND). Dates are inclusive and compared by calendar day; an
article without a date never matches a date filter.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from qa.errors import InvalidRequestError
from qa.records import Filters

# Most values a filter may list (document ids, or values of one key), and most keys.
MAX_FILTER_VALUES = 100
MAX_FILTER_KEYS = 10


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
