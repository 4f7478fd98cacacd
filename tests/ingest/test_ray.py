"""`qa reindex --engine ray` on a real Ray cluster: a head started as separate processes
on loopback, the same output as the local engine, incremental runs, and faults (an
actor killed, the driver killed, a cluster that cannot be reached or has no room)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qa.config import IndexSettings, Settings
from qa.embed.base import Embedder
from qa.serve.service import QAService
from qa.store.index import load_index, read_manifest
from qa.store.segment_reader import StoredDocument
from tests.conftest import DEV_CORPUS, REPO, free_port

from .test_reindex import write_corpus

QA = [sys.executable, "-m", "qa.cli"]
# What Ray names the processes of the engine's actors (ray::MapWorker(MapBatches(EmbedArticles))...).
ACTOR_TITLE = "MapBatches(EmbedArticles)"
# Keeps every Ray connection on 127.0.0.1, and no token file in $HOME.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class RayCluster:
    address: str
    head: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """A one-node Ray cluster of 2 CPUs on loopback, in its own process group, which is
    killed afterwards whatever the tests did."""
    port = free_port()
    # Short: Ray's socket paths live under it, and a Unix socket path has 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray = Path(sys.executable).parent / "ray"
    command = [str(ray), "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
               "--port", str(port), "--include-dashboard=false", "--disable-usage-stats",
               "--object-store-memory", str(300 * 2**20), "--temp-dir", temp_dir]  # fmt: skip
    head = subprocess.Popen(
        command, env={**os.environ, **RAY_ENV}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield RayCluster(f"127.0.0.1:{port}", head)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(3)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def reindex(
    source: Path, index: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    command = [*QA, "reindex", "--source", str(source), "--index", str(index), "--no-progress", *args]
    return subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(process: subprocess.Popen[str], timeout: float = 900) -> dict[str, object]:
    """The JSON summary of a reindex that must succeed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return summary


def on_ray(cluster: RayCluster, source: Path, index: Path) -> subprocess.Popen[str]:
    return reindex(source, index, "--engine", "ray", "--ray-address", cluster.address)


def live_documents(index_path: Path) -> dict[str, StoredDocument]:
    """Every served document of an index, with its chunks, sentences and vectors."""
    manifest = read_manifest(index_path)
    index = load_index(index_path, IndexSettings(), model=manifest.model, dimension=manifest.dimension)
    deleted = index.deleted_documents()
    documents = {
        document.article.doc_id: document
        for name, segment in index.segments().items()
        for document in segment.stored_documents(frozenset(deleted.get(name, ())))
    }
    index.close()
    return documents


def assert_same_documents(
    actual: dict[str, StoredDocument], expected: dict[str, StoredDocument], doc_ids: set[str]
) -> None:
    """The same articles, chunks and sentences, and vectors with cosine >= 0.9999 row by row."""
    assert doc_ids <= actual.keys() and doc_ids <= expected.keys()
    for doc_id in sorted(doc_ids):
        mine, theirs = actual[doc_id], expected[doc_id]
        assert (mine.article, mine.content_hash) == (theirs.article, theirs.content_hash)
        assert (mine.chunks, mine.sentences) == (theirs.chunks, theirs.sentences), doc_id
        for a, b in (
            (mine.chunk_vectors, theirs.chunk_vectors),
            (mine.sentence_vectors, theirs.sentence_vectors),
        ):
            assert a.shape == b.shape
            cosines = np.sum(a.astype(np.float64) * b, axis=1) / (
                np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            )
            assert cosines.min() >= 0.9999, (doc_id, cosines.min())


def actor_pids() -> list[int]:
    result = subprocess.run(["pgrep", "-f", ACTOR_TITLE.replace("(", r"\(").replace(")", r"\)")],
                            capture_output=True, text=True)  # fmt: skip
    return [int(pid) for pid in result.stdout.split()]


def wait_for_actors(process: subprocess.Popen[str], count: int, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(pids := actor_pids()) < count:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the actors did not start"
        time.sleep(0.2)
    return pids


def dev_records() -> list[dict[str, str]]:
    return [json.loads(line) for line in DEV_CORPUS.read_text("utf-8").splitlines()]


def test_ray_engine_indexes_the_dev_corpus_as_the_local_engine_does(
    ray_cluster: RayCluster, dev_index: Path, base_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    index = tmp_path / "ray"
    summary = finished(on_ray(ray_cluster, DEV_CORPUS, index))
    assert (summary["engine"], summary["actors"], summary["added"]) == ("ray", 2, 144)
    local = read_manifest(dev_index)
    assert (summary["chunks"], summary["sentences"]) == (local.chunks, local.sentences)
    # Each sentence embedded once, the chunks pooled from them (embedding.vectors).
    assert summary["texts_embedded"] == local.sentences
    assert isinstance(summary["texts_per_second"], float) and summary["texts_per_second"] > 0

    expected = live_documents(dev_index)
    assert_same_documents(live_documents(index), expected, set(expected))

    # The same searches and answers, from the same passages with the same scores.
    questions = [
        json.loads(line)["question_ar"] for line in (DEV_CORPUS.parent / "ci_questions.jsonl").open()
    ]
    services = [
        QAService.open(base_settings.replace({"index.path": p}), embedder=embedder)
        for p in (index, dev_index)
    ]
    try:
        for question in questions[:40]:
            ray_passages, local_passages = (service.search(question, 10) for service in services)
            assert ray_passages == local_passages, question
            ray_answer, local_answer = (service.ask(question) for service in services)
            assert (ray_answer.answer, ray_answer.citations) == (local_answer.answer, local_answer.citations)
    finally:
        for service in services:
            service.close()


def test_an_incremental_run_on_the_cluster_embeds_only_new_and_changed_articles(
    ray_cluster: RayCluster, dev_index: Path, tmp_path: Path
) -> None:
    records = dev_records()
    source, index = tmp_path / "corpus.jsonl", tmp_path / "ray"
    write_corpus(source, records[:10])
    assert finished(on_ray(ray_cluster, source, index))["added"] == 10

    changed = {**records[3], "text": records[3]["text"] + "\n\nأضيفت هذه الفقرة عن مهرجان الزيتون في القرية."}
    write_corpus(source, [*records[:3], changed, *records[5:12]])  # 4 removed, 3 changed, 10 and 11 added
    summary = finished(on_ray(ray_cluster, source, index))
    assert (summary["added"], summary["updated"], summary["removed"], summary["unchanged"]) == (2, 1, 1, 8)

    documents = live_documents(index)
    new_ids = {records[10]["id"], records[11]["id"], changed["id"]}
    embedded = sum(len(documents[i].sentences) for i in new_ids)
    assert summary["texts_embedded"] == embedded
    assert summary["chunks_embedded"] == sum(len(documents[i].chunks) for i in new_ids)
    assert records[4]["id"] not in documents
    assert documents[changed["id"]].article.text == changed["text"]
    assert_same_documents(documents, live_documents(dev_index), set(documents) - {changed["id"]})


def test_an_actor_killed_during_the_run_is_restarted_and_the_output_is_unchanged(
    ray_cluster: RayCluster, dev_index: Path, tmp_path: Path
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "ray"
    write_corpus(source, dev_records()[:48])
    run = on_ray(ray_cluster, source, index)
    started = set(wait_for_actors(run, 2))
    time.sleep(4)  # into the actors' first batches: 3 articles, some 6 s on one core
    assert run.poll() is None
    os.kill(min(started), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not set(actor_pids()) - started:  # Ray starts a new process for the actor
        assert run.poll() is None, "the run ended before Ray restarted the killed actor"
        assert time.monotonic() < deadline, "Ray did not restart the killed actor"
        time.sleep(0.2)
    summary = finished(run)
    assert summary["added"] == 48
    documents = live_documents(index)
    assert len(documents) == 48
    assert_same_documents(documents, live_documents(dev_index), set(documents))


def test_a_killed_driver_publishes_nothing_and_the_next_run_completes(
    ray_cluster: RayCluster, dev_index: Path, base_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    records = dev_records()
    source, index = tmp_path / "corpus.jsonl", tmp_path / "served"
    write_corpus(source, records[:3])
    finished(reindex(source, index))  # the served index, by the local engine
    served = index.resolve()
    before = live_documents(index)

    write_corpus(source, records[:27])
    run = on_ray(ray_cluster, source, index)
    wait_for_actors(run, 2)
    time.sleep(3)
    assert run.poll() is None
    run.send_signal(signal.SIGKILL)
    run.wait()

    assert index.resolve() == served
    after = live_documents(index)
    assert after.keys() == before.keys()
    assert_same_documents(after, before, set(before))
    deadline = time.monotonic() + 60
    while actor_pids():  # the job's actors end with its driver
        assert time.monotonic() < deadline, "the dead driver's actors were not stopped"
        time.sleep(0.5)

    summary = finished(on_ray(ray_cluster, source, index))
    assert (summary["added"], summary["unchanged"]) == (24, 3)
    documents = live_documents(index)
    assert len(documents) == 27
    assert_same_documents(documents, live_documents(dev_index), set(documents))


def test_a_cluster_without_room_for_the_embedders_fails_naming_its_address(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, dev_records()[:1])
    started = time.monotonic()
    run = reindex(source, tmp_path / "idx", "--engine", "ray", "--ray-address", ray_cluster.address,
                  env={"QA_REINDEX_RAY_ACTORS": "3", "QA_REINDEX_RAY_TIMEOUT_SECONDS": "3"})  # fmt: skip
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and out == ""
    assert f"the Ray cluster at {ray_cluster.address} has 2 CPUs" in err and "no room for 3 embedders" in err
    assert time.monotonic() - started < 60
    assert not (tmp_path / "idx").exists()


def test_an_unreachable_cluster_fails_naming_its_address_in_bounded_time(tmp_path: Path) -> None:
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, dev_records()[:1])
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    run = reindex(source, tmp_path / "idx", "--engine", "ray", "--ray-address", address,
                  env={"QA_REINDEX_RAY_TIMEOUT_SECONDS": "2"})  # fmt: skip
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1
    assert f"error: cannot reach the Ray cluster at {address} within 2 s" in err
    assert time.monotonic() - started < 30


def test_the_ray_engine_without_the_ray_extra_names_the_install_command(tmp_path: Path) -> None:
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, dev_records()[:1])
    # As if Ray were not installed: `import ray` fails.
    code = "import sys; sys.modules['ray'] = None; from qa.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "reindex", "--engine", "ray", "--source", str(source),
               "--index", str(tmp_path / "idx")]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "needs the ray extra" in result.stderr and "pip install -e '.[ray]'" in result.stderr
    assert not (tmp_path / "idx").exists()
