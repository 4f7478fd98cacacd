"""`qa watch` following a live (loopback) news site: rounds published while the service
answers, with no failed request, and a round killed with SIGKILL that loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from qa.config import Settings
from qa.embed.base import Embedder
from qa.ingest.pipeline import build_index
from qa.ingest.web.crawl import doc_id_of
from qa.store.index import load_index, read_manifest
from tests.conftest import REPO, QueryLoad, Server, start_server
from tests.ingest.web.test_crawl import FETCH, crawl_settings, short_articles, sources
from tests.news_site import NewsSite, SiteArticle

# The same fetch settings as the in-process rounds, for a `qa watch` subprocess.
WATCH_ENV = {
    "QA_FETCH_ALLOW_PRIVATE_HOSTS": "true",
    "QA_FETCH_TIMEOUT_SECONDS": str(FETCH["fetch.timeout_seconds"]),
    "QA_FETCH_MAX_BODY_BYTES": str(FETCH["fetch.max_body_bytes"]),
    "QA_FETCH_MAX_RETRY_AFTER_SECONDS": str(FETCH["fetch.max_retry_after_seconds"]),
    "QA_FETCH_MAX_RETRIES": str(FETCH["fetch.max_retries"]),
}


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite(short_articles()) as news:
        yield news


def later_articles(count: int) -> list[SiteArticle]:
    """Articles the site does not serve yet, short ones."""
    return short_articles(20 + count)[20:]


def watch_process(index: Path, site: NewsSite, *args: str, **env: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "qa.cli", "watch", "--index", str(index), "--no-progress"]
    for url in sources(site):
        command += ["--source", url]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    environment.update({**WATCH_ENV, **env})
    return subprocess.Popen(
        [*command, *args], cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def first_round(site: NewsSite, index: Path, settings: Settings, embedder: Embedder) -> Settings:
    crawl = crawl_settings(settings, index)
    build_index(sources(site), index, crawl, embedder, progress=False)
    return crawl


def test_watch_publishes_new_articles_while_the_service_answers_every_request(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    first_round(site, index, sample_settings, embedder)
    server: Server = start_server(
        index, QA_SERVER_RELOAD_INTERVAL_SECONDS="0.5", QA_LIMITS_RATE_LIMIT_PER_MINUTE="0"
    )
    watcher = watch_process(index, site, "--every", "1", QA_FETCH_MIN_DELAY_SECONDS="0")
    try:
        with QueryLoad(server.base, "ما هي الأخبار الرياضية؟", "تونس") as load:
            new = later_articles(1)[0]
            url = site.add(new)
            deadline = time.monotonic() + 120
            while True:
                found = httpx.get(f"{server.base}/api/documents/{doc_id_of(url)}", timeout=10)
                if found.status_code == 200:
                    break
                assert watcher.poll() is None, watcher.communicate()[0]
                assert time.monotonic() < deadline, "the new article was not served within 120 s"
                time.sleep(0.5)
            assert found.json()["title"] == " ".join(new.title.split())
            time.sleep(1)
    finally:
        watcher.send_signal(signal.SIGTERM)
        output = watcher.communicate(timeout=120)[0]
        server.stop()
    assert watcher.returncode == 0, output
    assert load.failures == [] and load.answered > 10
    assert '"crawl": {' in output and "round:" in output


def test_a_round_killed_midway_leaves_the_served_index_and_the_next_round_completes(
    tmp_path: Path, site: NewsSite, sample_settings: Settings, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    settings = first_round(site, index, sample_settings, embedder)
    served = index.resolve()
    before = read_manifest(index)
    added = [site.add(article) for article in later_articles(6)]
    added_paths = {urlsplit(url).path for url in added}
    site.clear_log()
    # One page a second: the round is still fetching when it is killed.
    watcher = watch_process(
        index, site, "--once", QA_FETCH_MIN_DELAY_SECONDS="1", QA_FETCH_PER_HOST_CONCURRENCY="1"
    )
    deadline = time.monotonic() + 120
    while len([p for p in site.fetched_paths() if p in added_paths]) < 2:
        assert watcher.poll() is None, watcher.communicate()[0]
        assert time.monotonic() < deadline, "the round fetched no new page within 120 s"
        time.sleep(0.1)
    watcher.send_signal(signal.SIGKILL)
    watcher.communicate(timeout=30)
    fetched_before_kill = {p for p in site.fetched_paths() if p in added_paths}
    assert fetched_before_kill != added_paths  # killed midway

    assert index.resolve() == served
    assert read_manifest(index).version == before.version
    opened = load_index(index, settings.index, model=embedder.model_id, dimension=embedder.dimension)
    opened.close()

    site.clear_log()
    summary = build_index(sources(site), index, settings, embedder, progress=False)
    assert summary.added == len(added) and summary.documents == before.documents + len(added)
    # The pages fetched before the kill were remembered: not downloaded again, but for
    # the one in flight when the round was killed (one request a host at a time).
    again = {r.path: r.status for r in site.requests if r.path in added_paths}
    downloaded_again = [path for path in fetched_before_kill if again.get(path) == 200]
    assert len(downloaded_again) <= 1, again
