"""The loopback news site serves what it says it does, so that a test built on it fails for the
code under test, not for the fixture."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from tests.news_site import (
    SITE_NAME,
    NewsSite,
    SiteArticle,
    load_site_articles,
    make_article,
    write_html_folder,
    write_warc,
)

SITEMAP_NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


@pytest.fixture()
def site() -> Iterator[NewsSite]:
    with NewsSite(slow_seconds=0.3, large_bytes=300_000) as news_site:
        yield news_site


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, headers={"User-Agent": "news-site-test/1"}) as http:
        yield http


def _listed_urls(site: NewsSite, client: httpx.Client) -> set[str]:
    """Every URL the feeds and sitemaps name."""
    special = site.special
    urls: set[str] = set()
    for sitemap in (special.news_sitemap, special.pages_sitemap):
        tree = etree.fromstring(client.get(sitemap).content)
        urls.update(loc.text or "" for loc in tree.iterfind("s:url/s:loc", SITEMAP_NS))
    rss = etree.fromstring(client.get(special.rss).content)
    urls.update(link.text or "" for link in rss.iterfind("channel/item/link"))
    atom = etree.fromstring(client.get(special.atom).content)
    urls.update(link.get("href", "") for link in atom.iterfind("{*}entry/{*}link"))
    urls.update(item["url"] for item in client.get(special.json_feed).json()["items"])
    return urls


def test_robots_listings_and_truth(site: NewsSite, client: httpx.Client) -> None:
    special = site.special
    robots = client.get(special.robots).text
    assert "Disallow: /private/" in robots
    assert f"Sitemap: {special.sitemap_index}" in robots
    index = etree.fromstring(client.get(special.sitemap_index).content)
    assert {loc.text for loc in index.iterfind("s:sitemap/s:loc", SITEMAP_NS)} == {
        special.news_sitemap,
        special.pages_sitemap,
    }
    news = client.get(special.news_sitemap).text
    assert "<news:publication_date>" in news and "<news:title>" in news
    assert "<lastmod>" in client.get(special.pages_sitemap).text
    assert "<content:encoded>" in client.get(special.rss).text
    assert client.get(special.json_feed).json()["version"] == "https://jsonfeed.org/version/1.1"

    listed = _listed_urls(site, client)
    truth = site.articles
    assert len(truth) == 57 and len(site.extras) == 3
    # Every article is listed (the redirected one through its chain's first hop), the traps too.
    assert set(truth) - listed == {special.redirect_hops[-1]}
    assert {
        special.redirect,
        special.private,
        special.not_found,
        special.slow,
        special.large,
        special.pdf,
    } <= listed
    assert set(special.sections) <= listed
    # Some articles only one listing names, so a crawler must read them all.
    assert any(len(site.listed_in(url)) == 1 for url in truth)
    assert {article.template for article in truth.values()} == {"wordpress", "legacy", "modern"}


def test_conditional_requests_and_changes(site: NewsSite, client: httpx.Client) -> None:
    url, article = next(iter(site.articles.items()))
    first = client.get(url)
    assert first.status_code == 200 and first.headers["etag"] and first.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]}).status_code == 304
    feed = client.get(site.special.rss)
    assert client.get(site.special.rss, headers={"If-None-Match": feed.headers["etag"]}).status_code == 304

    site.edit(article.id, "نص معدل للمقال.\n" + article.text)
    changed = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and "نص معدل للمقال." in changed.text
    assert changed.headers["etag"] != first.headers["etag"]
    assert changed.headers["last-modified"] != first.headers["last-modified"]
    assert client.get(site.special.rss, headers={"If-None-Match": feed.headers["etag"]}).status_code == 200

    assert site.remove(article.id, status=410) == url
    assert client.get(url).status_code == 410
    assert url not in site.articles and url not in _listed_urls(site, client)

    new = make_article(
        "JA-test-1-20170701", "خبر جديد", "فقرة أولى.\nفقرة ثانية.", "2017-07-01", "sport", "modern"
    )
    new_url = site.add(new)
    assert client.get(new_url).status_code == 200 and new_url in _listed_urls(site, client)


def test_traps(site: NewsSite, client: httpx.Client) -> None:
    special = site.special
    assert special.flaky and special.rate_limited and special.redirect and special.slow and special.large
    assert client.get(special.flaky).status_code == 500
    assert client.get(special.flaky).status_code == 200
    limited = client.get(special.rate_limited)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert client.get(special.rate_limited).status_code == 200

    hop = client.get(special.redirect)
    assert hop.status_code == 301 and hop.headers["location"] == special.redirect_hops[1]
    followed = client.get(special.redirect, follow_redirects=True)
    assert [str(response.url) for response in followed.history] == list(special.redirect_hops[:2])
    assert str(followed.url) == special.redirect_hops[2] and special.redirect_hops[2] in site.articles

    assert client.get(str(special.not_found)).status_code == 404
    pdf = client.get(str(special.pdf))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    started = time.monotonic()
    assert client.get(special.slow).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert len(client.get(special.large, headers={"Accept-Encoding": "identity"}).content) > 300_000

    log = site.requests
    assert all(entry.headers.get("user-agent") == "news-site-test/1" for entry in log)
    assert [entry.status for entry in log if entry.path == "/old/story.php"] == [301, 301]


def test_windows_1256_pages_and_gzip(site: NewsSite, client: httpx.Client) -> None:
    legacy = [(url, a) for url, a in site.articles.items() if a.encoding == "windows-1256"]
    assert {a.header_charset for _, a in legacy} == {"windows-1256", "iso-8859-1", None}
    for url, article in legacy:
        response = client.get(url)
        content_type = response.headers["content-type"]
        assert content_type == (
            "text/html" if article.header_charset is None else f"text/html; charset={article.header_charset}"
        )
        with pytest.raises(UnicodeDecodeError):
            response.content.decode("utf-8")
        page = response.content.decode("windows-1256")
        assert 'charset=windows-1256"' in page
        assert article.title.replace('"', "&quot;") in page
    mislabelled = [
        a for a in site.articles.values() if a.encoding == "utf-8" and a.header_charset == "windows-1256"
    ]
    assert mislabelled, "a UTF-8 page under a windows-1256 header"

    url = next(iter(site.articles))
    compressed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and compressed.content == plain.content
    # Found by what was asked: the server logs a request after its body is sent, so a
    # client's next request may be logged first.
    path = httpx.URL(url).raw_path.decode()
    (entry,) = [r for r in site.requests if r.path == path and r.headers.get("accept-encoding") == "gzip"]
    assert entry.bytes_sent == len(gzip.compress(plain.content, mtime=0))


def test_several_sites_at_once(client: httpx.Client) -> None:
    articles = load_site_articles()
    with NewsSite(articles[:20], traps=False) as one, NewsSite(articles[20:40], traps=False) as two:
        assert one.base_url != two.base_url and not one.extras and one.special.private is None
        assert len(one.articles) == 20 and set(one.articles).isdisjoint(two.articles)
        for news_site in (one, two):
            for url in news_site.articles:
                assert client.get(url).status_code == 200
        assert "Crawl-delay" not in client.get(one.special.robots).text


def test_saved_pages(tmp_path: Path) -> None:
    from warcio.archiveiterator import ArchiveIterator

    articles = load_site_articles(limit=6)
    warc = write_warc(tmp_path / "crawl.warc.gz", articles)
    kinds: list[tuple[str, str | None, int]] = []
    with warc.open("rb") as stream:
        for record in ArchiveIterator(stream):
            status = record.http_headers.get_statuscode() if record.http_headers else None
            body = record.content_stream().read()
            kinds.append((record.rec_type, status, len(body)))
    assert kinds[0][0] == "warcinfo"
    responses = [kind for kind in kinds if kind[0] == "response"]
    assert len([kind for kind in kinds if kind[0] == "request"]) == len(responses) == len(articles) + 2
    assert sum(kind[1] == "200" for kind in responses) == len(articles) + 1  # the robots.txt among them
    written = write_html_folder(tmp_path / "pages", articles)
    assert set(written) == {article.id for article in articles}
    first: SiteArticle = articles[0]
    assert SITE_NAME in written[first.id].read_bytes().decode(first.encoding)


def test_json_feed_is_json(site: NewsSite, client: httpx.Client) -> None:
    feed = json.loads(client.get(site.special.json_feed).content)
    assert all(item["title"] and item["date_published"] for item in feed["items"])
