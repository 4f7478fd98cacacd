"""Writing one immutable segment of an index: the articles of one reindex (or of one
merge) with their chunks, sentences, vectors and BM25 postings (the files:
``qa.store.layout``). Loads no models: the documents come embedded and tokenized.

Rows are local to the segment; a version gives each segment a base so that ids are
unique across it (``qa.store.versions``). A segment is written once, flushed to disk,
and never changed; the digests of its files go into the manifest.
"""

from __future__ import annotations

import bisect
import json
import math
import sqlite3
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from qa.config import IndexSettings
from qa.records import Article, Chunk, Meta, Sentence
from qa.store.documents import DocumentTable
from qa.store.files import file_digests, fsync_tree
from qa.store.layout import (
    CHUNK_LEXICAL,
    CHUNK_SENTENCES,
    CHUNK_VECTORS,
    DOCUMENT_TABLE,
    SENTENCE_LEXICAL,
    SENTENCE_VECTORS,
    STORE,
    SegmentStats,
    write_stats,
)
from qa.store.lexical import LexicalWriter
from qa.types import Vectors

# The chunk vectors as they are added, before the FAISS index is built from them.
_RAW_CHUNK_VECTORS = "chunks.f32.tmp"

# FAISS needs about this many training vectors a list (it warns below 39).
MIN_VECTORS_PER_LIST = 39
# Training vectors a list: more adds training time for no measurable recall here.
TRAINING_VECTORS_PER_LIST = 64
_ADD_BATCH = 65536

_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    url TEXT, published TEXT, content_hash TEXT NOT NULL, meta TEXT NOT NULL,
    copy_group TEXT NOT NULL, signature BLOB NOT NULL
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, context TEXT NOT NULL
);
CREATE TABLE sentences (
    sentence_id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, kind TEXT NOT NULL, paragraph INTEGER NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks (doc_id);
CREATE INDEX sentences_by_doc ON sentences (doc_id);
"""


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
    # The document's group of syndicated copies (the doc_id of its first-indexed member;
    # None: its own) and the signature it was grouped by (qa.ingest.copies). The store
    # keeps them as a string and bytes, for answering and for the next reindex.
    copy_group: str | None = None
    signature: bytes = b""
    # Texts the engine embedded for it: 0 where its vectors were reused (an exact copy
    # of an article embedded before, a checkpoint); not stored.
    texts_embedded: int = 0
    # Whether the engine embedded it last in its batch: a checkpoint is written only
    # after such a document (qa.ingest.checkpoints), so that a resumed run batches as an
    # uninterrupted one did. True where no batch spans documents (a restore); not stored.
    ends_batch: bool = True


def vector_factory(chunks: int, settings: IndexSettings) -> tuple[str, str]:
    """The kind and FAISS factory string for a segment of ``chunks`` vectors.

    ``auto`` searches exactly up to ``flat_max_chunks`` (a flat scan of 20k vectors
    takes about 3 ms on 2 cores) and with inverted lists above. IVF keeps its codes in
    float16 (SQfp16): half the bytes of float32 for a recall loss too small to
    measure. A segment too small to train its lists is flat whatever the kind.
    """
    kind = settings.kind
    if kind == "auto":
        kind = "ivf" if chunks > settings.flat_max_chunks else "flat"
    if kind == "ivf":
        nlist = settings.nlist or 2 ** round(math.log2(max(1.0, 4 * math.sqrt(chunks))))
        if chunks >= MIN_VECTORS_PER_LIST * nlist:
            return "ivf", f"IVF{nlist},SQfp16"
    return "flat", "Flat"


class SegmentWriter:
    """Writes the documents given to :meth:`add` as a segment in ``folder``."""

    def __init__(
        self,
        folder: Path,
        dimension: int,
        settings: IndexSettings,
        average_lengths: tuple[float, float] | None = None,
    ) -> None:
        """``average_lengths`` of chunks and sentences are the index's (see
        ``qa.store.lexical``); None for its first segment, which sets them."""
        self.folder = folder
        self.average_lengths = average_lengths
        self.dimension = dimension
        self.settings = settings
        folder.mkdir(parents=True)
        self._store = sqlite3.connect(folder / STORE)
        self._store.executescript(_SCHEMA)
        self._chunk_vectors = (folder / _RAW_CHUNK_VECTORS).open("wb")
        self._sentence_vectors = (folder / SENTENCE_VECTORS).open("wb")
        self._chunk_sentences = array("q")
        self._chunk_lexical = LexicalWriter()
        self._sentence_lexical = LexicalWriter()
        self._filtered: list[tuple[str | None, Meta, int]] = []
        self.doc_ids: list[str] = []
        self.documents = 0
        self.chunks = 0
        self.sentences = 0

    def add(self, document: IndexedDocument) -> None:
        article = document.article
        self._store.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (article.doc_id, article.title, article.text, article.url, article.published,
             document.content_hash, json.dumps(article.meta, ensure_ascii=False),
             document.copy_group or article.doc_id, document.signature),
        )  # fmt: skip
        self._store.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
            [(self.chunks + i, c.doc_id, c.start, c.end, c.context) for i, c in enumerate(document.chunks)],
        )
        self._store.executemany(
            "INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?)",
            [
                (self.sentences + i, article.doc_id, s.start, s.end, s.kind.value, s.paragraph)
                for i, s in enumerate(document.sentences)
            ],
        )
        # A chunk is a run of whole sentences: record it as a range of sentence rows.
        starts = [s.start for s in document.sentences]
        for chunk in document.chunks:
            self._chunk_sentences.append(self.sentences + bisect.bisect_left(starts, chunk.start))
            self._chunk_sentences.append(self.sentences + bisect.bisect_left(starts, chunk.end))
        self._chunk_vectors.write(np.ascontiguousarray(document.chunk_vectors, dtype=np.float32).tobytes())
        self._sentence_vectors.write(np.asarray(document.sentence_vectors, dtype=np.float16).tobytes())
        for chunk_tokens in document.chunk_tokens:
            self._chunk_lexical.add(chunk_tokens)
        for sentence_tokens in document.sentence_tokens:
            self._sentence_lexical.add(sentence_tokens)
        self._filtered.append((article.published, article.meta, len(document.chunks)))
        self.doc_ids.append(article.doc_id)
        self.documents += 1
        self.chunks += len(document.chunks)
        self.sentences += len(document.sentences)

    def finish(self) -> SegmentStats:
        """Write the vector index and postings, flush every file to disk, and return
        what the segment holds."""
        self._store.commit()
        self._store.close()
        self._chunk_vectors.close()
        self._sentence_vectors.close()
        kind, factory = vector_factory(self.chunks, self.settings)
        raw = self.folder / _RAW_CHUNK_VECTORS
        vectors = _build_vectors(_read_raw(raw, self.chunks, self.dimension), factory)
        faiss.write_index(vectors, str(self.folder / CHUNK_VECTORS))
        raw.unlink()
        ranges = np.frombuffer(self._chunk_sentences, dtype=np.int64).reshape(-1, 2)
        np.save(self.folder / CHUNK_SENTENCES, ranges)
        DocumentTable.build(self._filtered).save(self.folder / DOCUMENT_TABLE)
        averages = self.average_lengths or (
            self._chunk_lexical.average_length(),
            self._sentence_lexical.average_length(),
        )
        self._chunk_lexical.save(self.folder / CHUNK_LEXICAL, averages[0])
        self._sentence_lexical.save(self.folder / SENTENCE_LEXICAL, averages[1])
        size = sum(item.stat().st_size for item in self.folder.rglob("*") if item.is_file())
        stats = SegmentStats(
            self.documents, self.chunks, self.sentences, self.dimension, kind, factory, size, averages
        )
        write_stats(self.folder, stats)
        fsync_tree(self.folder)
        # Last, once every file is written (from the page cache: the files were just written).
        return replace(stats, digests=file_digests(self.folder))

    def abandon(self) -> None:
        """Close the files of a segment that will not be finished."""
        self._store.close()
        self._chunk_vectors.close()
        self._sentence_vectors.close()


def _read_raw(path: Path, rows: int, dimension: int) -> npt.NDArray[np.float32]:
    if rows == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, dimension))


def _build_vectors(vectors: npt.NDArray[np.float32], factory: str) -> faiss.Index:
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        # A sample spread over the whole segment, in row order so that it reads sequentially.
        size = min(len(vectors), ivf.nlist * TRAINING_VECTORS_PER_LIST)
        sample = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
        index.train(np.ascontiguousarray(vectors[sample]))
    for start in range(0, len(vectors), _ADD_BATCH):
        index.add(np.ascontiguousarray(vectors[start : start + _ADD_BATCH]))
    return index
