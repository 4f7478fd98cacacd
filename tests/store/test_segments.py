"""Serving segments at scale: approximate search, reloads that map only new segments,
workers sharing one index, and segment files checked when opened and by the health
check. The archive is generated (``tests/store/conftest.py``)."""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from qa.config import Settings
from qa.embed.base import Embedder
from qa.errors import IndexUnavailableError
from qa.ingest.pipeline import build_index
from qa.serve.reload import LiveService
from qa.serve.service import QAService
from tests import archive
from tests.conftest import ADMIN, ADMIN_TOKEN, DEV_CORPUS, REPO, Server, free_port, start_server
from tests.store.conftest import ARTICLES, open_index, query_vectors


def test_ivf_search_finds_the_exact_nearest_chunks(archive_50k: Path) -> None:
    index = open_index(archive_50k)
    (segment,) = index.manifest.segments
    assert (segment.kind, segment.factory, segment.chunks) == ("ivf", "IVF1024,SQfp16", 4 * ARTICLES)
    vectors = np.concatenate([archive.article_vectors(f"doc-{i}")[0] for i in range(ARTICLES)])
    found = 0
    queries = query_vectors(200)
    for query in queries:
        exact = set(np.argsort(-(vectors @ query))[:10].tolist())
        found += len(exact & {chunk_id for chunk_id, _ in index.search(query, 10)})
    recall = found / (10 * len(queries))
    print(f"recall@10 of IVF1024 (nprobe 32) vs exact search, 50k chunks: {recall:.3f}")
    assert recall >= 0.95
    # Fewer lists searched find fewer of them: the setting is read.
    fewer = open_index(archive_50k, nprobe=1)
    found_fewer = sum(
        len(set(np.argsort(-(vectors @ q))[:10].tolist()) & {c for c, _ in fewer.search(q, 10)})
        for q in queries[:50]
    )
    assert found_fewer / 500 < recall


def test_a_reload_maps_only_the_new_segment(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "idx"
    settings = Settings().replace({"index.path": path})
    archive.build(path, settings, 0, 300)
    live = LiveService(QAService(settings, embedder, open_index(path)))
    (old,) = live.current.index.segments().values()
    archive.build(path, settings, 300, 5)
    assert live.refresh()
    segments = live.current.index.segments()
    assert len(segments) == 2 and segments[old.name] is old
    assert live.current.search(archive.vocabulary()[0]) is not None
    # Two more versions: the one the first segment was opened from is removed, and
    # the segment is served (and checked on disk) from the newest one's links.
    archive.build(path, settings, 305, 5)
    archive.build(path, settings, 310, 5)
    assert live.refresh() and live.current.index.segments()[old.name] is old
    assert not old.folder.exists() and live.disk_problem() is None


def test_two_workers_answer_from_one_index(sample_index: Path) -> None:
    server = start_server(
        sample_index,
        QA_SERVER_WORKERS="2",
        QA_LIMITS_RATE_LIMIT_PER_MINUTE="0",
        QA_SERVER_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert time.monotonic() < deadline, f"only workers {workers} answered"
            # A new connection each time: the kernel hands connections to either worker.
            health = httpx.get(f"{server.base}/healthz", headers={"Connection": "close", **ADMIN})
            if health.status_code == 200:  # the second worker may still be starting
                workers.add(health.json()["worker"])
        for _ in range(4):
            answer = httpx.post(
                f"{server.base}/api/ask", json={"question": "What did Cameron ask Putin?"}, timeout=30
            )
            assert answer.status_code == 200 and answer.json()["found"] is True
    finally:
        server.stop()
    assert server.process.pid not in workers


def _served_version(server: Server) -> str:
    """The version /healthz says is served (top level, or in the index details)."""
    body = httpx.get(f"{server.base}/healthz", timeout=10).json()
    version = body.get("version") or body.get("index", {}).get("version")
    assert isinstance(version, str), body
    return version


def test_a_filtered_search_works_after_the_version_a_segment_was_opened_from_is_pruned(
    tmp_path: Path, base_settings: Settings, embedder: Embedder
) -> None:
    """Serve, make no filtered request, reindex twice (each run adds an article): the
    first segment is then served from a version whose folder it was not opened from,
    and that folder is gone. A filtered search still answers from it."""
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = []
    for number, line in enumerate(DEV_CORPUS.read_text("utf-8").splitlines()[:5]):
        record = json.loads(line)
        record["meta"] = {"section": "people" if number % 2 else "places"}
        record["published"] = f"2015-11-{10 + number:02d}"
        records.append(record)

    def reindex(count: int) -> None:
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[:count]), "utf-8")
        build_index(source, index, base_settings.replace({"index.path": index}), embedder, progress=False)

    reindex(3)
    first_version = index.resolve()
    server = start_server(index, QA_SERVER_RELOAD_INTERVAL_SECONDS="0.2", QA_LIMITS_RATE_LIMIT_PER_MINUTE="0")
    try:
        for count in (4, 5):
            reindex(count)
            deadline = time.monotonic() + 30
            while _served_version(server) != index.resolve().name:
                assert time.monotonic() < deadline, "the new version was not served within 30 s"
                time.sleep(0.1)
        assert not first_version.exists()  # pruned: the first segment's original folder
        found = httpx.get(
            f"{server.base}/api/search", params={"q": "من هو", "k": 10, "meta.section": "people"}, timeout=30
        )
        assert found.status_code == 200, found.text
        people = {r["id"] for r in records[:5] if r["meta"]["section"] == "people"}
        results = found.json()["results"]
        assert results and {r["doc_id"] for r in results} <= people
        assert {r["doc_id"] for r in results} & {r["id"] for r in records[:3]}  # the first segment's
        dated = httpx.get(
            f"{server.base}/api/search", params={"q": "من هو", "published_from": "2015-11-10"}, timeout=30
        )
        assert dated.status_code == 200 and dated.json()["results"], dated.text
        assert httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()


def _garble_after_header(path: Path) -> None:
    """Overwrite a .npy file's data in place with garbage of the same size: the file
    still loads, with wrong numbers."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(128)  # numpy's header (version 1) is 128 bytes here
        file.write(np.random.default_rng(0).bytes(size - 128))
    assert path.stat().st_size == size and np.load(path).size


def _truncate(path: Path) -> None:
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("chunks.lex/weights.npy", _garble_after_header),
        ("chunk_sentences.npy", _garble_after_header),
        ("documents.npz", _truncate),
    ],
)
def test_a_damaged_segment_file_is_refused_at_open_and_named(
    tmp_path: Path, name: str, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "idx"
    archive.build(path, Settings(), 0, 40)
    open_index(path).close()
    (segment,) = (path.resolve() / "segments").iterdir()
    damage(segment / name)
    refused = re.escape(f"{segment.name}: {name} does not match its digest; reindex")
    with pytest.raises(IndexUnavailableError, match=refused):
        open_index(path)
    # The server refuses to start on it, as on a damaged FAISS or SQLite file, and says why.
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    served = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(path), "--port", str(free_port())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert served.returncode == 1, served.stdout + served.stderr
    assert f"{name} does not match its digest; reindex" in served.stderr
    assert "Traceback" not in served.stderr


def test_the_health_check_exercises_what_a_filtered_search_reads(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    archive.build(path, Settings(), 0, 40)
    index = open_index(path)
    assert index.disk_problem() is None
    (segment,) = index.segments().values()
    segment._store.close()  # the store stops answering, as a damaged one would
    problem = index.disk_problem()
    assert problem is not None and "store.sqlite does not answer" in problem and "reindex" in problem
