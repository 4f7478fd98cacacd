"""Splitting a generated answer into sentences and the evidence numbers they cite."""

from __future__ import annotations

from qa.answer.verify.sentences import complete_sentences, split_answer


def test_an_answer_splits_into_sentences_with_the_numbers_they_cite() -> None:
    sentences = split_answer(
        "Cameron asked Putin [1]. U.S. officials said 2.5 million [2][3]. No marker. قال [١، ٤]."
    )
    assert [(s.claim, s.cites) for s in sentences] == [
        ("Cameron asked Putin.", (1,)),
        ("U.S. officials said 2.5 million.", (2, 3)),
        ("No marker.", ()),
        ("قال.", (1, 4)),
    ]
    # A growing stream: the last piece waits, more markers may follow.
    assert complete_sentences("One [1]. Two [2") == (["One [1]."], "Two [2")
    assert complete_sentences("One. [1] [") == ([], "One. [1] [")
