"""The local engine: new and changed articles cut and embedded in this process, with
one embedder. The Ray engine runs it on each of its actors, so both cut the same
chunks and sentences and embed the same texts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from qa.config import ChunkingSettings, Settings
from qa.embed.base import Embedder
from qa.embed.registry import make_embedder
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.indexed import content_hash, indexed_document
from qa.records import Article, Chunk, Sentence
from qa.store.segment_writer import IndexedDocument
from qa.text.chunk import chunk_article, embedding_text, sentence_embedding_texts
from qa.text.sentences import split_sentences

# Texts (chunks and sentences) of new and changed articles embedded in one call:
# about 20 articles of the dev corpus, some 20 s on 2 cores, so progress still shows.
GROUP_SIZE = 256


class LocalEngine(IndexingEngine):
    """Cuts and embeds in this process, with one embedder."""

    name = "local"

    def __init__(self, embedder: Embedder, chunking: ChunkingSettings) -> None:
        self._embedder = embedder
        self._chunking = chunking

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEngine:
        """The engine with the embedder the settings name for indexing."""
        return cls(make_embedder(settings.embedding, "index"), settings.chunking)

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def documents(self, articles: Sequence[Article]) -> Iterator[IndexedDocument]:
        """Embedded in groups, chunks and sentences of many articles in one call: an
        engine that pads a batch to its longest text (sentence-transformers) then fills
        its batches with texts of similar length, where one article's dozen texts would
        make small, ragged batches. A group closes at GROUP_SIZE texts, so that a large
        archive is never held in memory whole.
        """
        group: list[_Pending] = []
        size = 0
        for article in articles:
            sentences = split_sentences(article.text)
            chunks = chunk_article(article, sentences, self._embedder.count_tokens, self._chunking)
            group.append(_Pending(article, content_hash(article), chunks, sentences))
            size += len(chunks) + len(sentences)
            if size >= GROUP_SIZE:
                yield from _embedded(group, self._embedder)
                group, size = [], 0
        yield from _embedded(group, self._embedder)


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


def _embedded(group: Sequence[_Pending], embedder: Embedder) -> Iterator[IndexedDocument]:
    """The group's documents in order, embedded in one call."""
    texts = [text for item in group for text in item.texts()]
    vectors = embedder.embed_passages(texts) if texts else np.empty((0, embedder.dimension), np.float32)
    row = 0
    for item in group:
        middle = row + len(item.chunks)
        end = middle + len(item.sentences)
        yield indexed_document(item.article, item.digest, item.chunks, item.sentences, vectors[row:middle],
                       vectors[middle:end])  # fmt: skip
        row = end
