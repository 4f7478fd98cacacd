"""One immutable segment of an index: the articles of one reindex (or of one merge)
with their chunks, sentences, vectors and BM25 postings. Loads no models.

Files of a segment folder::

    segment.json          counts, and the kind and FAISS factory string of its vectors
    store.sqlite          documents, chunks and sentences with their offsets
    chunks.faiss          one unit vector a chunk: flat (exact) or IVF; row = chunk row
    sentences.f16         one unit vector a sentence, float16; row = sentence row
    chunk_sentences.npy   the sentence rows of every chunk, as [first, stop)
    chunks.lex/           BM25 postings of the chunks' tokens (with their context)
    sentences.lex/        BM25 postings of the sentences' tokens

Rows are local to the segment; a version gives each segment a base so that ids are
unique across it (``qa.store.index``). A segment is written once and never changed. The
manifest records a digest of each of its files (``SegmentInfo.digests``), checked when
the segment is opened, so a damaged file is refused and named rather than read.
Opening maps its files (and reads ``documents.npz`` whole, about 12 bytes a chunk in
memory): nothing is read from the folder afterwards, which a later version may
prune while it still serves the same files through its own hard links. Processes
that serve the same segment share its pages.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import sqlite3
import threading
import zipfile
import zlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np
import numpy.typing as npt

from qa.config import IndexSettings
from qa.errors import IndexUnavailableError
from qa.records import Article, Chunk, Filters, Meta, Sentence, SentenceKind
from qa.store.documents import DocumentTable
from qa.store.lexical import LexicalSegment, LexicalWriter
from qa.types import Vectors

SEGMENT_META = "segment.json"
STORE = "store.sqlite"
CHUNK_VECTORS = "chunks.faiss"
SENTENCE_VECTORS = "sentences.f16"
CHUNK_SENTENCES = "chunk_sentences.npy"
DOCUMENT_TABLE = "documents.npz"
CHUNK_LEXICAL = "chunks.lex"
SENTENCE_LEXICAL = "sentences.lex"
_RAW_CHUNK_VECTORS = "chunks.f32.tmp"

# FAISS needs about this many training vectors a list (it warns below 39).
MIN_VECTORS_PER_LIST = 39
# Training vectors a list: more adds training time for no measurable recall here.
TRAINING_VECTORS_PER_LIST = 64
_ADD_BATCH = 65536
# Searching with a filter (see Segment.search_rows). An IVF search probes enough lists
# to meet at least this share of the rows an unfiltered search meets.
FILTERED_CANDIDATES = 0.5
# Scoring one allowed row from its vector (read back from the index) costs about as
# much as this many rows scanned by the index's own search (measured at 1M chunks
# by scripts/bench_scale.py: about 2.4 us against 29 ns).
EXACT_SCAN_ROW_COST = 80

_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    url TEXT, published TEXT, content_hash TEXT NOT NULL, meta TEXT NOT NULL
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




@dataclass(frozen=True)
class StoredDocument:
    """An article as a segment holds it, embeddings included: what a merge copies."""

    article: Article
    content_hash: str
    chunks: list[Chunk]
    sentences: list[Sentence]
    chunk_vectors: Vectors
    sentence_vectors: Vectors


@dataclass(frozen=True)
class SegmentStats:
    """What ``segment.json`` records."""

    documents: int
    chunks: int
    sentences: int
    dimension: int
    # "flat" or "ivf", and the FAISS factory string that built the vectors.
    kind: str
    factory: str
    bytes: int
    # The average token counts of chunks and of sentences that BM25 weighed lengths against.
    average_lengths: tuple[float, float]
    # The digest of every file of the folder by its path there, segment.json included
    # (so not recorded in it: the manifest records them, see file_digests).
    digests: dict[str, str] = field(default_factory=dict, hash=False)


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
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (article.doc_id, article.title, article.text, article.url, article.published,
             document.content_hash, json.dumps(article.meta, ensure_ascii=False)),
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
        recorded = {key: value for key, value in asdict(stats).items() if key != "digests"}
        (self.folder / SEGMENT_META).write_text(json.dumps(recorded, indent=2) + "\n", "utf-8")
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


def fsync_tree(folder: Path) -> None:
    """Flush a folder's files, and the folders themselves, to disk."""
    for item in [*folder.rglob("*"), folder]:
        descriptor = os.open(item, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# Digests detect damage (a disk or a copy that garbles or cuts a file), not tampering:
# whoever can write a segment can write the manifest too. So the fastest checksum the
# standard library has (no faster hash package is installed): CRC-32, read 4 MiB at a
# time. Measured on this 2-core machine, one thread, a file of 0.8-1 GB in the page
# cache, the cores shared with other work: CRC-32 1,450-2,800 MB/s, SHA-256 (with the
# CPU's SHA instructions) 840-1,420 MB/s, BLAKE2b 520-870 MB/s; in each run CRC-32 was
# about twice SHA-256. Opening a segment of a million chunks (6.5 GB) reads it once:
# some 2.5-4.5 s, its files summed in parallel threads. A reload opens only the new
# segments. The checksum's name comes with each digest, so another could replace it.
DIGEST_BLOCK = 4 << 20


def file_digest(path: Path) -> str:
    """The digest of one file, as ``crc32:`` and eight hexadecimal digits."""
    checksum = 0
    buffer = bytearray(DIGEST_BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        while count := file.readinto(buffer):
            checksum = zlib.crc32(view[:count], checksum)
    return f"crc32:{checksum:08x}"


def _hashed(paths: Sequence[Path]) -> list[str]:
    """The digests of ``paths``, in order, a thread a core (zlib lets go of the GIL
    while it sums), the largest files started first so that none is left last alone."""
    order = sorted(range(len(paths)), key=lambda n: -paths[n].stat().st_size)
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        digests = list(pool.map(file_digest, [paths[n] for n in order]))
    found = [""] * len(paths)
    for position, digest in zip(order, digests, strict=True):
        found[position] = digest
    return found


def file_digests(folder: Path) -> dict[str, str]:
    """The digest of every file of ``folder``, by its path there (``chunks.lex/rows.npy``)."""
    paths = sorted(item for item in folder.rglob("*") if item.is_file())
    return {
        path.relative_to(folder).as_posix(): digest
        for path, digest in zip(paths, _hashed(paths), strict=True)
    }


def check_digests(folder: Path, digests: Mapping[str, str]) -> None:
    """Raise IndexUnavailableError naming the first file of ``folder`` that is missing
    or does not match its digest in ``digests``."""
    if not digests:
        raise IndexUnavailableError(f"{folder}: the manifest records no digests of its files; reindex")
    names = sorted(digests)
    for name in names:
        if not (folder / name).is_file():
            raise IndexUnavailableError(f"{folder}: {name} is missing; reindex")
    try:
        found = _hashed([folder / name for name in names])
    except OSError as exc:
        raise IndexUnavailableError(f"{folder}: unreadable segment file ({exc}); reindex") from exc
    for name, digest in zip(names, found, strict=True):
        if digest != digests[name]:
            raise IndexUnavailableError(f"{folder}: {name} does not match its digest; reindex")


def read_stats(folder: Path) -> SegmentStats:
    try:
        data = json.loads((folder / SEGMENT_META).read_text("utf-8"))
        return SegmentStats(**{**data, "average_lengths": tuple(data["average_lengths"])})
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise IndexUnavailableError(f"{folder}: unreadable segment ({exc}); reindex") from exc


FileIdentity = tuple[int, int, int]


def file_identities(folder: Path) -> dict[Path, FileIdentity]:
    """Inode, size and modification time of every file of ``folder``, by its path in
    the folder: a file removed, replaced or written to since then no longer matches."""
    identities = {}
    for item in folder.rglob("*"):
        if item.is_file():
            status = item.stat()
            identities[item.relative_to(folder)] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return identities


class Segment:
    """An opened segment: vectors and postings memory-mapped, the store read in place,
    the document table read. Every file is checked against its digest first."""

    def __init__(self, folder: Path, nprobe: int, digests: Mapping[str, str]) -> None:
        """``digests``: of the segment's files, as the manifest records them."""
        # The folder it was opened from, for messages only: nothing is read from it
        # later, as a version that reuses this segment may have pruned it.
        self.folder = folder
        self.name = folder.name
        self.files = file_identities(folder)
        check_digests(folder, digests)
        self.stats = stats = read_stats(folder)
        try:
            flags = faiss.IO_FLAG_MMAP if stats.kind == "ivf" else faiss.IO_FLAG_MMAP_IFC
            self._vectors = faiss.read_index(str(folder / CHUNK_VECTORS), flags)
            self._nprobe = nprobe
            self._lists = 1
            if stats.kind == "ivf":
                ivf = faiss.extract_index_ivf(self._vectors)
                self._lists = ivf.nlist
                # Reading a chunk's vector back (for a chunk found only by BM25) needs the
                # map from row to list: 8 bytes a chunk, built from the lists' ids.
                ivf.make_direct_map()
            # Read with pread rather than mapped: a question reads the sentences of some
            # hundred chunks scattered over a file of gigabytes. Read, they stay in the
            # page cache that every worker shares and no process is charged for; mapped,
            # each page read would stay in every worker's resident memory.
            self._sentence_file = (folder / SENTENCE_VECTORS).open("rb", buffering=0)
            self.chunk_sentences: npt.NDArray[np.int64] = np.load(folder / CHUNK_SENTENCES, mmap_mode="r")
            self.chunk_lexical = LexicalSegment(folder / CHUNK_LEXICAL)
            self.sentence_lexical = LexicalSegment(folder / SENTENCE_LEXICAL)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise IndexUnavailableError(
                f"{folder}: corrupt or missing segment file ({exc}); reindex"
            ) from exc
        try:
            # Read whole now, not on the first filter: by then the folder may be gone.
            self.document_table = DocumentTable.load(folder / DOCUMENT_TABLE)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexUnavailableError(f"{folder}: unreadable {DOCUMENT_TABLE} ({exc}); reindex") from exc
        if (
            self._vectors.ntotal != stats.chunks
            or self.chunk_sentences.shape != (stats.chunks, 2)
            or (self.chunk_lexical.rows, self.sentence_lexical.rows) != (stats.chunks, stats.sentences)
            or os.fstat(self._sentence_file.fileno()).st_size != 2 * stats.dimension * stats.sentences
            or self._table_problem() is not None
            or not _documents_in_range(self.document_table.chunk_documents, stats.documents)
        ):
            raise IndexUnavailableError(f"{folder}: segment files do not match segment.json; reindex")
        self._lock = threading.Lock()
        self._store = _open_store(folder / STORE, stats.documents)

    def search(
        self, query: Vectors, limit: int, allowed: Any = None, nprobe: int | None = None
    ) -> tuple[Vectors, npt.NDArray[np.int64]]:
        """Scores and rows of the ``limit`` nearest chunks; ``allowed`` is a FAISS
        IDSelector of the rows that may be returned (None: all); ``nprobe`` lists are
        searched (of an IVF index; the setting's number unless given)."""
        parameters: Any = (
            faiss.SearchParametersIVF() if self.stats.kind == "ivf" else faiss.SearchParameters()
        )
        if self.stats.kind == "ivf":
            parameters.nprobe = nprobe or self._nprobe
        parameters.sel = allowed
        scores, rows = self._vectors.search(
            query.reshape(1, -1), min(limit, self.stats.chunks), params=parameters
        )
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def search_rows(
        self, query: Vectors, limit: int, allowed: npt.NDArray[np.bool_]
    ) -> tuple[Vectors, npt.NDArray[np.int64]]:
        """Scores and rows of the ``limit`` nearest chunks among the ``allowed`` rows.

        Either the index searches, skipping the other rows as it goes, or each allowed
        row is scored from its vector (exact), whichever scans less: the index scans
        the same rows whatever the filter, the other way costs a read per allowed row.
        An IVF search probes ``nprobe * FILTERED_CANDIDATES / share`` lists (at least
        ``nprobe``; ``share`` is the share of rows allowed), so that a selective filter
        still meets enough allowed rows for its recall to hold; one that found fewer
        than it could (the allowed rows lie in lists it did not probe) is redone exactly.
        """
        count = int(np.count_nonzero(allowed))
        wanted = min(limit, count)
        nprobe = 1  # a flat index scans every row
        if self._lists > 1 and count:
            share = count / self.stats.chunks
            nprobe = min(self._lists, math.ceil(self._nprobe * max(1.0, FILTERED_CANDIDATES / share)))
        scanned = self.stats.chunks * nprobe / self._lists
        if count * EXACT_SCAN_ROW_COST > scanned:
            packed = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.stats.chunks, faiss.swig_ptr(packed))
            scores, found = self.search(query, limit, selector, nprobe)
            if found.size >= wanted:
                return scores, found
        rows = np.flatnonzero(allowed)
        similarities = self.chunk_vectors(rows) @ query
        best = np.argsort(-similarities, kind="stable")[:wanted]
        return similarities[best], rows[best]

    def _table_problem(self) -> str | None:
        """Whether the document table lacks the segment's rows (its shapes: no pass over them)."""
        table = self.document_table
        if table.days.shape != (self.stats.documents,) or table.chunk_documents.shape != (self.stats.chunks,):
            return f"{DOCUMENT_TABLE} does not match segment.json"
        return None

    def problem(self) -> str | None:
        """What would keep a filtered search of this segment from being answered, if
        anything: its document table (held since the segment was opened) of the
        segment's rows, and its store answering a lookup by document id, as a filter
        makes. Cheap enough for every /healthz: no pass over the rows."""
        if (table := self._table_problem()) is not None:
            return table
        try:
            self._query("SELECT rowid FROM documents WHERE doc_id = ?", ("",))
        except IndexUnavailableError as exc:
            return f"{STORE} does not answer ({exc.__cause__})"
        return None

    def allowed_chunks(
        self, filters: Filters, deleted_chunks: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Which chunk rows documents matching ``filters`` hold, less ``deleted_chunks``."""
        # Documents are written in row order: rowid 1 is ordinal 0.
        rowids = self._of_documents("SELECT rowid FROM documents", filters.doc_ids)
        return self.document_table.allowed_chunks(
            filters, np.array(rowids, dtype=np.int64) - 1, deleted_chunks
        )

    def sentence_vectors(self, first: int, stop: int) -> Vectors:
        """The vectors of sentence rows ``first`` up to ``stop``, as float32."""
        row_bytes = 2 * self.stats.dimension
        data = os.pread(self._sentence_file.fileno(), (stop - first) * row_bytes, first * row_bytes)
        vectors = np.frombuffer(data, dtype=np.float16).reshape(stop - first, self.stats.dimension)
        return vectors.astype(np.float32)

    def chunk_vectors(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> Vectors:
        if not len(rows):
            return np.zeros((0, self.stats.dimension), np.float32)
        vectors: Vectors = self._vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        return vectors

    def chunks(self, rows: Sequence[int]) -> dict[int, Chunk]:
        found = self._query(
            f'SELECT chunk_id, doc_id, start, "end", context FROM chunks '
            f"WHERE chunk_id IN ({','.join('?' * len(rows))})",
            [int(row) for row in rows],
        )
        return {row[0]: Chunk(*row[1:]) for row in found}

    def sentences(self, first: int, stop: int) -> list[tuple[int, Sentence]]:
        """Sentences by row, ``first`` up to but not including ``stop``."""
        rows = self._query(
            'SELECT sentence_id, start, "end", kind, paragraph FROM sentences '
            "WHERE sentence_id >= ? AND sentence_id < ? ORDER BY sentence_id",
            (first, stop),
        )
        return [(row[0], Sentence(row[1], row[2], SentenceKind(row[3]), row[4])) for row in rows]

    def document(self, doc_id: str) -> Article | None:
        row = self._query(
            "SELECT doc_id, title, text, url, published, meta FROM documents WHERE doc_id = ?", (doc_id,)
        )
        return _article(*row[0]) if row else None

    def content_hashes(self) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self._query("SELECT doc_id, content_hash FROM documents", ())]

    def rows_of(self, doc_ids: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The chunk rows and the sentence rows of the given documents, sorted."""
        chunks = self._of_documents("SELECT chunk_id FROM chunks", doc_ids)
        sentences = self._of_documents("SELECT sentence_id FROM sentences", doc_ids)
        return np.array(sorted(chunks), dtype=np.int64), np.array(sorted(sentences), dtype=np.int64)

    def _of_documents(self, select: str, doc_ids: Sequence[str]) -> list[int]:
        """The one column ``select`` reads, of the rows of the given documents."""
        values: list[int] = []
        for start in range(0, len(doc_ids), 500):  # SQLite caps the parameters of one query
            batch = list(doc_ids[start : start + 500])
            found = self._query(f"{select} WHERE doc_id IN ({','.join('?' * len(batch))})", batch)
            values.extend(row[0] for row in found)
        return values

    def stored_documents(self, skip: frozenset[str]) -> Iterator[StoredDocument]:
        """Every document not in ``skip``, in row order, with its vectors: what a merge copies."""
        documents = self._query(
            "SELECT doc_id, title, text, url, published, meta, content_hash FROM documents ORDER BY rowid", ()
        )
        for doc_id, title, text, url, published, meta, content_hash in documents:
            if doc_id in skip:
                continue
            chunk_rows = self._query(
                'SELECT chunk_id, doc_id, start, "end", context FROM chunks '
                "WHERE doc_id = ? ORDER BY chunk_id",
                (doc_id,),
            )
            sentence_rows = self._query(
                'SELECT sentence_id, start, "end", kind, paragraph FROM sentences '
                "WHERE doc_id = ? ORDER BY sentence_id",
                (doc_id,),
            )
            yield StoredDocument(
                article=_article(doc_id, title, text, url, published, meta),
                content_hash=content_hash,
                chunks=[Chunk(*row[1:]) for row in chunk_rows],
                sentences=[Sentence(row[1], row[2], SentenceKind(row[3]), row[4]) for row in sentence_rows],
                chunk_vectors=self.chunk_vectors([row[0] for row in chunk_rows]),
                # A document's sentences are consecutive rows.
                sentence_vectors=self.sentence_vectors(sentence_rows[0][0], sentence_rows[-1][0] + 1)
                if sentence_rows
                else np.zeros((0, self.stats.dimension), np.float32),
            )

    def _query(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._store.execute(sql, parameters).fetchall()
            except sqlite3.DatabaseError as exc:
                # A store damaged after it was opened (written in place): a 503 that says
                # what to do, not a server error.
                raise IndexUnavailableError(f"{self.name}: unreadable {STORE} ({exc}); reindex") from exc

    def close(self) -> None:
        with self._lock:
            self._store.close()
        self._sentence_file.close()


def _documents_in_range(chunk_documents: npt.NDArray[np.intp], documents: int) -> bool:
    """Whether every chunk's document ordinal is one of the segment's ``documents``."""
    return (
        not chunk_documents.size or 0 <= int(chunk_documents.min()) <= int(chunk_documents.max()) < documents
    )


def _article(
    doc_id: str, title: str, text: str, url: str | None, published: str | None, meta: str
) -> Article:
    return Article(doc_id, title, text, url, published, _meta(meta))


def _meta(stored: str) -> Meta:
    return {key: tuple(values) for key, values in json.loads(stored).items()}


def _open_store(path: Path, documents: int) -> sqlite3.Connection:
    """The store read in place: ``immutable`` tells SQLite the file never changes, so
    it takes no locks and keeps no journal. One connection serves every thread (the
    segment's lock orders them)."""
    try:
        store = sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise IndexUnavailableError(f"{path}: cannot open the store ({exc}); reindex") from exc
    try:
        (count,) = store.execute("SELECT count(*) FROM documents").fetchone()
        store.execute("SELECT 1 FROM chunks, sentences LIMIT 1")
    except sqlite3.Error as exc:
        store.close()
        raise IndexUnavailableError(f"{path}: corrupt store ({exc}); reindex") from exc
    if count != documents:
        store.close()
        raise IndexUnavailableError(f"{path}: the store does not match segment.json; reindex")
    return store
