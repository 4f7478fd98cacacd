"""Publishing versions: an update writes one small segment and marks the old copies
deleted, merges keep results the same, the tiered merge policy, and a reindex killed
or failing at any moment leaves a served version."""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from qa.config import IndexSettings, Settings
from qa.embed.base import Embedder
from qa.errors import NotFoundError, SourceError
from qa.ingest.indexed import reindexed_document
from qa.ingest.pipeline import build_index, ingest
from qa.records import SegmentInfo
from qa.search.retrieve import Retriever
from qa.store.index import Index, load_index
from qa.store.versions import index_lock, merges_due, publish_merge, versions_dir
from qa.text.tokens import tokens
from qa.types import Vectors
from tests import archive
from tests.conftest import REPO, SAMPLE_CORPUS
from tests.store.conftest import ARTICLES, copy_of, open_index, query_vectors


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


class FailingEmbedder:
    """The real embedder, failing after a number of calls: a build that dies midway."""

    def __init__(self, inner: Embedder, calls: int) -> None:
        self.inner = inner
        self.calls_left = calls
        self.model_id = inner.model_id
        self.dimension = inner.dimension

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.calls_left -= 1
        if self.calls_left < 0:
            raise RuntimeError("embedding failed")
        return self.inner.embed_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def test_a_failed_build_leaves_the_published_index_untouched(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    path = tmp_path / "live"
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(SAMPLE_CORPUS / "g20-antalya-2015.txt", source / "a.txt")
    shutil.copy(SAMPLE_CORPUS / "g20-antalya-2015.txt", source / "b.txt")
    first = build_index(source, path, sample_settings, embedder, progress=False)
    before = path.resolve()

    (source / "c.txt").write_bytes(b"\xff")
    with pytest.raises(SourceError, match=r"c\.txt"):
        build_index(source, path, sample_settings, embedder, strict=True, progress=False)
    (source / "c.txt").unlink()
    (source / "b.txt").write_text("خبر معدل يحتاج إلى تضمين جديد.", "utf-8")
    with pytest.raises(RuntimeError):
        build_index(source, path, sample_settings, FailingEmbedder(embedder, calls=0), progress=False)

    assert path.resolve() == before
    index = load_index(path, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    assert index.manifest.version == first.version and index.manifest.documents == 2
    index.close()
    assert [p.name for p in versions_dir(path).iterdir()] == [before.name]
