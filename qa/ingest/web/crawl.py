"""One round over web sources: feeds, sitemaps and article URLs in, articles out.

A round reads each source URL (a feed, a sitemap or sitemap index, a list of URLs,
or an article page), collects the article pages they list, fetches those that are
new or may have changed (a conditional request for a known page: a 304 costs no
body), extracts each page's article and remembers it in the crawl state
(:mod:`qa.ingest.web.state`). It hands on every article the state knows, fetched
this round or not, so that the reindex after it sees the whole web archive and
embeds only what changed.

Which known pages are asked again: those whose listing gives a newer date than the
one recorded, and the others once ``watch.recheck_seconds`` has passed since their
last fetch. A page that fails this round keeps its stored article; one that answers
404 or 410 is dropped from the articles handed on when ``watch.remove_gone``, which
makes the reindex remove it. A page only missing from the listings stays.

Saved pages (``.html`` files and WARC archives) are extracted the same way, with no
fetching and no state: :func:`saved_articles`.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import itertools
import sys
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from qa.config import Settings
from qa.ingest.web.archives import SavedPage, read_saved_pages
from qa.ingest.web.extract import ExtractedPage, NotAnArticle, extract_page
from qa.ingest.web.fetch import (
    LISTING_TYPES,
    PAGE_TYPES,
    Fetcher,
    FetchRequest,
    FetchResult,
    FetchStatus,
    Validators,
)
from qa.ingest.web.listings import ListedPage, listing_kind, parse_listing
from qa.ingest.web.state import CrawlState
from qa.records import Article, Meta


@dataclass
class CrawlSummary:
    """What a round did, for its summary line."""

    listings: int = 0  # feeds, sitemaps and URL lists read (304s included)
    listed: int = 0  # article URLs they list
    requests: int = 0  # HTTP requests sent, robots.txt and retries included
    downloaded_bytes: int = 0
    fetched: int = 0  # pages whose body was downloaded
    unchanged: int = 0  # pages asked again that answered 304
    not_asked: int = 0  # known pages not due to be asked again
    new: int = 0
    updated: int = 0
    gone: int = 0  # pages that answered 404 or 410
    from_feed: int = 0  # articles taken from a feed's full content: their page could not be had
    # Skipped pages and listings by reason, and one line each ("URL: reason").
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, url: str, reason: str) -> None:
        key = reason.split(":", 1)[0]
        self.skipped[key] = self.skipped.get(key, 0) + 1
        self.problems.append(f"{url}: {reason}")


@dataclass(frozen=True)
class CrawlResult:
    # Every web article the state knows (fetched this round or before), one per doc id.
    articles: list[Article]
    summary: CrawlSummary


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def doc_id_of(url: str) -> str:
    """An article's id from its URL: host, path and query, without scheme, fragment
    and trailing slash, so that http/https and #anchors are one article."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    return parts.netloc.lower() + path + (f"?{parts.query}" if parts.query else "")


def crawl(
    sources: Sequence[str],
    settings: Settings,
    state: CrawlState,
    *,
    fetcher: Fetcher | None = None,
    progress: bool = False,
) -> CrawlResult:
    """One round over the web ``sources`` (see the module docstring)."""
    started = time.perf_counter()
    summary = CrawlSummary()
    round_started = state.start_round()
    own = fetcher is None
    fetcher = fetcher or Fetcher(settings.fetch)
    try:
        listed, fetched_pages = _listed_pages(sources, settings, state, fetcher, summary)
        summary.listed = len(listed)
        _add_stale(listed, state, settings)
        fetched_urls = {result.url for result in fetched_pages}
        requests = [
            request
            for request in (
                _due(page, state, settings) for page in listed.values() if page.url not in fetched_urls
            )
            if request is not None
        ]
        summary.not_asked = len(listed) - len(requests) - len(fetched_pages)
        with tqdm(total=len(listed) - summary.not_asked, desc="fetching", unit="page", disable=not progress,
                  file=sys.stderr) as bar:  # fmt: skip
            # Bodies are recorded as they come: a round never holds all pages at once.
            for result in itertools.chain(fetched_pages, fetcher.fetch_all(requests)):
                _record(result, listed[result.url], state, summary)
                bar.update()
        summary.requests, summary.downloaded_bytes = fetcher.stats.requests, fetcher.stats.body_bytes
    finally:
        if own:
            fetcher.close()
    articles = _unique(state.articles(include_gone=not settings.watch.remove_gone))
    summary.seconds = round(time.perf_counter() - started, 2)
    state.finish_round(round_started, dataclasses.asdict(summary))
    return CrawlResult(articles, summary)


def _listed_pages(
    sources: Sequence[str], settings: Settings, state: CrawlState, fetcher: Fetcher, summary: CrawlSummary
) -> tuple[dict[str, ListedPage], list[FetchResult]]:
    """The article pages the sources list, by URL; and the pages that were sources
    themselves (an article URL given as a source), already fetched."""
    listed: dict[str, ListedPage] = {}
    pages: list[FetchResult] = []
    seen: set[str] = set()
    # (url, depth): sitemap indexes nest; depth 1 is a source itself.
    queue: deque[tuple[str, int]] = deque((url, 1) for url in sources)
    while queue:
        url, depth = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        known_page = state.page(url)
        if depth == 1 and known_page is not None and state.listing(url) is None:
            # An article URL given as a source, fetched before: it is its own listing.
            listed.setdefault(url, ListedPage(url))
            continue
        body, media_type, result = _read_listing(url, state, fetcher, summary)
        if result is not None and body is None:
            if result.status is FetchStatus.OK:
                # Not a listing: an article page given as a source.
                listed.setdefault(url, ListedPage(url))
                pages.append(result)
            continue
        if body is None:
            continue
        listing = parse_listing(
            body, url, media_type=media_type, max_urls=settings.fetch.max_listing_urls,
            max_bytes=settings.fetch.max_body_bytes,
        )  # fmt: skip
        summary.listings += 1
        for problem in listing.problems:
            summary.skip(url, problem)
        for page in listing.pages:
            listed[page.url] = _merged(listed[page.url], page) if page.url in listed else page
        for child in listing.sitemaps:
            if depth + 1 > settings.fetch.max_sitemap_depth:
                summary.skip(child, f"sitemap nested deeper than fetch.max_sitemap_depth ({depth})")
            else:
                queue.append((child, depth + 1))
    return listed, pages


def _merged(first: ListedPage, second: ListedPage) -> ListedPage:
    """What two listings say of one page: the later date of change (a feed may give only
    the publication date where the sitemap's <lastmod> moved), the rest first come."""
    lastmod = first.lastmod
    if second.lastmod is not None and (lastmod is None or _later(second.lastmod, lastmod)):
        lastmod = second.lastmod
    return dataclasses.replace(
        first,
        lastmod=lastmod,
        published=first.published or second.published,
        title=first.title or second.title,
        content_html=first.content_html or second.content_html,
        sections=first.sections or second.sections,
    )


def _read_listing(
    url: str, state: CrawlState, fetcher: Fetcher, summary: CrawlSummary
) -> tuple[bytes | None, str, FetchResult | None]:
    """A listing's body (fetched, or the stored one when it answers 304) and media
    type; or, when the URL is an HTML page and not a listing, ``None`` and the page."""
    known = state.listing(url)
    validators = Validators(known.etag, known.last_modified) if known is not None else None
    result = fetcher.fetch(FetchRequest(url, validators, accept=LISTING_TYPES + PAGE_TYPES))
    if result.status is FetchStatus.NOT_MODIFIED and known is not None:
        return known.body, known.media_type, None
    if result.status is not FetchStatus.OK:
        summary.skip(url, result.reason or f"HTTP {result.http_status}")
        if known is not None:  # the last copy still lists what it listed
            return known.body, known.media_type, None
        return None, "", None
    if listing_kind(result.body, result.media_type, result.final_url) is None:
        return None, "", result
    state.save_listing(
        url, etag=result.validators.etag, last_modified=result.validators.last_modified,
        body=result.body, media_type=result.media_type,
    )  # fmt: skip
    return result.body, result.media_type, None


def _add_stale(listed: dict[str, ListedPage], state: CrawlState, settings: Settings) -> None:
    """Add the known pages no listing names now that are due to be asked again, so
    that one taken down is seen to answer 404 or 410 (``watch.max_rechecks`` a round)."""
    due_before = time.time() - settings.watch.recheck_seconds
    limit = settings.watch.max_rechecks + len(listed)  # the listed ones may be among the stalest
    added = 0
    for page in state.stale_pages(due_before, limit):
        if added >= settings.watch.max_rechecks:
            break
        if page.url not in listed:
            listed[page.url] = ListedPage(page.url)
            added += 1


def _due(page: ListedPage, state: CrawlState, settings: Settings) -> FetchRequest | None:
    """The request for a listed page, or None when it is known and not due."""
    known = state.page(page.url)
    if known is None or known.status == "skipped":
        return FetchRequest(page.url)
    newer = page.lastmod is not None and (
        known.listed_lastmod is None or _later(page.lastmod, known.listed_lastmod)
    )
    due = time.time() - known.fetched_at >= settings.watch.recheck_seconds
    if not (newer or due):
        return None
    return FetchRequest(page.url, Validators(known.etag, known.last_modified))


def _later(date: str, than: str) -> bool:
    """Whether ISO 8601 ``date`` is after ``than`` (as moments when both parse, with or
    without offsets; as text otherwise)."""
    try:
        first, second = datetime.datetime.fromisoformat(date), datetime.datetime.fromisoformat(than)
        if (first.tzinfo is None) != (second.tzinfo is None):
            first, second = first.replace(tzinfo=None), second.replace(tzinfo=None)
        return first > second
    except ValueError:
        return date > than


def _record(result: FetchResult, listed: ListedPage, state: CrawlState, summary: CrawlSummary) -> None:
    """What a page's fetch changes in the state, counted in ``summary``."""
    url = listed.url
    known = state.page(url)
    if result.status is FetchStatus.NOT_MODIFIED:
        summary.unchanged += 1
        state.touch_page(url, listed.lastmod)
        return
    if result.status is FetchStatus.GONE:
        summary.gone += 1
        state.save_page(
            url, "gone", etag=None, last_modified=None, listed_lastmod=listed.lastmod,
            article=known.article if known is not None else None, reason=result.reason,
        )  # fmt: skip
        return
    if result.status is FetchStatus.SKIPPED:
        if known is None and listed.content_html:
            article = _feed_article(listed)
            if article is not None:
                summary.from_feed += 1
                summary.new += 1
                state.save_page(url, "article", etag=None, last_modified=None, listed_lastmod=None,
                                article=article)  # fmt: skip
                return
        summary.skip(url, result.reason)
        if known is None or known.status in ("skipped", "refused"):
            # Remembered, so that a page refused for what it is (too large, not HTML,
            # disallowed) is not asked again every round; a failure that may pass (a
            # timeout, a 5xx, a 429) is asked again next round.
            refused = result.http_status is not None and 200 <= result.http_status < 300
            refused = refused or "robots.txt" in result.reason
            state.save_page(
                url, "refused" if refused else "skipped", etag=None, last_modified=None,
                listed_lastmod=listed.lastmod, reason=result.reason,
            )  # fmt: skip
        return
    summary.fetched += 1
    try:
        page = extract_page(result.body, result.final_url, charset=result.charset)
    except NotAnArticle as exc:
        summary.skip(url, f"not an article: {exc}")
        state.save_page(
            url, "not_article", etag=result.validators.etag, last_modified=result.validators.last_modified,
            listed_lastmod=listed.lastmod, reason=str(exc),
        )  # fmt: skip
        return
    article = article_of(page, listed)
    if known is None or known.article is None:
        summary.new += 1
    elif known.article != article:
        summary.updated += 1
    state.save_page(
        url, "article", etag=result.validators.etag, last_modified=result.validators.last_modified,
        listed_lastmod=listed.lastmod, article=article,
    )  # fmt: skip


def _feed_article(listed: ListedPage) -> Article | None:
    """The article of a feed entry's full content, for a page that cannot be fetched."""
    title = html.escape(listed.title or "")
    page = f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
    page += f"{listed.content_html}</article></body></html>"
    try:
        extracted = extract_page(page.encode(), listed.url, charset="utf-8")
    except NotAnArticle:
        return None
    # The entry's own date: the page made here has none, and a guess from its text is worse.
    extracted = dataclasses.replace(extracted, published=listed.published or extracted.published)
    return article_of(extracted, listed)


def article_of(page: ExtractedPage, listed: ListedPage | None = None) -> Article:
    """The article of an extracted page; what its listing said fills what the page lacks."""
    url = page.url
    host = urllib.parse.urlsplit(url).netloc.lower()
    title = page.title or (listed.title if listed is not None else None) or ""
    published = page.published or (listed.published if listed is not None else None)
    sections = page.sections or (listed.sections if listed is not None else ())
    meta: Meta = {}
    for key, values in (
        ("section", sections),
        ("tags", page.tags),
        ("author", (page.author,) if page.author else ()),
        ("source", (page.site_name or host,) if (page.site_name or host) else ()),
        ("language", (page.language,) if page.language else ()),
        ("host", (host,) if host else ()),
    ):
        clean = tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))
        if clean:
            meta[key] = clean
    is_web = is_url(url)
    return Article(
        doc_id_of(url) if is_web else url, title, page.text, url if is_web else None, published, meta
    )


def _unique(items: Iterable[tuple[str, Article]]) -> list[Article]:
    """One article per doc id: two listed URLs of one page (a redirect, a canonical
    link) are one article; the first URL in order wins."""
    articles: dict[str, Article] = {}
    for _url, article in items:
        articles.setdefault(article.doc_id, article)
    return list(articles.values())


@dataclass(frozen=True)
class SavedArticles:
    articles: list[Article]
    # One line per page or record that is not indexed: "where: why".
    problems: list[str]


def saved_articles(path: Path, settings: Settings) -> SavedArticles:
    """The articles of saved pages (``.html`` files, ``.warc``/``.warc.gz`` archives) under ``path``."""
    articles: list[Article] = []
    problems: list[str] = []
    for item in read_saved_pages(path, max_bytes=settings.fetch.max_body_bytes):
        if isinstance(item, str):
            problems.append(item)
            continue
        article = _saved_article(item, path)
        if article is not None:
            articles.append(article)
    return SavedArticles(articles, problems)


def _saved_article(page: SavedPage, root: Path) -> Article | None:
    try:
        extracted = extract_page(page.body, page.url, charset=page.charset)
    except NotAnArticle as exc:
        print(f"not indexed {page.where}: not an article: {exc}", file=sys.stderr)
        return None
    article = article_of(extracted)
    if article.url is None:
        # A saved file with no web address: named by its path under the source folder.
        file_path = Path(urllib.parse.unquote(urllib.parse.urlsplit(page.url).path))
        try:
            name = file_path.relative_to(root.resolve() if root.is_dir() else root.resolve().parent)
        except ValueError:
            name = Path(file_path.name)
        article = Article(
            str(name.with_suffix("")), article.title, article.text, None, article.published, article.meta
        )
    return article
