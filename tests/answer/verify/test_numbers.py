"""The numbers a text writes, in digits of any script and in words."""

from __future__ import annotations

from qa.answer.verify.numbers import numbers


def test_numbers_are_read_in_any_script_and_in_words() -> None:
    assert numbers("Born on 13 October 1958; 1,000 people; twenty-three; the third") == {
        "13", "1958", "1000", "23", "3",
    }  # fmt: skip
    assert numbers("ولد في ١٣ أكتوبر ١٩٥٨ وقتل خمسة عشر، مساحة 30،528 كم، في القرن السادس عشر") == {
        "13", "1958", "15", "30528", "16",
    }  # fmt: skip
