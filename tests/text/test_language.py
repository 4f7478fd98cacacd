"""The two rules that tell Arabic text, and where they differ."""

from __future__ import annotations

from qa.text.language import has_arabic_letter, is_mostly_arabic


def test_one_arabic_letter_makes_a_question_arabic() -> None:
    assert has_arabic_letter("متى ولد كاميرون؟")
    assert has_arabic_letter("When was Cameron born? كاميرون")
    assert not has_arabic_letter("When was Cameron born?")
    # Arabic-Indic digits and punctuation are no letters of the alphabet.
    assert not has_arabic_letter("١٩٥٨ ، ؟")


def test_mostly_arabic_counts_letters() -> None:
    assert is_mostly_arabic("قال كاميرون إنه سيدعو بوتين [1].")
    # An English sentence that quotes an Arabic name is still English.
    assert not is_mostly_arabic("Cameron said he would ask Putin, بوتين, to act.")
    assert not is_mostly_arabic("")
    assert not is_mostly_arabic("1958 [1].")
