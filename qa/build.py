"""The reindex pipeline: sources -> sentences -> chunks -> embeddings -> index.

Used by ``qa reindex``, ``scripts/reindex.py`` and ``qa eval``; never imported by
the service. Reindexing is incremental: a document whose content hash is in the
published version keeps its chunks and embeddings, so only new and changed
documents are embedded. A change of model, dimension, chunking or index format
makes every old embedding unusable and forces a full rebuild, which the summary
says. The new version is written beside the served one under the build lock and
published in one atomic step (see ``qa.index``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa import __version__
from qa.chunk import chunk_article, embedding_text, sentence_embedding_texts
from qa.config import Settings
from qa.embed import Embedder, Vectors
from qa.errors import IndexUnavailableError
from qa.index import (
    FORMAT_VERSION,
    BuildInfo,
    Index,
    IndexedDocument,
    index_lock,
    load_index,
    read_manifest,
    write_index,
)
from qa.normalize import tokens
from qa.records import Article, Chunk, Manifest, Sentence
from qa.sources import read_articles
from qa.text import split_sentences


@dataclass(frozen=True)
class BuildSummary:
    index: str
    version: str
    documents: int
    chunks: int
    sentences: int
    added: int
    updated: int
    removed: int
    unchanged: int
    chunks_embedded: int
    skipped: int
    # Why every document was embedded again, when the previous version could not be reused.
    full_rebuild: str | None
    seconds: float


# Texts (chunks and sentences) of new and changed articles embedded in one call:
# about 20 articles of the dev corpus, some 20 s on 2 cores, so progress still shows.
GROUP_SIZE = 256


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0


def build_index(
    source: Path,
    index_path: Path,
    settings: Settings,
    embedder: Embedder,
    *,
    strict: bool = False,
    progress: bool | None = None,
) -> BuildSummary:
    """Index the articles of ``source`` into a new version published at ``index_path``.

    All sources are read and checked before anything is embedded; bad files and
    lines are reported on stderr and skipped, or fail the run with ``strict``.
    """
    started = time.perf_counter()
    report = read_articles(source, strict=strict)
    for problem in report.problems:
        print(f"skipped {problem}", file=sys.stderr)
    info = _build_info(settings, embedder)
    counts = _Counts()
    with index_lock(index_path):
        previous, full_rebuild = _reusable_version(index_path, info)
        hashes = previous.content_hashes() if previous is not None else {}
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(report.articles, desc="indexing", unit="doc", disable=not show, file=sys.stderr) as bar:
            documents = _documents(bar, hashes, previous, settings, embedder, counts)
            manifest = write_index(index_path, documents, info, source_digest=source_digest(report.articles))
    if full_rebuild:
        print(f"full rebuild: {full_rebuild}", file=sys.stderr)
    return BuildSummary(
        index=str(index_path),
        version=manifest.version,
        documents=manifest.documents,
        chunks=manifest.chunks,
        sentences=manifest.sentences,
        added=counts.added,
        updated=counts.updated,
        removed=len(hashes.keys() - {article.doc_id for article in report.articles}),
        unchanged=counts.unchanged,
        chunks_embedded=counts.chunks_embedded,
        skipped=len(report.problems),
        full_rebuild=full_rebuild,
        seconds=round(time.perf_counter() - started, 2),
    )


def content_hash(article: Article) -> str:
    """A fingerprint of everything indexed from one article."""
    record = [article.doc_id, article.title, article.text, article.url, article.published]
    return hashlib.sha256(json.dumps(record, ensure_ascii=False).encode()).hexdigest()


def source_digest(articles: Sequence[Article]) -> str:
    """A fingerprint of everything indexed from the articles."""
    digest = hashlib.sha256()
    for article in articles:
        digest.update(content_hash(article).encode())
    return digest.hexdigest()


def ensure_index(source: Path, index_path: Path, settings: Settings, embedder: Embedder) -> bool:
    """Build the index unless one of the same articles, model and chunking is there.

    Returns whether it built one.
    """
    try:
        manifest: Manifest | None = read_manifest(index_path)
    except IndexUnavailableError:
        manifest = None
    info = _build_info(settings, embedder)
    if (
        manifest is not None
        and _incompatibility(manifest, info) is None
        and manifest.source_digest == source_digest(read_articles(source).articles)
    ):
        return False
    build_index(source, index_path, settings, embedder)
    return True


def _build_info(settings: Settings, embedder: Embedder) -> BuildInfo:
    chunking = settings.chunking
    return BuildInfo(embedder.model_id, embedder.dimension, chunking.max_tokens, chunking.overlap_tokens)


def _incompatibility(manifest: Manifest, info: BuildInfo) -> str | None:
    """Why the embeddings of a version cannot be reused for a build with ``info``, if so."""
    if (manifest.format_version, manifest.code_version) != (FORMAT_VERSION, __version__):
        return f"index format {manifest.format_version} (code {manifest.code_version}) is replaced"
    if (manifest.model, manifest.dimension) != (info.model, info.dimension):
        return f"the model changed from {manifest.model} to {info.model}"
    if (manifest.max_tokens, manifest.overlap_tokens) != (info.max_tokens, info.overlap_tokens):
        return (
            f"the chunking changed from {manifest.max_tokens}/{manifest.overlap_tokens} "
            f"to {info.max_tokens}/{info.overlap_tokens} tokens"
        )
    return None


def _reusable_version(index_path: Path, info: BuildInfo) -> tuple[Index | None, str | None]:
    """The published version whose embeddings can be reused, or why there is none to reuse."""
    if not index_path.exists():
        return None, None  # a first build
    try:
        manifest = read_manifest(index_path)
    except IndexUnavailableError as exc:
        return None, f"the published index is unreadable ({exc})"
    reason = _incompatibility(manifest, info)
    if reason is not None:
        return None, reason
    try:
        return load_index(index_path, model=info.model, dimension=info.dimension), None
    except IndexUnavailableError as exc:
        return None, f"the published index is unreadable ({exc})"


def _documents(
    articles: Iterable[Article],
    hashes: dict[str, str],
    previous: Index | None,
    settings: Settings,
    embedder: Embedder,
    counts: _Counts,
) -> Iterator[IndexedDocument]:
    """The indexed documents, in the order of ``articles``.

    New and changed articles are embedded in groups, chunks and sentences of many
    articles in one call: an engine that pads a batch to its longest text
    (sentence-transformers) then fills its batches with texts of similar length,
    where one article's dozen texts would make small, ragged batches. A group closes
    at GROUP_SIZE texts to embed, each unchanged article counting as one, so that a
    large archive is never held in memory whole.
    """
    group: list[IndexedDocument | _Pending] = []
    size = 0
    for article in articles:
        digest = content_hash(article)
        if previous is not None and hashes.get(article.doc_id) == digest:
            stored = previous.stored_document(article.doc_id)
            counts.unchanged += 1
            group.append(_indexed(article, digest, stored.chunks, stored.sentences, stored.chunk_vectors,
                                  stored.sentence_vectors))  # fmt: skip
            size += 1
        else:
            if article.doc_id in hashes:
                counts.updated += 1
            else:
                counts.added += 1
            sentences = split_sentences(article.text)
            chunks = chunk_article(article, sentences, embedder.count_tokens, settings.chunking)
            counts.chunks_embedded += len(chunks)
            group.append(_Pending(article, digest, chunks, sentences))
            size += len(chunks) + len(sentences)
        if size >= GROUP_SIZE:
            yield from _embedded(group, embedder)
            group, size = [], 0
    yield from _embedded(group, embedder)


@dataclass(frozen=True)
class _Pending:
    """An article cut into chunks and sentences, waiting for its group to be embedded."""

    article: Article
    digest: str
    chunks: Sequence[Chunk]
    sentences: Sequence[Sentence]

    def texts(self) -> list[str]:
        chunk_texts = [embedding_text(self.article, c) for c in self.chunks]
        return chunk_texts + sentence_embedding_texts(self.article, self.sentences)


def _embedded(group: Sequence[IndexedDocument | _Pending], embedder: Embedder) -> Iterator[IndexedDocument]:
    """The group's documents in order, its pending articles embedded in one call."""
    texts = [text for item in group if isinstance(item, _Pending) for text in item.texts()]
    vectors = embedder.embed_passages(texts) if texts else np.empty((0, embedder.dimension), np.float32)
    row = 0
    for item in group:
        if isinstance(item, IndexedDocument):
            yield item
            continue
        middle = row + len(item.chunks)
        end = middle + len(item.sentences)
        yield _indexed(item.article, item.digest, item.chunks, item.sentences, vectors[row:middle],
                       vectors[middle:end])  # fmt: skip
        row = end


def _indexed(
    article: Article,
    digest: str,
    chunks: Sequence[Chunk],
    sentences: Sequence[Sentence],
    chunk_vectors: Vectors,
    sentence_vectors: Vectors,
) -> IndexedDocument:
    return IndexedDocument(
        article=article,
        content_hash=digest,
        chunks=chunks,
        sentences=sentences,
        chunk_vectors=chunk_vectors,
        sentence_vectors=sentence_vectors,
        chunk_tokens=[tokens(embedding_text(article, c)) for c in chunks],
        sentence_tokens=[tokens(article.text[s.start : s.end]) for s in sentences],
    )
