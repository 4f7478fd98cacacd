"""The index on disk: FAISS vectors, a SQLite store and a manifest. Loads no models.

Layout of an index at ``PATH`` (a symbolic link, so that publishing is one atomic
rename)::

    PATH -> PATH.versions/<version>/
        manifest.json     model, dimension, chunking, counts, build time, versions
        chunks.faiss      inner product over unit chunk vectors, ids = chunk ids
        sentences.npy     one unit vector a sentence, row = sentence id
        chunks.bm25/      BM25 over the chunks' normalized tokens (with their context)
        sentences.bm25/   BM25 over the sentences' normalized tokens
        store.sqlite      documents, chunks and sentences with their offsets

A version is written in a temporary folder beside the others and only becomes
``PATH`` once complete, so a reader never sees half an index.
"""

from __future__ import annotations

import bisect
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa import __version__
from qa.embed import Vectors
from qa.errors import BuildLockedError, IndexMismatchError, IndexUnavailableError, NotFoundError
from qa.lexical import LexicalIndex
from qa.records import Article, Chunk, Manifest, Sentence, SentenceKind

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CHUNK_VECTORS = "chunks.faiss"
SENTENCE_VECTORS = "sentences.npy"
STORE = "store.sqlite"
CHUNK_LEXICAL = "chunks.bm25"
SENTENCE_LEXICAL = "sentences.bm25"
INDEX_FILES = (MANIFEST, CHUNK_VECTORS, SENTENCE_VECTORS, STORE, CHUNK_LEXICAL, SENTENCE_LEXICAL)
KEEP_VERSIONS = 2

_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    url TEXT, published TEXT, content_hash TEXT NOT NULL
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, context TEXT NOT NULL,
    first_sentence INTEGER NOT NULL, sentence_stop INTEGER NOT NULL
);
CREATE TABLE sentences (
    sentence_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, kind TEXT NOT NULL, paragraph INTEGER NOT NULL
);
CREATE INDEX sentences_by_doc ON sentences (doc_id, start);
"""


@dataclass(frozen=True)
class StoredSentence:
    sentence_id: int
    sentence: Sentence


@dataclass(frozen=True)
class IndexedDocument:
    """An article with everything embedded from it, ready to be written."""

    article: Article
    content_hash: str
    chunks: Sequence[Chunk]
    sentences: Sequence[Sentence]
    chunk_vectors: Vectors
    sentence_vectors: Vectors
    chunk_tokens: Sequence[Sequence[str]]
    sentence_tokens: Sequence[Sequence[str]]


@dataclass(frozen=True)
class StoredDocument:
    """An article as a published version holds it, embeddings included: what an
    incremental reindex reuses when the article did not change."""

    article: Article
    chunks: list[Chunk]
    sentences: list[Sentence]
    chunk_vectors: Vectors
    sentence_vectors: Vectors


@dataclass(frozen=True)
class BuildInfo:
    """What every chunk of a version was made with; recorded in its manifest."""

    model: str
    dimension: int
    max_tokens: int
    overlap_tokens: int


def versions_dir(path: Path) -> Path:
    return path.with_name(path.name + ".versions")


@contextmanager
def index_lock(path: Path) -> Iterator[None]:
    """Hold the build lock of the index at ``path``, or raise BuildLockedError.

    An advisory ``flock`` on ``PATH.lock``: the kernel drops it when its process
    dies, so a reindex killed with ``kill -9`` never leaves a lock that blocks.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BuildLockedError(
                f"another reindex of {path} is running ({holder}); wait for it to finish"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_index(
    path: Path, documents: Iterable[IndexedDocument], info: BuildInfo, *, source_digest: str
) -> Manifest:
    """Write a new version of the index and publish it at ``path`` atomically.

    The caller holds :func:`index_lock`. Left-overs of a build that was killed
    (a half-written version folder, a temporary link) are removed first.
    """
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    root = versions_dir(path)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    staging = root / f".tmp-{version}"
    staging.mkdir()
    try:
        manifest = _write_version(staging, documents, info, version=version, source_digest=source_digest)
        final = root / version
        staging.rename(final)
        _publish(path, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_old_versions(path)
    return manifest


def _remove_leftovers(path: Path) -> None:
    for item in versions_dir(path).glob(".tmp-*"):
        shutil.rmtree(item, ignore_errors=True)
    for item in path.parent.glob(f".{path.name}.link-*"):
        item.unlink(missing_ok=True)


def _write_version(
    folder: Path, documents: Iterable[IndexedDocument], info: BuildInfo, *, version: str, source_digest: str
) -> Manifest:
    chunk_index = faiss.IndexIDMap2(faiss.IndexFlatIP(info.dimension))
    sentence_blocks: list[Vectors] = []
    chunk_tokens: list[Sequence[str]] = []
    sentence_tokens: list[Sequence[str]] = []
    counts = {"documents": 0, "chunks": 0, "sentences": 0}
    connection = sqlite3.connect(folder / STORE)
    try:
        connection.executescript(_SCHEMA)
        for document in documents:
            article = document.article
            connection.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                (
                    article.doc_id,
                    article.title,
                    article.text,
                    article.url,
                    article.published,
                    document.content_hash,
                ),
            )
            first_chunk = counts["chunks"]
            first_sentence = counts["sentences"]
            # A chunk is a run of whole sentences: record it as a range of sentence ids.
            starts = [s.start for s in document.sentences]
            connection.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        first_chunk + i,
                        c.doc_id,
                        c.start,
                        c.end,
                        c.context,
                        first_sentence + bisect.bisect_left(starts, c.start),
                        first_sentence + bisect.bisect_left(starts, c.end),
                    )
                    for i, c in enumerate(document.chunks)
                ],
            )
            connection.executemany(
                "INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (first_sentence + i, article.doc_id, s.start, s.end, s.kind.value, s.paragraph)
                    for i, s in enumerate(document.sentences)
                ],
            )
            if len(document.chunks):
                ids = np.arange(first_chunk, first_chunk + len(document.chunks), dtype=np.int64)
                chunk_index.add_with_ids(np.ascontiguousarray(document.chunk_vectors), ids)
            sentence_blocks.append(document.sentence_vectors)
            chunk_tokens.extend(document.chunk_tokens)
            sentence_tokens.extend(document.sentence_tokens)
            counts["documents"] += 1
            counts["chunks"] += len(document.chunks)
            counts["sentences"] += len(document.sentences)
        connection.commit()
    finally:
        connection.close()

    faiss.write_index(chunk_index, str(folder / CHUNK_VECTORS))
    sentence_vectors = (
        np.concatenate(sentence_blocks) if sentence_blocks else np.zeros((0, info.dimension), np.float32)
    )
    np.save(folder / SENTENCE_VECTORS, sentence_vectors.astype(np.float32, copy=False))
    LexicalIndex.build(chunk_tokens).save(folder / CHUNK_LEXICAL)
    LexicalIndex.build(sentence_tokens).save(folder / SENTENCE_LEXICAL)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=info.model,
        dimension=info.dimension,
        max_tokens=info.max_tokens,
        overlap_tokens=info.overlap_tokens,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        code_version=__version__,
        version=version,
        source_digest=source_digest,
        **counts,
    )
    (folder / MANIFEST).write_text(json.dumps(dataclasses.asdict(manifest), indent=2) + "\n", "utf-8")
    _fsync_tree(folder)
    return manifest


def _fsync_tree(folder: Path) -> None:
    """Flush the version's files to disk before it is published."""
    for item in [*folder.rglob("*"), folder]:
        descriptor = os.open(item, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _publish(path: Path, version_folder: Path) -> None:
    """Point ``path`` at ``version_folder`` with one atomic rename of a symbolic link."""
    if path.exists() and not path.is_symlink():
        raise IndexUnavailableError(f"{path} is a plain folder, not an index link; move it away and reindex")
    link = path.with_name(f".{path.name}.link-{secrets.token_hex(3)}")
    link.symlink_to(os.path.relpath(version_folder, path.parent))
    os.replace(link, path)


def _remove_old_versions(path: Path) -> None:
    current = path.resolve().name if path.exists() else ""
    root = versions_dir(path)
    versions = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    keep = {current, *(p.name for p in versions[-KEEP_VERSIONS:])}
    for folder in versions:
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def read_manifest(path: Path) -> Manifest:
    """The manifest of the index at ``path``."""
    manifest_path = path / MANIFEST
    try:
        data = json.loads(manifest_path.read_text("utf-8"))
        return Manifest(**data)
    except FileNotFoundError as exc:
        raise IndexUnavailableError(
            f"no index at {path}: build it with `qa reindex --source PATH --index {path}`"
        ) from exc
    except (json.JSONDecodeError, TypeError) as exc:
        raise IndexUnavailableError(f"{manifest_path}: unreadable manifest ({exc})") from exc


class Index:
    """A loaded, read-only index version: vectors in memory, texts in SQLite."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        try:
            self.chunk_vectors = faiss.read_index(str(folder / CHUNK_VECTORS))
            self.sentence_vectors: Vectors = np.load(folder / SENTENCE_VECTORS)
            self.chunk_lexical = LexicalIndex.load(folder / CHUNK_LEXICAL)
            self.sentence_lexical = LexicalIndex.load(folder / SENTENCE_LEXICAL)
        except (RuntimeError, OSError, ValueError) as exc:
            raise IndexUnavailableError(f"{folder}: corrupt or missing vector file ({exc})") from exc
        if self.chunk_vectors.ntotal != manifest.chunks or self.sentence_vectors.shape != (
            manifest.sentences,
            manifest.dimension,
        ):
            raise IndexUnavailableError(f"{folder}: vector files do not match the manifest; reindex")
        self._lock = threading.Lock()
        self._store = _load_store(folder / STORE)
        ranges = np.array(
            self._query("SELECT first_sentence, sentence_stop FROM chunks ORDER BY chunk_id", ()),
            dtype=np.int64,
        ).reshape(-1, 2)
        # Sentence ids of chunk i: range(*chunk_sentences[i]).
        self.chunk_sentences = ranges

    def document(self, doc_id: str) -> Article:
        row = self._query(
            "SELECT doc_id, title, text, url, published FROM documents WHERE doc_id = ?", (doc_id,)
        )
        if not row:
            raise NotFoundError(f"no document with id {doc_id!r}")
        return Article(*row[0])

    def content_hashes(self) -> dict[str, str]:
        """The content hash of every document, by id."""
        return dict(self._query("SELECT doc_id, content_hash FROM documents", ()))

    def stored_document(self, doc_id: str) -> StoredDocument:
        """An article with its chunks, sentences and their vectors."""
        chunk_rows = self._query(
            'SELECT chunk_id, doc_id, start, "end", context FROM chunks WHERE doc_id = ? ORDER BY chunk_id',
            (doc_id,),
        )
        sentence_rows = self._query(
            'SELECT sentence_id, start, "end", kind, paragraph FROM sentences '
            "WHERE doc_id = ? ORDER BY sentence_id",
            (doc_id,),
        )
        chunk_vectors = self._chunk_vectors([row[0] for row in chunk_rows])
        return StoredDocument(
            article=self.document(doc_id),
            chunks=[Chunk(*row[1:]) for row in chunk_rows],
            sentences=[Sentence(row[1], row[2], SentenceKind(row[3]), row[4]) for row in sentence_rows],
            chunk_vectors=chunk_vectors,
            sentence_vectors=self.sentence_vectors[[row[0] for row in sentence_rows]],
        )

    def chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        """Chunks by id, in the order asked."""
        rows = self._query(
            f'SELECT chunk_id, doc_id, start, "end", context FROM chunks '
            f"WHERE chunk_id IN ({','.join('?' * len(chunk_ids))})",
            list(chunk_ids),
        )
        by_id = {row[0]: Chunk(*row[1:]) for row in rows}
        return [by_id[chunk_id] for chunk_id in chunk_ids]

    def sentences(self, first: int, stop: int) -> list[StoredSentence]:
        """Sentences by id, ``first`` up to but not including ``stop``."""
        rows = self._query(
            'SELECT sentence_id, start, "end", kind, paragraph FROM sentences '
            "WHERE sentence_id >= ? AND sentence_id < ? ORDER BY sentence_id",
            (first, stop),
        )
        return [
            StoredSentence(row[0], Sentence(row[1], row[2], SentenceKind(row[3]), row[4])) for row in rows
        ]

    def _query(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._store.execute(sql, parameters).fetchall()

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def chunk_similarities(self, chunk_ids: Sequence[int], query: Vectors) -> list[float]:
        """Inner products of ``query`` with the given chunks' vectors."""
        return [float(s) for s in self._chunk_vectors(chunk_ids) @ query]

    def _chunk_vectors(self, chunk_ids: Sequence[int]) -> Vectors:
        if not chunk_ids:
            return np.zeros((0, self.manifest.dimension), np.float32)
        vectors: Vectors = self.chunk_vectors.reconstruct_batch(np.asarray(chunk_ids, dtype=np.int64))
        return vectors

    def search(self, query: Vectors, limit: int) -> list[tuple[int, float]]:
        """Chunk ids and inner-product scores of the ``limit`` nearest chunks."""
        if self.chunk_vectors.ntotal == 0:
            return []
        scores, ids = self.chunk_vectors.search(query.reshape(1, -1), min(limit, self.chunk_vectors.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def _load_store(path: Path) -> sqlite3.Connection:
    """The store copied into memory: the served version keeps answering even if its
    files are removed or damaged on disk, and one connection serves every thread."""
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise IndexUnavailableError(f"{path}: cannot open the store ({exc}); reindex") from exc
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        source.backup(memory)
        memory.execute("SELECT 1 FROM documents, chunks, sentences LIMIT 1")
    except sqlite3.Error as exc:
        memory.close()
        raise IndexUnavailableError(f"{path}: corrupt store ({exc}); reindex") from exc
    finally:
        source.close()
    return memory


def load_index(path: Path, *, model: str, dimension: int) -> Index:
    """Load the version ``path`` points at, refusing one built with another model."""
    folder = path.resolve()
    manifest = read_manifest(folder)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexUnavailableError(
            f"{path}: index format {manifest.format_version}, this code reads {FORMAT_VERSION}; "
            f"rebuild it with `qa reindex --index {path}`"
        )
    if manifest.model != model or manifest.dimension != dimension:
        raise IndexMismatchError(
            f"{path} was built with {manifest.model} ({manifest.dimension} dimensions) but the "
            f"configured embedder is {model} ({dimension} dimensions); rebuild it with "
            f"`qa reindex --index {path}` or configure the model it was built with"
        )
    return Index(folder, manifest)
