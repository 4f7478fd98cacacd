"""An embedded article made ready for storage: the tokens BM25 indexes are made here,
while ingesting, so that storage never tokenizes text itself; and the fingerprint of
an article, by which a reindex knows what changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace

from qa.records import Article, Chunk, Sentence
from qa.store.segment_reader import StoredDocument
from qa.store.segment_writer import IndexedDocument
from qa.text.chunk import embedding_text
from qa.text.tokens import tokens
from qa.types import Vectors


def indexed_document(
    article: Article,
    content_hash: str,
    chunks: Sequence[Chunk],
    sentences: Sequence[Sentence],
    chunk_vectors: Vectors,
    sentence_vectors: Vectors,
) -> IndexedDocument:
    """An embedded article with the tokens BM25 indexes: each chunk's (with its
    context, as embedded) and each sentence's."""
    return IndexedDocument(
        article=article,
        content_hash=content_hash,
        chunks=chunks,
        sentences=sentences,
        chunk_vectors=chunk_vectors,
        sentence_vectors=sentence_vectors,
        chunk_tokens=[tokens(embedding_text(article, c)) for c in chunks],
        sentence_tokens=[tokens(article.text[s.start : s.end]) for s in sentences],
    )


def reindexed_document(stored: StoredDocument) -> IndexedDocument:
    """A document a segment holds, ready to be written again (by a merge), its copy
    group and signature carried as they are."""
    document = indexed_document(
        stored.article, stored.content_hash, stored.chunks, stored.sentences,
        stored.chunk_vectors, stored.sentence_vectors,
    )  # fmt: skip
    return replace(document, copy_group=stored.copy_group or None, signature=stored.signature)


def content_hash(article: Article) -> str:
    """A fingerprint of everything indexed from one article."""
    record: list[object] = [article.doc_id, article.title, article.text, article.url, article.published]
    if article.meta:  # only then: the fingerprints of articles without metadata stay as they were
        record.append(article.meta)
    return hashlib.sha256(json.dumps(record, ensure_ascii=False).encode()).hexdigest()
