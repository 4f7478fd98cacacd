"""Saved pages and WARC archives (qa.ingest.web.archives), on real files written with warcio."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from qa.ingest.web.archives import SavedPage, read_saved_pages

ARABIC_PAGE = "<html><head><title>قمة العشرين في أنطاليا</title></head><body><p>نص الخبر.</p></body></html>"


def http(status: str, content_type: str, *extra: tuple[str, str]) -> StatusAndHeaders:
    return StatusAndHeaders(status, [("Content-Type", content_type), *extra], protocol="HTTP/1.1")


def chunked(data: bytes, size: int = 100) -> bytes:
    """``data`` in HTTP/1.1 chunked transfer coding, as a server sends it and a WARC keeps it."""
    parts = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def write_warc(path: Path, *, gz: bool) -> None:
    """An archive like a crawler's: warcinfo, request/response pairs, a PDF, a 404, a revisit."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=gz)

        def response(url: str, headers: StatusAndHeaders, payload: bytes) -> None:
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=headers
            )
            writer.write_record(record)

        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))  # 1
        request = StatusAndHeaders("GET /a HTTP/1.1", [("Host", "example.com")], is_http_request=True)
        writer.write_record(
            writer.create_warc_record("https://example.com/a", "request", http_headers=request)
        )  # 2
        response(  # 3: an Arabic page in the charset its header names
            "https://example.com/a",
            http("200 OK", "text/html; charset=windows-1256"),
            ARABIC_PAGE.encode("cp1256"),
        )
        response("https://example.com/report.pdf", http("200 OK", "application/pdf"), b"%PDF-1.4 ...")  # 4
        response("https://example.com/missing", http("404 Not Found", "text/html"), b"<html>gone</html>")  # 5
        body = gzip.compress("<html><body><p>مضغوط ومقطع</p></body></html>".encode())
        response(  # 6: chunked and gzip'd on the wire, as a WARC stores it
            "https://example.com/b",
            http(
                "200 OK",
                "application/xhtml+xml",
                ("Transfer-Encoding", "chunked"),
                ("Content-Encoding", "gzip"),
            ),
            chunked(body),
        )
        writer.write_record(
            writer.create_revisit_record(
                "https://example.com/a",
                digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                refers_to_uri="https://example.com/a",
                refers_to_date="2017-01-25T10:00:00Z",
                http_headers=http("200 OK", "text/html"),
            )
        )  # 7
        response("https://example.com/c", http("200 OK", "text/html"), b"<html><p>last</p></html>")  # 8


def pages_and_problems(items: list[SavedPage | str]) -> tuple[list[SavedPage], list[str]]:
    return [i for i in items if isinstance(i, SavedPage)], [i for i in items if isinstance(i, str)]


@pytest.mark.parametrize("name", ["crawl.warc", "crawl.warc.gz"])
def test_warc_yields_the_200_html_responses_decoded_and_nothing_else(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_warc(path, gz=name.endswith(".gz"))
    items = list(read_saved_pages(path, max_bytes=1 << 20))
    assert all(isinstance(item, SavedPage) for item in items), items
    pages, _ = pages_and_problems(items)
    assert [(p.url, p.charset, p.where) for p in pages] == [
        ("https://example.com/a", "windows-1256", f"{name} record 3"),
        ("https://example.com/b", None, f"{name} record 6"),
        ("https://example.com/c", None, f"{name} record 8"),
    ]
    assert pages[0].body.decode("cp1256") == ARABIC_PAGE
    # The transfer and content codings are undone: the extractor gets the page itself.
    assert pages[1].body.decode() == "<html><body><p>مضغوط ومقطع</p></body></html>"


def test_a_record_over_max_bytes_is_a_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.warc.gz"
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, size in [("https://example.com/big", 5000), ("https://example.com/small", 10)]:
            payload = b"<html>" + b"x" * size + b"</html>"
            writer.write_record(
                writer.create_warc_record(
                    url, "response", payload=io.BytesIO(payload), http_headers=http("200 OK", "text/html")
                )
            )
    items = list(read_saved_pages(path, max_bytes=1000))
    assert len(items) == 2
    assert (
        items[0]
        == "big.warc.gz record 1 (https://example.com/big): the page is larger than 1000 bytes; skipped"
    )
    assert isinstance(items[1], SavedPage) and items[1].url == "https://example.com/small"


def test_a_gzip_bomb_in_a_record_stops_at_max_bytes(tmp_path: Path) -> None:
    # 20 MB of zeros in 20 KB: the content coding would inflate it; max_bytes stops it.
    bomb = gzip.compress(b"\0" * 20_000_000)
    path = tmp_path / "bomb.warc"
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=False)
        headers = http("200 OK", "text/html", ("Content-Encoding", "gzip"))
        writer.write_record(
            writer.create_warc_record(
                "https://example.com/bomb", "response", payload=io.BytesIO(bomb), http_headers=headers
            )
        )
    items = list(read_saved_pages(path, max_bytes=100_000))
    assert items == [
        "bomb.warc record 1 (https://example.com/bomb): the page is larger than 100000 bytes; skipped"
    ]


@pytest.mark.parametrize("name", ["cut.warc", "cut.warc.gz"])
@pytest.mark.parametrize("cut", [40, 300])
def test_a_warc_cut_short_yields_the_records_before_then_a_problem(
    tmp_path: Path, name: str, cut: int
) -> None:
    whole = tmp_path / ("whole" + name.removeprefix("cut"))
    write_warc(whole, gz=name.endswith(".gz"))
    data = whole.read_bytes()
    path = tmp_path / name
    # The last record (8) loses its end: `cut` bytes (in the gzip member, or the block).
    path.write_bytes(data[:-cut])
    items = list(read_saved_pages(path, max_bytes=1 << 20))
    pages, problems = pages_and_problems(items)
    assert [p.url for p in pages] == ["https://example.com/a", "https://example.com/b"]
    assert problems == [f"{path}: cut short in record 8; the records before it were read"]
    assert items[-1] == problems[0]


def test_a_warc_gzipped_whole_is_read_in_full(tmp_path: Path) -> None:
    plain = tmp_path / "plain.warc"
    write_warc(plain, gz=False)
    path = tmp_path / "whole.warc.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    items = list(read_saved_pages(path, max_bytes=1 << 20))
    assert [i.url if isinstance(i, SavedPage) else i for i in items] == [
        "https://example.com/a",
        "https://example.com/b",
        "https://example.com/c",
    ]


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("notes.warc", "نص عادي\nليس أرشيفا\n".encode(), "not a WARC archive (Unknown archive format"),
        ("junk.warc.gz", b"\x1f\x8b\x08\x00junk", "not a WARC archive, or cut short in its first record"),
        ("empty.warc", b"", "the WARC archive is empty"),
    ],
)
def test_a_file_that_is_no_warc_is_a_problem(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    items = list(read_saved_pages(path, max_bytes=1 << 20))
    assert len(items) == 1 and isinstance(items[0], str)
    assert items[0].startswith(f"{path}: {problem}")


def test_a_folder_of_saved_pages_and_archives_in_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    canonical = (
        '<html><head><link rel="Canonical" href="https://example.com/2017/01/قمة">'
        '<meta property="og:url" content="https://example.com/og"></head><body>نص</body></html>'
    )
    og_only = '<html><head><meta property="og:url" content="https://example.com/og-only"></head></html>'
    based = (
        '<html><head><base href="https://example.com/news/"><link rel="canonical" href="story"></head></html>'
    )
    relative_only = '<html><head><link rel="canonical" href="/relative"></head><body>x</body></html>'
    saved_from = "<!DOCTYPE html>\n<!-- saved from url=(0029)https://example.com/saved -->\n<html></html>"
    (tmp_path / "b" / "z.html").write_text(canonical, "utf-8")
    (tmp_path / "a" / "deep" / "y.HTM").write_text(og_only, "utf-8")
    (tmp_path / "a" / "x.html").write_text(relative_only, "utf-8")
    (tmp_path / "a" / "w.htm").write_text(based, "utf-8")
    (tmp_path / "c.html").write_text(saved_from, "utf-8")
    (tmp_path / "notes.txt").write_text("ignored", "utf-8")
    (tmp_path / "a" / "image.png").write_bytes(b"\x89PNG")
    write_warc(tmp_path / "a" / "crawl.warc.gz", gz=True)

    items = list(read_saved_pages(tmp_path, max_bytes=1 << 20))
    pages, problems = pages_and_problems(items)
    assert problems == []
    assert [
        (p.url, Path(p.where).relative_to(tmp_path).as_posix() if "/" in p.where else p.where) for p in pages
    ] == [
        ("https://example.com/a", "crawl.warc.gz record 3"),
        ("https://example.com/b", "crawl.warc.gz record 6"),
        ("https://example.com/c", "crawl.warc.gz record 8"),
        ("https://example.com/og-only", "a/deep/y.HTM"),
        ("https://example.com/news/story", "a/w.htm"),
        ((tmp_path / "a" / "x.html").resolve().as_uri(), "a/x.html"),
        ("https://example.com/2017/01/قمة", "b/z.html"),
        ("https://example.com/saved", "c.html"),
    ]
    assert pages[6].body.decode() == canonical and pages[6].charset is None


def test_an_html_file_named_directly_and_the_problems_of_paths(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body>" + "ن" * 600 + "</body></html>", "utf-8")
    [item] = read_saved_pages(page, max_bytes=2000)
    assert isinstance(item, SavedPage) and item.url == page.resolve().as_uri() and item.where == str(page)
    size = len(page.read_bytes())
    assert list(read_saved_pages(page, max_bytes=1000)) == [
        f"{page}: {size} bytes, above the limit of 1000; skipped"
    ]
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert list(read_saved_pages(other, max_bytes=1000)) == [
        f"{other}: not an .html, .htm, .warc or .warc.gz file"
    ]
    missing = tmp_path / "missing"
    assert list(read_saved_pages(missing, max_bytes=1000)) == [f"{missing}: no such file or folder"]


def test_the_canonical_link_of_a_page_saved_in_a_legacy_charset(tmp_path: Path) -> None:
    page = tmp_path / "legacy.html"
    markup = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
        '<link rel="canonical" href="https://example.com/أخبار/1"></head><body>نص</body></html>'
    )
    page.write_bytes(markup.encode("cp1256"))
    [item] = read_saved_pages(page, max_bytes=1 << 20)
    assert isinstance(item, SavedPage) and item.url == "https://example.com/أخبار/1"
    assert item.body == markup.encode("cp1256")
