from qa.records import SentenceKind
from qa.text.sentences import split_sentences


def spans(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


def test_splits_on_arabic_and_latin_end_punctuation_and_keeps_offsets() -> None:
    text = "قال الوزير إن الاجتماع ناجح. هل انتهى؟ نعم! وأضاف: «سنلتقي غدا»؛ ثم غادر."
    assert spans(text) == [
        "قال الوزير إن الاجتماع ناجح.",
        "هل انتهى؟",
        "نعم!",
        "وأضاف: «سنلتقي غدا»؛",
        "ثم غادر.",
    ]


def test_line_breaks_end_sentences_and_short_unpunctuated_lines_are_headings() -> None:
    long_line = "فقرة ثانية بلا نقطة في آخرها لكنها طويلة" + " جدا" * 12
    text = "خلاف موسكو وواشنطن\nأكد مسؤول كبير استمرار الخلاف.\n\n" + long_line
    sentences = split_sentences(text)
    assert [s.kind for s in sentences] == [SentenceKind.HEADING, SentenceKind.SENTENCE, SentenceKind.SENTENCE]
    assert [s.paragraph for s in sentences] == [0, 1, 2]
    assert text[sentences[0].start : sentences[0].end] == "خلاف موسكو وواشنطن"


def test_decimals_and_quotes_do_not_split_and_closing_quotes_stay_with_the_sentence() -> None:
    text = 'ارتفع السعر 2.5 بالمئة. وقال "انتهى الأمر." ثم صمت.'
    assert spans(text) == ["ارتفع السعر 2.5 بالمئة.", 'وقال "انتهى الأمر."', "ثم صمت."]


def test_offsets_survive_carriage_returns_and_surrounding_space() -> None:
    text = "  أولا جملة أولى.\r\n  ثانيا جملة ثانية.  \r\n"
    for sentence in split_sentences(text):
        piece = text[sentence.start : sentence.end]
        assert piece == piece.strip() and piece.endswith(".")
    assert len(split_sentences(text)) == 2


def test_overlong_sentences_are_cut_at_commas_then_spaces() -> None:
    clause = "وهذه عبارة طويلة من كلمات كثيرة متتابعة"
    text = "، ".join([clause] * 40) + "."
    sentences = split_sentences(text, max_chars=200)
    assert len(sentences) > 1
    assert all(s.end - s.start <= 200 for s in sentences)
    assert all(text[s.start : s.end].endswith(("،", ".")) for s in sentences)
    no_commas = " ".join(["كلمة"] * 200)
    pieces = split_sentences(no_commas, max_chars=100)
    assert all(p.end - p.start <= 100 for p in pieces)
    assert "".join(no_commas[p.start : p.end] for p in pieces).replace(" ", "") == no_commas.replace(" ", "")


def test_empty_and_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n \t") == []
