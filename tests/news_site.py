# The page templates read best as the markup they are, one tag a line, however long:
# ruff: noqa: E501
"""A small, realistic news website on a loopback port, for the web ingestion tests and benchmark.

It serves real articles (Jawhara FM, from the ANT corpus: ``tests/data/ant/``) the way a news
site does, with the traps a crawler meets on the real web:

* article pages in three templates (``wordpress``, ``legacy``, ``modern``), each with a header,
  navigation, breadcrumb, share buttons, ads, related and most-read headlines, reader comments,
  a footer and inline scripts; right-to-left Arabic markup; title, date and section in the page
  and in the meta tags each kind of site uses. Some legacy pages are windows-1256, with a right
  header charset, a wrong one (``iso-8859-1``) or none, and one modern page is UTF-8 under a
  header that says windows-1256: a decoder must trust the bytes and the ``<meta charset>``;
* RSS 2.0, Atom and JSON Feed 1.1 feeds, a sitemap index over a news sitemap and a plain one,
  and robots.txt; the listings overlap, as real ones do, and every article is in at least one;
* a disallowed page under ``/private/`` (listed in the RSS feed), a two-hop 301 chain, a 404,
  a page that answers 500 once and one that answers 429 (``Retry-After: 1``) once, a page
  slower than a fetch timeout, a page larger than a body limit, a PDF, section index pages
  with headlines only, and pages edited or removed while the site runs;
* ETag and Last-Modified on every page and listing, 304 to a matching conditional request,
  gzip to a client that accepts it.

``site.articles`` is the truth: the articles a correct crawler indexes, by URL. Every request
is logged (``site.requests``) so that tests can check what was and was not fetched.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import html
import io
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

ARTICLES_JSONL = Path(__file__).resolve().parent / "data" / "ant" / "articles.jsonl"
SITE_NAME = "جوهرة أف أم"
Template = Literal["wordpress", "legacy", "modern"]
TEMPLATES: tuple[Template, ...] = ("wordpress", "legacy", "modern")
# Tunis keeps UTC+1 all year (no summer time since 2009), which the corpus's dates carry.
TUNIS = timezone(timedelta(hours=1))
# Where pages written by write_warc and write_html_folder say they were fetched from.
ARCHIVE_BASE_URL = "https://www.jawhara.example"

# What each corpus section is called on the site: the label pages show in their breadcrumb,
# article:section and JSON-LD, so the label is what extraction finds (SiteArticle.section).
SECTION_LABELS: dict[str, str] = {
    "culture": "ثقافة",
    "diverse": "منوعات",
    "economy": "اقتصاد",
    "internationalNews": "أخبار عالمية",
    "localNews": "أخبار وطنية",
    "politic": "سياسة",
    "society": "مجتمع",
    "sport": "رياضة",
    "technology": "تكنولوجيا",
}
AUTHORS = ("مريم الحمامي", "سامي الجلاصي", "هالة بن يوسف", "كريم الطرابلسي", "ليلى الزواري")
MONTHS_AR = (
    "جانفي",
    "فيفري",
    "مارس",
    "أفريل",
    "ماي",
    "جوان",
    "جويلية",
    "أوت",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
)

# Strings of the templates that are never article text (none occurs in the articles): the
# extraction tests check that none of them reaches an extracted text.
NAV_LABELS = ("اتصل بنا", "من نحن", "البث المباشر", "بودكاست")
SHARE_LABELS = ("شارك على فيسبوك", "غرّد على تويتر", "أرسل عبر واتساب", "طباعة المقال", "نسخ الرابط")
COMMENTS = (
    ("أبو ياسين", "مقال رائع وشكرا على هذه المعلومات القيمة، نتمنى المزيد من التغطيات الميدانية في الجهات."),
    ("سلمى", "أين المسؤولين من كل هذا؟ نطالب بالمحاسبة وبتطبيق القانون على الجميع دون استثناء."),
    ("Nizar_TN", "كلام منطقي لكن الواقع مختلف تماما، والمواطن البسيط هو من يدفع الثمن في النهاية دائما."),
)
COMMENT_LABELS = ("أضف تعليقك", "تعليقات القراء", "أرسل التعليق")
AD_TEXTS = (
    "مساحة إعلانية",
    "اشترك الآن في نشرتنا البريدية واحصل على آخر الأخبار كل صباح",
    "عروض حصرية لمشتركي الإنترنت السريع هذا الشهر",
)
RELATED_LABELS = ("مقالات ذات صلة", "اقرأ أيضا", "الأكثر قراءة")
FOOTER_TEXTS = ("جميع الحقوق محفوظة", "سياسة الخصوصية", "شروط الاستخدام")
SCRIPT_MARKERS = ("googletag", "dataLayer", "__SITE_STATE__")
BOILERPLATE: tuple[str, ...] = (
    NAV_LABELS
    + SHARE_LABELS
    + tuple(text for _, text in COMMENTS)
    + COMMENT_LABELS
    + AD_TEXTS
    + RELATED_LABELS
    + FOOTER_TEXTS
    + SCRIPT_MARKERS
)


@dataclass(frozen=True)
class SiteArticle:
    """One article of the site, as the truth the tests compare extraction and crawls with."""

    id: str  # the corpus's DOCNO
    title: str
    text: str  # as in the corpus; each line is one <p> of the page
    published: str  # ISO 8601 as in the corpus: a date-time with offset, or a day
    section: str  # the label the page shows (Arabic), what extraction should find
    section_key: str  # the corpus's section ("sport"), used in URL paths
    path: str  # the URL path the site serves it at
    template: Template
    encoding: str = "utf-8"  # of the page's bytes
    # The Content-Type header's charset; None sends no charset. It may disagree with `encoding`
    # on purpose (a mislabelled page), while the page's own <meta charset> is always right.
    header_charset: str | None = "utf-8"
    author: str | None = None
    tags: tuple[str, ...] = ()
    modified: float = 0.0  # epoch seconds of the last change: Last-Modified and sitemap lastmod

    @property
    def paragraphs(self) -> list[str]:
        """The page's paragraphs: the text's non-blank lines, stripped."""
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @property
    def day(self) -> str:
        """The publication day, ``YYYY-MM-DD``."""
        return self.published[:10]

    @property
    def published_dt(self) -> datetime:
        """The publication time (midnight in Tunis for an article dated by its day only)."""
        return _parse_iso(self.published)

    @property
    def has_time(self) -> bool:
        return "T" in self.published


def _parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=TUNIS)


def _slug(article_id: str) -> str:
    return article_id.lower()


def article_path(article_id: str, section_key: str, published: str, template: Template) -> str:
    """The URL path each template's site gives an article: WordPress dates it, the legacy site
    files it under an archive, the modern one under its section."""
    day = _parse_iso(published)
    if template == "wordpress":
        return f"/{day:%Y/%m/%d}/{_slug(article_id)}/"
    if template == "legacy":
        return f"/archives/{section_key}/{article_id}.html"
    return f"/ar/{section_key}/{_slug(article_id)}"


# The encodings legacy pages cycle through: (bytes, header charset). Windows-1256 with a right
# header, with a wrong one, with none (only the page's meta says it), and UTF-8.
_LEGACY_ENCODINGS: tuple[tuple[str, str | None], ...] = (
    ("windows-1256", "windows-1256"),
    ("windows-1256", "iso-8859-1"),
    ("windows-1256", None),
    ("utf-8", "utf-8"),
)


def _tags_of(title: str) -> tuple[str, ...]:
    """Keywords the way many sites make them: the headline's first long words."""
    words = [word.strip("\"'«»:،.,!?()") for word in title.split()]
    return tuple(dict.fromkeys(word for word in words if len(word) >= 5))[:3]


def make_article(
    article_id: str,
    title: str,
    text: str,
    published: str,
    section_key: str,
    template: Template,
    *,
    encoding: str = "utf-8",
    header_charset: str | None = "utf-8",
    author: str | None = None,
) -> SiteArticle:
    """A SiteArticle with its path, section label, tags and Last-Modified filled in."""
    return SiteArticle(
        id=article_id,
        title=title,
        text=text,
        published=published,
        section=SECTION_LABELS.get(section_key, section_key),
        section_key=section_key,
        path=article_path(article_id, section_key, published, template),
        template=template,
        encoding=encoding,
        header_charset=header_charset,
        author=author,
        tags=_tags_of(title),
        modified=_parse_iso(published).timestamp(),
    )


def load_site_articles(path: Path = ARTICLES_JSONL, limit: int | None = None) -> list[SiteArticle]:
    """Articles of a JSONL file of the service's source format (default: the 60 of
    tests/data/ant), given templates in turn (wordpress, legacy, modern, ...) and, for legacy
    pages, the encodings of ``_LEGACY_ENCODINGS`` in turn; one modern page in eight is UTF-8
    under a header that says windows-1256. ``path`` may be the whole ant.jsonl for a benchmark."""
    articles: list[SiteArticle] = []
    legacy = modern = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and len(articles) >= limit:
                break
            row = json.loads(line)
            template = TEMPLATES[len(articles) % len(TEMPLATES)]
            encoding: str = "utf-8"
            header_charset: str | None = "utf-8"
            if template == "legacy":
                encoding, header_charset = _LEGACY_ENCODINGS[legacy % len(_LEGACY_ENCODINGS)]
                legacy += 1
                try:
                    (row["title"] + row["text"]).encode(encoding)
                except UnicodeEncodeError:
                    encoding, header_charset = "utf-8", "utf-8"
            elif template == "modern":
                if modern % 8 == 1:
                    header_charset = "windows-1256"
                modern += 1
            articles.append(
                make_article(
                    row["id"],
                    row["title"],
                    row["text"],
                    row["published"],
                    row.get("meta", {}).get("section") or "diverse",
                    template,
                    encoding=encoding,
                    header_charset=header_charset,
                    author=AUTHORS[len(articles) % len(AUTHORS)] if template != "legacy" else None,
                )
            )
    return articles


# ---------------------------------------------------------------------------------------------
# Rendering: bytes of pages, independent of the server so archives can be written without one.


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _visible_date(article: SiteArticle) -> str:
    moment = article.published_dt
    day = f"{moment.day} {MONTHS_AR[moment.month - 1]} {moment.year}"
    return f"{day} - {moment:%H:%M}" if article.has_time else day


def _head_assets() -> str:
    """The stylesheet and tracking scripts every template's <head> carries."""
    return """<link rel="stylesheet" href="/static/css/main.css?v=4.2">
<style>body{font-family:Tahoma,Arial,sans-serif;margin:0}.ad{background:#f4f4f4;text-align:center}
.share-bar a{display:inline-block;padding:4px 8px}.headlines li{margin:6px 0}</style>
<script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}
gtag('js', new Date()); gtag('config', 'UA-000000-1');</script>
<script async src="https://securepubads.g.doubleclick.net/tag/js/gpt.js"></script>
<script>var googletag = googletag || {}; googletag.cmd = googletag.cmd || [];
googletag.cmd.push(function() { googletag.defineSlot('/1234/news/article_top', [728, 90], 'div-gpt-ad-1')
.addService(googletag.pubads()); googletag.enableServices(); });</script>"""


def _nav(base_url: str) -> str:
    items = [f'<li><a href="{base_url}/">الرئيسية</a></li>']
    items += [
        f'<li><a href="{base_url}/section/{key}/">{label}</a></li>' for key, label in SECTION_LABELS.items()
    ]
    items += [f'<li><a href="{base_url}/live/">{NAV_LABELS[2]}</a></li>']
    items += [f'<li><a href="{base_url}/podcasts/">{NAV_LABELS[3]}</a></li>']
    items += [f'<li><a href="{base_url}/about/">{NAV_LABELS[1]}</a></li>']
    items += [f'<li><a href="{base_url}/contact/">{NAV_LABELS[0]}</a></li>']
    return "\n".join(items)


def _share_buttons(url: str) -> str:
    return (
        f'<a class="share-facebook" href="https://www.facebook.com/sharer.php?u={_e(url)}">{SHARE_LABELS[0]}</a>\n'
        f'<a class="share-twitter" href="https://twitter.com/intent/tweet?url={_e(url)}">{SHARE_LABELS[1]}</a>\n'
        f'<a class="share-whatsapp" href="whatsapp://send?text={_e(url)}">{SHARE_LABELS[2]}</a>\n'
        f'<a class="share-print" href="javascript:window.print()">{SHARE_LABELS[3]}</a>\n'
        f'<button class="share-copy" type="button">{SHARE_LABELS[4]}</button>'
    )


def _ad(slot: int) -> str:
    return (
        f'<div class="ad ad-slot-{slot}" id="div-gpt-ad-{slot}"><span class="ad-label">{AD_TEXTS[0]}</span>'
        f"<script>googletag.cmd.push(function() {{ googletag.display('div-gpt-ad-{slot}'); }});</script></div>"
    )


def _newsletter() -> str:
    return (
        f'<div class="newsletter-box"><p>{AD_TEXTS[1]}</p><form action="/newsletter" method="post">'
        '<input type="email" name="email" placeholder="بريدك الإلكتروني"><button>اشترك</button></form></div>'
    )


def _headline_items(base_url: str, articles: Sequence[SiteArticle]) -> str:
    return "\n".join(
        f'<li><a href="{base_url}{other.path}">{_e(other.title)}</a> '
        f'<span class="date">{_visible_date(other)}</span></li>'
        for other in articles
    )


def _footer() -> str:
    return (
        f"<p>© 2017 {SITE_NAME}. {FOOTER_TEXTS[0]}.</p>\n"
        f'<ul class="footer-links"><li><a href="/privacy/">{FOOTER_TEXTS[1]}</a></li>'
        f'<li><a href="/terms/">{FOOTER_TEXTS[2]}</a></li><li><a href="/contact/">{NAV_LABELS[0]}</a></li></ul>'
    )


def _comments_list_items() -> str:
    return "\n".join(
        f'<li class="comment"><div class="comment-author"><b class="fn">{_e(name)}</b></div>'
        f'<div class="comment-content"><p>{_e(text)}</p></div></li>'
        for name, text in COMMENTS
    )


def _site_state_script(article: SiteArticle) -> str:
    """A modern site's inline state, which holds Arabic strings a naive extractor would keep."""
    state = {"page": "article", "id": article.id, "section": article.section, "i18n": {"share": "شارك"}}
    return f"<script>window.__SITE_STATE__ = {json.dumps(state, ensure_ascii=False)};</script>"


def _related(
    article: SiteArticle, others: Sequence[SiteArticle], count: int, offset: int
) -> list[SiteArticle]:
    """``count`` other articles, picked by the article's id (so a page renders the same each
    time); O(count), since a benchmark's site renders thousands of pages."""
    if len(others) < 2:
        return []
    chosen: list[SiteArticle] = []
    start = (sum(map(ord, article.id)) + offset) % len(others)
    for step in range(len(others)):
        other = others[(start + step) % len(others)]
        if other.id != article.id:
            chosen.append(other)
            if len(chosen) == count:
                break
    return chosen


def _paragraphs_html(article: SiteArticle) -> list[str]:
    return [f"<p>{_e(paragraph)}</p>" for paragraph in article.paragraphs]


def render_article(
    article: SiteArticle,
    *,
    base_url: str,
    others: Sequence[SiteArticle] = (),
    site_name: str = SITE_NAME,
    padding_bytes: int = 0,
) -> bytes:
    """The article's page in its template and encoding. ``others`` give the related and
    most-read headlines; ``padding_bytes`` of inline script state make a page too large."""
    render = {"wordpress": _render_wordpress, "legacy": _render_legacy, "modern": _render_modern}[
        article.template
    ]
    page = render(article, base_url.rstrip("/"), others, site_name)
    if padding_bytes > 0:
        # Incompressible, like the inline state it stands for, so it is large on the wire too.
        blob = base64.b64encode(random.Random(article.id).randbytes(padding_bytes * 3 // 4 + 3)).decode()
        page = page.replace("</body>", f'<script>window.__PRELOADED__ = "{blob}";</script>\n</body>')
    return page.encode(article.encoding, errors="xmlcharrefreplace")


def _render_wordpress(
    article: SiteArticle, base_url: str, others: Sequence[SiteArticle], site_name: str
) -> str:
    url = f"{base_url}{article.path}"
    related = _related(article, others, 4, 0)
    popular = _related(article, others, 5, 7)
    paragraphs = _paragraphs_html(article)
    # WordPress themes put the share buttons and a "read also" box inside .entry-content.
    # Editors type a "read also" link into the text itself, as a paragraph of its own.
    read_also = []
    if popular:
        read_also = [
            f'<p><strong>{RELATED_LABELS[1]}: </strong><a href="{base_url}{popular[-1].path}">{_e(popular[-1].title)}</a></p>'
        ]
    body = "\n".join([*paragraphs[:1], _ad(3), *read_also, *paragraphs[1:]])
    tags_meta = "\n".join(f'<meta property="article:tag" content="{_e(tag)}">' for tag in article.tags)
    tag_links = " ".join(
        f'<a href="{base_url}/tag/{_e(tag)}/" rel="tag">{_e(tag)}</a>' for tag in article.tags
    )
    related_html = _headline_items(base_url, related)
    return f"""<!DOCTYPE html>
<html dir="rtl" lang="ar">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(article.title)} – {_e(site_name)}</title>
<link rel="canonical" href="{_e(url)}">
<meta property="og:locale" content="ar_AR">
<meta property="og:type" content="article">
<meta property="og:title" content="{_e(article.title)}">
<meta property="og:description" content="{_e(article.paragraphs[0][:150])}">
<meta property="og:url" content="{_e(url)}">
<meta property="og:site_name" content="{_e(site_name)}">
<meta property="article:published_time" content="{article.published}">
<meta property="article:section" content="{_e(article.section)}">
{tags_meta}
<meta name="author" content="{_e(article.author or "")}">
<link rel="alternate" type="application/rss+xml" title="{_e(site_name)} RSS" href="{base_url}/feeds/rss.xml">
{_head_assets()}
</head>
<body class="post-template-default single single-post">
<div id="page" class="site">
<header id="masthead" class="site-header">
<div class="site-branding"><p class="site-title"><a href="{base_url}/" rel="home">{_e(site_name)}</a></p>
<p class="site-description">إذاعة خاصة من سوسة</p></div>
<nav id="site-navigation" class="main-navigation"><ul id="primary-menu" class="menu">
{_nav(base_url)}
</ul></nav>
</header>
{_ad(1)}
<div id="content" class="site-content">
<div id="primary" class="content-area"><main id="main" class="site-main">
<article id="post-{_e(article.id)}" class="post type-post status-publish format-standard hentry">
<header class="entry-header">
<h1 class="entry-title">{_e(article.title)}</h1>
<div class="entry-meta">
<span class="posted-on"><a href="{_e(url)}" rel="bookmark"><time class="entry-date published" datetime="{article.published}">{_visible_date(article)}</time></a></span>
<span class="byline">بقلم <span class="author vcard"><a class="url fn n" href="{base_url}/author/{len(article.author or "")}/">{_e(article.author or "")}</a></span></span>
<span class="cat-links"><a href="{base_url}/section/{article.section_key}/" rel="category tag">{_e(article.section)}</a></span>
</div>
</header>
<div class="entry-content">
{body}
<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">شارك هذا:</h3>
<div class="sd-content">{_share_buttons(url)}</div></div>
<div class="jp-relatedposts" id="jp-relatedposts"><h3 class="jp-relatedposts-headline">{RELATED_LABELS[0]}</h3>
<ul>{related_html}</ul></div>
</div>
<footer class="entry-footer"><span class="tags-links">الكلمات المفتاحية: {tag_links}</span></footer>
</article>
<nav class="navigation post-navigation"><div class="nav-links">
<div class="nav-previous"><a href="{base_url}{popular[0].path if popular else "/"}" rel="prev">المقال السابق</a></div>
</div></nav>
<div id="comments" class="comments-area">
<h2 class="comments-title">{COMMENT_LABELS[1]} ({len(COMMENTS)})</h2>
<ol class="comment-list">
{_comments_list_items()}
</ol>
<div id="respond" class="comment-respond"><h3 id="reply-title" class="comment-reply-title">{COMMENT_LABELS[0]}</h3>
<form action="/wp-comments-post.php" method="post" id="commentform"><textarea name="comment"></textarea>
<input name="submit" type="submit" value="{COMMENT_LABELS[2]}"></form></div>
</div>
</main></div>
<aside id="secondary" class="widget-area">
<section class="widget widget_popular"><h2 class="widget-title">{RELATED_LABELS[2]}</h2>
<ul class="headlines">{_headline_items(base_url, popular)}</ul></section>
<section class="widget">{_newsletter()}</section>
{_ad(2)}
</aside>
</div>
<footer id="colophon" class="site-footer">
{_footer()}
</footer>
</div>
<script src="/wp-includes/js/wp-embed.min.js?ver=4.9"></script>
</body>
</html>
"""


def _render_legacy(article: SiteArticle, base_url: str, others: Sequence[SiteArticle], site_name: str) -> str:
    related = _related(article, others, 5, 3)
    paragraphs = "\n".join(_paragraphs_html(article))
    meta_charset = "windows-1256" if article.encoding.lower() in {"windows-1256", "cp1256"} else "utf-8"
    moment = article.published_dt
    shown = f"{moment:%d/%m/%Y}" + (f" على الساعة {moment:%H:%M}" if article.has_time else "")
    comments = "\n".join(
        f'<tr><td class="com_auteur"><b>{_e(name)}</b></td></tr><tr><td class="com_texte">{_e(text)}</td></tr>'
        for name, text in COMMENTS
    )
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html dir="rtl" lang="ar">
<head>
<meta http-equiv="Content-Type" content="text/html; charset={meta_charset}">
<title>{_e(article.title)} | {_e(site_name)}</title>
<meta name="keywords" content="{_e("، ".join(article.tags))}">
<meta name="description" content="{_e(article.paragraphs[0][:150])}">
<meta name="date" content="{article.day}">
{_head_assets()}
<script language="JavaScript">function popup(u){{window.open(u,'p','width=500,height=400');}}</script>
</head>
<body bgcolor="#FFFFFF" leftmargin="0" topmargin="0">
<table width="980" border="0" cellspacing="0" cellpadding="0" align="center" id="main">
<tr><td colspan="2" class="entete"><a href="{base_url}/"><img src="/images/logo.gif" alt="{_e(site_name)}" border="0"></a>
<span class="slogan">{_e(site_name)} - {NAV_LABELS[2]} 24/24</span></td></tr>
<tr><td colspan="2" class="menu_haut">
<a href="{base_url}/">الرئيسية</a> | {" | ".join(f'<a href="{base_url}/section/{key}/">{label}</a>' for key, label in SECTION_LABELS.items())}
| <a href="{base_url}/contact/">{NAV_LABELS[0]}</a>
</td></tr>
<tr>
<td width="680" valign="top" class="colonne_centre">
<div class="breadcrumb"><a href="{base_url}/">الرئيسية</a> &raquo; <a href="{base_url}/section/{article.section_key}/">{_e(article.section)}</a></div>
<div id="article">
<h1 class="titre_article">{_e(article.title)}</h1>
<div class="date_article">نشر في {shown}</div>
<div class="texte_article" id="texte">
{paragraphs}
</div>
<div class="outils"><a href="javascript:popup('/envoyer.php?id={_e(article.id)}')">أرسل إلى صديق</a> |
<a href="javascript:window.print()">{SHARE_LABELS[3]}</a> | {_share_buttons(base_url + article.path)}</div>
</div>
<table width="100%" class="commentaires"><tr><th>{COMMENT_LABELS[1]}</th></tr>
{comments}
<tr><td><form method="post" action="/commenter.php"><b>{COMMENT_LABELS[0]}</b><br>
<textarea name="c" rows="4" cols="60"></textarea><br><input type="submit" value="{COMMENT_LABELS[2]}"></form></td></tr>
</table>
<div class="voir_aussi"><b>{RELATED_LABELS[1]}</b><ul>{_headline_items(base_url, related[:3])}</ul></div>
</td>
<td width="300" valign="top" class="colonne_droite">
{_ad(2)}
<div class="bloc_plus_lus"><b>{RELATED_LABELS[2]}</b><ul>{_headline_items(base_url, related[3:])}</ul></div>
<div class="pub">{AD_TEXTS[2]}</div>
</td>
</tr>
<tr><td colspan="2" class="pied">{_footer()}</td></tr>
</table>
</body>
</html>
"""


def _render_modern(article: SiteArticle, base_url: str, others: Sequence[SiteArticle], site_name: str) -> str:
    url = f"{base_url}{article.path}"
    related = _related(article, others, 3, 11)
    paragraphs = _paragraphs_html(article)
    # A "read also" box between paragraphs, as modern news sites put one.
    read_also = ""
    if related:
        read_also = (
            f'<aside class="read-also related-inline"><span>{RELATED_LABELS[1]}:</span> '
            f'<a href="{base_url}{related[0].path}">{_e(related[0].title)}</a></aside>'
        )
    middle = max(1, len(paragraphs) // 2)
    body = "\n".join([*paragraphs[:middle], read_also, _ad(4), *paragraphs[middle:]])
    modified = datetime.fromtimestamp(article.modified, tz=TUNIS).isoformat(timespec="seconds")
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": "NewsArticle",
                "headline": article.title,
                "datePublished": article.published,
                "dateModified": modified,
                "articleSection": article.section,
                "keywords": list(article.tags),
                "inLanguage": "ar",
                "author": {"@type": "Person", "name": article.author},
                "publisher": {"@type": "Organization", "name": site_name, "logo": f"{base_url}/logo.png"},
                "mainEntityOfPage": url,
            },
            {
                "@type": "BreadcrumbList",
                "itemListElement": [
                    {"@type": "ListItem", "position": 1, "name": "الرئيسية", "item": f"{base_url}/"},
                    {
                        "@type": "ListItem",
                        "position": 2,
                        "name": article.section,
                        "item": f"{base_url}/section/{article.section_key}/",
                    },
                ],
            },
        ],
    }
    ld_json = json.dumps(ld, ensure_ascii=False).replace("</", "<\\/")
    tags_meta = "\n".join(f'<meta property="article:tag" content="{_e(tag)}">' for tag in article.tags)
    return f"""<!doctype html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(article.title)} | {_e(site_name)}</title>
<link rel="canonical" href="{_e(article.path)}">
<meta property="og:type" content="article">
<meta property="og:title" content="{_e(article.title)}">
<meta property="og:url" content="{_e(url)}">
<meta property="og:site_name" content="{_e(site_name)}">
<meta property="og:locale" content="ar_TN">
<meta property="og:image" content="{base_url}/media/{_e(article.id)}.jpg">
<meta name="twitter:card" content="summary_large_image">
<meta property="article:published_time" content="{article.published}">
<meta property="article:modified_time" content="{modified}">
<meta property="article:section" content="{_e(article.section)}">
{tags_meta}
<script type="application/ld+json">{ld_json}</script>
{_head_assets()}
</head>
<body class="page-article">
<div class="topbar"><a class="live" href="{base_url}/live/">{NAV_LABELS[2]}</a>
<a class="podcasts" href="{base_url}/podcasts/">{NAV_LABELS[3]}</a></div>
<header class="site-header"><a class="logo" href="{base_url}/">{_e(site_name)}</a>
<nav class="main-nav" aria-label="الأقسام"><ul>
{_nav(base_url)}
</ul></nav></header>
{_ad(1)}
<main class="layout">
<nav class="breadcrumbs" aria-label="breadcrumb"><ol><li><a href="{base_url}/">الرئيسية</a></li>
<li><a href="{base_url}/section/{article.section_key}/">{_e(article.section)}</a></li></ol></nav>
<article class="story">
<header class="story-header">
<a class="story-kicker" href="{base_url}/section/{article.section_key}/">{_e(article.section)}</a>
<h1 class="story-title">{_e(article.title)}</h1>
<div class="story-meta"><span class="story-author">{_e(article.author or "")}</span>
<time datetime="{article.published}">{_visible_date(article)}</time></div>
<div class="share-bar" role="group">{_share_buttons(url)}</div>
</header>
<figure class="story-image"><img src="{base_url}/media/{_e(article.id)}.jpg" alt=""><figcaption>صورة أرشيفية</figcaption></figure>
<div class="story-body" itemprop="articleBody">
{body}
</div>
<div class="story-tags">{" ".join(f'<a href="{base_url}/tag/{_e(tag)}">#{_e(tag)}</a>' for tag in article.tags)}</div>
</article>
<section class="related" aria-label="{RELATED_LABELS[0]}"><h2>{RELATED_LABELS[0]}</h2>
<ul class="headlines">{_headline_items(base_url, related)}</ul></section>
<section class="comments" id="comments"><h2>{COMMENT_LABELS[1]}</h2>
<ul class="comment-list">{_comments_list_items()}</ul>
<form class="comment-form"><label>{COMMENT_LABELS[0]}</label><textarea></textarea><button>{COMMENT_LABELS[2]}</button></form>
</section>
{_newsletter()}
</main>
<footer class="site-footer">{_footer()}</footer>
{_site_state_script(article)}
<script src="/static/js/app.3f9a1c.js" defer></script>
</body>
</html>
"""


def render_index(
    title: str, headlines: Sequence[SiteArticle], *, base_url: str, site_name: str = SITE_NAME
) -> bytes:
    """A home or section page: navigation and a list of headlines, no article."""
    base_url = base_url.rstrip("/")
    return f"""<!doctype html>
<html lang="ar" dir="rtl">
<head><meta charset="utf-8"><title>{_e(title)} | {_e(site_name)}</title>
<meta property="og:type" content="website">
<meta property="og:site_name" content="{_e(site_name)}">
{_head_assets()}
</head>
<body>
<header class="site-header"><a class="logo" href="{base_url}/">{_e(site_name)}</a>
<nav class="main-nav"><ul>
{_nav(base_url)}
</ul></nav></header>
<main><h1>{_e(title)}</h1>
<ul class="headlines">
{_headline_items(base_url, headlines)}
</ul>
<div class="pagination"><a href="?page=2">الصفحة التالية</a></div>
</main>
<footer class="site-footer">{_footer()}</footer>
</body>
</html>
""".encode()


def render_error(status: int, *, base_url: str, site_name: str = SITE_NAME) -> bytes:
    """The site's error page (404, 410, 500), with the navigation and footer of its pages."""
    base_url = base_url.rstrip("/")
    message = {
        404: ("404 - الصفحة غير موجودة", "عذرا، الصفحة التي تبحث عنها غير موجودة."),
        410: ("410 - المقال لم يعد متوفرا", "عذرا، تم حذف هذا المقال من الموقع."),
        429: ("429 - طلبات كثيرة", "الرجاء المحاولة بعد قليل."),
        500: ("500 - خطأ في الخادم", "حدث خطأ ما، الرجاء المحاولة لاحقا."),
    }.get(status, (f"{status}", "خطأ"))
    return f"""<!doctype html>
<html lang="ar" dir="rtl">
<head><meta charset="utf-8"><title>{message[0]} | {_e(site_name)}</title></head>
<body>
<header class="site-header"><a class="logo" href="{base_url}/">{_e(site_name)}</a>
<nav class="main-nav"><ul>
{_nav(base_url)}
</ul></nav></header>
<main class="error-page"><h1>{message[0]}</h1><p>{message[1]}</p>
<form action="/search"><input name="q"><button>بحث</button></form></main>
<footer class="site-footer">{_footer()}</footer>
</body>
</html>
""".encode()


# A small, valid PDF: a page crawlers must not take for HTML.
PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n0000000101 00000 n \n"
    b"trailer<</Size 4/Root 1 0 R>>\nstartxref\n166\n%%EOF\n"
)


# ---------------------------------------------------------------------------------------------
# The server.


@dataclass(frozen=True)
class LoggedRequest:
    """One request the site answered."""

    method: str
    path: str  # with its query string, as sent
    status: int
    bytes_sent: int  # of the body, after any gzip
    headers: dict[str, str]  # the request's headers, names lower case
    time: float  # time.time() when it was answered


@dataclass(frozen=True)
class SpecialUrls:
    """The absolute URLs of the site's listings and traps (None for the traps when the site
    runs with ``traps=False``)."""

    home: str
    robots: str
    sitemap_index: str
    news_sitemap: str
    pages_sitemap: str
    rss: str
    atom: str
    json_feed: str
    sections: tuple[str, ...]  # the section index pages, headlines only
    private: str | None = None  # disallowed by robots.txt, listed in the RSS feed (an article page)
    redirect: str | None = None  # the first hop of a 301 -> 301 -> article chain (listed in RSS)
    redirect_hops: tuple[str, ...] = ()  # every URL of the chain, the article's last
    not_found: str | None = None  # 404, listed in the news sitemap
    flaky: str | None = None  # an article that answers 500 once, then 200
    rate_limited: str | None = None  # an article that answers 429 with Retry-After: 1 once, then 200
    slow: str | None = None  # an article page answered after ``slow_seconds``
    large: str | None = None  # an article page of more than ``large_bytes``
    pdf: str | None = None  # application/pdf


@dataclass
class _Resource:
    body: bytes
    content_type: str
    last_modified: float
    etag: str = ""
    gzipped: bytes | None = None

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:20] + '"'


@dataclass
class _State:
    articles: dict[str, SiteArticle] = field(default_factory=dict)  # by path, served and listed
    listings: dict[str, frozenset[str]] = field(default_factory=dict)  # path -> listing names
    extras: dict[str, SiteArticle] = field(default_factory=dict)  # by path: private, slow, large
    removed: dict[str, int] = field(default_factory=dict)  # path -> 404 or 410
    version: int = 0


class NewsSite:
    """The news site on ``127.0.0.1`` (a free port unless ``port`` is given), served by a
    ThreadingHTTPServer in a daemon thread. Use it as a context manager, or ``start()`` and
    ``close()``. Several can run at once, each on its own port.

    ``articles`` defaults to the 60 of tests/data/ant. With ``traps`` (the default), the
    first three of them are set apart as the private, slow and large pages (``site.extras``),
    and the redirect chain, 404, 500-once, 429-once, PDF and slow and large pages are served
    and listed; with ``traps=False`` every article is a plain one and none of those exists,
    for a benchmark. ``crawl_delay`` writes a Crawl-delay into robots.txt (none by default:
    politeness is the crawler's settings', and a benchmark turns it off there).
    """

    def __init__(
        self,
        articles: Sequence[SiteArticle] | None = None,
        *,
        port: int = 0,
        traps: bool = True,
        slow_seconds: float = 3.0,
        large_bytes: int = 2 * 1024 * 1024,
        gzip_responses: bool = True,
        crawl_delay: float | None = None,
        site_name: str = SITE_NAME,
    ) -> None:
        chosen = list(articles) if articles is not None else load_site_articles()
        self.site_name = site_name
        self.traps = traps
        self.slow_seconds = slow_seconds
        self.large_bytes = large_bytes
        self.gzip_responses = gzip_responses
        self.crawl_delay = crawl_delay
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._hits: dict[str, int] = {}
        self._cache: dict[str, tuple[int, _Resource]] = {}
        self._state = _State()
        # The served articles newest first, and the newest Last-Modified, of a state version.
        self._served: tuple[int, list[SiteArticle], float] = (-1, [], 0.0)
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None
        self._private_path = self._slow_path = self._large_path = ""
        self._flaky_path = self._rate_limited_path = self._redirected_path = ""
        if traps and len(chosen) >= 6:
            private, slow, large = chosen[:3]
            chosen = chosen[3:]
            self._private_path = f"/private/{_slug(private.id)}.html"
            self._slow_path = f"/slow/{_slug(slow.id)}.html"
            self._large_path = f"/large/{_slug(large.id)}.html"
            for path, extra in (
                (self._private_path, private),
                (self._slow_path, slow),
                (self._large_path, large),
            ):
                self._state.extras[path] = dataclasses.replace(extra, path=path)
        ordered = sorted(chosen, key=lambda article: (article.published_dt, article.id), reverse=True)
        for index, article in enumerate(ordered):
            self._state.articles[article.path] = article
            self._state.listings[article.path] = _listings_of(index)
        if traps and len(ordered) >= 4:
            self._flaky_path = ordered[1].path
            self._rate_limited_path = ordered[2].path
            # The redirected article is listed only through the first hop of its chain.
            self._redirected_path = ordered[3].path
            self._state.listings[self._redirected_path] = frozenset()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> NewsSite:
        """Serve in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                # A short poll, so that close() returns at once rather than in up to half a second.
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"news-site-{self.base_url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- truth ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @property
    def articles(self) -> dict[str, SiteArticle]:
        """The articles a correct crawler indexes, by absolute URL (their canonical URL): the
        served ones, the redirected, 500-once and 429-once ones included; not the extras."""
        with self._lock:
            return {self.url(path): article for path, article in self._state.articles.items()}

    @property
    def extras(self) -> dict[str, SiteArticle]:
        """Article pages a crawler should not index under default limits, by absolute URL: the
        private (robots), slow (timeout) and large (body limit) pages."""
        with self._lock:
            return {self.url(path): article for path, article in self._state.extras.items()}

    @property
    def removed(self) -> dict[str, int]:
        """URLs removed with ``remove``, with the status they now answer."""
        with self._lock:
            return {self.url(path): status for path, status in self._state.removed.items()}

    def article(self, article_id: str) -> SiteArticle:
        """The served article of that id."""
        with self._lock:
            return self._find(article_id)

    def listed_in(self, url: str) -> frozenset[str]:
        """The listings that name the article (``rss``, ``atom``, ``json``, ``news``, ``pages``);
        empty for the redirected article, which only its chain's first hop in RSS names."""
        with self._lock:
            return self._state.listings.get(urlsplit(url).path, frozenset())

    @property
    def special(self) -> SpecialUrls:
        u = self.url
        sections = tuple(u(f"/section/{key}/") for key in SECTION_LABELS)
        base = SpecialUrls(
            home=u("/"),
            robots=u("/robots.txt"),
            sitemap_index=u("/sitemap.xml"),
            news_sitemap=u("/sitemaps/news.xml"),
            pages_sitemap=u("/sitemaps/pages.xml"),
            rss=u("/feeds/rss.xml"),
            atom=u("/feeds/atom.xml"),
            json_feed=u("/feeds/feed.json"),
            sections=sections,
        )
        if not self._private_path:
            return base
        hops = _REDIRECT_HOPS
        return dataclasses.replace(
            base,
            private=u(self._private_path),
            redirect=u(hops[0]),
            redirect_hops=(u(hops[0]), u(hops[1]), u(self._redirected_path)),
            not_found=u("/missing/story-that-never-was.html"),
            flaky=u(self._flaky_path),
            rate_limited=u(self._rate_limited_path),
            slow=u(self._slow_path),
            large=u(self._large_path),
            pdf=u("/media/annual-report-2016.pdf"),
        )

    # -- the request log ------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered so far, in order."""
        with self._lock:
            return list(self._log)

    def fetched_paths(self, method: str = "GET") -> list[str]:
        """The paths asked with ``method``, in order, repeats kept."""
        return [entry.path for entry in self.requests if entry.method == method]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def reset_traps(self) -> None:
        """Arm the 500-once and 429-once pages again."""
        with self._lock:
            self._hits.clear()

    # -- changes --------------------------------------------------------------------------

    def edit(self, article_id: str, new_text: str, *, title: str | None = None) -> SiteArticle:
        """Change an article's text (and title): its page, ETag, Last-Modified, sitemap lastmod
        and feed dates change. Last-Modified moves at least a second, as HTTP dates count seconds."""
        with self._lock:
            old = self._find(article_id)
            new = dataclasses.replace(
                old,
                text=new_text,
                title=title if title is not None else old.title,
                modified=float(max(int(time.time()) + 1, int(old.modified) + 1)),
            )
            self._state.articles[old.path] = new
            self._state.version += 1
            return new

    def remove(self, article_id: str, status: int = 404) -> str:
        """Take an article down: its URL answers ``status`` (404 or 410) and no listing names
        it any more. Returns its URL."""
        if status not in (404, 410):
            raise ValueError(f"a removed article answers 404 or 410, not {status}")
        with self._lock:
            old = self._find(article_id)
            del self._state.articles[old.path]
            self._state.listings.pop(old.path, None)
            self._state.removed[old.path] = status
            self._state.version += 1
            return self.url(old.path)

    def add(self, article: SiteArticle) -> str:
        """Publish a new article: served at its path and listed in the RSS feed and both
        sitemaps. Returns its URL."""
        with self._lock:
            if article.path in self._state.articles or article.path in self._state.extras:
                raise ValueError(f"{article.path} is already served")
            self._state.articles[article.path] = article
            self._state.listings[article.path] = frozenset({"rss", "news", "pages"})
            self._state.removed.pop(article.path, None)
            self._state.version += 1
            return self.url(article.path)

    def _find(self, article_id: str) -> SiteArticle:
        for article in self._state.articles.values():
            if article.id == article_id:
                return article
        raise KeyError(f"no served article {article_id!r}")

    # -- archives of this site ------------------------------------------------------------

    def write_warc(self, path: Path, articles: Iterable[SiteArticle] | None = None) -> Path:
        """``write_warc`` of this site's pages (default: every served article) at its base URL."""
        chosen = list(articles) if articles is not None else list(self.articles.values())
        return write_warc(path, chosen, base_url=self.base_url, site_name=self.site_name)

    # -- serving --------------------------------------------------------------------------

    def _log_request(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _hit(self, path: str) -> int:
        """How many times ``path`` was asked with GET before this request."""
        with self._lock:
            seen = self._hits.get(path, 0)
            self._hits[path] = seen + 1
            return seen

    def _resource(self, path: str) -> _Resource | tuple[int, dict[str, str]] | None:
        """What a GET of ``path`` answers: a resource (200, or 304 to a matching conditional
        request), a bare status with headers (redirects and the once-only errors), or None (404)."""
        with self._lock:
            version = self._state.version
            cached = self._cache.get(path)
            if cached is not None and cached[0] == version:
                return cached[1]
            made = self._make(path)
            if isinstance(made, _Resource):
                self._cache[path] = (version, made)
            return made

    def _make(self, path: str) -> _Resource | tuple[int, dict[str, str]] | None:
        # Called with the lock held.
        state = self._state
        if self._served[0] != state.version:
            ordered = sorted(state.articles.values(), key=lambda a: (a.published_dt, a.id), reverse=True)
            self._served = (state.version, ordered, max((a.modified for a in ordered), default=0.0))
        _, served, newest = self._served
        if path in state.articles:
            article = state.articles[path]
            body = render_article(article, base_url=self.base_url, others=served, site_name=self.site_name)
            return _Resource(body, _content_type("text/html", article.header_charset), article.modified)
        if path in state.removed:
            return (state.removed[path], {})
        if path in state.extras:
            article = state.extras[path]
            padding = self.large_bytes if path == self._large_path else 0
            body = render_article(
                article,
                base_url=self.base_url,
                others=served,
                site_name=self.site_name,
                padding_bytes=padding,
            )
            return _Resource(body, _content_type("text/html", article.header_charset), article.modified)
        if path == "/":
            body = render_index(self.site_name, served[:20], base_url=self.base_url, site_name=self.site_name)
            return _Resource(body, "text/html; charset=utf-8", newest)
        if path.startswith("/section/"):
            key = path.removeprefix("/section/").strip("/")
            if key in SECTION_LABELS:
                headlines = [a for a in served if a.section_key == key][:20]
                body = render_index(
                    SECTION_LABELS[key], headlines, base_url=self.base_url, site_name=self.site_name
                )
                return _Resource(body, "text/html; charset=utf-8", newest)
            return None
        if path == "/robots.txt":
            return _Resource(self._robots().encode(), "text/plain; charset=utf-8", _SITE_LAUNCH)
        if path == "/sitemap.xml":
            return _Resource(self._sitemap_index(newest).encode(), "application/xml; charset=utf-8", newest)
        if path == "/sitemaps/news.xml":
            return _Resource(self._news_sitemap(served).encode(), "application/xml; charset=utf-8", newest)
        if path == "/sitemaps/pages.xml":
            return _Resource(self._pages_sitemap(served).encode(), "application/xml; charset=utf-8", newest)
        if path == "/feeds/rss.xml":
            return _Resource(self._rss(served, newest).encode(), "application/rss+xml; charset=utf-8", newest)
        if path == "/feeds/atom.xml":
            return _Resource(
                self._atom(served, newest).encode(), "application/atom+xml; charset=utf-8", newest
            )
        if path == "/feeds/feed.json":
            return _Resource(self._json_feed(served).encode(), "application/feed+json; charset=utf-8", newest)
        if self.traps and self._private_path:
            if path == _REDIRECT_HOPS[0]:
                return (301, {"Location": self.url(_REDIRECT_HOPS[1])})
            if path == _REDIRECT_HOPS[1]:
                return (301, {"Location": self.url(self._redirected_path)})
            if path == "/media/annual-report-2016.pdf":
                return _Resource(
                    PDF_BYTES, "application/pdf", _parse_iso("2017-01-05T10:00:00+01:00").timestamp()
                )
        return None

    def _listed(self, served: Sequence[SiteArticle], name: str) -> list[SiteArticle]:
        return [a for a in served if name in self._state.listings.get(a.path, frozenset())]

    def _robots(self) -> str:
        lines = [
            "# robots.txt of the test news site",
            "User-agent: *",
            "Disallow: /private/",
            "Disallow: /search",
        ]
        if self.crawl_delay is not None:
            lines.append(f"Crawl-delay: {self.crawl_delay:g}")
        lines += ["", f"Sitemap: {self.url('/sitemap.xml')}", ""]
        return "\n".join(lines)

    def _sitemap_index(self, newest: float) -> str:
        lastmod = _w3c(newest)
        children = "".join(
            f"<sitemap><loc>{self.url(p)}</loc><lastmod>{lastmod}</lastmod></sitemap>\n"
            for p in ("/sitemaps/news.xml", "/sitemaps/pages.xml")
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{children}</sitemapindex>\n"
        )

    def _news_sitemap(self, served: Sequence[SiteArticle]) -> str:
        entries = []
        for article in self._listed(served, "news"):
            entries.append(
                f"<url><loc>{xml_escape(self.url(article.path))}</loc><news:news><news:publication>"
                f"<news:name>{xml_escape(self.site_name)}</news:name><news:language>ar</news:language>"
                f"</news:publication><news:publication_date>{article.published}</news:publication_date>"
                f"<news:title>{xml_escape(article.title)}</news:title></news:news></url>\n"
            )
        if self.traps and self._private_path:
            entries.append(f"<url><loc>{self.url('/missing/story-that-never-was.html')}</loc></url>\n")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n'
            f"{''.join(entries)}</urlset>\n"
        )

    def _pages_sitemap(self, served: Sequence[SiteArticle]) -> str:
        rows: list[tuple[str, str | None, str]] = [(self.url("/"), None, "hourly")]
        rows += [(self.url(f"/section/{key}/"), None, "hourly") for key in SECTION_LABELS]
        rows += [(self.url(a.path), _w3c(a.modified), "monthly") for a in self._listed(served, "pages")]
        if self.traps and self._private_path:
            for path in (self._slow_path, self._large_path):
                rows.append((self.url(path), _w3c(self._state.extras[path].modified), "monthly"))
            rows.append((self.url("/media/annual-report-2016.pdf"), "2017-01-05", "yearly"))
        entries = "".join(
            f"<url><loc>{xml_escape(loc)}</loc>"
            + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
            + f"<changefreq>{freq}</changefreq></url>\n"
            for loc, lastmod, freq in rows
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{entries}</urlset>\n"
        )

    def _rss(self, served: Sequence[SiteArticle], newest: float) -> str:
        items = []
        for index, article in enumerate(self._listed(served, "rss")):
            content = ""
            if index % 2 == 0:  # full text for some entries, as many WordPress feeds do
                markup = "".join(f"<p>{_e(p)}</p>" for p in article.paragraphs).replace(
                    "]]>", "]]]]><![CDATA[>"
                )
                content = f"<content:encoded><![CDATA[{markup}]]></content:encoded>"
            items.append(self._rss_item(article, self.url(article.path), content))
        if self.traps and self._private_path:
            redirected = self._state.articles.get(self._redirected_path)
            if redirected is not None:
                items.append(self._rss_item(redirected, self.url(_REDIRECT_HOPS[0]), ""))
            items.append(
                self._rss_item(self._state.extras[self._private_path], self.url(self._private_path), "")
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>{xml_escape(self.site_name)}</title><link>{self.url('/')}</link>"
            f"<description>آخر الأخبار</description><language>ar</language>"
            f"<lastBuildDate>{formatdate(newest, usegmt=True)}</lastBuildDate>"
            f'<atom:link href="{self.url("/feeds/rss.xml")}" rel="self" type="application/rss+xml"/>\n'
            f"{''.join(items)}</channel>\n</rss>\n"
        )

    def _rss_item(self, article: SiteArticle, link: str, content: str) -> str:
        return (
            f"<item><title>{xml_escape(article.title)}</title><link>{xml_escape(link)}</link>"
            f'<guid isPermaLink="true">{xml_escape(link)}</guid>'
            f"<pubDate>{formatdate(article.published_dt.timestamp(), usegmt=True)}</pubDate>"
            f"<dc:creator>{xml_escape(article.author or self.site_name)}</dc:creator>"
            f"<category>{xml_escape(article.section)}</category>"
            f"<description>{xml_escape(article.paragraphs[0][:200])}</description>{content}</item>\n"
        )

    def _atom(self, served: Sequence[SiteArticle], newest: float) -> str:
        entries = []
        for index, article in enumerate(self._listed(served, "atom")):
            url = xml_escape(self.url(article.path))
            content = ""
            if index % 2 == 1:
                markup = "".join(f"<p>{_e(p)}</p>" for p in article.paragraphs)
                content = f'<content type="html">{xml_escape(markup)}</content>'
            entries.append(
                f'<entry><title>{xml_escape(article.title)}</title><link rel="alternate" href="{url}"/>'
                f"<id>{url}</id><published>{_w3c(article.published_dt.timestamp())}</published>"
                f"<updated>{_w3c(article.modified)}</updated>"
                f"<author><name>{xml_escape(article.author or self.site_name)}</name></author>"
                f'<category term="{xml_escape(article.section)}"/>'
                f"<summary>{xml_escape(article.paragraphs[0][:200])}</summary>{content}</entry>\n"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ar">\n'
            f"<title>{xml_escape(self.site_name)}</title><id>{self.url('/')}</id><updated>{_w3c(newest)}</updated>"
            f'<link rel="self" href="{self.url("/feeds/atom.xml")}"/><link rel="alternate" href="{self.url("/")}"/>\n'
            f"{''.join(entries)}</feed>\n"
        )

    def _json_feed(self, served: Sequence[SiteArticle]) -> str:
        items: list[dict[str, object]] = []
        for index, article in enumerate(self._listed(served, "json")):
            item: dict[str, object] = {
                "id": self.url(article.path),
                "url": self.url(article.path),
                "title": article.title,
                "summary": article.paragraphs[0][:200],
                "date_published": _w3c(article.published_dt.timestamp()),
                "date_modified": _w3c(article.modified),
                "authors": [{"name": article.author or self.site_name}],
                "tags": [article.section],
                "language": "ar",
            }
            if index % 2 == 0:
                item["content_html"] = "".join(f"<p>{_e(p)}</p>" for p in article.paragraphs)
            else:
                item["content_text"] = "\n\n".join(article.paragraphs)
            items.append(item)
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": self.site_name,
            "home_page_url": self.url("/"),
            "feed_url": self.url("/feeds/feed.json"),
            "language": "ar",
            "items": items,
        }
        return json.dumps(feed, ensure_ascii=False, indent=1)


_REDIRECT_HOPS = ("/old/story.php", "/moved/story/")
# The Last-Modified of robots.txt, which never changes.
_SITE_LAUNCH = datetime(2013, 1, 1, tzinfo=TUNIS).timestamp()


def _listings_of(index: int) -> frozenset[str]:
    """Which listings name the index-th newest article: every article is in RSS, Atom or the
    JSON feed (by index mod 4); some are in two feeds; the 20 newest are in the news sitemap and
    the even ones in the plain sitemap. So some articles only one listing names."""
    names = {("rss", "rss", "atom", "json")[index % 4]}
    if index % 8 == 0:
        names.add("atom")
    if index < 20:
        names.add("news")
    if index % 2 == 0:
        names.add("pages")
    return frozenset(names)


def _content_type(media_type: str, charset: str | None) -> str:
    return f"{media_type}; charset={charset}" if charset else media_type


def _w3c(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=TUNIS).isoformat(timespec="seconds")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a benchmark opens many connections at once

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], site: NewsSite
    ) -> None:
        super().__init__(address, handler)
        self.site = site

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer (a crawler cutting a page at its body limit or
        its timeout) is normal here, not a traceback on stderr."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as crawlers expect
    server_version = "nginx/1.18.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold each keep-alive response back about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the site's own log is ``site.requests``."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        site = self.server.site
        path = urlsplit(self.path).path
        if not head:
            if path == site._flaky_path and site._hit(path) == 0:
                self._send(
                    500, render_error(500, base_url=site.base_url), "text/html; charset=utf-8", head=head
                )
                return
            if path == site._rate_limited_path and site._hit(path) == 0:
                body = render_error(429, base_url=site.base_url)
                self._send(429, body, "text/html; charset=utf-8", head=head, headers={"Retry-After": "1"})
                return
            if path == site._slow_path:
                time.sleep(site.slow_seconds)
        made = site._resource(path)
        if made is None:
            self._send(404, render_error(404, base_url=site.base_url), "text/html; charset=utf-8", head=head)
            return
        if isinstance(made, tuple):
            status, headers = made
            body = b"" if status == 301 else render_error(status, base_url=site.base_url)
            self._send(status, body, "text/html; charset=utf-8", head=head, headers=headers)
            return
        validators = {"ETag": made.etag, "Last-Modified": formatdate(made.last_modified, usegmt=True)}
        if self._not_modified(made):
            self._send(304, b"", None, head=True, headers=validators, status_only=True)
            return
        body = made.body
        headers = dict(validators)
        compressible = not made.content_type.startswith("application/pdf")
        if compressible:
            headers["Vary"] = "Accept-Encoding"
        if site.gzip_responses and compressible and "gzip" in self.headers.get("Accept-Encoding", "").lower():
            if made.gzipped is None:
                made.gzipped = gzip.compress(made.body, mtime=0)
            body = made.gzipped
            headers["Content-Encoding"] = "gzip"
        self._send(200, body, made.content_type, head=head, headers=headers)

    def _not_modified(self, resource: _Resource) -> bool:
        """RFC 9110: If-None-Match decides when sent; else If-Modified-Since."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or resource.etag in tags
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                since = parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            return int(resource.last_modified) <= since.timestamp()
        return False

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        *,
        head: bool,
        headers: dict[str, str] | None = None,
        status_only: bool = False,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if not status_only:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if not head and body:
            try:
                self.wfile.write(body)
                sent = len(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout, or a body limit): logged as sent 0
        self.server.site._log_request(
            LoggedRequest(
                method=self.command,
                path=self.path,
                status=status,
                bytes_sent=sent,
                headers={name.lower(): value for name, value in self.headers.items()},
                time=time.time(),
            )
        )


# ---------------------------------------------------------------------------------------------
# Saved copies of pages.


def write_warc(
    path: Path,
    articles: Iterable[SiteArticle],
    *,
    base_url: str = ARCHIVE_BASE_URL,
    site_name: str = SITE_NAME,
) -> Path:
    """A ``.warc.gz`` of the articles' pages as a crawler writes one: a warcinfo record, then a
    request and a response record (HTTP headers with the page's header charset) for each page,
    and, as real crawls hold, the robots.txt (text/plain) and a 404 page among them, which a
    reader of HTML responses skips."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    chosen = list(articles)
    base_url = base_url.rstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as output:
        writer = WARCWriter(output, gzip=True)
        writer.write_record(
            writer.create_warcinfo_record(path.name, {"software": "tests/news_site.py", "format": "WARC 1.0"})
        )

        def pair(url: str, status: str, body: bytes, content_type: str) -> None:
            parts = urlsplit(url)
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders(
                    f"GET {parts.path or '/'} HTTP/1.1",
                    [
                        ("Host", parts.netloc),
                        ("User-Agent", "qa-news-indexer/0.1"),
                        ("Accept-Encoding", "identity"),
                    ],
                    is_http_request=True,
                ),
            )
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            response = writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(body),
                http_headers=StatusAndHeaders(status, headers, protocol="HTTP/1.1"),
            )
            writer.write_request_response_pair(request, response)

        pair(f"{base_url}/robots.txt", "200 OK", b"User-agent: *\nDisallow: /private/\n", "text/plain")
        for index, article in enumerate(chosen):
            body = render_article(article, base_url=base_url, others=chosen, site_name=site_name)
            pair(
                f"{base_url}{article.path}",
                "200 OK",
                body,
                _content_type("text/html", article.header_charset),
            )
            if index == 0:
                missing = render_error(404, base_url=base_url, site_name=site_name)
                pair(f"{base_url}/missing/page.html", "404 Not Found", missing, "text/html; charset=utf-8")
    return path


def write_html_folder(
    path: Path,
    articles: Iterable[SiteArticle],
    *,
    base_url: str = ARCHIVE_BASE_URL,
    site_name: str = SITE_NAME,
) -> dict[str, Path]:
    """Each article's page as ``path/<section_key>/<id>.html``, in its own encoding (as "Save
    page as" keeps them); returns the files by article id."""
    chosen = list(articles)
    written: dict[str, Path] = {}
    for article in chosen:
        target = path / article.section_key / f"{article.id}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(render_article(article, base_url=base_url, others=chosen, site_name=site_name))
        written[article.id] = target
    return written


def iter_pages(site: NewsSite) -> Iterator[tuple[str, SiteArticle, bytes]]:
    """(url, article, page bytes) of every served article, rendered as the site serves them,
    without a request: for extraction tests and benchmarks."""
    served = sorted(site.articles.items(), key=lambda item: (item[1].published_dt, item[1].id), reverse=True)
    others = [article for _, article in served]  # in the server's order, for the same related links
    for url, article in served:
        yield (
            url,
            article,
            render_article(article, base_url=site.base_url, others=others, site_name=site.site_name),
        )


# -- comparing what a crawler made of a page with the truth -----------------------------
def token_f1(found: str, truth: str) -> float:
    """Token F1 over whitespace tokens (bags, so repeated words count)."""
    found_tokens, true_tokens = Counter(found.split()), Counter(truth.split())
    common = sum((found_tokens & true_tokens).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(found_tokens.values()), common / sum(true_tokens.values())
    return 2 * precision * recall / (precision + recall)


def plain_title(text: str) -> str:
    """A title as a reader compares it: whitespace collapsed, invisible direction marks gone."""
    return " ".join(text.replace("\u200e", " ").replace("\u200f", " ").split())
