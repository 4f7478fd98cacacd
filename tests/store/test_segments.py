"""The index at scale: approximate search, segments (add, change, delete, merge),
kill -9 during a segment write and a merge, and reloads that map only new segments.

The archive is generated (``tests/archive.py``): 50k chunks with clustered vectors,
ingested without the model.
"""

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from qa.config import IndexSettings, Settings
from qa.embed.embedders import Embedder
from qa.errors import IndexUnavailableError, NotFoundError
from qa.ingest.indexed import reindexed_document
from qa.ingest.pipeline import build_index, ingest
from qa.records import SegmentInfo
from qa.search.retrieve import Retriever
from qa.serve.service import LiveService, QAService
from qa.store.index import Index, index_lock, load_index, merges_due, publish_merge, versions_dir
from qa.text.normalize import tokens
from tests import archive
from tests.conftest import ADMIN, ADMIN_TOKEN, DEV_CORPUS, REPO, Server, free_port, start_server

ARTICLES = 12500  # 50k chunks


def open_index(path: Path, **settings: object) -> Index:
    return load_index(path, IndexSettings(**settings), model=archive.MODEL, dimension=archive.DIMENSION)  # type: ignore[arg-type]


def copy_of(index: Path, target: Path) -> Path:
    """A copy of an index made of hard links: segment files are never written to."""
    shutil.copytree(index.parent, target, symlinks=True, copy_function=os.link)
    return target / index.name


@pytest.fixture(scope="module")
def archive_50k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("archive") / "idx"
    archive.build(index, Settings(), 0, ARTICLES)
    return index


def query_vectors(count: int) -> list[np.ndarray]:
    """Vectors shaped like the archive's (near its clusters) but not in it."""
    return [archive.article_vectors(f"query-{i}")[0][0] for i in range(count)]


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


def test_an_update_writes_one_small_segment_and_deleted_articles_are_never_returned(
    archive_50k: Path, tmp_path: Path
) -> None:
    path = copy_of(archive_50k, tmp_path / "copy")
    before = open_index(path)
    changed, removed, added = range(0, 50, 5), range(100, 110), range(ARTICLES, ARTICLES + 10)
    manifest = ingest(
        path,
        Settings(),
        itertools.chain(*(archive.documents(i, 1, revision=1) for i in changed),
                        archive.documents(added[0], len(added))),
        model=archive.MODEL,
        dimension=archive.DIMENSION,
        removed=[f"doc-{i}" for i in removed],
    )  # fmt: skip
    old, new = manifest.segments
    assert old.name == before.manifest.segments[0].name and old.deleted_documents == 20
    assert (new.documents, manifest.documents, manifest.chunks) == (20, ARTICLES, 4 * ARTICLES)
    assert new.bytes / old.bytes < 0.01
    # The old segment's files are the same files: linked, not written again.
    old_files = path.resolve() / "segments" / old.name
    assert (old_files / "chunks.faiss").stat().st_ino == (
        before.folder / "segments" / old.name / "chunks.faiss"
    ).stat().st_ino

    index = open_index(path)
    for number in removed:
        with pytest.raises(NotFoundError):
            index.document(f"doc-{number}")
    for number in [*changed, *removed]:
        old_vectors, _ = archive.article_vectors(f"doc-{number}")
        old_ids = {4 * number + c for c in range(4)}
        # Its own vector is the nearest there is, yet the deleted chunk never comes back.
        returned = {chunk_id for chunk_id, _ in index.search(old_vectors[0], 50)}
        assert not returned & old_ids and len(returned) == 50
        # Nor does BM25 return it for its own words.
        first_sentence = before.document(f"doc-{number}").text.split(".")[0]
        assert not set(index.lexical(tokens(first_sentence)).top(50)) & old_ids
    for number in changed:
        new_vectors, _ = archive.article_vectors(f"doc-{number}", 1)
        (best,) = index.chunks([index.search(new_vectors[0], 1)[0][0]])
        assert best.doc_id == f"doc-{number}" and best.start == 0
        assert index.document(best.doc_id).text != before.document(best.doc_id).text


def test_results_after_a_merge_equal_those_before_it(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "idx"
    settings = Settings()
    archive.build(path, settings, 0, 1500)
    archive.build(path, settings, 1500, 30)
    ingest(path, settings, archive.documents(10, 20, revision=1), model=archive.MODEL,
           dimension=archive.DIMENSION, removed=["doc-3", "doc-1510"])  # fmt: skip
    before = open_index(path)
    assert len(before.manifest.segments) == 3
    # Sentences of the archive: BM25 ties (common among random words) would make the
    # candidates cut at a tie depend on chunk ids, which a merge renumbers.
    questions = [before.document(f"doc-{i}").text.split(".")[1] for i in range(40, 1400, 45)]
    queries = query_vectors(30)

    def results(index: Index) -> list[object]:
        retriever = Retriever(index, embedder)
        passages = [
            [(p.doc_id, p.start, p.end, p.text, p.score) for p in retriever.retrieve(q, 5).passages]
            for q in questions
        ]
        dense = [
            [(c.doc_id, c.start, c.end) for c in index.chunks([i for i, _ in index.search(v, 10)])]
            for v in queries
        ]
        return [passages, dense]

    expected = results(before)
    with index_lock(path):
        names = [s.name for s in before.manifest.segments]
        manifest = publish_merge(path, before, names, IndexSettings(), reindexed_document)
    (merged,) = manifest.segments
    assert (merged.documents, merged.deleted_documents) == (before.manifest.documents, 0)
    assert (manifest.documents, manifest.chunks, manifest.sentences) == (
        before.manifest.documents, before.manifest.chunks, before.manifest.sentences,
    )  # fmt: skip
    after = open_index(path)
    assert results(after) == expected
    with pytest.raises(NotFoundError):
        after.document("doc-3")


def test_full_tiers_merge_after_an_update() -> None:
    def segment(name: str, chunks: int, deleted: int = 0) -> SegmentInfo:
        return SegmentInfo(name, 0, 0, chunks // 4, chunks, 3 * chunks, deleted, "flat", "Flat", 0)

    def manifest(*segments: SegmentInfo) -> object:
        from qa.records import Manifest

        return Manifest(3, "m", 384, 256, 64, 0, 0, 0, "", "", "", "", segments=segments)

    small = [segment(f"s{i}", 400) for i in range(8)]
    assert merges_due(manifest(segment("big", 400_000), *small[:7]), 8) == []  # type: ignore[arg-type]
    assert merges_due(manifest(segment("big", 400_000), *small), 8) == [[s.name for s in small]]  # type: ignore[arg-type]
    # A segment with most of its documents deleted is rewritten even in a tier that is not full.
    assert merges_due(manifest(segment("big", 400_000, deleted=60_000)), 8) == [["big"]]  # type: ignore[arg-type]


def test_an_update_that_fills_a_tier_is_merged_and_published(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    settings = Settings().replace({"index.merge_factor": 3})
    archive.build(path, settings, 0, 200)
    archive.build(path, settings, 200, 10)
    assert len(open_index(path).manifest.segments) == 2
    archive.build(path, settings, 210, 10)  # a third segment of the smallest tier: they merge
    index = open_index(path)
    (segment,) = index.manifest.segments
    assert segment.documents == index.manifest.documents == 220


def test_a_segment_write_or_merge_killed_at_any_moment_leaves_a_served_version(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    archive.build(path, Settings(), 0, 2000)
    served = path.resolve()
    command = [sys.executable, "-m", "tests.archive", str(path), "2000", "2000", "--merge-factor", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    finished_at = None
    for delay in (0.5, 2.0, 4.0, 6.0, 8.0, 10.0):
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        index = open_index(path)
        if index.folder != served:  # the update (or the merge after it) was published before the kill
            served = index.folder
            finished_at = finished_at or delay
        assert index.manifest.version == served.name
        assert index.manifest.documents in (2000, 4000)
        assert index.document("doc-0").doc_id == "doc-0" and len(index.search(query_vectors(1)[0], 10)) == 10
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    index = open_index(path)
    assert index.manifest.documents == 4000 and len(index.manifest.segments) == 1  # merged
    assert not list(versions_dir(path).glob(".tmp-*"))
    print(f"first kill after a publish: {finished_at} s")


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
