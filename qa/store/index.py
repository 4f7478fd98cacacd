"""The index on disk: versions made of immutable segments. Loads no models.

Layout of an index at ``PATH`` (a symbolic link, so that publishing is one atomic
rename)::

    PATH -> PATH.versions/<version>/
        manifest.json          model, chunking, counts, and the segments with their id bases
        deleted.json           documents of each segment that later versions replaced or removed
        segments/<segment>/    one immutable segment (``qa.store.segment``)

A reindex writes one new segment, for new and changed articles only, and marks the
replaced and removed documents deleted; the segments it keeps are hard links to the
previous version's files, so it writes bytes in proportion to the update and every
version folder still holds everything it serves. When a tier of segments of
similar size fills up, they merge into one, published the same way (the Lucene
design: immutable segments, tombstones, merges, atomic commit points).

A version is written in a temporary folder beside the others and only becomes
``PATH`` once complete, so a reader never sees half an index, and a killed run
leaves the previous version serving.
"""

from __future__ import annotations

import bisect
import dataclasses
import errno
import fcntl
import functools
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import msgspec
import numpy as np
import numpy.typing as npt

from qa import __version__
from qa.config import IndexSettings
from qa.errors import (
    BuildLockedError,
    DiskFullError,
    IndexMismatchError,
    IndexUnavailableError,
    NotFoundError,
)
from qa.records import Article, Chunk, Filters, Manifest, SegmentInfo, Sentence
from qa.store.lexical import Scores, lookup
from qa.store.segment import IndexedDocument, Segment, SegmentWriter, StoredDocument, fsync_tree
from qa.types import Vectors

# 6: the manifest records a digest of every segment file.
FORMAT_VERSION = 6
MANIFEST = "manifest.json"
DELETED = "deleted.json"
SEGMENTS = "segments"
# The newest versions kept on disk after a publish; a reindex also keeps the version
# that was served when it began (``keep``), so that a run which publishes an update
# and then merges never prunes the last version from before it.
KEEP_VERSIONS = 2
# Segments of up to this many live chunks form the smallest tier; each tier above
# holds segments up to merge_factor times larger.
SMALLEST_TIER_CHUNKS = 1000
# A segment with more than this share of its documents deleted is merged away.
MAX_DELETED_SHARE = 0.5


@dataclass(frozen=True)
class StoredSentence:
    sentence_id: int
    sentence: Sentence


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


# --- writing -----------------------------------------------------------------------


def publish_update(
    path: Path,
    info: BuildInfo,
    settings: IndexSettings,
    *,
    previous: Index | None,
    documents: Iterable[IndexedDocument],
    removed: Iterable[str] = (),
    source_digest: str = "",
    keep: Collection[str] = (),
) -> Manifest:
    """Publish a version: the segments of ``previous`` plus one new segment of
    ``documents``. A document written there replaces its copy in an older segment,
    which is marked deleted, as are the ``removed`` documents.

    Versions named in ``keep`` (the one served when the reindex began) survive the
    pruning after the publish. A full disk raises :class:`DiskFullError`, the
    version served before left in place.

    This is also the way in for documents embedded elsewhere (precomputed vectors):
    build them with :func:`qa.ingest.indexed.indexed_document`. The caller holds
    :func:`index_lock`. With ``previous`` None the version starts empty (a first
    build, or a full rebuild).
    """
    kept = list(previous.manifest.segments) if previous is not None else []
    with _disk_full_as_error(path):
        return _publish(path, info, settings, previous, kept, documents, removed, source_digest, keep=keep)


def publish_merge(
    path: Path,
    index: Index,
    names: Sequence[str],
    settings: IndexSettings,
    rewritten: Callable[[StoredDocument], IndexedDocument],
    *,
    keep: Collection[str] = (),
) -> Manifest:
    """Publish a version in which the segments ``names`` of ``index`` are merged into
    one, their deleted documents left out. Search results are the same before and after.
    ``rewritten`` makes each stored document ready to be written again (its BM25 tokens:
    :func:`qa.ingest.indexed.reindexed_document`).
    ``keep`` and a full disk: as for :func:`publish_update`."""
    merged = [view for view in index.views if view.info.name in names]
    kept = [view.info for view in index.views if view.info.name not in names]
    manifest = index.manifest
    info = BuildInfo(manifest.model, manifest.dimension, manifest.max_tokens, manifest.overlap_tokens)

    documents = (
        rewritten(s)
        for view in merged
        for s in view.segment.stored_documents(view.deleted)
    )
    with _disk_full_as_error(path):
        return _publish(path, info, settings, index, kept, documents, (), manifest.source_digest, keep=keep)


def _publish(
    path: Path,
    info: BuildInfo,
    settings: IndexSettings,
    previous: Index | None,
    kept: list[SegmentInfo],
    documents: Iterable[IndexedDocument],
    removed: Iterable[str],
    source_digest: str,
    *,
    keep: Collection[str] = (),
) -> Manifest:
    """Write and publish a version of the ``kept`` segments of ``previous`` and a new
    one of ``documents``; the copies of written and removed documents in kept segments
    are marked deleted. Versions named in ``keep`` are not pruned afterwards."""
    version = _new_name()
    root = versions_dir(path)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    staging = root / f".tmp-{version}"
    segments = staging / SEGMENTS
    segments.mkdir(parents=True)
    try:
        for segment in kept:
            assert previous is not None
            _link_tree(previous.folder / SEGMENTS / segment.name, segments / segment.name)
        next_chunk = previous.manifest.next_chunk_id if previous is not None else 0
        next_sentence = previous.manifest.next_sentence_id if previous is not None else 0
        name = _new_name()
        averages = previous.manifest.average_lengths if previous is not None else None
        writer = SegmentWriter(segments / name, info.dimension, settings, averages)
        try:
            for document in documents:
                writer.add(document)
        except BaseException:
            writer.abandon()
            raise
        stats = writer.finish()
        kept_names = {segment.name for segment in kept}
        before = previous.deleted_documents() if previous is not None else {}
        deleted = {name: docs for name, docs in before.items() if name in kept_names}
        live = previous.live_documents() if previous is not None else {}
        for doc_id in [*writer.doc_ids, *removed]:
            if live.get(doc_id) in kept_names:
                deleted.setdefault(live[doc_id], set()).add(doc_id)
        infos = [dataclasses.replace(s, deleted_documents=len(deleted.get(s.name, ()))) for s in kept]
        if stats.documents:
            infos.append(
                SegmentInfo(name, next_chunk, next_sentence, stats.documents, stats.chunks, stats.sentences,
                            0, stats.kind, stats.factory, stats.bytes, stats.digests)
            )  # fmt: skip
            next_chunk += stats.chunks
            next_sentence += stats.sentences
        else:
            shutil.rmtree(segments / name)
        counts = _live_counts(previous, infos, deleted)
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
            segments=tuple(infos),
            next_chunk_id=next_chunk,
            next_sentence_id=next_sentence,
            average_lengths=averages or (stats.average_lengths if stats.documents else None),
            **counts,
        )
        (staging / DELETED).write_text(json.dumps({k: sorted(v) for k, v in deleted.items()}) + "\n", "utf-8")
        (staging / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
        fsync_tree(staging)
        final = root / version
        staging.rename(final)
        # The rename is an entry of the versions folder: flushed only with that folder.
        fsync_folder(root)
        _point(path, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_old_versions(path, keep)
    return manifest


def _new_name() -> str:
    # Microseconds: names sort in the order they were made, which keeps the newest versions.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(3)


def _link_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` made of hard links: no bytes written, and the files stay
    as long as any version holds them."""
    try:
        shutil.copytree(source, target, copy_function=os.link)
    except OSError as exc:
        if disk_full(exc):  # no room for the new entries: reported as a full disk
            raise
        raise IndexUnavailableError(
            f"{source}: cannot link the segment into the new version ({exc})"
        ) from exc


def _live_counts(
    previous: Index | None, infos: Sequence[SegmentInfo], deleted: Mapping[str, set[str]]
) -> dict[str, int]:
    documents = chunks = sentences = 0
    opened = previous.segments() if previous is not None else {}
    for info in infos:
        documents += info.documents - len(deleted.get(info.name, ()))
        gone_chunks, gone_sentences = 0, 0
        if info.name in deleted:
            rows = opened[info.name].rows_of(sorted(deleted[info.name]))
            gone_chunks, gone_sentences = rows[0].size, rows[1].size
        chunks += info.chunks - gone_chunks
        sentences += info.sentences - gone_sentences
    return {"documents": documents, "chunks": chunks, "sentences": sentences}


def _remove_leftovers(path: Path) -> None:
    for item in versions_dir(path).glob(".tmp-*"):
        shutil.rmtree(item, ignore_errors=True)
    for item in path.parent.glob(f".{path.name}.link-*"):
        item.unlink(missing_ok=True)


def _point(path: Path, version_folder: Path) -> None:
    """Point ``path`` at ``version_folder`` with one atomic rename of a symbolic link."""
    if path.exists() and not path.is_symlink():
        raise IndexUnavailableError(f"{path} is a plain folder, not an index link; move it away and reindex")
    link = path.with_name(f".{path.name}.link-{secrets.token_hex(3)}")
    link.symlink_to(os.path.relpath(version_folder, path.parent))
    os.replace(link, path)
    # Until its folder is flushed, a power cut may bring the old link back.
    fsync_folder(path.parent)


def _remove_old_versions(path: Path, keep: Collection[str] = ()) -> None:
    """Remove the versions other than the served one, the KEEP_VERSIONS newest and
    those named in ``keep``."""
    current = path.resolve().name if path.exists() else ""
    root = versions_dir(path)
    versions = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    kept = {current, *keep, *(p.name for p in versions[-KEEP_VERSIONS:])}
    for folder in versions:
        if folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# What the C++ of FAISS puts in the message of a write that failed for want of room.
_NO_SPACE_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
# NumPy's message for a short write (np.save of a full disk), an OSError without errno.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the disk or the quota is full, as an OSError (ENOSPC,
    EDQUOT), NumPy (a short write), SQLite (SQLITE_FULL) or FAISS (a RuntimeError
    quoting the OS) says it."""
    if isinstance(error, OSError):
        if error.errno is None:
            return bool(_SHORT_WRITE.fullmatch(str(error)))
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(error, RuntimeError) and any(text in str(error) for text in _NO_SPACE_TEXTS)


def free_bytes(folder: Path) -> int:
    """Bytes free to this user on the disk of ``folder`` (or of its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def format_bytes(size: float) -> str:
    """``size`` bytes for a message: 812 bytes, 3.4 MB, 12.0 GB."""
    if size < 1000:
        return f"{size:.0f} bytes"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


@contextmanager
def _disk_full_as_error(path: Path) -> Iterator[None]:
    """Turn a full disk anywhere in writing a version into one DiskFullError that names
    the folder, the space left, and whether the version served before still is.
    (``_publish`` has removed its temporary folder by then.)"""
    served = path.resolve() if path.exists() else None
    try:
        yield
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        if not disk_full(exc):
            raise
        root = versions_dir(path)
        now = path.resolve() if path.exists() else None
        if now != served:  # it failed after the switch: only the last flush is in doubt
            outcome = f"version {now.name if now else '?'} was published, but may not be flushed to disk"
        elif served is not None:
            outcome = f"nothing was published and {path} still serves version {served.name}"
        else:
            outcome = "nothing was published"
        raise DiskFullError(
            f"{root}: the disk is full ({format_bytes(free_bytes(root))} free) while writing a new "
            f"index version; {outcome}. Free some space and run qa reindex again"
        ) from exc


def merges_due(manifest: Manifest, merge_factor: int) -> list[list[str]]:
    """Groups of segments to merge, by a tiered policy.

    Segments fall in tiers by their live chunks: up to SMALLEST_TIER_CHUNKS, then
    each tier merge_factor times larger. A tier holding merge_factor segments merges
    them into one of the tier above, so a stream of small updates makes a handful of
    segments per tier and the archive is rewritten about log(size) times in all. A
    segment with more than MAX_DELETED_SHARE of its documents deleted joins a merge
    with its tier's other segments, or is rewritten alone.
    """
    tiers: dict[int, list[SegmentInfo]] = {}
    for info in manifest.segments:
        live = max(1, info.chunks * (info.documents - info.deleted_documents) // max(1, info.documents))
        tier = max(0, math.ceil(math.log(live / SMALLEST_TIER_CHUNKS, merge_factor)))
        tiers.setdefault(tier, []).append(info)
    due = []
    for members in tiers.values():
        wasteful = [s for s in members if s.deleted_documents > MAX_DELETED_SHARE * s.documents]
        if len(members) >= merge_factor or wasteful:
            due.append([s.name for s in (members if len(members) >= merge_factor else wasteful)])
    return due


# --- reading -----------------------------------------------------------------------


def read_manifest(path: Path) -> Manifest:
    """The manifest of the index at ``path``."""
    manifest_path = path / MANIFEST
    try:
        return msgspec.json.decode(manifest_path.read_bytes(), type=Manifest)
    except FileNotFoundError as exc:
        raise IndexUnavailableError(
            f"no index at {path}: build it with `qa reindex --source PATH --index {path}`"
        ) from exc
    except (msgspec.DecodeError, OSError) as exc:
        raise IndexUnavailableError(f"{manifest_path}: unreadable manifest ({exc})") from exc


# The chunk rows a filter allows: a boolean mask for each segment, in the order of Index.views.
Allowed = list[npt.NDArray[np.bool_]]


class SegmentView:
    """A segment as one version serves it: its id bases and its deleted rows."""

    def __init__(self, segment: Segment, info: SegmentInfo, deleted: frozenset[str]) -> None:
        self.segment = segment
        self.info = info
        self.deleted = deleted
        self.deleted_chunks, self.deleted_sentences = segment.rows_of(sorted(deleted))
        self.allowed: Any = None
        # Masks of the deleted rows, for BM25's statistics; None when there are none.
        self.chunk_mask = _mask(self.deleted_chunks, info.chunks)
        self.sentence_mask = _mask(self.deleted_sentences, info.sentences)
        if self.deleted_chunks.size:
            allowed = np.ones(info.chunks, dtype=bool)
            allowed[self.deleted_chunks] = False
            # FAISS skips the deleted rows during the search itself: a search for k
            # chunks still returns k when k live ones exist.
            self._bitmap = np.packbits(allowed, bitorder="little")
            self.allowed = faiss.IDSelectorBitmap(info.chunks, faiss.swig_ptr(self._bitmap))


def _mask(rows: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.bool_] | None:
    if not rows.size:
        return None
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask


class LexicalScores:
    """BM25 of a question against every live chunk of a version, and against the
    sentences of the chunks asked about."""

    def __init__(
        self, views: Sequence[SegmentView], query_tokens: Sequence[str], allowed: Allowed | None = None
    ) -> None:
        self._views = views
        chunk_query = lookup(
            [v.segment.chunk_lexical for v in views], [v.chunk_mask for v in views], query_tokens
        )
        self._sentence_query = lookup(
            [v.segment.sentence_lexical for v in views], [v.sentence_mask for v in views], query_tokens
        )
        self.coverage = chunk_query.coverage
        self._chunks = [_masked(v.segment.chunk_lexical.scores(chunk_query.postings[i], chunk_query.idf),
                                v.deleted_chunks) for i, v in enumerate(views)]  # fmt: skip
        if allowed is not None:  # a filter: only its rows score
            for scores, mask in zip(self._chunks, allowed, strict=True):
                scores[~mask] = 0
        self.chunk_max = max((float(s.max()) for s in self._chunks if s.size), default=0.0)
        self._chunk_bases = [v.info.chunk_base for v in views]
        self._sentence_bases = [v.info.sentence_base for v in views]

    def top(self, limit: int) -> list[int]:
        """Chunk ids of the ``limit`` highest positive scores, best first."""
        found: list[tuple[float, int]] = []
        for view, scores in zip(self._views, self._chunks, strict=True):
            found.extend((-float(scores[row]), view.info.chunk_base + row) for row in _top(scores, limit))
        return [chunk_id for _, chunk_id in sorted(found)[:limit]]

    def chunk(self, chunk_id: int) -> float:
        segment = bisect.bisect_right(self._chunk_bases, chunk_id) - 1
        return float(self._chunks[segment][chunk_id - self._chunk_bases[segment]])

    def sentences(self, ranges: Sequence[tuple[int, int]]) -> list[Scores]:
        """BM25 of the sentences of each range of sentence ids (one chunk's each).

        Only these sentences are scored: a question's common words occur in millions
        of sentences, and scoring them all would cost more than the rest of a search.
        """
        wanted = np.array(sorted({i for first, stop in ranges for i in range(first, stop)}), dtype=np.int64)
        scores = np.zeros(wanted.size, dtype=np.float32)
        bounds = np.searchsorted(wanted, [*self._sentence_bases, np.iinfo(np.int64).max])
        for position, view in enumerate(self._views):
            low, high = int(bounds[position]), int(bounds[position + 1])
            if high > low:
                rows = wanted[low:high] - view.info.sentence_base
                postings = self._sentence_query.postings[position]
                scores[low:high] = view.segment.sentence_lexical.row_scores(
                    postings, self._sentence_query.idf, rows
                )
        return [
            scores[np.searchsorted(wanted, first) : np.searchsorted(wanted, stop)] for first, stop in ranges
        ]


def _masked(scores: Scores, deleted: npt.NDArray[np.int64]) -> Scores:
    scores[deleted] = 0
    return scores


def _top(scores: Scores, limit: int) -> list[int]:
    """Rows of the ``limit`` highest positive scores."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > limit:
        positive = positive[np.argpartition(-scores[positive], limit - 1)[:limit]]
    return [int(i) for i in positive]


class Index:
    """A loaded, read-only index version: its segments mapped, texts in SQLite."""

    def __init__(self, folder: Path, manifest: Manifest, segments: Mapping[str, Segment]) -> None:
        self.folder = folder
        self.manifest = manifest
        try:
            deleted = json.loads((folder / DELETED).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexUnavailableError(f"{folder}: unreadable {DELETED} ({exc}); reindex") from exc
        self.views = [
            SegmentView(segments[info.name], info, frozenset(deleted.get(info.name, ())))
            for info in manifest.segments
        ]
        self._chunk_bases = [view.info.chunk_base for view in self.views]
        self._sentence_bases = [view.info.sentence_base for view in self.views]
        self._manifest_identity = (folder / MANIFEST).stat().st_ino

    def segments(self) -> dict[str, Segment]:
        return {view.info.name: view.segment for view in self.views}

    def deleted_documents(self) -> dict[str, set[str]]:
        return {view.info.name: set(view.deleted) for view in self.views if view.deleted}

    @functools.cached_property
    def _served(self) -> dict[str, tuple[str, str]]:
        """The segment and content hash of every served document, by id: read once,
        though a reindex asks for both (which documents changed, where they live)."""
        return {
            doc_id: (view.info.name, digest)
            for view in self.views
            for doc_id, digest in view.segment.content_hashes()
            if doc_id not in view.deleted
        }

    def live_documents(self) -> dict[str, str]:
        """The segment that serves each document, by document id."""
        return {doc_id: segment for doc_id, (segment, _) in self._served.items()}

    def content_hashes(self) -> dict[str, str]:
        """The content hash of every served document, by id."""
        return {doc_id: digest for doc_id, (_, digest) in self._served.items()}

    def document(self, doc_id: str) -> Article:
        for view in reversed(self.views):
            if doc_id not in view.deleted:
                article = view.segment.document(doc_id)
                if article is not None:
                    return article
        raise NotFoundError(f"no document with id {doc_id!r}")

    def _chunk_view(self, chunk_id: int) -> tuple[SegmentView, int]:
        position = bisect.bisect_right(self._chunk_bases, chunk_id) - 1
        view = self.views[position] if position >= 0 else None
        if view is None or not 0 <= chunk_id - view.info.chunk_base < view.info.chunks:
            raise NotFoundError(f"no chunk with id {chunk_id}")
        return view, chunk_id - view.info.chunk_base

    def _sentence_view(self, sentence_id: int) -> tuple[SegmentView, int]:
        position = bisect.bisect_right(self._sentence_bases, sentence_id) - 1
        view = self.views[position]
        return view, sentence_id - view.info.sentence_base

    def chunks(self, chunk_ids: Sequence[int]) -> list[Chunk]:
        """Chunks by id, in the order asked."""
        rows: dict[SegmentView, list[int]] = {}
        for chunk_id in chunk_ids:
            view, row = self._chunk_view(chunk_id)
            rows.setdefault(view, []).append(row)
        by_id: dict[int, Chunk] = {}
        for view, wanted in rows.items():
            by_id.update(
                (view.info.chunk_base + row, chunk) for row, chunk in view.segment.chunks(wanted).items()
            )
        return [by_id[chunk_id] for chunk_id in chunk_ids]

    def sentence_range(self, chunk_id: int) -> tuple[int, int]:
        """The ids of a chunk's sentences: ``range(first, stop)``."""
        view, row = self._chunk_view(chunk_id)
        first, stop = view.segment.chunk_sentences[row]
        base = view.info.sentence_base
        return base + int(first), base + int(stop)

    def sentence_vectors(self, first: int, stop: int) -> Vectors:
        """Unit vectors of the sentences ``first`` up to ``stop`` (one chunk's)."""
        if stop <= first:
            return np.zeros((0, self.manifest.dimension), np.float32)
        view, row = self._sentence_view(first)
        return view.segment.sentence_vectors(row, row + stop - first)

    def sentences(self, first: int, stop: int) -> list[StoredSentence]:
        """Sentences by id, ``first`` up to ``stop`` (one chunk's)."""
        if stop <= first:
            return []
        view, row = self._sentence_view(first)
        base = view.info.sentence_base
        return [StoredSentence(base + r, s) for r, s in view.segment.sentences(row, row + stop - first)]

    def chunk_similarities(self, chunk_ids: Sequence[int], query: Vectors) -> list[float]:
        """Inner products of ``query`` with the given chunks' vectors."""
        similarities = []
        for chunk_id in chunk_ids:
            view, row = self._chunk_view(chunk_id)
            similarities.append(float(view.segment.chunk_vectors([row])[0] @ query))
        return similarities

    def allowed(self, filters: Filters) -> Allowed:
        """The mask of each segment's chunk rows that live documents matching ``filters`` hold."""
        return [view.segment.allowed_chunks(filters, view.deleted_chunks) for view in self.views]

    def search(self, query: Vectors, limit: int, allowed: Allowed | None = None) -> list[tuple[int, float]]:
        """Chunk ids and inner-product scores of the ``limit`` nearest live chunks (of
        the ``allowed`` rows of each segment, for a filter)."""
        found: list[tuple[float, int]] = []
        for position, view in enumerate(self.views):
            if allowed is not None:
                scores, rows = view.segment.search_rows(query, limit, allowed[position])
            elif view.info.chunks:
                scores, rows = view.segment.search(query, limit, view.allowed)
            else:
                continue
            if rows.size:
                found.extend(
                    (-float(s), view.info.chunk_base + int(r)) for s, r in zip(scores, rows, strict=True)
                )
        return [(chunk_id, -negative) for negative, chunk_id in sorted(found)[:limit]]

    def lexical(self, query_tokens: Sequence[str], allowed: Allowed | None = None) -> LexicalScores:
        return LexicalScores(self.views, query_tokens, allowed)

    def disk_problem(self) -> str | None:
        """What changed in this version's files on disk since it was opened, if anything
        (the service keeps answering from the files it holds open, but a restart would
        fail), or what a filtered search needs and does not have: each segment's
        document table of its rows, and its store answering a lookup."""
        try:
            if (self.folder / MANIFEST).stat().st_ino != self._manifest_identity:
                return f"{self.folder}: manifest.json was replaced; run qa reindex"
        except OSError:
            return f"{self.folder}: manifest.json is missing; run qa reindex"
        for view in self.views:
            # A segment opened for an earlier version is checked where this one holds it.
            folder = self.folder / SEGMENTS / view.info.name
            for name, identity in view.segment.files.items():
                try:
                    status = (folder / name).stat()
                except OSError:
                    return f"{folder}: missing {name}; run qa reindex"
                if (status.st_ino, status.st_size, status.st_mtime_ns) != identity:
                    return f"{folder}: {name} changed on disk; run qa reindex"
            problem = view.segment.problem()
            if problem is not None:
                return f"{folder}: {problem}; run qa reindex"
        return None

    def close(self) -> None:
        for view in self.views:
            view.segment.close()


def load_index(
    path: Path,
    settings: IndexSettings,
    *,
    model: str,
    dimension: int,
    opened: Mapping[str, Segment] | None = None,
) -> Index:
    """Open the version ``path`` points at, refusing one built with another model.

    Segments in ``opened`` (those of the version served until now) are reused rather
    than opened again: a reload after an update maps only the new segment.
    """
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
    opened = opened or {}
    segments = {
        info.name: opened.get(info.name)
        or Segment(folder / SEGMENTS / info.name, settings.nprobe, info.digests)
        for info in manifest.segments
    }
    return Index(folder, manifest, segments)
