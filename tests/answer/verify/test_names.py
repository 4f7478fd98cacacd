"""Names of an English claim matched against Arabic spellings."""

from __future__ import annotations

from qa.answer.verify.names import unsupported_names


def test_english_names_match_arabic_spellings_by_their_consonants() -> None:
    span = "وقال رئيس الوزراء البريطاني ديفيد كاميرون إنه سيدعو الرئيس الروسي فلاديمير بوتين في سوريا"
    assert unsupported_names("David Cameron asked Vladimir Putin about Syria and Britain.", span) == []
    assert unsupported_names("Macron asked Obama about Egypt.", span) == ["Macron", "Obama", "Egypt"]
