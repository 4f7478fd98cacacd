from qa.text.normalize import normalize


def test_normalize_folds_diacritics_tatweel_letter_variants_and_digits() -> None:
    assert normalize("مَدْرَسَةٌ") == "مدرسه"
    assert normalize("العـــربية") == "العربيه"
    assert normalize("أحمد إبراهيم آمن ٱلله") == "احمد ابراهيم امن الله"
    assert normalize("مستشفى") == "مستشفي"
    assert normalize("عام ٢٠١٥ و۱۹۹۰") == "عام 2015 و1990"
    assert normalize("  Cameron\n\tPUTIN ") == "cameron putin"
