"""Indexing a real (loopback) news site through `qa reindex --source URL`: feeds,
sitemaps, robots.txt, the traps of the web, and rounds that fetch only what changed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qa.config import Settings
from qa.embed.base import Embedder
from qa.errors import NotFoundError, SourceError
from qa.ingest.collect import collect
from qa.ingest.pipeline import BuildSummary, build_index
from qa.ingest.web.crawl import crawl, doc_id_of
from qa.ingest.web.state import CrawlState, state_path
from qa.store.index import Index, load_index
from tests.news_site import NewsSite, SiteArticle, load_site_articles, write_html_folder

FETCH = {
    "fetch.allow_private_hosts": True,  # the site is on loopback
    "fetch.min_delay_seconds": 0.0,
    "fetch.timeout_seconds": 1.5,  # the slow page takes 3 s
    "fetch.max_body_bytes": 1024 * 1024,  # the large page is 2 MB
    "fetch.max_retry_after_seconds": 5.0,
    "fetch.max_retries": 2,
}


def short_articles(count: int = 20) -> list[SiteArticle]:
    """The site's shortest articles: every trap, and little to embed."""
    return sorted(load_site_articles(), key=lambda article: len(article.text))[:count]


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite(short_articles()) as news:
        yield news


def words(text: str) -> str:
    return " ".join(text.split())


def crawl_settings(settings: Settings, index: Path, **more: object) -> Settings:
    return settings.replace({**FETCH, "index.path": index, **more})


def sources(site: NewsSite) -> list[str]:
    special = site.special
    return [special.rss, special.atom, special.json_feed, special.sitemap_index]


def opened(index: Path, settings: Settings, embedder: Embedder) -> Index:
    return load_index(index, settings.index, model=embedder.model_id, dimension=embedder.dimension)


def crawl_round(site: NewsSite, index: Path, settings: Settings, embedder: Embedder) -> BuildSummary:
    return build_index(sources(site), index, settings, embedder, progress=False)


def test_a_site_indexes_every_article_once_with_its_metadata(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    index_path = tmp_path / "idx"
    settings = crawl_settings(sample_settings, index_path)
    summary = crawl_round(site, index_path, settings, embedder)
    truth = site.articles
    assert summary.documents == len(truth), summary.crawl
    index = opened(index_path, settings, embedder)
    try:
        for url, article in truth.items():
            stored = index.document(doc_id_of(url))
            assert words(stored.title) == words(article.title)
            assert stored.url == url
            assert (stored.published or "")[:10] == article.day
            assert stored.meta.get("section") == (article.section,)
            assert words(article.text) == words(stored.text)
    finally:
        index.close()

    crawl = summary.crawl
    assert crawl is not None
    reasons = " | ".join(crawl.problems)
    special = site.special
    for trap in (special.private, special.slow, special.large, special.pdf):
        assert trap is not None and trap in reasons, trap
    assert crawl.gone == 1  # the 404 the news sitemap lists
    # Nothing disallowed or refused was fetched; robots.txt was asked once.
    paths = site.fetched_paths()
    assert not [p for p in paths if p.startswith("/private/")]
    assert paths.count("/robots.txt") == 1
    # The redirect chain's article is indexed once, under its canonical URL.
    assert special.redirect_hops[-1] in truth


def test_a_second_round_over_an_unchanged_site_downloads_and_embeds_nothing(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    index_path = tmp_path / "idx"
    # recheck_seconds 0: every known page is asked again, and answers 304.
    settings = crawl_settings(sample_settings, index_path, **{"watch.recheck_seconds": 0.0})
    first = crawl_round(site, index_path, settings, embedder)
    site.clear_log()
    second = crawl_round(site, index_path, settings, embedder)
    assert second.crawl is not None
    assert (second.texts_embedded, second.added, second.updated, second.removed) == (0, 0, 0, 0)
    assert second.version == first.version  # nothing to publish
    assert second.crawl.fetched == 0 and second.crawl.unchanged >= len(site.articles) - 2
    bodies = [r.path for r in site.requests if r.status == 200 and r.path != "/robots.txt"]
    # Only the pages refused for what they are (too large, a PDF) are asked again, and cut.
    assert sorted(bodies) == sorted(urlsplit(u or "").path for u in (site.special.large, site.special.pdf))

    # One article edited: only it is fetched and embedded again.
    edited = next(iter(site.articles.values()))
    site.edit(edited.id, edited.text + "\nوأضاف المتحدث أن الاجتماع القادم سيعقد في صفاقس.")
    site.clear_log()
    third = crawl_round(site, index_path, settings, embedder)
    assert (third.added, third.updated, third.removed) == (0, 1, 0)
    assert third.crawl is not None and third.crawl.fetched == 1

    # One article taken down (410): removed from the index on the next round.
    gone_url = site.remove(edited.id, status=410)
    fourth = crawl_round(site, index_path, settings, embedder)
    assert fourth.removed == 1 and fourth.documents == first.documents - 1
    index = opened(index_path, settings, embedder)
    try:
        with pytest.raises(NotFoundError):
            index.document(doc_id_of(gone_url))
    finally:
        index.close()


def test_pages_due_later_are_not_asked_and_the_state_survives(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    index_path = tmp_path / "idx"
    settings = crawl_settings(sample_settings, index_path)  # recheck after a day
    crawl_round(site, index_path, settings, embedder)
    assert state_path(index_path).exists()
    site.clear_log()
    again = crawl_round(site, index_path, settings, embedder)
    assert again.crawl is not None and again.crawl.fetched == 0
    # robots.txt, asked once a round, is all that is downloaded.
    assert again.crawl.downloaded_bytes == sum(r.bytes_sent for r in site.requests if r.path == "/robots.txt")
    # Only the page that timed out is asked again (a failure that may pass; the server
    # logs it after its delay, so the summary tells); the refused ones, the 404 and every
    # article wait until they are due.
    asked = [p for p in site.fetched_paths() if not p.startswith(("/feeds/", "/sitemap", "/robots.txt"))]
    assert asked in ([], [urlsplit(site.special.slow or "").path])
    assert [p for p in again.crawl.problems if "timed out" in p] == [
        f"{site.special.slow}: timed out after 1.5 s (fetch.timeout_seconds)"
    ]
    assert len(again.crawl.problems) == 1

    # An article edited: its sitemap <lastmod> moves, so it alone is asked again, though not due.
    edited = site.edit(next(iter(site.articles.values())).id, "نص جديد للخبر بعد تعديله من قبل التحرير.")
    site.clear_log()
    third = crawl_round(site, index_path, settings, embedder)
    assert third.crawl is not None and (third.crawl.fetched, third.updated) == (1, 1)
    assert edited.path in site.fetched_paths()


def test_saved_pages_and_web_archives_index_without_fetching(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    chosen = list(site.articles.items())[:6]
    warc = site.write_warc(tmp_path / "pages.warc.gz", [article for _, article in chosen])
    index_path = tmp_path / "idx"
    settings = crawl_settings(sample_settings, index_path)
    summary = build_index([warc], index_path, settings, embedder, progress=False)
    assert summary.documents == len(chosen) and summary.crawl is None
    index = opened(index_path, settings, embedder)
    try:
        for url, article in chosen:
            assert words(index.document(doc_id_of(url)).title) == words(article.title), url
    finally:
        index.close()


def test_several_sources_of_every_kind_make_one_list_of_articles(
    tmp_path: Path, site: NewsSite, sample_settings: Settings
) -> None:
    """Text files, saved pages and a text file of URLs, in one run; an id met twice is
    reported, not indexed twice."""
    # Pages of templates that name their canonical URL (a legacy page saved is named by its path).
    urls = [url for url, article in site.articles.items() if article.template != "legacy"]
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "note.md").write_text("# مذكرة\n\nنص المذكرة الداخلية عن الأرشيف.", "utf-8")
    written = write_html_folder(
        folder / "saved", [site.articles[url] for url in urls[:3]], base_url=site.base_url
    )
    listed = tmp_path / "urls.txt"
    listed.write_text("# two pages of the site\n" + "\n".join(urls[2:4]) + "\n", "utf-8")
    settings = crawl_settings(sample_settings, tmp_path / "idx")
    collected = collect([folder, listed], settings, index_path=tmp_path / "idx")
    ids = [article.doc_id for article in collected.articles]
    assert ids[0] == "note" and len(written) == 3
    assert sorted(ids[1:]) == sorted(doc_id_of(url) for url in urls[:4])
    # urls[2] is both a saved page and a listed URL: kept once, the second reported.
    assert [p for p in collected.problems if "duplicate document id" in p] == [
        f"the web sources: duplicate document id {doc_id_of(urls[2])!r} (first in {folder})"
    ]
    assert collected.crawl is not None and collected.crawl.fetched == 2


def test_a_source_that_holds_no_article_is_an_error(tmp_path: Path, sample_settings: Settings) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "picture.png").write_bytes(b"\x89PNG")
    with pytest.raises(SourceError, match="no articles"):
        collect([tmp_path / "empty"], sample_settings, index_path=tmp_path / "idx")
    with pytest.raises(SourceError, match="no such file"):
        collect([tmp_path / "missing"], sample_settings, index_path=tmp_path / "idx")


FEED_TEXT = (
    "أعلنت وزارة الثقافة التونسية اليوم عن برنامج الدورة الجديدة لأيام قرطاج السينمائية، "
    "التي تفتتح في العاصمة بمشاركة أفلام من ثلاثين بلدا عربيا وإفريقيا. وقال مدير الدورة إن "
    "لجنة الاختيار شاهدت أكثر من ستمائة فيلم قبل أن تختار الأفلام المتنافسة على التانيت الذهبي."
)


class _FeedOnlySite(BaseHTTPRequestHandler):
    """A feed whose one entry carries its full text, and a page that always answers 503."""

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            body, status, kind = b"", 404, "text/plain"
        elif self.path == "/rss.xml":
            base = f"http://{self.headers['Host']}"
            body = (
                '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
                'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
                f"<link>{base}/</link><description>d</description><item>"
                "<title>أيام قرطاج السينمائية &amp; برنامجها &lt;2017&gt;</title>"
                f"<link>{base}/news/jcc.html</link><pubDate>Wed, 25 Jan 2017 10:00:00 +0100</pubDate>"
                f"<content:encoded><![CDATA[<p>{FEED_TEXT}</p>]]></content:encoded></item></channel></rss>"
            ).encode()
            status, kind = 200, "application/rss+xml"
        else:
            body, status, kind = b"busy", 503, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_page_that_cannot_be_had_is_read_from_the_feeds_full_content(
    tmp_path: Path, sample_settings: Settings
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedOnlySite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = crawl_settings(sample_settings, tmp_path / "idx", **{"fetch.max_retries": 0})
        with CrawlState(tmp_path / "state.sqlite") as state:
            result = crawl([f"http://127.0.0.1:{server.server_address[1]}/rss.xml"], settings, state)
    finally:
        server.shutdown()
        server.server_close()
    (article,) = result.articles
    assert result.summary.from_feed == 1
    assert article.title == "أيام قرطاج السينمائية & برنامجها <2017>"
    assert words(article.text) == words(FEED_TEXT)
    assert (article.published or "")[:10] == "2017-01-25"
