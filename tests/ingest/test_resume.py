"""Resumable bulk builds: what a reindex embedded is checkpointed, a run killed
resumes from its checkpoints, and the resumed build publishes exactly what an
uninterrupted one does."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qa.ingest.engines.local
import qa.ingest.pipeline
import qa.store.versions
from qa.cli import main
from qa.config import IndexSettings, Settings, load_settings
from qa.embed.base import Embedder
from qa.errors import ConfigError, RemovalRefusedError
from qa.ingest.checkpoints import Checkpoints, build_key, checkpoints_root
from qa.ingest.engines.local import LocalEngine
from qa.ingest.indexed import content_hash
from qa.ingest.pipeline import BuildSummary, build_index
from qa.ingest.sources import read_articles
from qa.records import Article, Chunk, Sentence, SentenceKind
from qa.search.retrieve import Retriever
from qa.store.index import Index, load_index
from qa.store.segment_writer import IndexedDocument
from qa.store.versions import BuildInfo
from qa.types import Vectors
from tests.conftest import REPO
from tests.ingest.test_reindex import served_documents, write_corpus

ANT = REPO / "tests" / "data" / "ant" / "articles.jsonl"
CONFIG = REPO / "config.toml"
# Small, so that a 28-article run writes several checkpoints to kill it between.
EVERY = 5
QUESTIONS = ("مقتدى الصدر يعلن اعتزال السياسة", "نتائج الانتخابات التشريعية", "ارتفاع الأسعار في تونس")


def ant_records(count: int) -> list[dict[str, Any]]:
    """The ``count`` shortest ANT articles, in the file's order: a real archive that
    embeds in seconds."""
    records = [json.loads(line) for line in ANT.read_text("utf-8").splitlines()]
    shortest = sorted(range(len(records)), key=lambda i: len(records[i]["text"]))[:count]
    return [records[i] for i in sorted(shortest)]


def build_info(embedder: Embedder, settings: Settings) -> BuildInfo:
    chunking = settings.chunking
    return BuildInfo(embedder.model_id, embedder.dimension, chunking.max_tokens, chunking.overlap_tokens,
                     settings.embedding.vectors)  # fmt: skip


def open_index(path: Path, embedder: Embedder) -> Index:
    return load_index(path, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)


def checkpoint_files(index: Path) -> list[Path]:
    """The complete checkpoints of the index's builds (their records files, written last)."""
    return sorted(checkpoints_root(index).glob("*/[0-9]*.json"))


def texts_of(documents: Sequence[Any]) -> int:
    """The texts embedding the documents takes: their sentences (embedding.vectors's
    default pools the chunks from them)."""
    return sum(len(d.sentences) for d in documents)


# The run to kill embeds a few articles a call (about one checkpoint's), not the whole
# archive in one: its checkpoints come seconds apart, and the kill falls between them.
KILLED_REINDEX = """
import sys
import qa.ingest.engines.local as local
from qa.cli import main
local.GROUP_SIZE = 16
sys.exit(main(["reindex", "--config", sys.argv[1], "--source", sys.argv[2], "--index", sys.argv[3],
               "--no-progress"]))
"""


@dataclass(frozen=True)
class Resumed:
    """An index built without interruption and the same build killed once and resumed."""

    uninterrupted: Path
    resumed: Path
    # The uninterrupted run that added the 28 articles after the first two.
    summary: BuildSummary
    # The resumed run, as `qa reindex` printed it, and its stderr.
    resumed_summary: dict[str, Any]
    resumed_err: str
    # The articles the killed run had checkpointed.
    checkpointed: set[str]
    # The version served when the killed run began, and after the kill.
    before_kill: str
    after_kill: str
    documents_after_kill: int


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings, embedder: Embedder) -> Resumed:
    assert hasattr(qa.ingest.engines.local, "GROUP_SIZE")  # what KILLED_REINDEX sets
    folder = tmp_path_factory.mktemp("resume")
    first, source = folder / "first.jsonl", folder / "corpus.jsonl"
    records = ant_records(30)
    write_corpus(first, records[:2])
    write_corpus(source, records)
    uninterrupted, resumed = folder / "a", folder / "b"
    settings = base_settings.replace({"reindex.checkpoint_every": EVERY})
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("QA_")]:
            patch.delenv(name)
        # Both indexes start from a version of two articles, which the killed run must leave served.
        build_index(first, uninterrupted, settings, embedder, progress=False)
        summary = build_index(source, uninterrupted, settings, embedder, progress=False)
        build_index(first, resumed, settings, embedder, progress=False)
        before_kill = resumed.resolve().name

        env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
        env["QA_REINDEX_CHECKPOINT_EVERY"] = str(EVERY)
        command = [sys.executable, "-c", KILLED_REINDEX, str(CONFIG), str(source), str(resumed)]
        log = folder / "killed.err"
        with log.open("wb") as errors:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=errors)
            deadline = time.monotonic() + 300
            while len(checkpoint_files(resumed)) < 2:
                assert process.poll() is None, f"it ended before its second checkpoint: {log.read_text()}"
                assert time.monotonic() < deadline, f"no second checkpoint within 300 s: {log.read_text()}"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        served = open_index(resumed, embedder)
        after_kill, documents_after_kill = served.manifest.version, served.manifest.documents
        served.close()
        store = Checkpoints.open(resumed, build_info(embedder, settings), every=EVERY, seconds=300)
        articles = read_articles(source).articles
        checkpointed = {article.doc_id for article in articles if content_hash(article) in store}

        patch.setenv("QA_REINDEX_CHECKPOINT_EVERY", str(EVERY))
        patch.setattr(qa.ingest.engines.local, "make_embedder", lambda *args: embedder)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            arguments = ["reindex", "--config", str(CONFIG), "--source", str(source), "--index", str(resumed)]
            code = main([*arguments, "--no-progress"])
        assert code == 0, err.getvalue()
    return Resumed(
        uninterrupted, resumed, summary, json.loads(out.getvalue().splitlines()[-1]), err.getvalue(),
        checkpointed, before_kill, after_kill, documents_after_kill,
    )  # fmt: skip


def test_the_model_gives_a_text_the_same_vector_in_any_batch(embedder: Embedder) -> None:
    """What comparing a resumed build with an uninterrupted one bit for bit takes: the
    two embed the same articles in calls of other articles (a resumed run's first call
    starts after the last checkpoint). Were it not so, the other tests would fail for
    the model, not for the checkpoints."""
    texts = [record["title"] for record in ant_records(3)]
    alone = np.concatenate([embedder.embed_passages([text]) for text in texts])
    assert np.array_equal(embedder.embed_passages(texts), alone)
    assert np.array_equal(embedder.embed_passages(texts[1:]), alone[1:])


def test_a_killed_build_leaves_the_served_index_as_it_was(resumed: Resumed) -> None:
    assert resumed.after_kill == resumed.before_kill and resumed.documents_after_kill == 2
    assert len(resumed.checkpointed) >= 2 * EVERY


def test_a_resumed_build_embeds_only_what_was_not_checkpointed(resumed: Resumed, embedder: Embedder) -> None:
    summary, checkpointed = resumed.resumed_summary, resumed.checkpointed
    assert summary["resumed"] == len(checkpointed) >= 2 * EVERY
    assert (summary["added"], summary["documents"], summary["unchanged"]) == (28, 30, 2)
    line = (
        f"resuming: {len(checkpointed)} of 28 articles already embedded in checkpoints of an interrupted run"
    )
    assert line in resumed.resumed_err.splitlines()
    # Exactly the texts of the articles not checkpointed: none of the others again.
    theirs = served_documents(open_index(resumed.uninterrupted, embedder))
    restored_texts = texts_of([theirs[doc_id] for doc_id in checkpointed])
    assert summary["texts_embedded"] == resumed.summary.texts_embedded - restored_texts
    assert summary["chunks_embedded"] < resumed.summary.chunks_embedded
    assert resumed.summary.resumed == 0
    # Published: both builds' checkpoints are gone.
    assert not checkpoints_root(resumed.resumed).exists()
    assert not checkpoints_root(resumed.uninterrupted).exists()


def test_a_resumed_build_publishes_what_an_uninterrupted_one_does(
    resumed: Resumed, embedder: Embedder
) -> None:
    ours, theirs = open_index(resumed.resumed, embedder), open_index(resumed.uninterrupted, embedder)
    assert dataclasses.replace(ours.manifest, version="", built_at="") == dataclasses.replace(
        theirs.manifest, version="", built_at="", segments=ours.manifest.segments
    )
    assert [(s.documents, s.chunks, s.sentences) for s in ours.manifest.segments] == [
        (s.documents, s.chunks, s.sentences) for s in theirs.manifest.segments
    ]
    mine, others = served_documents(ours), served_documents(theirs)
    assert list(mine) == list(others) and len(mine) == 30
    for doc_id, document in mine.items():
        other = others[doc_id]
        assert (document.article, document.content_hash, document.chunks, document.sentences) == (
            other.article, other.content_hash, other.chunks, other.sentences,
        )  # fmt: skip
        assert (document.copy_group, document.signature) == (other.copy_group, other.signature)
        assert np.array_equal(document.chunk_vectors, other.chunk_vectors)
        assert np.array_equal(document.sentence_vectors, other.sentence_vectors)
    # The same ids: every chunk, its sentences and their vectors, by id.
    ids = list(range(theirs.manifest.next_chunk_id))
    assert ours.manifest.next_chunk_id == theirs.manifest.next_chunk_id
    assert ours.chunks(ids) == theirs.chunks(ids)
    for chunk_id in ids:
        first, stop = theirs.sentence_range(chunk_id)
        assert ours.sentence_range(chunk_id) == (first, stop)
        assert ours.sentences(first, stop) == theirs.sentences(first, stop)
        assert np.array_equal(ours.sentence_vectors(first, stop), theirs.sentence_vectors(first, stop))
    for question in QUESTIONS:
        found = [Retriever(index, embedder).retrieve(question, 5).passages for index in (ours, theirs)]
        assert [(p.chunk_id, p.doc_id, p.start, p.end, p.score) for p in found[0]] == [
            (p.chunk_id, p.doc_id, p.start, p.end, p.score) for p in found[1]
        ]
        assert len(found[0]) == 5


class RandomEmbedder:
    """The real embedder's tokens (so the chunks are the real ones) with random unit
    vectors: checkpoints whose vectors are told apart from the model's."""

    def __init__(self, embedder: Embedder, seed: int) -> None:
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        self.count_tokens, self.embed_queries = embedder.count_tokens, embedder.embed_queries
        self._random = np.random.default_rng(seed)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        vectors = self._random.standard_normal((len(texts), self.dimension)).astype(np.float32)
        unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit


def test_checkpoints_of_other_settings_and_damaged_ones_are_not_used(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, ant_records(6))
    articles = read_articles(source).articles
    info = build_info(embedder, sample_settings)
    engine = LocalEngine(RandomEmbedder(embedder, 1), sample_settings.chunking, "sentences")
    # Each its own batch, so that a checkpoint may end after any of them.
    fake = [dataclasses.replace(document, ends_batch=True) for document in engine.documents(articles)]
    # Two checkpoints of this build (the second then cut short), and one of another chunking.
    store = Checkpoints.open(index, info, every=3, seconds=1e9)
    for document in fake:
        store.add(document)
    assert [p.name for p in checkpoint_files(index)] == ["000001.json", "000002.json"]
    cut = store.folder / "000002.sentences.npy"
    cut.write_bytes(cut.read_bytes()[:-100])
    other = dataclasses.replace(info, max_tokens=128)
    stale = Checkpoints(checkpoints_root(index) / build_key(other), other, every=10, seconds=1e9)
    other_engine = LocalEngine(RandomEmbedder(embedder, 2), sample_settings.chunking, "sentences")
    for document in other_engine.documents(articles):
        stale.add(document)
    stale.flush()
    assert len(list(checkpoints_root(index).iterdir())) == 2

    summary = build_index(source, index, sample_settings, embedder, progress=False)
    err = capsys.readouterr().err
    assert "resuming: 3 of 6 articles already embedded" in err
    assert f"ignored a damaged checkpoint ({store.folder / '000002.json'}: 000002.sentences.npy has " in err
    assert f"removed the checkpoints of an interrupted build with other settings ({stale.folder})" in err
    served = served_documents(open_index(index, embedder))
    assert summary.resumed == 3 and summary.texts_embedded == texts_of(fake[3:])
    for document in fake[:3]:  # restored: the checkpoint's vectors, not the model's
        assert np.array_equal(served[document.article.doc_id].chunk_vectors, document.chunk_vectors)
    for document in fake[3:]:  # embedded again by the model
        stored = served[document.article.doc_id]
        assert stored.chunks == list(document.chunks) and stored.sentences == list(document.sentences)
        assert np.abs(stored.chunk_vectors - document.chunk_vectors).max() > 0.1
        assert np.allclose(np.linalg.norm(stored.chunk_vectors, axis=1), 1, atol=1e-3)
    assert not checkpoints_root(index).exists()


class InterruptedEmbedder(RandomEmbedder):
    """Random vectors, and Ctrl-C on the call after ``calls`` calls."""

    def __init__(self, embedder: Embedder, seed: int, calls: int) -> None:
        super().__init__(embedder, seed)
        self.calls = calls

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return super().embed_passages(texts)


def test_an_interrupted_run_checkpoints_what_it_embedded_since_the_last_checkpoint(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, index = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_corpus(source, ant_records(5))
    monkeypatch.setattr(qa.ingest.engines.local, "GROUP_SIZE", 1)  # one article a call
    interrupted = InterruptedEmbedder(embedder, 1, calls=3)
    with pytest.raises(KeyboardInterrupt):  # long before reindex.checkpoint_every (500)
        build_index(source, index, sample_settings, interrupted, progress=False)
    assert [p.name for p in checkpoint_files(index)] == ["000001.json"] and not index.exists()
    store = Checkpoints.open(index, build_info(embedder, sample_settings), every=500, seconds=300)
    articles = read_articles(source).articles
    assert [content_hash(article) in store for article in articles] == [True] * 3 + [False] * 2
    checkpointed = [store.restore(content_hash(article)) for article in articles[:3]]

    summary = build_index(source, index, sample_settings, RandomEmbedder(embedder, 2), progress=False)
    assert (summary.resumed, summary.added, summary.documents) == (3, 5, 5)
    served = served_documents(open_index(index, embedder))
    for article, restored in zip(articles, checkpointed, strict=False):
        assert restored is not None
        assert np.array_equal(served[article.doc_id].chunk_vectors, restored.chunk_vectors)
    assert not checkpoints_root(index).exists()


class RecordingEmbedder:
    """A real embedder that keeps the texts of each call, and stops the run (Ctrl-C)
    on call ``stop_at`` (counting from 0) when one is given."""

    def __init__(self, embedder: Embedder, stop_at: int | None = None) -> None:
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        self.count_tokens, self.embed_queries = embedder.count_tokens, embedder.embed_queries
        self._embedder, self._stop_at = embedder, stop_at
        self.calls: list[tuple[str, ...]] = []

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if len(self.calls) == self._stop_at:
            raise KeyboardInterrupt
        self.calls.append(tuple(texts))
        return self._embedder.embed_passages(texts)


def test_a_killed_and_resumed_build_batches_as_an_uninterrupted_one_and_its_vectors_are_the_same_bits(
    tmp_path: Path, st_settings: Settings, st_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sentence-transformers pads a batch to its longest text, so a vector's last bits
    depend on the texts batched with it: a resumed run must start where a batch of the
    killed run began, and embed a late copy of a checkpointed article as little as an
    uninterrupted run does (it reuses the first's vectors)."""
    records = ant_records(12)
    records.append({**records[1], "id": "copy-of-second"})  # after the kill: its original is checkpointed
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, records)
    # Batches of two or three articles, checkpoints of four documents: before the mend a
    # checkpoint fell inside a batch, and the resumed run's batches began elsewhere.
    monkeypatch.setattr(qa.ingest.engines.local, "GROUP_SIZE", 6)
    settings = st_settings.replace({"reindex.checkpoint_every": 4})

    whole = RecordingEmbedder(st_embedder)
    build_index(source, tmp_path / "whole", settings, whole, progress=False)
    killed = RecordingEmbedder(st_embedder, stop_at=3)
    with monkeypatch.context() as kill:  # kill -9: nothing waiting is written on the way out
        kill.setattr(qa.ingest.pipeline, "_keep_checkpoints", lambda checkpoints: None)
        with pytest.raises(KeyboardInterrupt):
            build_index(source, tmp_path / "resumed", settings, killed, progress=False)
    assert checkpoint_files(tmp_path / "resumed")
    resumed = RecordingEmbedder(st_embedder)
    summary = build_index(source, tmp_path / "resumed", settings, resumed, progress=False)

    assert summary.resumed > 0 and len(whole.calls) > len(resumed.calls) > 1
    assert resumed.calls == whole.calls[-len(resumed.calls) :]
    ours = served_documents(open_index(tmp_path / "resumed", st_embedder))
    theirs = served_documents(open_index(tmp_path / "whole", st_embedder))
    assert list(ours) == list(theirs) and len(ours) == 13
    for doc_id, document in ours.items():
        assert np.array_equal(document.chunk_vectors, theirs[doc_id].chunk_vectors), doc_id
        assert np.array_equal(document.sentence_vectors, theirs[doc_id].sentence_vectors), doc_id


# --- The store itself, without the model ------------------------------------------------


def fake_document(number: int, dimension: int = 8) -> IndexedDocument:
    article = Article(f"doc-{number}", "عنوان", "جملة أولى. جملة ثانية.")
    rng = np.random.default_rng(number)
    return IndexedDocument(
        article=article,
        content_hash=f"{number:064x}",
        chunks=[Chunk(article.doc_id, 0, 22, "عنوان")],
        sentences=[Sentence(0, 10, SentenceKind.SENTENCE, 0), Sentence(11, 22, SentenceKind.SENTENCE, 0)],
        chunk_vectors=rng.standard_normal((1, dimension)).astype(np.float32),
        sentence_vectors=rng.standard_normal((2, dimension)).astype(np.float32),
        chunk_tokens=[],
        sentence_tokens=[],
    )


INFO = BuildInfo("model", 8, 256, 64)


def test_checkpoints_are_written_every_n_documents_or_after_so_many_seconds(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    store = Checkpoints.open(index, INFO, every=3, seconds=1e9)
    for number in range(7):
        store.add(fake_document(number))
    assert len(checkpoint_files(index)) == 2 and len(store) == 6  # the seventh waits
    store.flush()
    assert len(checkpoint_files(index)) == 3 and len(store) == 7

    timed = Checkpoints.open(tmp_path / "timed", INFO, every=100, seconds=1.0)
    timed.add(fake_document(0))
    assert checkpoint_files(tmp_path / "timed") == []
    time.sleep(1.1)
    timed.add(fake_document(1))
    assert len(checkpoint_files(tmp_path / "timed")) == 1 and len(timed) == 2


def test_a_checkpoint_is_written_only_after_a_document_that_ends_the_engines_batch(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    store = Checkpoints.open(index, INFO, every=2, seconds=1e9)
    for number in range(3):
        store.add(dataclasses.replace(fake_document(number), ends_batch=number == 2))
    assert len(checkpoint_files(index)) == 1 and len(store) == 3
    store.add(dataclasses.replace(fake_document(3), ends_batch=False))
    store.add(fake_document(4))
    store.add(dataclasses.replace(fake_document(5), ends_batch=False))
    assert len(checkpoint_files(index)) == 2 and len(store) == 5
    store.flush()  # on the way out of a failed run: the rest of a batch is embedded again
    assert len(checkpoint_files(index)) == 2 and fake_document(5).content_hash not in store


def test_a_checkpoint_restores_exactly_what_was_added_and_skips_what_is_damaged(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    store = Checkpoints.open(index, INFO, every=2, seconds=1e9)
    documents = [fake_document(number) for number in range(6)]
    for document in documents:
        store.add(document)
    folder = store.folder
    records = folder / "000002.json"
    records.write_bytes(records.read_bytes()[:-20])  # cut: documents 2 and 3 are lost
    (folder / "000004.chunks.npy.part").write_bytes(b"a checkpoint being written when the run died")

    again = Checkpoints.open(index, INFO, every=2, seconds=1e9)
    assert len(again) == 4 and len(again.problems) == 1
    assert not records.exists() and not (folder / "000002.chunks.npy").exists()
    assert not (folder / "000004.chunks.npy.part").exists()
    for document in [*documents[:2], *documents[4:]]:
        restored = again.restore(document.content_hash)
        assert restored is not None
        assert (restored.chunks, restored.sentences) == (tuple(document.chunks), tuple(document.sentences))
        assert np.array_equal(restored.chunk_vectors, document.chunk_vectors)
        assert np.array_equal(restored.sentence_vectors, document.sentence_vectors)
        assert restored.chunk_vectors.dtype == np.float32 and not isinstance(
            restored.chunk_vectors, np.memmap
        )
    assert again.restore(documents[2].content_hash) is None
    # New checkpoints are numbered after every earlier one, damaged ones included.
    again.add(documents[2])
    again.add(documents[3])
    assert [p.name for p in checkpoint_files(index)] == ["000001.json", "000003.json", "000004.json"]

    # Another way of making the vectors (embedding.vectors): the folder is stale.
    other = Checkpoints.open(index, dataclasses.replace(INFO, vectors="late"), every=2, seconds=1e9)
    assert len(other) == 0 and not folder.exists() and other.problems


@pytest.mark.parametrize(
    ("variable", "value"), [("QA_REINDEX_CHECKPOINT_EVERY", "0"), ("QA_REINDEX_CHECKPOINT_SECONDS", "0")]
)
def test_checkpoint_settings_must_be_positive(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=r"reindex\.checkpoint_every must be at least 1"):
        load_settings(CONFIG, environ={variable: value})


def test_publishing_as_it_goes_serves_each_step_and_ends_with_what_one_publish_does(
    tmp_path: Path, base_settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, ant_records(12))
    settings = base_settings.replace({"reindex.checkpoint_every": EVERY})
    whole = build_index(source, tmp_path / "whole", settings, embedder, progress=False)
    published: list[int] = []
    publish = qa.store.versions.publish_update

    def counted(*args: Any, **kwargs: Any) -> Any:
        manifest = publish(*args, **kwargs)
        published.append(manifest.documents)
        return manifest

    monkeypatch.setattr(qa.ingest.pipeline, "publish_update", counted)
    steps = build_index(
        source, tmp_path / "steps", settings, embedder, progress=False, publish_as_you_go=True
    )
    assert published == [5, 10, 12]  # each step served as it was made
    assert (steps.documents, steps.chunks, steps.sentences) == (
        whole.documents,
        whole.chunks,
        whole.sentences,
    )
    mine = served_documents(open_index(tmp_path / "steps", embedder))
    theirs = served_documents(open_index(tmp_path / "whole", embedder))
    assert mine.keys() == theirs.keys()
    for doc_id, document in mine.items():
        assert (document.chunks, document.sentences) == (theirs[doc_id].chunks, theirs[doc_id].sentences)
        assert np.array_equal(document.sentence_vectors, theirs[doc_id].sentence_vectors)
    # The last step carries the source's digest: a run over the same source publishes nothing.
    again = build_index(
        source, tmp_path / "steps", settings, embedder, progress=False, publish_as_you_go=True
    )
    assert (again.texts_embedded, published) == (0, [5, 10, 12])

    # A full rebuild of a served index would serve part of it for hours: refused.
    rechunked = settings.replace({"chunking.max_tokens": 128})
    with pytest.raises(RemovalRefusedError, match=r"full rebuild .*without --publish-as-you-go"):
        build_index(source, tmp_path / "steps", rechunked, embedder, progress=False, publish_as_you_go=True)
