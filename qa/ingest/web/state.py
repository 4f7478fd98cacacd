"""What a crawl remembers between rounds, beside the index: ``INDEX.web.sqlite``.

For every page it has fetched: the validators (ETag, Last-Modified) that make an
unchanged page cost one 304, the date its listing gave, when it was fetched, and the
article extracted from it. The articles are kept so that an unchanged page, which
sends no body, still yields its article to the reindex: the set of web articles a
round hands on is always the whole of what the crawl knows, so nothing is removed
because it was not downloaded again. For every feed and sitemap: its validators and
its last body, for the same reason.

Each page is committed as soon as it is fetched (SQLite in WAL mode, synchronous
commits), so a crawl killed with ``kill -9`` keeps every page it finished: the next
round sends conditional requests for them, gets 304s, and indexes their stored articles.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qa.errors import SourceError
from qa.records import Article

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    -- 'article' (an article is stored), 'not_article' (fetched, nothing to index), 'gone' (404/410),
    -- 'refused' (too large, not HTML, disallowed: asked again when due), 'skipped' (failed: asked next round)
    status TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    -- the <lastmod> (or feed date) its listing gave when it was last fetched
    listed_lastmod TEXT,
    fetched_at REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    article TEXT
);
CREATE TABLE IF NOT EXISTS listings (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL NOT NULL,
    body BLOB NOT NULL,
    media_type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    started REAL PRIMARY KEY,
    finished REAL,
    summary TEXT
);
"""


@dataclass(frozen=True)
class PageState:
    url: str
    status: str
    etag: str | None
    last_modified: str | None
    listed_lastmod: str | None
    fetched_at: float
    article: Article | None


@dataclass(frozen=True)
class ListingState:
    url: str
    etag: str | None
    last_modified: str | None
    body: bytes
    media_type: str


def state_path(index_path: Path) -> Path:
    """Where the crawl state of the index at ``index_path`` lives."""
    return index_path.with_name(index_path.name + ".web.sqlite")


class CrawlState:
    """The crawl's memory (see the module docstring); one writer at a time, as the
    index's build lock already ensures for ``qa reindex`` and ``qa watch``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SourceError(f"{path}: crawl state of schema {version}, expected {SCHEMA_VERSION}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{path}: cannot open the crawl state: {exc}") from exc
        self.path = path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def page(self, url: str) -> PageState | None:
        row = self._db.execute(
            "SELECT url, status, etag, last_modified, listed_lastmod, fetched_at, article "
            "FROM pages WHERE url = ?",
            (url,),
        ).fetchone()
        return None if row is None else _page(row)

    def save_page(
        self,
        url: str,
        status: str,
        *,
        etag: str | None,
        last_modified: str | None,
        listed_lastmod: str | None,
        article: Article | None = None,
        reason: str = "",
        fetched_at: float | None = None,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pages "
            "(url, status, etag, last_modified, listed_lastmod, fetched_at, reason, article) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                url, status, etag, last_modified, listed_lastmod,
                time.time() if fetched_at is None else fetched_at, reason,
                None if article is None else _article_json(article),
            ),
        )  # fmt: skip

    def touch_page(self, url: str, listed_lastmod: str | None, fetched_at: float | None = None) -> None:
        """A page asked again and unchanged (a 304)."""
        self._db.execute(
            "UPDATE pages SET fetched_at = ?, listed_lastmod = COALESCE(?, listed_lastmod) WHERE url = ?",
            (time.time() if fetched_at is None else fetched_at, listed_lastmod, url),
        )

    def articles(self, *, include_gone: bool = False) -> Iterator[tuple[str, Article]]:
        """The stored articles by page URL, in a stable order (by URL); gone pages'
        last articles too when ``include_gone`` (kept though their page answers 404)."""
        statuses = ("article", "gone") if include_gone else ("article",)
        rows = self._db.execute(
            "SELECT url, article FROM pages WHERE status IN (?, ?) AND article IS NOT NULL ORDER BY url",
            (statuses[0], statuses[-1]),
        )
        for url, article in rows:
            yield url, _article(article)

    def stale_pages(self, fetched_before: float, limit: int) -> list[PageState]:
        """Article pages last fetched before ``fetched_before``, the longest unseen first."""
        rows = self._db.execute(
            "SELECT url, status, etag, last_modified, listed_lastmod, fetched_at, article FROM pages "
            "WHERE status = 'article' AND fetched_at < ? ORDER BY fetched_at LIMIT ?",
            (fetched_before, limit),
        )
        return [_page(row) for row in rows]

    def listing(self, url: str) -> ListingState | None:
        row = self._db.execute(
            "SELECT url, etag, last_modified, body, media_type FROM listings WHERE url = ?", (url,)
        ).fetchone()
        if row is None:
            return None
        return ListingState(row[0], row[1], row[2], zlib.decompress(row[3]), row[4])

    def save_listing(
        self, url: str, *, etag: str | None, last_modified: str | None, body: bytes, media_type: str
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO listings (url, etag, last_modified, fetched_at, body, media_type) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (url, etag, last_modified, time.time(), zlib.compress(body), media_type),
        )

    def start_round(self) -> float:
        started = time.time()
        self._db.execute("INSERT OR REPLACE INTO rounds (started) VALUES (?)", (started,))
        return started

    def finish_round(self, started: float, summary: dict[str, object]) -> None:
        self._db.execute(
            "UPDATE rounds SET finished = ?, summary = ? WHERE started = ?",
            (time.time(), json.dumps(summary, ensure_ascii=False), started),
        )

    def last_round(self) -> tuple[float, float | None, dict[str, object] | None] | None:
        """The last round begun: when it started, when it finished (None: it never
        did, e.g. it was killed) and its summary."""
        row = self._db.execute(
            "SELECT started, finished, summary FROM rounds ORDER BY started DESC"
        ).fetchone()
        if row is None:
            return None
        return row[0], row[1], (json.loads(row[2]) if row[2] else None)


def _page(row: tuple[object, ...]) -> PageState:
    url, status, etag, last_modified, listed_lastmod, fetched_at, article = row
    return PageState(
        str(url), str(status),
        None if etag is None else str(etag),
        None if last_modified is None else str(last_modified),
        None if listed_lastmod is None else str(listed_lastmod),
        float(fetched_at),  # type: ignore[arg-type]
        None if article is None else _article(str(article)),
    )  # fmt: skip


def _article_json(article: Article) -> str:
    return json.dumps(
        {
            "id": article.doc_id,
            "title": article.title,
            "text": article.text,
            "url": article.url,
            "published": article.published,
            "meta": {key: list(values) for key, values in article.meta.items()},
        },
        ensure_ascii=False,
    )


def _article(data: str) -> Article:
    record = json.loads(data)
    meta = {key: tuple(values) for key, values in record["meta"].items()}
    return Article(record["id"], record["title"], record["text"], record["url"], record["published"], meta)
