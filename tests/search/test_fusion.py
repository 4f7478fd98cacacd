"""The fusion of dense and lexical scores, on numbers worked by hand."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from qa.search.fusion import (
    LEXICAL_WEIGHT,
    SECOND_SENTENCE_WEIGHT,
    SENTENCE_LEXICAL_WEIGHT,
    SENTENCE_WEIGHT,
    Fusion,
    two_best,
)

NONE = np.zeros(0, np.float32)


def scores(*values: float) -> npt.NDArray[np.float32]:
    return np.array(values, np.float32)


def test_dense_scores_add_the_best_two_sentences() -> None:
    fusion = Fusion(coverage=1.0, chunk_lexical_max=0.0, sentence_lexical_max=0.0)
    score = fusion.score(0.8, scores(0.5, 0.9, 0.7), 0.0, scores(0, 0, 0))
    assert score == pytest.approx(0.8 + SENTENCE_WEIGHT * 0.9 + SECOND_SENTENCE_WEIGHT * 0.7)


def test_a_one_sentence_chunk_counts_its_sentence_twice_and_one_without_sentences_its_own() -> None:
    assert two_best(scores(0.6), fallback=0.1) == pytest.approx((0.6, 0.6))
    assert two_best(NONE, fallback=0.1) == (0.1, 0.1)
    fusion = Fusion(coverage=1.0, chunk_lexical_max=0.0, sentence_lexical_max=0.0)
    assert fusion.score(0.5, NONE, 0.0, NONE) == pytest.approx(
        0.5 * (1 + SENTENCE_WEIGHT + SECOND_SENTENCE_WEIGHT)
    )


def test_lexical_terms_are_normalized_by_their_maxima_and_scale_with_coverage_squared() -> None:
    dense = Fusion(coverage=1.0, chunk_lexical_max=0.0, sentence_lexical_max=0.0).score(
        0.5, scores(0.5), 0.0, scores(0.0)
    )
    for coverage in (1.0, 0.5, 0.2):
        fusion = Fusion(coverage=coverage, chunk_lexical_max=8.0, sentence_lexical_max=4.0)
        score = fusion.score(0.5, scores(0.5), 4.0, scores(1.0))
        lexical = coverage**2 * (LEXICAL_WEIGHT * 4.0 / 8.0 + SENTENCE_LEXICAL_WEIGHT * 1.0 / 4.0)
        assert score - dense == pytest.approx(lexical)
    # No lexical match anywhere: the dense score alone, whatever the coverage.
    fusion = Fusion(coverage=0.5, chunk_lexical_max=0.0, sentence_lexical_max=0.0)
    assert fusion.score(0.5, scores(0.5), 0.0, scores(0.0)) == dense


def test_the_sentence_maximum_is_over_every_candidate_sentence() -> None:
    fusion = Fusion.of(0.7, 3.0, [scores(1.0, 2.5), NONE, scores(0.5)])
    assert fusion == Fusion(0.7, 3.0, 2.5)
    assert Fusion.of(0.7, 3.0, [NONE]).sentence_lexical_max == 0.0
