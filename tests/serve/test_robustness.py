"""The service under faults: hot reload while queried, damaged index files, limits, admin."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.config import Settings
from qa.embed.base import Embedder
from qa.ingest.pipeline import build_index
from tests.conftest import ADMIN, ADMIN_TOKEN, SAMPLE_CORPUS, QueryLoad, Server, start_server


@pytest.fixture
def live_index(tmp_path: Path, sample_settings: Settings, embedder: Embedder) -> tuple[Path, Path]:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(SAMPLE_CORPUS / "g20-antalya-2015.txt", source)
    index = tmp_path / "idx"
    build_index(source, index, sample_settings, embedder, progress=False)
    return source, index


@pytest.fixture
def server(live_index: tuple[Path, Path]) -> Iterator[Server]:
    server = start_server(
        live_index[1], QA_SERVER_RELOAD_INTERVAL_SECONDS="0.5", QA_LIMITS_RATE_LIMIT_PER_MINUTE="0",
        QA_SERVER_ADMIN_TOKEN=ADMIN_TOKEN,
    )  # fmt: skip
    yield server
    server.stop()


NEW_ARTICLE = "أعلنت بلدية أنطاليا افتتاح متحف الفسيفساء البيزنطية الجديد قرب الميناء القديم."


def quotes_in_passages(body: dict[str, Any]) -> str | None:
    """One version answers the whole request: every quote lies in a passage it returned."""
    passages = [(p["doc_id"], p["start"], p["end"]) for p in body.get("passages", [])]
    for citation in body.get("citations", []):
        if not any(
            d == citation["doc_id"] and s <= citation["start"] and citation["end"] <= e
            for d, s, e in passages
        ):
            return f"citation {citation} outside the passages of its answer"
    return None


def test_a_published_index_is_served_within_seconds_with_no_failed_request(
    server: Server, live_index: tuple[Path, Path], sample_settings: Settings, embedder: Embedder
) -> None:
    source, index = live_index
    before = httpx.get(f"{server.base}/healthz").json()["version"]
    with QueryLoad(
        server.base, "ماذا طلب كاميرون من بوتين؟", "متحف الفسيفساء", check=quotes_in_passages
    ) as load:
        time.sleep(1)
        (source / "museum.txt").write_text(NEW_ARTICLE, "utf-8")
        build_index(source, index, sample_settings, embedder, progress=False)
        published = time.monotonic()
        while httpx.get(f"{server.base}/healthz").json()["version"] == before:
            assert time.monotonic() - published < 5, "the new version was not served within 5 s"
            time.sleep(0.1)
        time.sleep(1)
    assert load.failures == [] and load.answered > 10
    found = httpx.get(f"{server.base}/api/search", params={"q": "متحف الفسيفساء البيزنطية", "k": 1}).json()
    assert found["results"][0]["doc_id"] == "museum"


def test_damaged_index_files_fail_the_health_check_but_answers_continue(
    server: Server, live_index: tuple[Path, Path], sample_settings: Settings, embedder: Embedder
) -> None:
    source, index = live_index
    served = index.resolve()
    (segment,) = (served / "segments").iterdir()
    (segment / "chunks.faiss").unlink()
    # Replaced, as tools that save files do: a new file renamed over the old one.
    (segment / "garbage").write_bytes(b"garbage")
    (segment / "garbage").rename(segment / "store.sqlite")
    (segment / "sentences.f16").unlink()
    health = httpx.get(f"{server.base}/healthz")
    assert health.status_code == 503 and health.json() == {"status": "degraded", "version": served.name}
    details = httpx.get(f"{server.base}/healthz", headers=ADMIN).json()
    assert "run qa reindex" in details["problem"] and str(served.parent) not in details["problem"]
    answer = httpx.post(
        f"{server.base}/api/ask", json={"question": "What did Cameron ask Putin?"}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["found"] is True

    build_index(source, index, sample_settings, embedder, progress=False)  # the next reindex recovers
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.base}/healthz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert httpx.get(f"{server.base}/healthz").json()["version"] != served.name


def test_admin_reload_needs_the_token_and_logs_omit_request_contents(server: Server) -> None:
    assert httpx.post(f"{server.base}/admin/reload").status_code == 401
    wrong = httpx.post(f"{server.base}/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "admin token" in wrong.json()["detail"]
    right = httpx.post(f"{server.base}/admin/reload", headers=ADMIN)
    assert right.status_code == 200 and right.json()["status"] == "ok"
    secret_question = "سؤال سري عن الميزانية"
    httpx.post(f"{server.base}/api/ask", json={"question": secret_question}, timeout=30)
    httpx.get(f"{server.base}/api/search", params={"q": secret_question})
    time.sleep(0.5)
    log = "".join(server.log)
    assert "POST /api/ask 200" in log and "GET /api/search 200" in log
    assert secret_question not in log and ADMIN_TOKEN not in log


def test_rate_limit_timeout_and_disabled_admin_answer_with_clear_errors(
    live_index: tuple[Path, Path],
) -> None:
    server = start_server(
        live_index[1], QA_LIMITS_RATE_LIMIT_PER_MINUTE="3", QA_LIMITS_REQUEST_TIMEOUT_SECONDS="0.001"
    )
    try:
        statuses = [httpx.get(f"{server.base}/api/search", params={"q": "بوتين"}) for _ in range(5)]
        assert [r.status_code for r in statuses[:3]] == [503, 503, 503]
        assert "took longer than 0.001 s" in statuses[0].json()["detail"]
        assert statuses[4].status_code == 429
        assert httpx.get(f"{server.base}/healthz").status_code == 200  # not rate limited
        admin = httpx.post(f"{server.base}/admin/reload", headers={"Authorization": "Bearer x"})
        assert admin.status_code in (404, 429)
        for response in statuses:
            assert "Traceback" not in response.text and "/work" not in response.text
            json.loads(response.text)
    finally:
        server.stop()
