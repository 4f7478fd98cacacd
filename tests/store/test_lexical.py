"""BM25 per segment with the version's statistics, against bm25s as the reference."""

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from qa.store.lexical import LexicalSegment, LexicalWriter, lookup

WORDS = ["كاميرون", "بوتين", "قمة", "انطاليا", "سوريا", "روسيا", "طلب", "اتفق", "في", "من", "2015"]


def token_lists(count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[WORDS[i] for i in rng.integers(len(WORDS), size=rng.integers(1, 12))] for _ in range(count)]


def written(folder: Path, rows: list[list[str]], average: float | None = None) -> LexicalSegment:
    writer = LexicalWriter()
    for row in rows:
        writer.add(row)
    writer.save(folder, average or writer.average_length())
    return LexicalSegment(folder)


def scores(
    segments: list[LexicalSegment], query: list[str], deleted: Sequence[np.ndarray | None]
) -> list[np.ndarray]:
    found = lookup(segments, deleted, query)
    return [s.scores(found.postings[i], found.idf) for i, s in enumerate(segments)]


def test_one_segment_scores_as_bm25s(tmp_path: Path) -> None:
    rows = token_lists(300, seed=1)
    reference = bm25s.BM25()
    reference.index(rows, show_progress=False)
    segment = written(tmp_path / "one", rows)
    for query in (["كاميرون", "بوتين"], ["في", "قمة", "قمة"], ["سوريا", "غائب"], ["غائب"]):
        (ours,) = scores([segment], query, [None])
        np.testing.assert_allclose(ours, reference.get_scores(query), rtol=1e-5, atol=1e-6)
    assert lookup([segment], [None], ["كاميرون", "غائب"]).coverage == 0.5


def test_segments_with_deletions_score_as_one_segment_of_the_live_rows(tmp_path: Path) -> None:
    rows = token_lists(400, seed=2)
    whole = written(tmp_path / "whole", [r for i, r in enumerate(rows) if i % 7])  # the live rows only
    average = LexicalWriter()
    for row in (r for i, r in enumerate(rows) if i % 7):
        average.add(row)
    first = written(tmp_path / "a", rows[:250], average.average_length())
    second = written(tmp_path / "b", rows[250:], average.average_length())
    deleted = [np.array([i % 7 == 0 for i in range(250)]), np.array([i % 7 == 0 for i in range(250, 400)])]
    for query in (["روسيا", "اتفق"], ["من", "2015", "طلب"]):
        (expected,) = scores([whole], query, [None])
        a, b = scores([first, second], query, list(deleted))
        live = np.concatenate([a[~deleted[0]], b[~deleted[1]]])
        np.testing.assert_allclose(live, expected, rtol=1e-5)
