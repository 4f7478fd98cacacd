"""The reindex pipeline: sources -> sentences -> chunks -> embeddings -> index.

Used by ``qa reindex`` and ``scripts/reindex.py``; never imported by the service.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from qa.chunk import chunk_article, embedding_text
from qa.config import Settings
from qa.embed import Embedder
from qa.index import IndexedDocument, write_index
from qa.records import Article
from qa.sources import read_articles
from qa.text import split_sentences


@dataclass(frozen=True)
class BuildSummary:
    index: str
    version: str
    documents: int
    chunks: int
    sentences: int
    seconds: float


def build_index(
    source: Path,
    index_path: Path,
    settings: Settings,
    embedder: Embedder,
    *,
    progress: bool | None = None,
) -> BuildSummary:
    """Index every article of ``source`` into a new version published at ``index_path``.

    All sources are read and checked before anything is embedded, so a bad file
    fails the run early and the published index stays as it was.
    """
    started = time.perf_counter()
    articles = read_articles(source)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(articles, desc="indexing", unit="doc", disable=not show, file=sys.stderr)
    manifest = write_index(
        index_path,
        _indexed(bar, settings, embedder),
        model=embedder.model_id,
        dimension=embedder.dimension,
        max_tokens=settings.chunking.max_tokens,
        overlap_tokens=settings.chunking.overlap_tokens,
    )
    bar.close()
    return BuildSummary(
        index=str(index_path),
        version=manifest.version,
        documents=manifest.documents,
        chunks=manifest.chunks,
        sentences=manifest.sentences,
        seconds=round(time.perf_counter() - started, 2),
    )


def _indexed(
    articles: Sequence[Article], settings: Settings, embedder: Embedder
) -> Iterator[IndexedDocument]:
    for article in articles:
        sentences = split_sentences(article.text)
        chunks = chunk_article(article, sentences, embedder.count_tokens, settings.chunking)
        yield IndexedDocument(
            article=article,
            chunks=chunks,
            sentences=sentences,
            chunk_vectors=embedder.embed_passages([embedding_text(article, c) for c in chunks]),
            sentence_vectors=embedder.embed_passages([article.text[s.start : s.end] for s in sentences]),
        )
