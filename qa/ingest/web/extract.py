"""The article of a web page: its main text and metadata (trafilatura, lxml), or why there is none.

Two steps, each its own function:

* :func:`decode_html`: the page's characters from its bytes. Arabic sites still serve
  windows-1256, and their headers often name the wrong charset (or none), so the evidence is
  weighed in this order: a byte-order mark; bytes that are valid UTF-8 (a legacy encoding's
  Arabic text is practically never valid UTF-8, so such bytes are UTF-8 whatever the header
  says); the page's own ``<meta charset>`` or ``http-equiv`` in its first few KB; the header's
  charset; and charset_normalizer's guess last. A header charset that decodes any byte
  (iso-8859-1, windows-1252) proves nothing, so a guess that reads the bytes as Arabic beats it.
* :func:`extract_page`: trafilatura's main text, tuned for precision (no comments, related
  links, share buttons or ads) and in its fast mode (no fallback extractors: a page of these
  sites takes a few milliseconds); its fallbacks run only when the fast pass finds nothing on a
  page marked up as an article. The metadata comes from the markup sites use for it (JSON-LD,
  Open Graph, ``article:*`` meta tags, ``<time>``, breadcrumbs), read once from the same tree;
  htmldate only looks for a date when the markup gives none. A page with no article (a list of
  headlines, an error page, a near-empty page) raises :class:`NotAnArticle` saying which.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit

import charset_normalizer
import htmldate
import trafilatura
from lxml import html as lxml_html
from trafilatura.settings import use_config
from trafilatura.utils import load_html

from qa.errors import SourceError
from qa.text.language import is_mostly_arabic

# A main text shorter than this is an article only when the page is marked up as one (a brief).
MIN_TEXT_CHARS = 150
# An error page's text is short: a longer one with an error-like title is an article about errors.
MAX_ERROR_PAGE_CHARS = 500
# A line this much of whose characters are link text is a link, not prose ("read also: ...");
# a main text this share of whose characters are such lines is a list of headlines.
MIN_LINK_LINE_SHARE = 0.5
MAX_LINK_SHARE = 0.6
# How far into the bytes a <meta charset> counts (the HTML standard's prescan reads 1024;
# real pages put scripts and styles first, so a few KB).
META_PRESCAN_BYTES = 4096
# Encodings that decode any byte sequence: decoding with them proves nothing.
_PERMISSIVE = frozenset({"iso8859-1", "cp1252", "iso8859-15", "ascii"})

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.IGNORECASE)
# An error page's title starts with its status, or says "not found" in one of the site's languages.
_ERROR_TITLE = re.compile(
    r"^\W*(400|401|403|404|410|451|500|502|503)\b|\bnot found\b|page introuvable|غير موجودة|لم يعد متوفرا",
    re.IGNORECASE,
)
_TITLE_SEPARATORS = re.compile(r"\s+[|\-–—:»«·•]{1,2}\s+")
_ARTICLE_TYPES = frozenset(
    {"article", "newsarticle", "blogposting", "reportagenewsarticle", "analysisnewsarticle", "report"}
)
_TAG_SPLIT = re.compile(r"\s*[,،;]\s*")
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
# Words of class and id attributes that name a block around an article, never its text: such a
# block is dropped before trafilatura reads the page, since on a short article trafilatura
# widens its search and takes the "related" list or the newsletter box for more text.
_BOILERPLATE_TOKENS = frozenset(
    {
        "ad", "ads", "advert", "advertisement", "adsbygoogle", "pub", "banner", "sponsored",
        "related", "relatedposts", "also", "aussi", "popular", "lus", "mostread", "trending",
        "share", "sharing", "sharedaddy", "social", "outils", "tools", "print",
        "comment", "comments", "commentaires", "respond", "disqus",
        "newsletter", "subscribe", "promo", "sidebar", "widget", "breadcrumb", "breadcrumbs",
    }
)  # fmt: skip
# ...unless the block also says it holds the text ("elementor-widget-theme-post-content").
_CONTENT_TOKENS = frozenset({"content", "body", "article", "post", "entry", "story", "texte", "text", "main"})
# These name a comment or an ad even with "content" beside them ("comment-content").
_ALWAYS_BOILERPLATE = frozenset(
    {"comment", "comments", "commentaires", "respond", "ad", "ads", "advert", "related"}
)

# Trafilatura takes a main text under MIN_EXTRACTED_SIZE (250 characters by default) for a
# failed pass and widens its search to the whole page, which on a news brief of two
# sentences brings in the navigation, headlines and comments. News briefs are that short.
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "60")


class NotAnArticle(SourceError):  # noqa: N818 (the interface's name: it is an outcome, not a failure)
    """The page holds no article; ``reason`` says why ("an index page: ...", "an error page: ...")."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class ExtractedPage:
    """An article as its page gives it."""

    url: str  # the canonical URL when the page gives one (absolute), else the fetched URL
    title: str
    text: str  # the clean article text; paragraphs separated by "\n\n"; never empty
    published: str | None  # ISO 8601: "2017-01-25", or a date-time with its offset as given
    author: str | None
    sections: tuple[str, ...]  # section / categories
    tags: tuple[str, ...]
    language: str | None  # "ar", "en", ...
    site_name: str | None


# ---------------------------------------------------------------------------------------------
# Decoding


def _codec(name: str | None) -> str | None:
    """Python's codec name for a charset label, or None when unknown. ``x-user-defined`` and
    UTF-16/32 labels in a meta tag are ignored, as the HTML standard says (an ASCII-compatible
    page cannot be UTF-16)."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().strip("\"'").lower()).name
    except LookupError:
        return None
    return codec


def _try_decode(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:META_PRESCAN_BYTES])
    codec = _codec(match.group(1).decode("ascii", "replace")) if match else None
    if codec is not None and codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return codec


def _guess(body: bytes) -> tuple[str, str] | None:
    """charset_normalizer's reading of the bytes: (codec, text), or None when it has none."""
    best = charset_normalizer.from_bytes(body).best()
    if best is None:
        return None
    return _codec(best.encoding) or best.encoding, str(best)


def decode_html(body: bytes, declared_charset: str | None) -> str:
    """The characters of an HTML page whose header declared ``declared_charset`` (which may be
    wrong, or None); see the module's docstring for the order of evidence. Never raises: bytes
    nothing decodes cleanly are read as UTF-8 with replacement characters."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace")
    text = _try_decode(body, "utf-8")
    if text is not None:
        return text
    meta = _meta_charset(body)
    if meta is not None and meta != "utf-8":
        text = _try_decode(body, meta)
        if text is not None:
            return text
    header = _codec(declared_charset)
    if header is not None and header != "utf-8":
        text = _try_decode(body, header)
        if text is not None:
            if header not in _PERMISSIVE or not _has_high_bytes(body):
                return text
            # Any bytes decode as latin-1: the header is no evidence unless nothing reads better.
            guessed = _guess(body)
            if guessed is not None and guessed[0] not in _PERMISSIVE:
                return guessed[1]
            return text
    guessed = _guess(body)
    if guessed is not None:
        return guessed[1]
    return body.decode("utf-8", errors="replace")


def _has_high_bytes(body: bytes) -> bool:
    return any(byte >= 0x80 for byte in body)


# ---------------------------------------------------------------------------------------------
# Metadata from the markup


# Invisible marks that pages leave at the ends of titles and lines (a left-to-right mark after a
# headline); trafilatura drops them from the text, so they go from the ends of everything.
_EDGE_MARKS = "\u200b\u200c\u200d\u200e\u200f\u2066\u2067\u2068\u2069\ufeff"


def _clean(text: str | None) -> str:
    """Whitespace collapsed (non-breaking spaces included), ends stripped of it and of
    invisible marks."""
    return " ".join(text.split()).strip(_EDGE_MARKS).strip() if text else ""


class _Markup:
    """The metadata markup of one parsed page, read once."""

    def __init__(self, tree: lxml_html.HtmlElement) -> None:
        self.tree = tree
        self.meta: dict[str, list[str]] = {}
        for element in tree.iter("meta"):
            key = (
                (element.get("property") or element.get("name") or element.get("itemprop") or "")
                .strip()
                .lower()
            )
            content = element.get("content")
            if key and content is not None and _clean(content):
                self.meta.setdefault(key, []).append(_clean(content))
        self.ld: list[dict[str, Any]] = list(_json_ld_objects(tree))
        self.articles_ld = [item for item in self.ld if _types(item) & _ARTICLE_TYPES]

    def first(self, *keys: str) -> str | None:
        for key in keys:
            values = self.meta.get(key)
            if values:
                return values[0]
        return None

    def all(self, key: str) -> list[str]:
        return self.meta.get(key, [])

    def ld_value(self, key: str) -> Any:
        for item in self.articles_ld:
            value = item.get(key)
            if value:
                return value
        return None

    @cached_property
    def is_article(self) -> bool:
        """Whether the page says it is an article, in any of the ways sites do."""
        return bool(
            self.articles_ld
            or (self.first("og:type") or "").lower() == "article"
            or self.first("article:published_time")
            or self.tree.find(".//article") is not None
            or self.tree.xpath("boolean(//*[@itemprop='articleBody'])")
            # A legacy page's only article markup: a headline and a block named for the text.
            or self.tree.xpath(
                "boolean(//h1) and boolean(//*[contains(@id, 'article') or contains(@class, 'article')])"
            )
        )


def _json_ld_objects(tree: lxml_html.HtmlElement) -> Iterator[dict[str, Any]]:
    for script in tree.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue  # a broken block is common; the other markup still counts
        yield from _flatten_ld(data)


def _flatten_ld(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten_ld(item)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _flatten_ld(data["@graph"])


def _types(item: dict[str, Any]) -> set[str]:
    kind = item.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(value).lower() for value in kinds if value}


def _names(value: Any) -> list[str]:
    """The names in a JSON-LD value: a string, a {"name": ...} object, or a list of them."""
    if isinstance(value, str):
        return [_clean(value)] if _clean(value) else []
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _text_of(element: lxml_html.HtmlElement) -> str:
    return _clean(element.text_content())


def _site_name(markup: _Markup) -> str | None:
    name = markup.first("og:site_name", "application-name")
    if name:
        return name
    for item in markup.articles_ld:
        publisher = _names(item.get("publisher"))
        if publisher:
            return publisher[0]
    return None


def _split_title(raw: str, site_name: str | None, heading: str | None) -> tuple[str, str | None]:
    """A <title> without its site name part ("Story | Site", "Site - Story"), and the site
    name it shows (when the page names none otherwise)."""
    raw = _clean(raw)
    if heading and heading in raw:
        rest = _clean(raw.replace(heading, " ")).strip("|-–—:»«·• ")
        return heading, (rest or None)
    parts = _TITLE_SEPARATORS.split(raw)
    if len(parts) > 1 and site_name:
        kept = [part for part in parts if _clean(part) != site_name]
        if len(kept) < len(parts):
            return _clean(" - ".join(kept)), site_name
    return raw, None


def _heading(markup: _Markup) -> str | None:
    """The article's headline element: the first <h1> inside <article> or <main>, else the first."""
    for path in ("//article//h1", "//main//h1", "//h1"):
        for element in markup.tree.xpath(path):
            text = _text_of(element)
            if text:
                return text
    return None


def _title(markup: _Markup, site_name: str | None) -> tuple[str, str | None]:
    heading = _heading(markup)
    raw_title = markup.tree.findtext(".//title") or ""
    split_title, shown_site = _split_title(raw_title, site_name, heading) if raw_title else ("", None)
    site = site_name or shown_site
    candidates = [
        markup.first("og:title", "twitter:title"),
        heading,
        next(iter(_names(markup.ld_value("headline"))), None),
        split_title,
    ]
    for candidate in candidates:
        if candidate:
            # Some sites put "Story | Site" in og:title too.
            title, _ = _split_title(candidate, site, None)
            return title, shown_site
    return "", shown_site


def _iso_date(value: str | None) -> str | None:
    """``value`` as ISO 8601: the date-time with its offset when it has a time, else the day;
    None when it is not a plausible date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d{8}", value):
        value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if not 1990 <= moment.year <= datetime.now().year + 1:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return moment.date().isoformat()
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        offset = moment.utcoffset() or timedelta(0)
        if offset == timedelta(0) and value.endswith("Z"):
            return moment.replace(tzinfo=None).isoformat() + "Z"
    return moment.isoformat()


def _published(markup: _Markup, url: str) -> str | None:
    candidates: list[str | None] = [
        *_names(markup.ld_value("datePublished")),
        markup.first(
            "article:published_time",
            "datepublished",
            "og:published_time",
            "pubdate",
            "publishdate",
            "publish-date",
            "date",
            "dc.date.issued",
            "dc.date",
            "dcterms.created",
        ),
    ]
    times = markup.tree.xpath("//time[contains(@class, 'publish')][@datetime]") or markup.tree.xpath(
        "//article//time[@datetime]"
    )
    candidates += [element.get("datetime") for element in times[:1]]
    for candidate in candidates:
        found = _iso_date(candidate)
        if found:
            return found
    # Last: htmldate reads visible dates and URL patterns; slower, so only when markup has none.
    guessed = htmldate.find_date(markup.tree, extensive_search=True, original_date=True, url=url)
    return _iso_date(guessed)


def _sections(markup: _Markup, title: str, url: str) -> tuple[str, ...]:
    found = list(markup.all("article:section"))
    section = markup.ld_value("articleSection")
    found += _names(section)
    if found:
        return _unique(found)
    links = markup.tree.xpath("//a[contains(concat(' ', normalize-space(@rel), ' '), ' category ')]")
    found = [_text_of(link) for link in links]
    if found:
        return _unique(found)
    crumbs: list[str] = []
    for item in markup.ld:
        if "breadcrumblist" in _types(item):
            elements = item.get("itemListElement") or []
            for element in elements if isinstance(elements, list) else []:
                if isinstance(element, dict):
                    target = element.get("item")
                    href = target if isinstance(target, str) else (target or {}).get("@id", "")
                    crumbs += [] if _is_root(str(href), url) else _names(element.get("name"))
    if not crumbs:
        trail = markup.tree.xpath(
            "//*[contains(@class, 'breadcrumb') or contains(@id, 'breadcrumb')][1]//a[@href]"
        )
        crumbs = [_text_of(link) for link in trail if not _is_root(link.get("href", ""), url)]
    return _unique(crumb for crumb in crumbs if crumb != title)


def _is_root(href: str, url: str) -> bool:
    """Whether a breadcrumb's link is the home page (the crumb every trail starts with)."""
    path = urlsplit(urljoin(url, href)).path
    return path in ("", "/") or bool(re.fullmatch(r"/[a-z]{2}/?", path))


def _tags(markup: _Markup) -> tuple[str, ...]:
    tags = list(markup.all("article:tag"))
    keywords = markup.ld_value("keywords")
    if not tags and isinstance(keywords, str):
        tags = _TAG_SPLIT.split(keywords)
    elif not tags:
        tags = _names(keywords)
    if not tags:
        for value in markup.all("keywords") + markup.all("news_keywords"):
            tags += _TAG_SPLIT.split(value)
    if not tags:
        tags = [_text_of(link) for link in markup.tree.xpath("//a[@rel='tag']")]
    return _unique(_clean(tag) for tag in tags)


def _author(markup: _Markup) -> str | None:
    names = _names(markup.ld_value("author"))
    if not names:
        names = [
            name
            for name in markup.all("author") + markup.all("article:author") + markup.all("dc.creator")
            if not name.startswith(("http://", "https://"))
        ]
    if not names:
        names = [_text_of(element) for element in markup.tree.xpath("//*[@rel='author']")]
    names = [name for name in names if name]
    return ", ".join(_unique(names)) if names else None


def _language(markup: _Markup, text: str) -> str | None:
    declared = (
        markup.tree.get("lang")
        or markup.tree.get("{http://www.w3.org/XML/1998/namespace}lang")
        or markup.first("og:locale", "content-language", "language")
        or next(iter(_names(markup.ld_value("inLanguage"))), None)
    )
    if declared:
        primary = re.split(r"[-_]", declared.strip())[0].lower()
        if re.fullmatch(r"[a-z]{2,3}", primary):
            return primary
    if is_mostly_arabic(text):
        return "ar"
    return None


def _canonical(markup: _Markup, url: str) -> str:
    for href in [
        *(link.get("href") for link in markup.tree.xpath("//link[@rel='canonical'][@href]")),
        markup.first("og:url"),
    ]:
        if href:
            absolute = urljoin(url, str(href).strip())
            if urlsplit(absolute).scheme in ("http", "https") and urlsplit(absolute).netloc:
                return absolute
    return url


# ---------------------------------------------------------------------------------------------
# The main text


def _prune_boilerplate(tree: lxml_html.HtmlElement) -> None:
    """Drop the blocks whose class or id names them boilerplate (see _BOILERPLATE_TOKENS), in
    place. A block holding the headline, or half the page's text, is a wrapper of the article
    (``<div id="page" class="has-sidebar">``) and stays."""
    body = tree.find("body")
    if body is None:
        return
    page_chars = len(body.text_content())
    dropped: set[lxml_html.HtmlElement] = set()
    for element in body.xpath(".//*[@class or @id]"):
        if element.tag in ("main", "article", "h1"):
            continue
        tokens = set(_TOKEN_SPLIT.split(f"{element.get('class', '')} {element.get('id', '')}".lower()))
        if not tokens & _BOILERPLATE_TOKENS:
            continue
        if tokens & _CONTENT_TOKENS and not tokens & _ALWAYS_BOILERPLATE:
            continue
        if any(ancestor in dropped for ancestor in element.iterancestors()):
            continue
        if element.find(".//h1") is not None or len(element.text_content()) * 2 > page_chars:
            continue
        dropped.add(element)
    for element in dropped:
        element.drop_tree()  # keeps the tail text, which belongs to the parent


def _main_text(tree: lxml_html.HtmlElement, url: str, *, fast: bool) -> list[str]:
    """Trafilatura's main text as clean lines (whitespace collapsed, blanks dropped)."""
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=fast,
        favor_precision=True,
        include_comments=False,
        # Legacy sites lay pages out in tables: the article sits in a <td>.
        include_tables=True,
        include_images=False,
        include_links=False,
        with_metadata=False,
        deduplicate=False,
        config=_CONFIG,
    )
    text = getattr(document, "text", None) or ""
    return [line for line in (_clean(line) for line in text.split("\n")) if line]


def _link_coverage(line: str, anchors: set[str]) -> float:
    """The share of the line's characters that are the text of links in it."""
    covered = sum(len(anchor) for anchor in anchors if anchor in line)
    return min(1.0, covered / len(line)) if line else 0.0


def _split_links(tree: lxml_html.HtmlElement, lines: list[str]) -> tuple[list[str], int]:
    """The lines that are prose, and how many characters were lines made mostly of links:
    an editor's "read also: <a>another story</a>" inside the text, or a whole list of headlines."""
    anchors = {_clean(link.text_content()) for link in tree.iter("a")}
    anchors = {anchor for anchor in anchors if len(anchor) >= 3}
    kept: list[str] = []
    linked = 0
    for line in lines:
        if _link_coverage(line, anchors) >= MIN_LINK_LINE_SHARE:
            linked += len(line)
        else:
            kept.append(line)
    return kept, linked


def extract_page(body: bytes, url: str, *, charset: str | None = None) -> ExtractedPage:
    """The article of the HTML page ``body`` fetched from ``url`` (whose header declared
    ``charset``). Raises NotAnArticle when the page has none."""
    tree = load_html(decode_html(body, charset))
    if tree is None:
        raise NotAnArticle(url, "not an HTML page: nothing could be parsed")
    markup = _Markup(tree)
    site_name = _site_name(markup)
    title, shown_site = _title(markup, site_name)
    site_name = site_name or shown_site

    # Trafilatura reads a copy stripped of the boilerplate blocks; the metadata is read from the
    # whole page (breadcrumbs and bylines are in those blocks), once it is known to be an article.
    work = deepcopy(tree)
    _prune_boilerplate(work)
    lines = _main_text(work, url, fast=True)
    if sum(map(len, lines)) < MIN_TEXT_CHARS and markup.is_article:
        # The fast pass missed a page that says it is an article: the fallbacks may find it.
        lines = _main_text(work, url, fast=False) or lines
    if lines and title and lines[0] == title:
        lines = lines[1:]  # the headline, kept by trafilatura when it sits in the text's container
    prose, linked = _split_links(tree, lines)
    total = linked + sum(map(len, prose))
    if total and linked / total >= MAX_LINK_SHARE:
        raise NotAnArticle(url, f"an index page: {linked / total:.0%} of its text is links to other pages")
    lines = prose
    text = "\n\n".join(lines)

    if not text:
        raise NotAnArticle(url, "no article text: the page has no main text")
    if not markup.is_article and _ERROR_TITLE.search(title) and len(text) < MAX_ERROR_PAGE_CHARS:
        raise NotAnArticle(url, f"an error page: {title!r}")
    if len(text) < MIN_TEXT_CHARS and not markup.is_article:
        raise NotAnArticle(
            url,
            f"no article text: {len(text)} characters of main text and no article markup (an index page?)",
        )
    if not title:
        title = lines[0][:120]

    return ExtractedPage(
        url=_canonical(markup, url),
        title=title,
        text=text,
        published=_published(markup, url),
        author=_author(markup),
        sections=_sections(markup, title, url),
        tags=_tags(markup),
        language=_language(markup, text),
        site_name=site_name,
    )
