"""Feeds, sitemaps and lists of URLs (qa.ingest.web.listings), read with the real parsers."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from qa.ingest.web.listings import (
    ListedPage,
    Listing,
    child_sitemaps,
    gunzip_bounded,
    iso_date,
    listing_kind,
    parse_listing,
)

FEED_URL = "https://example.com/feeds/news/"
LIMITS = {"max_urls": 50000, "max_bytes": 8 << 20}
LONG_TEXT = "<p>" + "فقرة طويلة من نص الخبر. " * 80 + "</p>"

RSS = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>أخبار</title><link>https://example.com/</link>
<item>
  <title>قمة العشرين
     في أنطاليا</title>
  <link>/2015/11/g20</link>
  <pubDate>Mon, 16 Nov 2015 10:30:00 +0200</pubDate>
  <category>سياسة</category><category>Syria</category><category>سياسة</category>
  <description>ملخص قصير</description>
  <content:encoded><![CDATA[<p>النص <a href="/more">الكامل</a></p><script>x()</script>]]></content:encoded>
</item>
<item>
  <title>Teaser only</title><link>https://example.com/teaser</link>
  <description>A sentence or two.</description>
</item>
<item>
  <title>Full text in the description</title><link>https://example.com/long</link>
  <description><![CDATA[{LONG_TEXT}]]></description>
</item>
<item><title>No link</title></item>
<item><title>Mail</title><link>mailto:desk@example.com</link></item>
</channel></rss>""".encode()

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><id>urn:x</id>
<entry>
  <title type="text">\xd8\xa7\xd9\x84\xd8\xb9\xd9\x86\xd9\x88\xd8\xa7\xd9\x86</title>
  <link rel="alternate" href="2017/01/story"/><link rel="enclosure" href="story.mp3"/>
  <id>urn:1</id>
  <updated>2017-01-25T10:00:00+03:00</updated><published>2017-01-24T08:00:00Z</published>
  <category term="sport" label="Sport"/><category term="football"/>
  <summary>short</summary>
  <content type="html">&lt;p&gt;Full &lt;b&gt;story&lt;/b&gt;&lt;/p&gt;</content>
</entry>
<entry>
  <title>Plain</title><link href="https://example.com/plain"/><id>urn:2</id>
  <updated>2017-01-26</updated>
  <content type="text">First &amp; only.

Second paragraph.</content>
</entry>
</feed>"""

JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "أخبار",
    "items": [
        {
            "id": "1",
            "url": "https://example.com/2017/01/a",
            "title": "عنوان أول",
            "content_html": "<p>نص</p>",
            "date_published": "2017-01-25T10:00:00+03:00",
            "date_modified": "2017-01-26T09:00:00+03:00",
            "tags": ["سياسة", "g20", ""],
        },
        {
            "id": "2",
            "external_url": "/elsewhere",
            "content_text": "سطر <أول>\nسطر ثان\n\nفقرة ثانية",
            "date_published": "yesterday",
        },
        {"id": "3", "content_text": "no url"},
        "not an object",
    ],
}

NEWS_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <!-- a comment between entries -->
  <url>
    <loc>https://example.com/2017/01/summit</loc>
    <lastmod>2017-01-25T12:00+03:00</lastmod>
    <image:image><image:loc>https://example.com/photo.jpg</image:loc></image:image>
    <news:news>
      <news:publication><news:name>مثال</news:name><news:language>ar</news:language></news:publication>
      <news:publication_date>2017-01-25T10:00:00+03:00</news:publication_date>
      <news:title>قمة في الرياض</news:title>
    </news:news>
  </url>
  <url><loc> /2017/01/relative?a=1&amp;b=2 </loc><lastmod>2017-01</lastmod></url>
  <url><loc>ftp://example.com/file</loc></url>
  <url><lastmod>2017-01-01</lastmod></url>
  <url><loc>https://example.com/2017/01/summit</loc></url>
  <url><loc>https://example.com/bad-date</loc><lastmod>sometime</lastmod></url>
</urlset>""".encode()

SITEMAP_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://example.com/sitemap-2017.xml.gz</loc><lastmod>2017-02-01</lastmod></sitemap>
  <sitemap><loc>sitemap-2016.xml</loc></sitemap>
</sitemapindex>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
  <!ENTITY ext SYSTEM "file:///etc/passwd">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://example.com/&lol9;</loc></url>
  <url><loc>&ext;</loc></url>
  <url><loc>https://example.com/fine</loc></url>
</urlset>"""


def parse(body: bytes, url: str = FEED_URL, media_type: str = "application/xml", **limits: int) -> Listing:
    return parse_listing(body, url, media_type=media_type, **{**LIMITS, **limits})


def test_rss_entries_with_links_dates_sections_and_full_content() -> None:
    listing = parse(RSS, media_type="application/rss+xml")
    first, teaser, long = listing.pages
    assert first.url == "https://example.com/2015/11/g20"
    assert first.title == "قمة العشرين في أنطاليا"
    # The RFC 822 date keeps its own offset; RSS has one date, so it is both.
    assert first.published == first.lastmod == "2015-11-16T10:30:00+02:00"
    assert first.sections == ("سياسة", "Syria")
    # content:encoded, sanitized (no script) and with its links made absolute.
    assert first.content_html == '<p>النص <a href="https://example.com/more">الكامل</a></p>'
    assert (teaser.url, teaser.content_html, teaser.published) == ("https://example.com/teaser", None, None)
    assert long.content_html is not None and "فقرة طويلة" in long.content_html
    assert listing.problems == [
        "1 feed entries skipped, without a URL: 'entry 4'",
        "1 URLs skipped, not http(s): 'mailto:desk@example.com'",
    ]
    assert listing.sitemaps == []


def test_atom_entries_resolve_against_the_feed_url_and_keep_both_dates() -> None:
    listing = parse(ATOM, media_type="application/atom+xml")
    assert listing.problems == []
    story, plain = listing.pages
    assert story == ListedPage(
        url="https://example.com/feeds/news/2017/01/story",
        lastmod="2017-01-25T10:00:00+03:00",
        published="2017-01-24T08:00:00Z",
        title="العنوان",
        content_html="<p>Full <b>story</b></p>",
        sections=("Sport", "football"),
    )
    assert plain.lastmod == "2017-01-26" and plain.published is None
    assert plain.content_html == "<p>First &amp; only.</p><p>Second paragraph.</p>"


def test_a_malformed_feed_is_reported_and_its_entries_still_read() -> None:
    # A bare '&' in a title: not XML, so feedparser sets bozo and reads on loosely.
    broken = RSS.replace(b"<title>Teaser only</title>", b"<title>Teaser & more</title>")
    listing = parse(broken)
    assert [page.url for page in listing.pages] == [
        "https://example.com/2015/11/g20",
        "https://example.com/teaser",
        "https://example.com/long",
    ]
    assert listing.pages[1].title == "Teaser & more"
    malformed = [p for p in listing.problems if p.startswith("feed is malformed")]
    assert len(malformed) == 1 and "not well-formed" in malformed[0]
    assert malformed[0].endswith("; 5 entries read")


def test_a_broken_feed_without_entries_says_so() -> None:
    listing = parse(b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</ti')
    assert listing.pages == []
    assert len(listing.problems) == 1
    assert listing.problems[0].startswith("feed is malformed (") and listing.problems[0].endswith(
        "no entries read"
    )


def test_feed_entities_are_not_expanded() -> None:
    feed = BILLION_LAUGHS.split(b"<urlset")[0].replace(b"urlset", b"rss") + (
        b'<rss version="2.0"><channel><item><title>&lol9;</title><link>https://example.com/x</link>'
        b"</item></channel></rss>"
    )
    started = time.monotonic()
    listing = parse(feed)
    assert time.monotonic() - started < 5
    assert [page.url for page in listing.pages] == ["https://example.com/x"]
    assert len(listing.pages[0].title or "") < 100


def test_json_feed_items() -> None:
    listing = parse(json.dumps(JSON_FEED, ensure_ascii=False).encode(), media_type="application/feed+json")
    first, second = listing.pages
    assert first == ListedPage(
        url="https://example.com/2017/01/a",
        lastmod="2017-01-26T09:00:00+03:00",
        published="2017-01-25T10:00:00+03:00",
        title="عنوان أول",
        content_html="<p>نص</p>",
        sections=("سياسة", "g20"),
    )
    assert second.url == "https://example.com/elsewhere"
    assert second.published is None and second.title is None
    assert second.content_html == "<p>سطر &lt;أول&gt;<br>سطر ثان</p><p>فقرة ثانية</p>"
    assert listing.problems == [
        "1 dates not understood were left out: 'yesterday'",
        "1 JSON Feed items skipped, without a URL: 'item 3'",
        "1 JSON Feed items skipped, not objects: 'item 4'",
    ]


def test_json_feed_1_0_with_a_bom_and_broken_json() -> None:
    feed = {"version": "https://jsonfeed.org/version/1", "items": [{"url": "https://example.com/1"}]}
    listing = parse(b"\xef\xbb\xbf" + json.dumps(feed).encode())
    assert [page.url for page in listing.pages] == ["https://example.com/1"]
    broken = parse(b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": ')
    assert broken.pages == [] and broken.problems[0].startswith("feed is malformed (not valid JSON")


def test_news_sitemap() -> None:
    listing = parse(NEWS_SITEMAP, url="https://example.com/sitemap-news.xml")
    assert listing.pages == [
        ListedPage(
            url="https://example.com/2017/01/summit",
            lastmod="2017-01-25T12:00+03:00",
            published="2017-01-25T10:00:00+03:00",
            title="قمة في الرياض",
        ),
        # Relative <loc> resolved, &amp; read, a year-month <lastmod> made a date.
        ListedPage(url="https://example.com/2017/01/relative?a=1&b=2", lastmod="2017-01-01"),
        ListedPage(url="https://example.com/bad-date"),
    ]
    assert listing.problems == [
        "1 URLs skipped, not http(s): 'ftp://example.com/file'",
        "1 <url> entries skipped, without a URL: '<url> 4'",
        "1 dates not understood were left out: 'sometime'",
    ]


def test_sitemap_index_and_the_nesting_helper() -> None:
    listing = parse(SITEMAP_INDEX, url="https://example.com/sitemap.xml")
    assert listing.pages == [] and listing.problems == []
    children = ["https://example.com/sitemap-2017.xml.gz", "https://example.com/sitemap-2016.xml"]
    assert listing.sitemaps == children
    assert listing.sitemap_lastmods == {"https://example.com/sitemap-2017.xml.gz": "2017-02-01"}

    seen = {"https://example.com/sitemap.xml", "https://example.com/sitemap-2016.xml"}
    assert child_sitemaps(listing, depth=0, max_depth=3, seen=seen) == (children[:1], [])
    assert children[0] in seen
    # Already queued: a cycle of indexes ends here.
    assert child_sitemaps(listing, depth=0, max_depth=3, seen=seen) == ([], [])
    assert child_sitemaps(listing, depth=3, max_depth=3, seen=set()) == (
        [],
        ["sitemap index nested deeper than fetch.max_sitemap_depth 3; its 2 sitemaps were not read"],
    )


def test_gzipped_sitemap() -> None:
    body = gzip.compress(NEWS_SITEMAP)
    url = "https://example.com/sitemap-news.xml.gz"
    assert listing_kind(body, "application/x-gzip", url) == "sitemap"
    listing = parse(body, url=url, media_type="application/x-gzip")
    assert [page.url for page in listing.pages] == [page.url for page in parse(NEWS_SITEMAP, url=url).pages]
    assert len(listing.pages) == 3


def test_gzip_bomb_sitemap_is_refused_without_inflating_it() -> None:
    # 200 MB of one repeated line in about 200 KB.
    line = b"<url><loc>https://example.com/a</loc></url>\n"
    bomb = gzip.compress(b"<urlset>" + line * (200_000_000 // len(line)), compresslevel=9)
    assert len(bomb) < 2_000_000
    listing = parse(bomb, media_type="application/gzip", max_bytes=5_000_000)
    assert listing == Listing(
        pages=[], sitemaps=[], problems=["the gzip'd listing inflates to more than 5000000 bytes; not read"]
    )


def test_gunzip_bounded_reads_every_member_and_reports_a_cut() -> None:
    two = gzip.compress(b"one ") + gzip.compress(b"two")
    assert gunzip_bounded(two, 100) == (b"one two", None)
    assert gunzip_bounded(two, 5) == (None, "the gzip'd listing inflates to more than 5 bytes; not read")
    cut = gzip.compress(b"x" * 1000)[:-12]
    data, problem = gunzip_bounded(cut, 10_000)
    assert problem == "the gzip'd listing is cut short; what it held was read"
    assert data is not None and set(data) == {ord("x")}


def test_billion_laughs_sitemap_does_not_expand() -> None:
    assert listing_kind(BILLION_LAUGHS, "application/xml", "https://example.com/s.xml") == "sitemap"
    started = time.monotonic()
    listing = parse(BILLION_LAUGHS)
    assert time.monotonic() - started < 5
    # libxml2 (2.11 and later) refuses the document outright; an older one leaves
    # the entities unexpanded, so their <loc>s hold no URL. Either way nothing is
    # expanded, the external entity is never read, and no URL is half read.
    assert [page.url for page in listing.pages] in ([], ["https://example.com/fine"])
    assert listing.problems == ["2 <url> entries skipped, without a URL: '<url> 1', '<url> 2'"] or (
        len(listing.problems) == 1
        and listing.problems[0].startswith(
            "sitemap is malformed (Maximum entity amplification factor exceeded"
        )
        and listing.problems[0].endswith("); no URLs read")
    )


def test_an_unexpanded_entity_leaves_the_url_out() -> None:
    # One level of entity, well under libxml2's amplification limit: left unexpanded.
    body = (
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY path "2017/01/story">]>'
        b"<urlset><url><loc>https://example.com/&path;</loc></url>"
        b"<url><loc>https://example.com/fine</loc></url></urlset>"
    )
    listing = parse(body)
    assert [page.url for page in listing.pages] == ["https://example.com/fine"]
    assert listing.problems == ["1 <url> entries skipped, without a URL: '<url> 1'"]


def test_a_sitemap_over_max_urls_keeps_the_first() -> None:
    entries = "".join(f"<url><loc>https://example.com/{i}</loc></url>" for i in range(120))
    body = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'.encode()
    listing = parse(body, max_urls=100)
    assert [page.url for page in listing.pages] == [f"https://example.com/{i}" for i in range(100)]
    assert listing.problems == [
        "sitemap lists 120 URLs, above fetch.max_listing_urls 100; the first 100 kept"
    ]


def test_a_cut_sitemap_gives_the_urls_before_the_cut() -> None:
    listing = parse(NEWS_SITEMAP[: NEWS_SITEMAP.index(b"<url><loc>ftp")])
    assert [page.url for page in listing.pages][:2] == [
        "https://example.com/2017/01/summit",
        "https://example.com/2017/01/relative?a=1&b=2",
    ]
    assert listing.problems[-1].startswith("sitemap is malformed (")
    assert listing.problems[-1].endswith("; 2 URLs read")


def test_a_plain_list_of_urls() -> None:
    body = (
        "\ufeff# الأرشيف\n"
        "https://example.com/2017/01/أ\n"
        "\n"
        "   https://example.com/b   \n"
        "# https://example.com/commented\n"
        "ftp://example.com/c\n"
        "https://example.com/b\n"
    ).encode()
    assert listing_kind(body, "text/plain", "https://example.com/urls.txt") == "urls"
    listing = parse(body, url="https://example.com/urls.txt", media_type="text/plain")
    assert [page.url for page in listing.pages] == ["https://example.com/2017/01/أ", "https://example.com/b"]
    assert listing.problems == ["1 URLs skipped, not http(s): 'ftp://example.com/c'"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (RSS, "feed"),
        (ATOM, "feed"),
        (
            b'<?xml version="1.0"?><!-- <urlset> --><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            b' xmlns="http://purl.org/rss/1.0/"></rdf:RDF>',
            "feed",
        ),
        (NEWS_SITEMAP, "sitemap"),
        (b"\xef\xbb\xbf\n  " + SITEMAP_INDEX, "sitemap"),
        (json.dumps(JSON_FEED).encode(), "feed"),
        (json.dumps({"items": [], "version": "https://jsonfeed.org/version/1.1"}).encode(), "feed"),
        (b'{"version": "2", "items": []}', None),
        (b"[1, 2]", None),
        (b"<!DOCTYPE html>\n<html><head><title>rss</title></head></html>", None),
        (b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'></html>", None),
        (b"https://example.com/a\nhttps://example.com/b\n", "urls"),
        ("نص عادي وليس قائمة\nhttps://example.com/a\n".encode(), None),
        (b"# only a comment\n", None),
        (b"", None),
        (gzip.compress(ATOM), "feed"),
    ],
)
def test_listing_kind_sniffs_the_bytes(body: bytes, expected: str | None) -> None:
    # The media type is wrong on purpose: servers send feeds as text/html.
    assert listing_kind(body, "text/html", "https://example.com/x") == expected


def test_parse_listing_refuses_what_is_no_listing_and_what_is_too_large() -> None:
    page = parse(b"<!DOCTYPE html><html><body>an article</body></html>", media_type="text/html")
    assert page == Listing(
        pages=[], sitemaps=[], problems=["not a feed, sitemap or list of URLs (served as text/html)"]
    )
    assert parse(RSS, max_bytes=100).problems == [
        f"the listing is {len(RSS)} bytes, above the limit of 100; not read"
    ]


@pytest.mark.parametrize(
    ("raw", "parsed", "expected"),
    [
        ("2017-01-25", None, "2017-01-25"),
        (" 2017-01-25T10:00:00+03:00 ", None, "2017-01-25T10:00:00+03:00"),
        ("2017-01-25T07:00:00Z", None, "2017-01-25T07:00:00Z"),
        ("Wed, 25 Jan 2017 10:00:00 GMT", None, "2017-01-25T10:00:00+00:00"),
        ("Wed, 25 Jan 2017 10:00:00 +0300", None, "2017-01-25T10:00:00+03:00"),
        ("2017", None, "2017-01-01"),
        ("2017-01", None, "2017-01-01"),
        ("الأربعاء", time.struct_time((2017, 1, 25, 7, 0, 0, 2, 25, 0)), "2017-01-25T07:00:00+00:00"),
        ("someday", None, None),
        (None, None, None),
        (20170125, None, None),
    ],
)
def test_iso_date(raw: object, parsed: object, expected: str | None) -> None:
    assert iso_date(raw, parsed) == expected
