"""The crawl state: what a crawl remembers between rounds, across a kill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.errors import SourceError
from qa.ingest.web.state import CrawlState, state_path
from qa.records import Article

ARTICLE = Article(
    "news.example/2017/01/a", "عنوان", "نص الخبر كما نشر.", "https://news.example/2017/01/a",
    "2017-01-20", {"section": ("culture",), "source": ("Jawhara FM",)},
)  # fmt: skip


def test_the_state_lives_beside_the_index(tmp_path: Path) -> None:
    assert state_path(tmp_path / "idx") == tmp_path / "idx.web.sqlite"


def test_pages_keep_their_validators_and_articles(tmp_path: Path) -> None:
    with CrawlState(tmp_path / "s.sqlite") as state:
        state.save_page(
            ARTICLE.url or "", "article", etag='"v1"', last_modified="Fri, 20 Jan 2017 10:00:00 GMT",
            listed_lastmod="2017-01-20", article=ARTICLE, fetched_at=100.0,
        )  # fmt: skip
        state.save_page("https://news.example/index", "not_article", etag=None, last_modified=None,
                        listed_lastmod=None, reason="an index page")  # fmt: skip
        state.save_page("https://news.example/gone", "gone", etag=None, last_modified=None,
                        listed_lastmod=None, article=ARTICLE)  # fmt: skip
    with CrawlState(tmp_path / "s.sqlite") as state:
        page = state.page(ARTICLE.url or "")
        assert page is not None and page.article == ARTICLE and page.etag == '"v1"'
        assert page.listed_lastmod == "2017-01-20" and page.fetched_at == 100.0
        state.touch_page(ARTICLE.url or "", "2017-01-21", fetched_at=200.0)
        touched = state.page(ARTICLE.url or "")
        assert touched is not None and (touched.fetched_at, touched.listed_lastmod) == (200.0, "2017-01-21")
        assert [url for url, _ in state.articles()] == [ARTICLE.url]
        # A gone page's last article is handed on only when gone pages are kept.
        assert len(list(state.articles(include_gone=True))) == 2
        assert state.page("https://news.example/never") is None


def test_listings_keep_their_last_body(tmp_path: Path) -> None:
    with CrawlState(tmp_path / "s.sqlite") as state:
        body = b"<rss>" + "خبر".encode() * 1000 + b"</rss>"
        state.save_listing("https://news.example/rss", etag='"f"', last_modified=None, body=body,
                           media_type="application/rss+xml")  # fmt: skip
        listing = state.listing("https://news.example/rss")
        assert listing is not None and listing.body == body and listing.etag == '"f"'


def test_a_page_committed_before_a_kill_is_kept(tmp_path: Path) -> None:
    """Each page is committed as it is saved: a process killed with SIGKILL right
    after saving loses nothing."""
    path = tmp_path / "s.sqlite"
    script = (
        "import os, signal\n"
        "from pathlib import Path\nfrom qa.ingest.web.state import CrawlState\n"
        f"state = CrawlState(Path({str(path)!r}))\n"
        "state.start_round()\n"
        "state.save_page('https://news.example/a', 'not_article', etag='x', last_modified=None, "
        "listed_lastmod=None)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ}, check=False)
    assert result.returncode == -9
    with CrawlState(path) as state:
        page = state.page("https://news.example/a")
        assert page is not None and page.etag == "x"
        last = state.last_round()
        assert last is not None and last[1] is None  # the round was never finished


def test_a_file_that_is_not_a_state_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(SourceError, match="cannot open the crawl state"):
        CrawlState(path)
