"""What a feed, a sitemap or a list of URLs says about the articles it lists.

``qa reindex --source URL`` and ``qa watch`` start from listings: an RSS or Atom
feed, a JSON Feed, a sitemap (or a sitemap index of sitemaps, or a Google News
sitemap) or a plain text file of URLs. :func:`listing_kind` tells them apart (and
from an article page) by their bytes, since servers send feeds as ``text/html``
and sitemaps as ``application/octet-stream``; :func:`parse_listing` reads one into
a :class:`Listing`: the article URLs with what the listing says of each (dates,
title, sections, and a feed's full text when it carries it), the child sitemaps
of an index, and the problems met.

Listings come from servers we do not control, so nothing here trusts them: the
parsers never fetch anything (no DTDs, no external entities, feedparser is handed
a stream and never a URL or a string it could take for a file name), entities are
never expanded (a "billion laughs" document stays small), a gzip'd sitemap is
inflated only up to ``max_bytes`` (a gzip bomb stops there), at most ``max_urls``
URLs are kept, and only http(s) URLs are. Bad input is reported as problem
strings in the :class:`Listing`, never raised: one broken feed must not stop a
crawl of many.
"""

from __future__ import annotations

import datetime
import email.utils
import html
import io
import json
import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
from lxml import etree

ListingKind = Literal["feed", "sitemap", "urls"]

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
NEWS_NAMESPACE = "http://www.google.com/schemas/sitemap-news/0.9"
JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/1"

# listing_kind reads at most this much of a (possibly gzip'd) body: the root tag or
# the first lines are near the start, and sniffing must stay cheap on a huge body.
SNIFF_BYTES = 1 << 20
# How many of a text body's first lines must all look like URLs for it to be a list
# of URLs: enough to tell it from prose, few enough to stay cheap.
SNIFF_LINES = 200
# A feed entry's summary stands in for its full text only when it is at least this
# long (in characters of text, tags left out): most summaries are a teaser of a
# sentence or two, which would pass for an article and hide the page's real text.
FULL_SUMMARY_CHARS = 1500
# Examples of skipped values quoted in one problem string: enough to see the
# pattern, few enough that 50,000 bad lines give one short message.
EXAMPLES = 3


@dataclass(frozen=True)
class ListedPage:
    """An article URL a feed or sitemap lists, with what the listing says of it."""

    url: str
    lastmod: str | None = None  # ISO 8601 (sitemap <lastmod>, feed updated, else published)
    published: str | None = None  # news:publication_date / feed published
    title: str | None = None  # news:title / feed entry title
    content_html: str | None = None  # a feed's full content (plain text is escaped into <p>s)
    sections: tuple[str, ...] = ()  # feed categories / JSON Feed tags


@dataclass(frozen=True)
class Listing:
    """What one listing holds: article pages, child sitemaps, and what was dropped and why."""

    pages: list[ListedPage]
    sitemaps: list[str]  # child sitemaps of a sitemap index, to fetch next
    problems: list[str]
    # The <lastmod> a sitemap index gives a child sitemap (absent when none): a
    # watcher may skip a child unchanged since its last round.
    sitemap_lastmods: dict[str, str] = field(default_factory=dict)


# --- Sniffing -------------------------------------------------------------------------------------

_XML_PROLOGUE = re.compile(
    r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.DOTALL | re.IGNORECASE
)
_ROOT_TAG = re.compile(r"\s*<\s*([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)")
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_HTTP_URL_LIKE = re.compile(r"^https?://\S+$", re.IGNORECASE)
_JSON_FEED_VERSION = re.compile(r'"version"\s*:\s*"https?://jsonfeed\.org/version/1')
_FEED_ROOTS = frozenset({"rss", "feed", "rdf"})
_SITEMAP_ROOTS = frozenset({"urlset", "sitemapindex"})


def listing_kind(body: bytes, media_type: str, url: str) -> ListingKind | None:
    """Which kind of listing ``body`` is, or None for anything else (taken as an article page).

    The bytes decide, not ``media_type``: servers label feeds ``text/html`` and
    sitemaps ``application/octet-stream`` often enough that the header cannot be
    trusted either way. ``media_type`` and ``url`` are kept for callers' symmetry
    with :func:`parse_listing` and to break ties should a format need it.
    """
    del media_type, url  # the content decides; see the docstring
    head, complete = _sniff_prefix(body)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text:
        return None
    if text.startswith("<"):
        root = _root_tag(text)
        if root in _FEED_ROOTS:
            return "feed"
        if root in _SITEMAP_ROOTS:
            return "sitemap"
        return None
    if text.startswith("{"):
        return "feed" if _is_json_feed(head, text, complete) else None
    return "urls" if _looks_like_url_lines(text) else None


def _sniff_prefix(body: bytes) -> tuple[bytes, bool]:
    """The first SNIFF_BYTES of the body, inflated when gzip'd, and whether that is all of it."""
    if not body.startswith(GZIP_MAGIC):
        return body[:SNIFF_BYTES], len(body) <= SNIFF_BYTES
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(body, SNIFF_BYTES)
    except zlib.error:
        return b"", True
    return head, inflater.eof and not inflater.unconsumed_tail


def _root_tag(text: str) -> str:
    """The local name of an XML document's first element, lower case ("" when none)."""
    position = 0
    while match := _XML_PROLOGUE.match(text, position):
        position = match.end()
    root = _ROOT_TAG.match(text, position)
    return root.group(1).rpartition(":")[2].lower() if root else ""


def _is_json_feed(head: bytes, text: str, complete: bool) -> bool:
    if complete:
        try:
            document = json.loads(head.removeprefix(UTF8_BOM))
        except (ValueError, UnicodeDecodeError):
            pass  # broken JSON that names itself a JSON Feed is a broken feed, to report
        else:
            version = document.get("version") if isinstance(document, dict) else None
            return isinstance(version, str) and _is_json_feed_version(version)
    # A prefix, or broken: "version" is by custom the first member.
    return bool(_JSON_FEED_VERSION.search(text))


def _is_json_feed_version(version: str) -> bool:
    # Version 1 and 1.1; early feeds wrote http:// before the spec settled on https://.
    return version.replace("http://", "https://", 1).startswith(JSON_FEED_VERSION_PREFIX)


def _looks_like_url_lines(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines()[:SNIFF_LINES]]
    entries = [line for line in lines if line and not line.startswith("#")]
    return (
        bool(entries)
        and all(_URL_LIKE.match(line) for line in entries)
        and any(_HTTP_URL_LIKE.match(line) for line in entries)
    )


# --- Parsing --------------------------------------------------------------------------------------


def parse_listing(body: bytes, url: str, *, media_type: str, max_urls: int, max_bytes: int) -> Listing:
    """Read a feed, sitemap (index) or list of URLs fetched from ``url``.

    Relative URLs are resolved against ``url``. At most ``max_urls`` pages (and
    child sitemaps) are kept; a gzip'd body is inflated up to ``max_bytes``. Every
    entry dropped is accounted for in ``problems``; nothing is raised.
    """
    if len(body) > max_bytes:
        return _failed(f"the listing is {len(body)} bytes, above the limit of {max_bytes}; not read")
    problems: list[str] = []
    if body.startswith(GZIP_MAGIC):
        inflated, problem = gunzip_bounded(body, max_bytes)
        if problem:
            problems.append(problem)
        if inflated is None:
            return Listing(pages=[], sitemaps=[], problems=problems)
        body = inflated
    kind = listing_kind(body, media_type, url)
    if kind is None:
        problems.append(f"not a feed, sitemap or list of URLs (served as {media_type or 'no media type'})")
        return Listing(pages=[], sitemaps=[], problems=problems)
    collector = _Collector(url, max_urls)
    if kind == "sitemap":
        _read_sitemap(body, collector)
    elif kind == "urls":
        _read_url_lines(body, collector)
    elif body.removeprefix(UTF8_BOM).lstrip().startswith(b"{"):
        _read_json_feed(body, collector)
    else:
        _read_xml_feed(body, url, collector)
    return collector.listing(problems)


def _failed(problem: str) -> Listing:
    return Listing(pages=[], sitemaps=[], problems=[problem])


def gunzip_bounded(body: bytes, max_bytes: int) -> tuple[bytes | None, str | None]:
    """Inflate a gzip'd body (every member) to at most ``max_bytes``.

    Returns the bytes (None when there is nothing usable) and a problem. A body that
    inflates beyond ``max_bytes`` is refused whole rather than cut, since a cut XML
    document would only give a parse error on top; a gzip stream that stops short
    gives what it held, with a problem, as the parsers may still salvage entries.
    """
    out = bytearray()
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(rest, max_bytes - len(out) + 1)
            out += chunk
            if len(out) > max_bytes:
                return None, f"the gzip'd listing inflates to more than {max_bytes} bytes; not read"
            if inflater.unconsumed_tail:
                # The output limit stopped it with input left: more than max_bytes.
                return None, f"the gzip'd listing inflates to more than {max_bytes} bytes; not read"
            if not inflater.eof:
                problem = "the gzip'd listing is cut short; what it held was read"
                return (bytes(out) or None), problem
            rest = inflater.unused_data
            if rest and not rest.startswith(GZIP_MAGIC):
                # Padding after the last member (some servers add NULs); ignore it.
                break
    except zlib.error as error:
        return (bytes(out) or None), f"the gzip'd listing is corrupt ({error}); what it held was read"
    return bytes(out), None


class _Collector:
    """Gathers a listing's pages and child sitemaps, applying the URL checks and limits once."""

    def __init__(self, base: str, max_urls: int) -> None:
        self.base = base
        self.max_urls = max_urls
        self.pages: list[ListedPage] = []
        self.sitemaps: list[str] = []
        self.sitemap_lastmods: dict[str, str] = {}
        self.seen: set[str] = set()
        self.over = 0  # URLs beyond max_urls
        self.problems: list[str] = []
        self.skipped: dict[str, list[str]] = {}  # reason -> its first EXAMPLES examples
        self.skip_counts: dict[str, int] = {}  # reason -> how many
        self.what = "listing"  # "feed", "sitemap", "list of URLs": for messages

    def skip(self, reason: str, example: str) -> None:
        """Count one dropped entry; reported later as one line per reason."""
        self.skip_counts[reason] = self.skip_counts.get(reason, 0) + 1
        examples = self.skipped.setdefault(reason, [])
        if len(examples) < EXAMPLES:
            examples.append(example)

    def resolve(self, raw: str | None, noun: str, label: str) -> str | None:
        """``raw`` as an absolute http(s) URL, or None (and a skip) when it is not one.

        ``noun`` names the kind of entry in messages ("feed entries"), ``label`` the
        one at hand ("entry 3").
        """
        value = (raw or "").strip()
        if not value:
            self.skip(f"{noun} skipped, without a URL", label)
            return None
        absolute = urljoin(self.base, value)
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.skip("URLs skipped, not http(s)", value)
            return None
        return absolute

    def full(self) -> bool:
        return len(self.pages) + len(self.sitemaps) >= self.max_urls

    def add_page(self, page: ListedPage) -> None:
        if page.url in self.seen:
            return  # a listing naming a URL twice names one article
        if self.full():
            self.over += 1
            return
        self.seen.add(page.url)
        self.pages.append(page)

    def add_sitemap(self, url: str, lastmod: str | None) -> None:
        if url in self.seen:
            return
        if self.full():
            self.over += 1
            return
        self.seen.add(url)
        self.sitemaps.append(url)
        if lastmod:
            self.sitemap_lastmods[url] = lastmod

    def listing(self, leading: Sequence[str]) -> Listing:
        problems = [*leading, *self.problems]
        if self.over:
            total = len(self.pages) + len(self.sitemaps) + self.over
            problems.append(
                f"{self.what} lists {total} URLs, above fetch.max_listing_urls {self.max_urls}; "
                f"the first {self.max_urls} kept"
            )
        for reason, examples in self.skipped.items():
            quoted = ", ".join(repr(example) for example in examples)
            more = "…" if self.skip_counts[reason] > len(examples) else ""
            problems.append(f"{self.skip_counts[reason]} {reason}: {quoted}{more}")
        return Listing(
            pages=self.pages,
            sitemaps=self.sitemaps,
            problems=problems,
            sitemap_lastmods=self.sitemap_lastmods,
        )


# --- Dates ----------------------------------------------------------------------------------------

_REDUCED_DATE = re.compile(r"^\d{4}(?:-\d{2})?$")


def iso_date(raw: object, parsed: object = None) -> str | None:
    """A listing's date as ISO 8601 that ``datetime.fromisoformat`` reads (as the sources do).

    ISO 8601 / W3C-DTF text is kept as given (its offset included); RFC 822 dates
    of RSS become ISO with their own offset; a year or year-month of W3C-DTF gets
    its first day; failing all that, feedparser's ``*_parsed`` (a UTC struct_time),
    in UTC. None when there is no date to be had.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if text:
        try:
            datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text
        if _REDUCED_DATE.match(text):
            return (text + "-01-01")[:10]
        try:
            return email.utils.parsedate_to_datetime(text).isoformat()
        except (TypeError, ValueError, IndexError):
            pass
    if isinstance(parsed, time.struct_time):
        return datetime.datetime(*parsed[:6], tzinfo=datetime.UTC).isoformat()
    return None


# --- Sitemaps -------------------------------------------------------------------------------------


def _local(element: Any) -> str:
    """An element's tag without its namespace ("" for comments, entities and PIs)."""
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child_text(element: Any, name: str) -> str | None:
    """The text of ``element``'s first direct child called ``name`` (any namespace)."""
    for child in element:
        if _local(child) == name:
            # An entity reference left unexpanded is a child node, not text: such a
            # value is taken as missing rather than half read.
            if len(child):
                return None
            return (child.text or "").strip() or None
    return None


def _read_sitemap(body: bytes, collector: _Collector) -> None:
    """A <urlset> or <sitemapindex>, entry by entry as each closes.

    Read incrementally, so that a document broken part way (cut short, or refused by
    libxml2's own guard against entity amplification) gives exactly the entries
    that closed before the damage, never one half read, and memory stays flat.
    """
    collector.what = "sitemap"
    root: Any = None
    number = 0
    # No entity is expanded, no DTD loaded, nothing fetched; huge_tree=False keeps
    # libxml2's limits on depth and text size. Predefined entities (&amp;) and
    # character references are still read: they cannot amplify.
    events = etree.iterparse(
        io.BytesIO(body),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for event, element in events:
            if root is None:
                root = element
                if _local(root) == "sitemapindex":
                    collector.what = "sitemap index"
                elif _local(root) != "urlset":
                    collector.problems.append(f"not a sitemap: the root element is <{_local(root)}>")
                    return
                continue
            if event != "end" or element.getparent() is not root:
                continue
            number += 1
            _sitemap_entry(element, number, collector)
            # Entries already read are dropped: a 50,000-URL sitemap stays small.
            element.clear()
            while element.getprevious() is not None:
                del root[0]
    except etree.XMLSyntaxError as error:
        read = len(collector.pages) + len(collector.sitemaps)
        message = getattr(error, "msg", None) or str(error)
        collector.problems.append(f"sitemap is malformed ({message}); {read or 'no'} URLs read")


def _sitemap_entry(entry: Any, number: int, collector: _Collector) -> None:
    kind = _local(entry)
    if kind == "sitemap" and collector.what == "sitemap index":
        url = collector.resolve(_child_text(entry, "loc"), "<sitemap> entries", f"<sitemap> {number}")
        if url:
            collector.add_sitemap(url, _date(collector, _child_text(entry, "lastmod")))
    elif kind == "url" and collector.what == "sitemap":
        url = collector.resolve(_child_text(entry, "loc"), "<url> entries", f"<url> {number}")
        if url:
            collector.add_page(_sitemap_page(url, entry, collector))


def _sitemap_page(url: str, entry: Any, collector: _Collector) -> ListedPage:
    published = title = None
    for child in entry:
        # Google News tags: by namespace, since a local name like <title> is common.
        if isinstance(child.tag, str) and child.tag == f"{{{NEWS_NAMESPACE}}}news":
            published = _date(collector, _child_text(child, "publication_date"))
            title = _child_text(child, "title")
    return ListedPage(
        url=url,
        lastmod=_date(collector, _child_text(entry, "lastmod")),
        published=published,
        title=title,
    )


def _date(collector: _Collector, raw: object, parsed: object = None) -> str | None:
    value = iso_date(raw, parsed)
    if value is None and isinstance(raw, str) and raw.strip():
        collector.skip("dates not understood were left out", raw.strip())
    return value


# --- Lists of URLs --------------------------------------------------------------------------------


def _read_url_lines(body: bytes, collector: _Collector) -> None:
    collector.what = "list of URLs"
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
    for number, line in enumerate(text.splitlines(), 1):
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        url = collector.resolve(value, "lines", f"line {number}")
        if url:
            collector.add_page(ListedPage(url=url))


# --- Feeds ----------------------------------------------------------------------------------------


def _read_xml_feed(body: bytes, url: str, collector: _Collector) -> None:
    """RSS 0.9x/1.0/2.0 and Atom with feedparser, which reads every dialect and date format."""
    collector.what = "feed"
    # A stream, never bytes or a str: feedparser opens a str that looks like a URL or
    # a file name. Content-Location gives the base of relative links; an XML media
    # type without a charset lets the document's own declaration decide the
    # encoding (text/xml would force US-ASCII by RFC 3023).
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": url, "content-type": "application/xml"},
        resolve_relative_uris=True,
        sanitize_html=True,
    )
    entries: list[Any] = list(parsed.get("entries") or [])
    for number, entry in enumerate(entries, 1):
        link = collector.resolve(entry.get("link"), "feed entries", f"entry {number}")
        if link is None:
            continue
        published = _date(collector, entry.get("published"), entry.get("published_parsed"))
        # dict.get: FeedParserDict maps a missing "updated" to "published", with a
        # DeprecationWarning each time.
        updated = _date(collector, dict.get(entry, "updated"), dict.get(entry, "updated_parsed"))
        collector.add_page(
            ListedPage(
                url=link,
                lastmod=updated or published,
                published=published,
                title=_clean(entry.get("title")),
                content_html=_feed_content(entry),
                sections=_unique(tag.get("label") or tag.get("term") for tag in entry.get("tags") or []),
            )
        )
    if parsed.get("bozo"):
        error = parsed.get("bozo_exception")
        read = f"{len(entries)} entries read" if entries else "no entries read"
        collector.problems.append(f"feed is malformed ({error}); {read}")


def _feed_content(entry: Mapping[str, Any]) -> str | None:
    """The entry's full text as HTML: content:encoded or Atom content, else a long summary."""
    contents = entry.get("content") or []
    for kind in ("text/html", "application/xhtml+xml"):
        for content in contents:
            if content.get("type") == kind and (content.get("value") or "").strip():
                return str(content["value"])
    for content in contents:
        if content.get("type") == "text/plain" and (content.get("value") or "").strip():
            return _text_to_html(str(content["value"]))
    summary = entry.get("summary")
    if isinstance(summary, str) and len(_visible_text(summary)) >= FULL_SUMMARY_CHARS:
        return summary
    return None


def _read_json_feed(body: bytes, collector: _Collector) -> None:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), read by hand: it is small."""
    collector.what = "feed"
    try:
        document = json.loads(body.removeprefix(UTF8_BOM))
    except (ValueError, UnicodeDecodeError) as error:
        collector.problems.append(f"feed is malformed (not valid JSON: {error}); no entries read")
        return
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        collector.problems.append("feed is malformed (JSON Feed without an 'items' list); no entries read")
        return
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            collector.skip("JSON Feed items skipped, not objects", f"item {number}")
            continue
        raw = _string(item.get("url")) or _string(item.get("external_url"))
        link = collector.resolve(raw, "JSON Feed items", f"item {number}")
        if link is None:
            continue
        published = _date(collector, item.get("date_published"))
        modified = _date(collector, item.get("date_modified"))
        content = _string(item.get("content_html"))
        if content is None and (text := _string(item.get("content_text"))):
            content = _text_to_html(text)
        tags = item.get("tags")
        collector.add_page(
            ListedPage(
                url=link,
                lastmod=modified or published,
                published=published,
                title=_clean(item.get("title")),
                content_html=content,
                sections=_unique(tags if isinstance(tags, list) else ()),
            )
        )


# --- Small helpers --------------------------------------------------------------------------------


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _clean(value: object) -> str | None:
    """A title with its whitespace runs collapsed (feeds wrap titles over lines), or None."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _unique(values: Iterable[object]) -> tuple[str, ...]:
    """The non-empty strings of ``values``, stripped, each once, in order."""
    seen: dict[str, None] = {}
    for value in values:
        if isinstance(value, str) and value.strip():
            seen.setdefault(value.strip(), None)
    return tuple(seen)


_TAG = re.compile(r"<[^>]*>")


def _visible_text(markup: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def _text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs, so that content_html is always HTML to its reader."""
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", text) if part.strip()]
    return "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in paragraphs)


# --- Sitemap nesting ------------------------------------------------------------------------------


def child_sitemaps(
    listing: Listing, *, depth: int, max_depth: int, seen: set[str]
) -> tuple[list[str], list[str]]:
    """The child sitemaps of ``listing`` to fetch next, and problems.

    ``depth`` is how deep the listing itself sits: 0 for a sitemap named as a source,
    1 for a child of it, and so on; its children sit at ``depth + 1``, which may be at
    most ``max_depth`` (fetch.max_sitemap_depth). ``seen`` holds the sitemaps already
    fetched or queued in this round and is updated: an index naming itself, or two
    indexes naming each other, is read once.
    """
    fresh = [url for url in listing.sitemaps if url not in seen]
    if not fresh:
        return [], []
    if depth + 1 > max_depth:
        return [], [
            f"sitemap index nested deeper than fetch.max_sitemap_depth {max_depth}; "
            f"its {len(fresh)} sitemaps were not read"
        ]
    seen.update(fresh)
    return fresh, []
