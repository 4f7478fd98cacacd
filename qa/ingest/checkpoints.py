"""Checkpoints of a bulk build: the documents a reindex has embedded so far, kept on
disk while it runs, so that a run killed after hours resumes where it stopped
instead of embedding the archive again (``qa.ingest.pipeline`` feeds and reads them).

They lie in a folder of the index's versions folder, named by a key of everything
that makes a vector valid (the model, its dimension, the chunking, the way vectors
are made, the index format and the code version), so that a run with other settings
never uses them::

    PATH.versions/.build/KEY/
        build.json              what KEY stands for, for whoever looks
        000001.chunks.npy       float32 chunk vectors of the checkpoint's documents, in order
        000001.sentences.npy    float32 sentence vectors, as the engine returned them
        000001.json             the documents: content hash, chunks, sentences; the
                                rows and digests of the two .npy files
        000002.chunks.npy ...

``.build`` starts with a dot but not with ``.tmp-``: ``qa.store.versions`` neither takes
it for a version nor removes it as a leftover of a killed publish.

Each file is written under a temporary name, flushed and renamed, the records file
last, so a checkpoint is complete or absent; a kill -9 loses at most the documents
buffered since the last one. One that is damaged anyway (cut, garbled, a leftover
of a kill) is removed when the store opens and its documents are embedded again;
it never fails a run.

Memory does not grow with the archive's vectors: opening keeps only where each
document is (its content hash, its checkpoint, its place there), from the records
files, and reads each ``.npy`` once in blocks to check it against its size and digest
(seconds for millions of vectors, which took hours to embed); a restore maps one
checkpoint's vectors at a time and copies out the rows it returns.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import msgspec
import numpy as np
from numpy.lib import format as npy_format

from qa import __version__
from qa.errors import IndexUnavailableError
from qa.records import Chunk, Sentence
from qa.store.files import file_digest, fsync_folder
from qa.store.layout import FORMAT_VERSION
from qa.store.segment_writer import IndexedDocument
from qa.store.versions import BuildInfo, versions_dir
from qa.types import Vectors

# The folder of every build's checkpoints, in the versions folder (see the module docstring).
BUILD_FOLDER = ".build"
# What a checkpoint's files are called: its number, then the part.
_RECORDS = re.compile(r"(\d{6})\.json")
_INFO = "build.json"
_CHUNKS = "{:06d}.chunks.npy"
_SENTENCES = "{:06d}.sentences.npy"
_RECORDS_NAME = "{:06d}.json"
# Files being written carry this suffix until they are renamed into place.
_PART = ".part"
# Hex digits of the key: 64 bits, far from any collision between a handful of settings.
KEY_CHARS = 16


class Restored(NamedTuple):
    """A document as a checkpoint holds it: what :func:`qa.ingest.indexed.indexed_document`
    needs besides its article and content hash."""

    chunks: tuple[Chunk, ...]
    sentences: tuple[Sentence, ...]
    chunk_vectors: Vectors
    sentence_vectors: Vectors


@dataclass(frozen=True)
class _Entry:
    """One document of a checkpoint; its vectors are the next rows of the .npy files."""

    content_hash: str
    chunks: tuple[Chunk, ...]
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class _Records:
    """A checkpoint's records file: its documents, and what its two .npy files must be."""

    dimension: int
    chunk_rows: int
    sentence_rows: int
    chunk_digest: str
    sentence_digest: str
    documents: tuple[_Entry, ...]


@dataclass(frozen=True)
class _Where:
    """Where a document is: its checkpoint's number and its place among the checkpoint's documents."""

    number: int
    position: int


@dataclass
class _Loaded:
    """The one checkpoint read at a time: its records, where each document's rows
    start, and its vectors mapped."""

    number: int
    records: _Records
    chunk_starts: list[int]
    sentence_starts: list[int]
    chunk_vectors: Vectors
    sentence_vectors: Vectors


def build_key(info: BuildInfo) -> str:
    """The name of the folder of checkpoints whose vectors a build with ``info`` can use:
    what ``qa.ingest.pipeline`` rebuilds in full on (the model, chunking, way of making
    vectors, index format and code version)."""
    fields = [*asdict(info).values(), FORMAT_VERSION, __version__]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:KEY_CHARS]


def checkpoints_root(index_path: Path) -> Path:
    """The folder of every build's checkpoints for the index at ``index_path``."""
    return versions_dir(index_path) / BUILD_FOLDER


def discard_checkpoints(index_path: Path) -> None:
    """Remove every checkpoint of the index: its build was published, or is of no more use."""
    shutil.rmtree(checkpoints_root(index_path), ignore_errors=True)


class Checkpoints:
    """The checkpoints of one build: what earlier, interrupted runs of it embedded
    (:meth:`restore`), and what this run embeds (:meth:`add`), written every ``every``
    documents or ``seconds`` seconds. The caller holds the index's build lock."""

    def __init__(self, folder: Path, info: BuildInfo, *, every: int, seconds: float) -> None:
        self.folder = folder
        self._info = info
        self._every = every
        self._seconds = seconds
        # Each document the checkpoints hold, by content hash: nothing else is held for it.
        self._where: dict[str, _Where] = {}
        self._loaded: _Loaded | None = None
        self._buffer: list[IndexedDocument] = []
        # How many of the buffer's documents end with a whole batch of the engine's.
        self._complete = 0
        self._last = time.monotonic()
        self._next = 1
        # What opening found and removed (damaged checkpoints, those of other builds),
        # one line each, for the caller to report.
        self.problems: list[str] = []

    @classmethod
    def open(cls, index_path: Path, info: BuildInfo, *, every: int, seconds: float) -> Checkpoints:
        """The checkpoints of a build with ``info`` at ``index_path``;
        those of builds with other settings are removed, as are damaged ones."""
        root = checkpoints_root(index_path)
        key = build_key(info)
        store = cls(root / key, info, every=every, seconds=seconds)
        if root.is_dir():
            for item in root.iterdir():
                if item.name != key:
                    # Made with another model, chunking or code: their vectors are of no use.
                    store.problems.append(
                        f"removed the checkpoints of an interrupted build with other settings ({item})"
                    )
                    _remove(item)
        if store.folder.is_dir():
            store._scan()
        return store

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._where

    def restore(self, content_hash: str) -> Restored | None:
        """The document of ``content_hash`` as a checkpoint holds it, or None. Its
        vectors are copies: nothing the caller keeps holds a checkpoint's file open."""
        where = self._where.get(content_hash)
        if where is None:
            return None
        loaded = self._load(where.number)
        entry = loaded.records.documents[where.position]
        chunk_start, sentence_start = (
            loaded.chunk_starts[where.position],
            loaded.sentence_starts[where.position],
        )
        return Restored(
            entry.chunks,
            entry.sentences,
            np.array(loaded.chunk_vectors[chunk_start : chunk_start + len(entry.chunks)]),
            np.array(loaded.sentence_vectors[sentence_start : sentence_start + len(entry.sentences)]),
        )

    def add(self, document: IndexedDocument) -> None:
        """Keep a freshly embedded document; a checkpoint is written when ``every``
        documents wait, or ``seconds`` have passed since the last one, at the first
        document after that which ends the engine's batch (:meth:`flush`)."""
        self._buffer.append(document)
        if document.ends_batch:
            self._complete = len(self._buffer)
            if len(self._buffer) >= self._every or time.monotonic() - self._last >= self._seconds:
                self.flush()

    def flush(self) -> None:
        """Write the documents waiting, up to the last that ends a batch, as one
        checkpoint (none when none wait). The rest wait: a resumed run embeds them
        again in the batch they were embedded in, so that their vectors are the same
        to the last bit."""
        if not self._complete:
            return
        documents = self._buffer[: self._complete]
        number = self._next
        if not (self.folder / _INFO).exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.folder / _INFO, _info_bytes(self._info))
            # The new folders are entries of their parents: flushed only with them.
            for folder in (self.folder, self.folder.parent, self.folder.parent.parent):
                fsync_folder(folder)
        chunks = _stacked([d.chunk_vectors for d in documents], self._info.dimension)
        sentences = _stacked([d.sentence_vectors for d in documents], self._info.dimension)
        chunk_path, sentence_path = (
            self.folder / _CHUNKS.format(number),
            self.folder / _SENTENCES.format(number),
        )
        _write_atomic(chunk_path, _npy_bytes(chunks))
        _write_atomic(sentence_path, _npy_bytes(sentences))
        records = _Records(
            dimension=self._info.dimension,
            chunk_rows=len(chunks),
            sentence_rows=len(sentences),
            chunk_digest=file_digest(chunk_path),
            sentence_digest=file_digest(sentence_path),
            documents=tuple(_Entry(d.content_hash, tuple(d.chunks), tuple(d.sentences)) for d in documents),
        )
        # Last: until this rename the checkpoint does not exist.
        _write_atomic(self.folder / _RECORDS_NAME.format(number), msgspec.json.encode(records))
        fsync_folder(self.folder)
        for position, document in enumerate(documents):
            self._where[document.content_hash] = _Where(number, position)
        self._buffer = self._buffer[self._complete :]
        self._complete = 0
        self._next = number + 1
        self._last = time.monotonic()

    def _scan(self) -> None:
        """Index the complete checkpoints of the folder; remove the damaged ones and
        whatever else is there (files of a checkpoint being written when a run died)."""
        valid: set[str] = {_INFO}
        numbers = [0]
        for path in sorted(self.folder.glob("*.json")):
            match = _RECORDS.fullmatch(path.name)
            if match is None:
                continue
            number = int(match.group(1))
            numbers.append(number)
            try:
                records = self._checked(number)
            except (OSError, ValueError, msgspec.MsgspecError) as exc:
                self.problems.append(
                    f"ignored a damaged checkpoint ({path}: {exc}); its documents are embedded again"
                )
                continue
            valid.update(_files(number))
            for position, entry in enumerate(records.documents):
                self._where[entry.content_hash] = _Where(number, position)
        for item in self.folder.iterdir():
            if item.name not in valid:
                _remove(item)
        self._next = max(numbers) + 1

    def _records(self, number: int) -> _Records:
        """The records file of checkpoint ``number``, decoded and consistent with itself."""
        records = msgspec.json.decode(
            (self.folder / _RECORDS_NAME.format(number)).read_bytes(), type=_Records
        )
        if records.dimension != self._info.dimension:
            raise ValueError(f"vectors of {records.dimension} dimensions, not {self._info.dimension}")
        chunk_rows = sum(len(entry.chunks) for entry in records.documents)
        sentence_rows = sum(len(entry.sentences) for entry in records.documents)
        if (chunk_rows, sentence_rows) != (records.chunk_rows, records.sentence_rows):
            raise ValueError("its documents do not add up to its rows")
        return records

    def _checked(self, number: int) -> _Records:
        """The records of checkpoint ``number``, once its .npy files are what they say
        (shape, size, digest: read whole once, when the store opens); raises
        ValueError (or OSError) when not."""
        records = self._records(number)
        for name, rows, digest in (
            (_CHUNKS.format(number), records.chunk_rows, records.chunk_digest),
            (_SENTENCES.format(number), records.sentence_rows, records.sentence_digest),
        ):
            _check_npy(self.folder / name, (rows, records.dimension))
            if file_digest(self.folder / name) != digest:
                raise ValueError(f"{name} does not match its digest")
        return records

    def _load(self, number: int) -> _Loaded:
        """Checkpoint ``number``, read (its vectors mapped) unless it is the one read last:
        a resumed run restores documents in the order they were checkpointed."""
        if self._loaded is not None and self._loaded.number == number:
            return self._loaded
        self._loaded = None  # its maps go with it
        try:
            records = self._records(number)
            chunk_vectors = np.load(self.folder / _CHUNKS.format(number), mmap_mode="r")
            sentence_vectors = np.load(self.folder / _SENTENCES.format(number), mmap_mode="r")
            shapes = (chunk_vectors.shape, sentence_vectors.shape)
            if shapes != (
                (records.chunk_rows, records.dimension),
                (records.sentence_rows, records.dimension),
            ):
                raise ValueError("its vectors are not of the shape its records give")
        except (OSError, ValueError, msgspec.MsgspecError) as exc:
            # Checked when the store opened, under the build lock: changed by hand since.
            raise IndexUnavailableError(
                f"{self.folder}: checkpoint {number} changed during the run ({exc}); run qa reindex again"
            ) from exc
        self._loaded = _Loaded(
            number, records, _starts(len(e.chunks) for e in records.documents),
            _starts(len(e.sentences) for e in records.documents), chunk_vectors, sentence_vectors,
        )  # fmt: skip
        return self._loaded


def _files(number: int) -> tuple[str, str, str]:
    return _CHUNKS.format(number), _SENTENCES.format(number), _RECORDS_NAME.format(number)


def _starts(counts: Iterable[int]) -> list[int]:
    """Where each document's rows start, from the rows of each."""
    starts, row = [], 0
    for count in counts:
        starts.append(row)
        row += count
    return starts


def _stacked(vectors: Sequence[Vectors], dimension: int) -> Vectors:
    """The documents' vectors as one float32 array, in order."""
    if not vectors:
        return np.empty((0, dimension), np.float32)
    stacked: Vectors = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
    return stacked.reshape(-1, dimension)


def _npy_bytes(array: Vectors) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _info_bytes(info: BuildInfo) -> bytes:
    fields = {**asdict(info), "format_version": FORMAT_VERSION, "code_version": __version__}
    return json.dumps(fields, indent=2).encode() + b"\n"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary name, flushed, then renamed."""
    part = path.with_name(path.name + _PART)
    with part.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    part.rename(path)


def _check_npy(path: Path, shape: tuple[int, int]) -> None:
    """Raise ValueError unless ``path`` is a float32 .npy of ``shape``, all its bytes there."""
    with path.open("rb") as handle:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            found, fortran, dtype = npy_format.read_array_header_1_0(handle)
        else:
            found, fortran, dtype = npy_format.read_array_header_2_0(handle)
        offset = handle.tell()
    if found != shape or fortran or dtype != np.float32:
        raise ValueError(f"{path.name} holds {dtype} rows of shape {found}, not float32 of {shape}")
    expected = offset + shape[0] * shape[1] * np.dtype(np.float32).itemsize
    if (size := path.stat().st_size) != expected:
        raise ValueError(f"{path.name} has {size} bytes, not {expected}")


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item, ignore_errors=True)
    else:
        item.unlink(missing_ok=True)
