"""Incremental reindex, the build lock, and reindexes killed at any moment."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import qa.build
from qa.build import build_index
from qa.config import IndexSettings, Settings
from qa.embed import Embedder, Vectors
from qa.errors import BuildLockedError, NotFoundError
from qa.index import Index, index_lock, load_index, versions_dir
from qa.retrieve import Retriever
from qa.segment import StoredDocument

from .conftest import REPO

ARCD = REPO / "tests" / "data" / "arcd" / "corpus.jsonl"


def write_corpus(path: Path, records: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def arcd_records(count: int) -> list[dict[str, str]]:
    lines = ARCD.read_text("utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


def test_reindex_embeds_only_new_and_changed_documents(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = arcd_records(4)
    write_corpus(source, records)
    first = build_index(source, index, sample_settings, embedder, progress=False)
    assert (first.added, first.unchanged, first.removed, first.full_rebuild) == (4, 0, 0, None)
    assert first.chunks_embedded == first.chunks

    again = build_index(source, index, sample_settings, embedder, progress=False)
    assert (again.added, again.updated, again.removed, again.unchanged, again.chunks_embedded) == (
        0,
        0,
        0,
        4,
        0,
    )

    records[1] = {
        **records[1],
        "text": records[1]["text"] + "\n\nأضيفت هذه الفقرة عن مهرجان الزيتون في القرية.",
    }
    del records[2]
    records.append(
        {"id": "new-1", "title": "خبر جديد", "text": "افتتح وزير الزراعة معرض التمور الدولي في المدينة."}
    )
    write_corpus(source, records)
    changed = build_index(source, index, sample_settings, embedder, progress=False)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (1, 1, 1, 2)
    assert 0 < changed.chunks_embedded < changed.chunks

    loaded = load_index(index, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    retriever = Retriever(loaded, embedder)
    assert retriever.retrieve("من افتتح معرض التمور الدولي؟", 1).passages[0].doc_id == "new-1"
    assert retriever.retrieve("مهرجان الزيتون في القرية", 1).passages[0].doc_id == records[1]["id"]
    with pytest.raises(NotFoundError):
        loaded.document(arcd_records(3)[2]["id"])
    fresh = tmp_path / "fresh"
    build_index(source, fresh, sample_settings, embedder, progress=False)
    rebuilt = load_index(fresh, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    # The same passages as a fresh build. BM25 weighs lengths against the average of
    # the first build, which the fresh build computes anew: scores may differ a little.
    question = "من افتتح معرض التمور الدولي؟"
    incremental = retriever.retrieve(question, 5).passages
    from_scratch = Retriever(rebuilt, embedder).retrieve(question, 5).passages
    assert [(p.doc_id, p.start, p.end, p.text) for p in incremental] == [
        (p.doc_id, p.start, p.end, p.text) for p in from_scratch
    ]
    assert [p.score for p in incremental] == pytest.approx([p.score for p in from_scratch], abs=0.01)


class CountingEmbedder:
    """The real embedder, counting the texts of each ``embed_passages`` call."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.calls: list[int] = []
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        self.embed_queries, self.count_tokens = embedder.embed_queries, embedder.count_tokens

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        return self.embedder.embed_passages(texts)


def test_articles_are_embedded_in_groups_and_indexed_in_order(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several articles embedded in one call, changed ones between unchanged ones
    included, give the same index as one article a call, in the order of the source."""
    source, incremental, fresh = tmp_path / "corpus.jsonl", tmp_path / "incremental", tmp_path / "fresh"
    records = arcd_records(6)
    write_corpus(source, records)
    monkeypatch.setattr(qa.build, "GROUP_SIZE", 1)
    counting = CountingEmbedder(embedder)
    build_index(source, incremental, sample_settings, counting, progress=False)
    assert len(counting.calls) == 6  # one call per article

    for changed in (1, 4):
        records[changed] = {**records[changed], "text": records[changed]["text"] + "\n\nفقرة جديدة."}
    write_corpus(source, records)
    monkeypatch.setattr(qa.build, "GROUP_SIZE", 40)
    summary = build_index(source, incremental, sample_settings, embedder, progress=False)
    assert (summary.updated, summary.unchanged) == (2, 4)
    counting = CountingEmbedder(embedder)
    build_index(source, fresh, sample_settings, counting, progress=False)
    assert len(counting.calls) < 6 and max(counting.calls) >= 40  # several articles a call

    expected = load_index(incremental, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    got = load_index(fresh, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    ids = list(range(got.manifest.chunks))  # a fresh build is one segment: ids 0..chunks-1
    order = [r["id"] for r in records]
    doc_ids = [c.doc_id for c in got.chunks(ids)]
    assert doc_ids == sorted(doc_ids, key=order.index) and set(doc_ids) == set(order)
    ours, theirs = served_documents(got), served_documents(expected)
    assert got.manifest.chunks == expected.manifest.chunks and ours.keys() == theirs.keys() == set(order)
    for doc_id in order:
        assert (ours[doc_id].chunks, ours[doc_id].sentences) == (
            theirs[doc_id].chunks,
            theirs[doc_id].sentences,
        )
        np.testing.assert_allclose(ours[doc_id].chunk_vectors, theirs[doc_id].chunk_vectors, atol=1e-5)
        np.testing.assert_allclose(ours[doc_id].sentence_vectors, theirs[doc_id].sentence_vectors, atol=1e-3)


def served_documents(index: Index) -> dict[str, StoredDocument]:
    """Every document a version serves, with its chunks, sentences and vectors."""
    return {s.article.doc_id: s for view in index.views for s in view.segment.stored_documents(view.deleted)}


def test_changing_the_chunking_forces_a_full_rebuild_and_says_so(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, arcd_records(2))
    build_index(source, index, sample_settings, embedder, progress=False)
    other = sample_settings.replace({"chunking.max_tokens": 128})
    summary = build_index(source, index, other, embedder, progress=False)
    assert summary.full_rebuild == "the chunking changed from 256/64 to 128/64 tokens"
    assert summary.added == 2 and summary.chunks_embedded == summary.chunks


def test_a_second_reindex_is_refused_while_one_holds_the_lock(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, arcd_records(1))
    with index_lock(index), pytest.raises(BuildLockedError, match=f"pid {os.getpid()}"):
        build_index(source, index, sample_settings, embedder, progress=False)
    # A lock file left by a killed run holds no lock: the next run goes ahead.
    assert index.with_name("idx.lock").exists()
    assert build_index(source, index, sample_settings, embedder, progress=False).documents == 1


def test_a_reindex_killed_at_any_moment_leaves_the_served_index_intact(tmp_path: Path) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, arcd_records(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    command = [sys.executable, "-m", "qa.cli", "reindex", "--source", str(source), "--index", str(index)]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO, env=env, timeout=600)
    served = index.resolve()
    write_corpus(source, arcd_records(12))  # more to embed: the next runs take a while
    for delay in (0.3, 1.0, 2.5, 4.0):
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if index.resolve() != served:  # the run finished before the kill: a new served version
            served = index.resolve()
        loaded = load_index(index, IndexSettings(), model="intfloat/multilingual-e5-small", dimension=384)
        assert loaded.manifest.version == served.name
        assert loaded.manifest.documents in (3, 12)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["documents"] == 12
    assert not list(versions_dir(index).glob(".tmp-*"))
