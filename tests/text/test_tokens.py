from qa.text.tokens import stems, tokens


def test_stems_strip_the_article_and_keep_both_forms_for_a_lone_clitic() -> None:
    assert stems("والكتاب") == ("كتاب",)
    assert stems("بالمدرسه") == ("مدرسه",)
    assert stems("للصحفيين") == ("صحفيين",)
    assert stems("الامم") == ("امم",)
    assert stems("وقال") == ("وقال", "قال")
    assert stems("بوتين") == ("بوتين", "وتين")
    assert stems("من") == ("من",)


def test_tokens_match_across_spelling_variants() -> None:
    assert set(tokens("الأُمَم المتّحدة")) == set(tokens("والامم المتحده"))
    assert "2015" in tokens("في عام ٢٠١٥م")
