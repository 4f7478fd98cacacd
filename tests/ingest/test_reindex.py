"""Incremental reindex, the build lock, and reindexes killed at any moment."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

import qa.ingest.engines.local
from qa.cli import main
from qa.config import IndexSettings, Settings
from qa.embed.base import Embedder
from qa.errors import BuildLockedError, NotFoundError
from qa.ingest.pipeline import build_index
from qa.search.retrieve import Retriever
from qa.store.index import Index, load_index, read_manifest
from qa.store.segment_reader import StoredDocument
from qa.store.segment_writer import SegmentWriter
from qa.store.versions import index_lock, versions_dir
from qa.types import Vectors
from tests.conftest import REPO

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
    # 1 of 4 removed is above reindex.max_removed_share (0.2): allowed here on purpose.
    changed = build_index(source, index, sample_settings, embedder, progress=False, allow_removals=True)
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
    monkeypatch.setattr(qa.ingest.engines.local, "GROUP_SIZE", 1)
    counting = CountingEmbedder(embedder)
    build_index(source, incremental, sample_settings, counting, progress=False)
    assert len(counting.calls) == 6  # one call per article

    for changed in (1, 4):
        records[changed] = {**records[changed], "text": records[changed]["text"] + "\n\nفقرة جديدة."}
    write_corpus(source, records)
    monkeypatch.setattr(qa.ingest.engines.local, "GROUP_SIZE", 40)
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


# --- No silent loss, a full disk, durable publishes (issue 20, items 2 and 18) ---------


class CliReindex:
    """`qa reindex` through ``qa.cli.main`` in this process, its exit status, JSON
    summary and stderr; the embedder it makes is the session's (the same model,
    loaded once), counting what it embeds."""

    def __init__(self, capsys: pytest.CaptureFixture[str], embedder: Embedder) -> None:
        self.capsys = capsys
        self.embedder = CountingEmbedder(embedder)

    def __call__(self, source: Path, index: Path, *flags: str) -> tuple[int, dict[str, Any], str]:
        config = str(REPO / "config.toml")
        arguments = ["reindex", "--config", config, "--source", str(source), "--index", str(index)]
        code = main([*arguments, "--no-progress", *flags])
        out, err = self.capsys.readouterr()
        lines = out.strip().splitlines()
        return code, json.loads(lines[-1]) if lines else {}, err


@pytest.fixture
def qa_reindex(
    capsys: pytest.CaptureFixture[str], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> CliReindex:
    run = CliReindex(capsys, embedder)
    monkeypatch.setattr(qa.ingest.engines.local, "make_embedder", lambda *args: run.embedder)
    return run


def version_folders(index: Path) -> list[Path]:
    return sorted(p for p in versions_dir(index).iterdir() if not p.name.startswith("."))


def served_ids(folder: Path, embedder: Embedder) -> set[str]:
    """The documents the version at ``folder`` (an index link or a version folder) serves."""
    index = load_index(folder, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    try:
        return set(index.live_documents())
    finally:
        index.close()


def corpus_in_two_files(tmp_path: Path, articles: int) -> tuple[Path, Path]:
    """A source folder of ``articles`` ARCD articles, two in a.jsonl and the rest in
    b.jsonl, and where its index goes."""
    source, index = tmp_path / "src", tmp_path / "idx"
    source.mkdir()
    records = arcd_records(articles)
    write_corpus(source / "a.jsonl", records[:2])
    write_corpus(source / "b.jsonl", records[2:])
    return source, index


def test_a_partly_unreadable_source_removes_nothing_keeps_the_old_version_and_exits_3(
    tmp_path: Path, qa_reindex: CliReindex, embedder: Embedder
) -> None:
    source, index = corpus_in_two_files(tmp_path, 6)
    code, summary, err = qa_reindex(source, index)
    assert code == 0 and summary["documents"] == 6, err
    # An export still being written: every line of one file cut to 40 bytes.
    lines = (source / "b.jsonl").read_bytes().splitlines()
    (source / "b.jsonl").write_bytes(b"".join(line[:40] + b"\n" for line in lines))

    code, summary, err = qa_reindex(source, index)
    assert code == 3, err
    assert (summary["removed"], summary["skipped"], summary["kept_unread"]) == (0, 4, 4)
    assert summary["documents"] == 6
    assert "kept 4 served articles" in err and "--allow-skips" in err and "Traceback" not in err
    everything = {record["id"] for record in arcd_records(6)}
    folders = version_folders(index)
    assert len(folders) >= 2  # the version from before the run, and the run's
    for folder in folders:
        assert read_manifest(folder).documents == 6
        assert served_ids(folder, embedder) == everything

    code, summary, err = qa_reindex(source, index, "--allow-skips")
    assert code == 0, err
    assert (summary["removed"], summary["skipped"], summary["documents"]) == (0, 4, 6)


def test_a_run_that_removes_too_much_of_the_archive_refuses_unless_allowed(
    tmp_path: Path, qa_reindex: CliReindex, embedder: Embedder
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = arcd_records(6)
    write_corpus(source, records)
    assert qa_reindex(source, index)[0] == 0
    write_corpus(source, records[:5])  # 1 of 6 (17%): under reindex.max_removed_share (0.2)
    code, summary, err = qa_reindex(source, index)
    assert code == 0 and summary["removed"] == 1, err

    served, folders = index.resolve(), version_folders(index)
    qa_reindex.embedder.calls.clear()
    write_corpus(source, [*records[:2], {"id": "new", "text": "خبر جديد عن معرض الكتاب في المدينة."}])
    code, summary, err = qa_reindex(source, index)
    assert code == 1 and summary == {}
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {index}: this run would remove 3 of the 5 served articles (60%)")
    assert "reindex.max_removed_share (20%)" in line and "qa reindex --allow-removals" in line
    assert index.resolve() == served and version_folders(index) == folders
    assert qa_reindex.embedder.calls == []  # refused before embedding anything

    code, summary, err = qa_reindex(source, index, "--allow-removals")
    assert code == 0, err
    assert (summary["removed"], summary["added"], summary["documents"]) == (3, 1, 3)
    assert served_ids(index, embedder) == {records[0]["id"], records[1]["id"], "new"}


def test_the_version_served_when_a_run_began_survives_its_update_and_merge(
    tmp_path: Path, qa_reindex: CliReindex, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_INDEX_MERGE_FACTOR", "2")  # two segments make a full tier
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = arcd_records(3)
    write_corpus(source, records[:2])
    assert qa_reindex(source, index)[0] == 0
    starting = index.resolve()

    write_corpus(source, records)
    code, summary, err = qa_reindex(source, index)
    assert code == 0 and summary["merges"] >= 1 and summary["segments"] == 1, err
    # Published twice (the update, then the merge), and the version from before is still there.
    assert index.resolve() != starting and len(version_folders(index)) == 3
    assert starting.is_dir() and served_ids(starting, embedder) == {r["id"] for r in records[:2]}
    assert served_ids(index, embedder) == {r["id"] for r in records}


def test_a_disk_too_full_for_the_update_is_refused_before_embedding(
    tmp_path: Path, qa_reindex: CliReindex, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = arcd_records(3)
    write_corpus(source, records[:1])
    assert qa_reindex(source, index)[0] == 0
    served = index.resolve()
    qa_reindex.embedder.calls.clear()
    write_corpus(source, records)
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=4096))

    code, summary, err = qa_reindex(source, index)
    assert code == 1 and summary == {}
    (line,) = err.strip().splitlines()
    assert line.startswith(
        f"error: {versions_dir(index)}: 4.1 KB free, but indexing the 2 new and changed articles needs about "
    )
    assert "nothing was embedded or published" in line
    assert qa_reindex.embedder.calls == []
    assert index.resolve() == served and not list(versions_dir(index).glob(".tmp-*"))


def _full_while_finishing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError(ENOSPC) from the segment's last files, after everything is embedded."""

    def finish(self: SegmentWriter) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder / "chunk_sentences.npy"))

    monkeypatch.setattr(SegmentWriter, "finish", finish)


def _short_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy's np.save on a disk that fills during the write: an OSError without errno
    (seen on a full tmpfs, from the lexical postings)."""

    def finish(self: SegmentWriter) -> None:
        raise OSError("1413 requested and 496 written")

    monkeypatch.setattr(SegmentWriter, "finish", finish)


def _full_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own SQLITE_FULL: the segment's store may not grow past its first pages."""
    real_init = SegmentWriter.__init__

    def init(self: SegmentWriter, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        pages = self._store.execute("PRAGMA page_count").fetchone()[0]
        self._store.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(SegmentWriter, "__init__", init)


def _full_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """FAISS writing the chunk vectors to /dev/full, a device that is always full."""
    real_write = faiss.write_index
    monkeypatch.setattr(faiss, "write_index", lambda index, path: real_write(index, "/dev/full"))


@pytest.mark.parametrize(
    "fill",
    [_full_while_finishing, _short_write, _full_store, _full_vectors],
    ids=["os", "numpy", "sqlite", "faiss"],
)
def test_a_disk_that_fills_during_a_reindex_is_one_line_and_the_served_version_stays(
    tmp_path: Path,
    qa_reindex: CliReindex,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    fill: Callable[[pytest.MonkeyPatch], None],
) -> None:
    if fill is _full_vectors and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    records = arcd_records(2)
    write_corpus(source, records[:1])
    assert qa_reindex(source, index)[0] == 0
    served = index.resolve()
    # A long url, stored but not embedded: the store must grow past its first pages.
    write_corpus(source, [records[0], {**records[1], "url": "https://example.com/" + "a" * 20000}])
    fill(monkeypatch)

    code, summary, err = qa_reindex(source, index)
    assert code == 1 and summary == {} and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {versions_dir(index)}: the disk is full (") and " free) " in line
    assert f"nothing was published and {index} still serves version {served.name}" in line
    assert index.resolve() == served and served_ids(index, embedder) == {records[0]["id"]}
    assert not list(versions_dir(index).glob(".tmp-*")) and not list(tmp_path.glob(".idx.link-*"))


def test_publishing_flushes_the_folders_its_renames_changed(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, arcd_records(1))
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def rename(old: Any, new: Any, **kwargs: Any) -> None:
        events.append(("rename", os.path.abspath(new)))
        real_rename(old, new, **kwargs)

    def replace(old: Any, new: Any, **kwargs: Any) -> None:
        events.append(("replace", os.path.abspath(new)))
        real_replace(old, new, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    build_index(source, index, sample_settings, embedder, progress=False)

    folder = index.resolve()
    renamed = events.index(("rename", str(folder)))  # the finished version, into place
    pointed = events.index(("replace", str(index)))  # the index link, to it
    assert renamed < pointed
    assert ("fsync", str(versions_dir(index).resolve())) in events[renamed:pointed]
    assert ("fsync", str(index.parent.resolve())) in events[pointed:]


def test_a_full_rebuild_with_skipped_input_refuses_to_drop_the_articles_it_cannot_read(
    tmp_path: Path, qa_reindex: CliReindex, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, index = corpus_in_two_files(tmp_path, 3)
    assert qa_reindex(source, index)[0] == 0
    served = index.resolve()
    (source / "b.jsonl").write_bytes((source / "b.jsonl").read_bytes()[:40] + b"\n")
    # Other chunking: the served embeddings cannot be reused, nor the unread article kept.
    monkeypatch.setenv("QA_CHUNKING_MAX_TOKENS", "128")
    qa_reindex.embedder.calls.clear()

    code, summary, err = qa_reindex(source, index)
    assert code == 1 and summary == {}
    assert f"error: {index}: a full rebuild cannot keep the 1 served articles" in err
    assert "--allow-removals" in err and qa_reindex.embedder.calls == [] and index.resolve() == served

    code, summary, err = qa_reindex(source, index, "--allow-removals", "--allow-skips")
    assert code == 0, err
    assert summary["full_rebuild"] == "the chunking changed from 256/64 to 128/64 tokens"
    assert (summary["removed"], summary["skipped"], summary["documents"]) == (1, 1, 2)
