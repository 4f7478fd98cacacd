"""Reading one immutable segment of an index (written by ``qa.store.segment_writer``;
the files: ``qa.store.layout``). Loads no models.

The manifest records a digest of each of a segment's files (``SegmentInfo.digests``),
checked when the segment is opened, so a damaged file is refused and named rather
than read. Opening maps its files (and reads ``documents.npz`` whole, about 12 bytes
a chunk in memory): nothing is read from the folder afterwards, which a later version
may prune while it still serves the same files through its own hard links. Processes
that serve the same segment share its pages. Rows are local to the segment
(``qa.store.segment_view`` turns them into a version's ids).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np
import numpy.typing as npt

from qa.errors import IndexUnavailableError
from qa.records import Article, Chunk, Filters, Meta, Sentence, SentenceKind
from qa.store.documents import DocumentTable
from qa.store.files import check_digests, file_identities
from qa.store.layout import (
    CHUNK_LEXICAL,
    CHUNK_SENTENCES,
    CHUNK_VECTORS,
    DOCUMENT_TABLE,
    SENTENCE_LEXICAL,
    SENTENCE_VECTORS,
    STORE,
    read_stats,
)
from qa.store.lexical import LexicalSegment
from qa.types import Vectors

# Searching with a filter (see Segment.search_rows). An IVF search probes enough lists
# to meet at least this share of the rows an unfiltered search meets.
FILTERED_CANDIDATES = 0.5
# Scoring one allowed row from its vector (read back from the index) costs about as
# much as this many rows scanned by the index's own search (measured at 1M chunks
# by scripts/bench_scale.py: about 2.4 us against 29 ns).
EXACT_SCAN_ROW_COST = 80


@dataclass(frozen=True)
class StoredDocument:
    """An article as a segment holds it, embeddings included: what a merge copies."""

    article: Article
    content_hash: str
    chunks: list[Chunk]
    sentences: list[Sentence]
    chunk_vectors: Vectors
    sentence_vectors: Vectors
    # Its group of syndicated copies and the signature it was grouped by (see IndexedDocument).
    copy_group: str = ""
    signature: bytes = b""


@dataclass(frozen=True)
class StoredCopy:
    """A document's group of syndicated copies and its signature, as stored: what a
    reindex groups new articles against (the store reads bytes, never MinHash)."""

    group: str
    signature: bytes


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

    def copies(self) -> list[tuple[str, StoredCopy]]:
        """Every document's id, copy group and signature, in one scan (no texts read)."""
        found = self._query("SELECT doc_id, copy_group, signature FROM documents", ())
        return [(doc_id, StoredCopy(group, bytes(signature))) for doc_id, group, signature in found]

    def copy_groups(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The copy group of each of the given documents that this segment holds."""
        groups: dict[str, str] = {}
        for start in range(0, len(doc_ids), 500):  # SQLite caps the parameters of one query
            batch = list(doc_ids[start : start + 500])
            found = self._query(
                f"SELECT doc_id, copy_group FROM documents WHERE doc_id IN ({','.join('?' * len(batch))})",
                batch,
            )
            groups.update((doc_id, group) for doc_id, group in found)
        return groups

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
            "SELECT doc_id, title, text, url, published, meta, content_hash, copy_group, signature "
            "FROM documents ORDER BY rowid",
            (),
        )
        for doc_id, title, text, url, published, meta, content_hash, copy_group, signature in documents:
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
                copy_group=copy_group,
                signature=bytes(signature),
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
