"""Writing the index on disk: versions made of immutable segments, published one at
a time under a build lock, and the policy that merges them. Loads no models.

``PATH`` is a symbolic link to the version served (``qa.store.layout``), so that
publishing is one atomic rename. A reindex writes one new segment, for new and
changed articles only, and marks the replaced and removed documents deleted; the
segments it keeps are hard links to the previous version's files, so it writes bytes
in proportion to the update and every version folder still holds everything it
serves. When a tier of segments of similar size fills up, they merge into one,
published the same way (the Lucene design: immutable segments, tombstones, merges,
atomic commit points).

A version is written in a temporary folder beside the others and only becomes
``PATH`` once complete, so a reader never sees half an index, and a killed run
leaves the previous version serving. The reading side (``qa.store.index``) knows
nothing of this module; this one reads the previous version through it.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
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

import msgspec

from qa import __version__
from qa.config import IndexSettings
from qa.errors import BuildLockedError, DiskFullError, IndexUnavailableError
from qa.records import Manifest, SegmentInfo
from qa.store.files import fsync_folder, fsync_tree
from qa.store.index import Index
from qa.store.layout import DELETED, FORMAT_VERSION, MANIFEST, SEGMENTS
from qa.store.segment_reader import StoredDocument
from qa.store.segment_writer import IndexedDocument, SegmentWriter

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
class BuildInfo:
    """What every chunk of a version was made with; recorded in its manifest."""

    model: str
    dimension: int
    max_tokens: int
    overlap_tokens: int
    # embedding.vectors: how the chunk and sentence vectors were made.
    vectors: str = "separate"


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
    info = BuildInfo(
        manifest.model, manifest.dimension, manifest.max_tokens, manifest.overlap_tokens, manifest.vectors
    )

    documents = (rewritten(s) for view in merged for s in view.segment.stored_documents(view.deleted))
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
            vectors=info.vectors,
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
