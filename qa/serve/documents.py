"""Passages ordered by their articles' publication, for ``sort=newest``."""

from __future__ import annotations

from collections.abc import Sequence

from qa.records import Passage
from qa.store.documents import day_number


def newest_first(passages: Sequence[Passage]) -> tuple[Passage, ...]:
    """``passages`` ordered by their articles' publication day, newest first: relevance
    breaks ties, and articles without a date come last."""
    return tuple(sorted(passages, key=lambda p: (-day_number(p.published), -p.score)))
