"""Every source of one reindex, read into one list of articles.

A source is one of:

- a folder of ``.txt``/``.md``/``.jsonl`` files, or one such file (:mod:`qa.ingest.sources`);
- saved web pages: ``.html`` files and ``.warc``/``.warc.gz`` web archives, in a folder
  (beside text files or not) or as one file (:func:`qa.ingest.web.crawl.saved_articles`);
- a URL (http or https): a feed, a sitemap or sitemap index, a list of URLs, or an
  article page; or a text file that lists URLs, one a line. These are crawled
  (:mod:`qa.ingest.web.crawl`) with the crawl state beside the index.

Bad input whose article cannot be named (a file, a JSONL line, a WARC record) is a
*problem*: reported, skipped, and while there is any the reindex removes no served
article. A web page that cannot be fetched is named by its URL: it is reported in
the crawl summary and its article, if the crawl had one, is kept as it was.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.config import Settings
from qa.errors import SourceError
from qa.ingest.sources import JSONL_SUFFIX, TEXT_SUFFIXES, read_articles
from qa.ingest.web.crawl import CrawlSummary, crawl, is_url, saved_articles
from qa.ingest.web.state import CrawlState, state_path
from qa.records import Article

SAVED_PAGE_SUFFIXES = (".html", ".htm", ".warc", ".warc.gz")
_URL_LINE = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Collected:
    articles: list[Article]
    # One line per skipped file, line or record whose article is unknown: "where: why".
    problems: list[str]
    # The crawl's round, when a source is a URL.
    crawl: CrawlSummary | None


def collect(
    sources: Sequence[str | Path],
    settings: Settings,
    *,
    index_path: Path,
    strict: bool = False,
    progress: bool = False,
) -> Collected:
    """The articles of every source, in source order; an id seen twice is kept the
    first time and reported the second."""
    if not sources:
        raise SourceError("no source given")
    groups: list[tuple[list[Article], str]] = []
    problems: list[str] = []
    urls: list[str] = []
    for source in sources:
        name = str(source)
        if is_url(name):
            urls.append(name)
            continue
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        listed = _listed_urls(path)
        if listed is not None:
            urls.extend(listed)
            continue
        found = False
        text_suffixes = tuple(TEXT_SUFFIXES | {JSONL_SUFFIX})
        if (path.is_file() and not _is_saved(path)) or (path.is_dir() and _has(path, text_suffixes)):
            report = read_articles(path, strict=strict, max_article_bytes=settings.source.max_article_bytes)
            groups.append((report.articles, name))
            problems.extend(report.problems)
            found = True
        if _is_saved(path) or (path.is_dir() and _has(path, SAVED_PAGE_SUFFIXES)):
            saved = saved_articles(path, settings)
            if strict and saved.problems:
                raise SourceError(saved.problems[0])
            groups.append((saved.articles, name))
            problems.extend(saved.problems)
            found = True
        if not found:
            raise SourceError(
                f"{path}: no articles: expected .txt, .md, .jsonl, .html, .warc or .warc.gz files, "
                "or a text file of URLs"
            )
    summary: CrawlSummary | None = None
    if urls:
        with CrawlState(state_path(index_path)) as state:
            result = crawl(urls, settings, state, progress=progress)
        groups.append((result.articles, "the web sources"))
        summary = result.summary
    articles: list[Article] = []
    seen: dict[str, str] = {}
    for group, where in groups:
        for article in group:
            if article.doc_id in seen:
                if seen[article.doc_id] != where:
                    message = (
                        f"{where}: duplicate document id {article.doc_id!r} (first in {seen[article.doc_id]})"
                    )
                    if strict:
                        raise SourceError(message)
                    problems.append(message)
                continue
            seen[article.doc_id] = where
            articles.append(article)
    if not articles and not urls:
        raise SourceError("no readable article in " + ", ".join(str(s) for s in sources))
    return Collected(articles, problems, summary)


def _has(folder: Path, suffixes: tuple[str, ...]) -> bool:
    return any(p.is_file() and p.name.lower().endswith(suffixes) for p in folder.rglob("*"))


def _is_saved(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SAVED_PAGE_SUFFIXES)


def _listed_urls(path: Path) -> list[str] | None:
    """The URLs of a text file that holds only URLs (one a line, ``#`` comments), else None."""
    if not path.is_file() or path.suffix.lower() != ".txt" or path.stat().st_size > 16 * 2**20:
        return None
    try:
        lines = [line.strip() for line in path.read_text("utf-8").splitlines()]
    except (OSError, UnicodeDecodeError):
        return None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines or not all(_URL_LINE.fullmatch(line) for line in lines):
        return None
    print(f"{path}: a list of {len(lines)} URLs", file=sys.stderr)
    return lines
