import json
import re
from pathlib import Path

import pytest

from qa.config import load_settings
from qa.errors import SourceError
from qa.ingest.sources import read_articles


def test_folder_of_text_markdown_and_jsonl_keeps_the_exact_text(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_bytes("عنوان الخبر\r\nنص الخبر.\r\n".encode())
    (tmp_path / "a.md").write_text("# عنوان\n\nنص.\n", "utf-8")
    records = [
        {"id": "j1", "title": "T1", "text": " نص أول ", "url": "http://x", "published": "2015-11-15"},
        {"id": 7, "text": "سطر أول\nسطر ثان"},
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n")
    (tmp_path / "ignored.csv").write_text("x")
    articles = read_articles(tmp_path).articles
    assert [a.doc_id for a in articles] == ["a", "b", "j1", "7"]
    assert articles[0].title == "عنوان" and articles[0].text == "# عنوان\n\nنص.\n"
    assert articles[1].text == "عنوان الخبر\r\nنص الخبر.\r\n" and articles[1].title == "عنوان الخبر"
    assert (
        articles[2].text == " نص أول "
        and articles[2].url == "http://x"
        and articles[2].published == "2015-11-15"
    )
    assert articles[3].title == "سطر أول"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", b"ok\n\xff\xfe", r"bad\.txt: invalid UTF-8 at byte 3 \(line 2\)"),
        ("empty.txt", b"  \n", r"empty\.txt: the file is empty"),
        ("x.jsonl", b'{"id": "a", "text": "t"}\n{not json}\n', r"x\.jsonl:2: not valid JSON"),
        ("x.jsonl", b'{"id": "a", "text": "t"}\n{"id": "b"}\n', r"x\.jsonl:2: missing or empty 'text'"),
        ("x.jsonl", b'{"id": "a", "text": "t"}\n{"text": "t"}\n', r"x\.jsonl:2: missing or empty 'id'"),
        ("x.jsonl", b'{"id": "a", "text": "t"}\n[1]\n', r"x\.jsonl:2: expected a JSON object"),
        ("x.jsonl", b'{"id": "a", "text": "t"}\n{"id": "b", "text": "\xff"}\n', r"x\.jsonl:2: invalid UTF-8"),
        (
            "x.jsonl",
            b'{"id": "a", "text": "t"}\n{"id": "a", "text": "u"}\n',
            r"x\.jsonl:2: duplicate document id 'a'",
        ),
        (
            "x.jsonl",
            b'{"id": "a", "text": "t"}\n{"id": "b", "text": "t", "published": "16/11/2015"}\n',
            r"x\.jsonl:2: 'published' is not an ISO 8601 date or date-time: '16/11/2015'",
        ),
        (
            "x.jsonl",
            b'{"id": "a", "text": "t"}\n{"id": "b", "text": "t", "meta": {"section": 3}}\n',
            r"x\.jsonl:2: 'meta' key 'section' must hold a string or a list of strings",
        ),
        (
            "x.jsonl",
            b'{"id": "b", "text": "t", "meta": ["sport"]}\n',
            r"x\.jsonl:1: 'meta' must be an object",
        ),
        ("fm.txt", b"---\npublished: 2015-13-40\n---\nbody", r"fm\.txt:2: 'published' is not an ISO 8601"),
        ("fm.txt", b"---\nsection politics\n---\nbody", r"fm\.txt:2: front matter line is not 'key: value'"),
        ("fm.txt", b"---\nsection: politics\n", r"fm\.txt:1: front matter block is not closed"),
    ],
)
def test_bad_sources_are_reported_by_path_and_line_then_skipped_or_fatal_when_strict(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / "good.txt").write_text("نص سليم.", "utf-8")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read_articles(tmp_path, strict=True)
    report = read_articles(tmp_path)
    assert len(report.problems) == 1 and re.search(message, report.problems[0])
    assert "good" in {a.doc_id for a in report.articles}


def test_a_file_too_large_for_an_article_is_skipped_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "dump.txt"
    with big.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # a sparse 100 MB file
    (tmp_path / "ok.txt").write_text("نص.", "utf-8")
    report = read_articles(tmp_path)
    assert [a.doc_id for a in report.articles] == ["ok"]
    assert "dump.txt: larger than 8 MB" in report.problems[0]


def test_the_largest_article_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("نص طويل جدا.", "utf-8")
    (tmp_path / "ok.txt").write_text("نص.", "utf-8")
    record = json.dumps({"id": "j", "text": "نص طويل آخر."}, ensure_ascii=False)
    (tmp_path / "more.jsonl").write_text(record + "\n", "utf-8")
    limit = load_settings(environ={"QA_SOURCE_MAX_ARTICLE_BYTES": "12"}).source.max_article_bytes
    report = read_articles(tmp_path, max_article_bytes=limit)
    assert [a.doc_id for a in report.articles] == ["ok"]
    assert sorted(report.problems) == [
        f"{tmp_path / 'long.txt'}: larger than 12 bytes, too large for one article",
        f"{tmp_path / 'more.jsonl'}:1: line longer than 12 bytes",
    ]


def test_missing_or_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        read_articles(tmp_path / "missing")
    with pytest.raises(SourceError, match=r"no \.txt, \.md or \.jsonl files"):
        read_articles(tmp_path)


def test_a_long_first_line_makes_a_title_cut_at_a_word(tmp_path: Path) -> None:
    line = "جمعت قمة مجموعة العشرين في أنطاليا التركية عددا من الرؤساء " * 4
    (tmp_path / "a.txt").write_text(line + "\nنص.", "utf-8")
    title = read_articles(tmp_path).articles[0].title
    assert title.endswith("…") and len(title) <= 101
    assert line.startswith(title[:-1]) and line[len(title) - 1] == " "


def test_metadata_from_jsonl_and_from_a_text_file_front_matter(tmp_path: Path) -> None:
    record = {"id": "j", "text": "نص.", "published": "2015-11-16T10:30:00+02:00",
              "meta": {"section": "politics", "tags": ["g20", "syria"]}}  # fmt: skip
    (tmp_path / "a.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", "utf-8")
    body = "عنوان الخبر\nنص الخبر.\n"
    front = "---\npublished: 2015-11-16\nsection: sport\ntags: [football, final]\n---\n"
    (tmp_path / "b.txt").write_text(front + body, "utf-8")
    (tmp_path / "c.txt").write_text("--- not a block\nنص.", "utf-8")
    jsonl, text, plain = read_articles(tmp_path, strict=True).articles
    assert jsonl.published == "2015-11-16T10:30:00+02:00"
    assert jsonl.meta == {"section": ("politics",), "tags": ("g20", "syria")}
    assert text.text == body and text.title == "عنوان الخبر" and text.published == "2015-11-16"
    assert text.meta == {"section": ("sport",), "tags": ("football", "final")}
    assert plain.text == "--- not a block\nنص." and plain.meta == {} and plain.published is None


def test_a_blank_metadata_value_is_no_value_not_a_reason_to_skip_the_article(tmp_path: Path) -> None:
    # As one article of the ANT archive is exported: {"section": "", "source": ""}.
    record = {"id": "j", "text": "نص.", "meta": {"section": "", "source": " ", "tags": ["g20", ""]}}
    (tmp_path / "a.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", "utf-8")
    (article,) = read_articles(tmp_path, strict=True).articles
    assert article.meta == {"tags": ("g20",)}
