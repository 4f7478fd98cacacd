"""A version of the index, opened for reading: its segments mapped, their texts in
SQLite, chunk and sentence ids unique across the version. Loads no models; writing
versions is ``qa.store.versions``, the files ``qa.store.layout``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from qa.config import IndexSettings
from qa.errors import IndexMismatchError, IndexUnavailableError, NotFoundError
from qa.records import Article, Chunk, Filters, Manifest, Sentence
from qa.store.files import file_identity
from qa.store.layout import DELETED, FORMAT_VERSION, MANIFEST, SEGMENTS
from qa.store.lexical_scores import LexicalScores
from qa.store.segment_reader import Segment, StoredCopy
from qa.store.segment_view import Allowed, Candidates, SegmentView, best_first, segment_of
from qa.types import Vectors


@dataclass(frozen=True)
class StoredSentence:
    """A sentence of a chunk, with its id in the version."""

    sentence_id: int
    sentence: Sentence


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
        """The opened segments by name: a reload reuses them, a reindex counts their rows."""
        return {view.info.name: view.segment for view in self.views}

    def deleted_documents(self) -> dict[str, set[str]]:
        """The deleted documents of each segment that has any, by segment name."""
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

    def copies(self) -> dict[str, StoredCopy]:
        """The copy group and signature of every served document, by id: what a reindex
        groups new articles against (one scan of each segment's documents, no texts)."""
        return {
            doc_id: copy
            for view in self.views
            for doc_id, copy in view.segment.copies()
            if doc_id not in view.deleted
        }

    def copy_groups(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """The copy group of each of the given served documents, by id."""
        groups: dict[str, str] = {}
        for view in reversed(self.views):  # a document's newest segment serves it
            wanted = [doc_id for doc_id in doc_ids if doc_id not in groups and doc_id not in view.deleted]
            if not wanted:
                break
            groups.update(view.segment.copy_groups(wanted))
        return groups

    def document(self, doc_id: str) -> Article:
        for view in reversed(self.views):
            if doc_id not in view.deleted:
                article = view.segment.document(doc_id)
                if article is not None:
                    return article
        raise NotFoundError(f"no document with id {doc_id!r}")

    def _chunk_view(self, chunk_id: int) -> tuple[SegmentView, int]:
        position, row = segment_of(self._chunk_bases, chunk_id)
        if position < 0 or not 0 <= row < self.views[position].info.chunks:
            raise NotFoundError(f"no chunk with id {chunk_id}")
        return self.views[position], row

    def _sentence_view(self, sentence_id: int) -> tuple[SegmentView, int]:
        position, row = segment_of(self._sentence_bases, sentence_id)
        return self.views[position], row

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
        found: list[Candidates] = []
        for position, view in enumerate(self.views):
            if allowed is not None:
                found.append(
                    (view.info.chunk_base, *view.segment.search_rows(query, limit, allowed[position]))
                )
            elif view.info.chunks:
                found.append((view.info.chunk_base, *view.segment.search(query, limit, view.allowed)))
        return best_first(found, limit)

    def lexical(self, query_tokens: Sequence[str], allowed: Allowed | None = None) -> LexicalScores:
        """BM25 of ``query_tokens`` over the live chunks (the ``allowed`` ones, for a filter)."""
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
                    found = file_identity(folder / name)
                except OSError:
                    return f"{folder}: missing {name}; run qa reindex"
                if found != identity:
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
