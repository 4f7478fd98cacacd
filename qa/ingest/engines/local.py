"""The local engine: new and changed articles cut and embedded in this process, with
one embedder. The Ray engine runs it on each of its actors, so both cut the same
chunks and sentences and embed the same texts.

How the two kinds of vectors are made is ``embedding.vectors`` (docs/indexing.md):

- ``late``: each chunk is embedded once, and each sentence's vector is pooled from
  that pass's token states over the sentence (late chunking; sentence-transformers
  only). A sentence in two chunks (the overlap) gets the mean of both.
- ``sentences``: each sentence is embedded (after the title), and a chunk's vector is
  the mean of its sentences' vectors. Every engine can.
- ``separate``: chunks and sentences each embedded, every token twice (the way of
  indexes before it).

An article whose embedded texts equal those of one embedded earlier in the run (a
copy filed twice, whitespace aside) reuses its vectors instead of being embedded again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from qa.config import ChunkingSettings, Settings
from qa.embed.base import Embedder, SpanEmbedder, unit_rows
from qa.embed.registry import make_embedder
from qa.errors import ConfigError
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.indexed import content_hash, indexed_document
from qa.records import Article, Chunk, Sentence
from qa.store.segment_writer import IndexedDocument
from qa.text.chunk import chunk_article, embedding_text, sentence_embedding_texts
from qa.text.sentences import split_sentences
from qa.types import Vectors

# Texts of new and changed articles embedded in one call: about 25 articles of the dev
# corpus, some 20 s on 2 cores, so progress still shows.
GROUP_SIZE = 256
# The vectors of recently embedded articles kept to be reused by an exact copy: copies
# of a story are filed close together in time, and 64 MB holds some 6,500 ANT articles.
COPY_CACHE_BYTES = 64 * 1024 * 1024


class LocalEngine(IndexingEngine):
    """Cuts and embeds in this process, with one embedder."""

    name = "local"

    def __init__(self, embedder: Embedder, chunking: ChunkingSettings, vectors: str) -> None:
        if vectors == "late" and not isinstance(embedder, SpanEmbedder):
            raise ConfigError(
                "embedding.vectors = 'late' pools sentence vectors from the token states of the chunk pass, "
                "which only the sentence-transformers engine exposes; set embedding.index_backend = "
                "'sentence-transformers', or embedding.vectors = 'sentences'"
            )
        self._embedder = embedder
        self._chunking = chunking
        self._vectors = vectors
        self._copies = _CopyCache(COPY_CACHE_BYTES)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEngine:
        """The engine with the embedder the settings name for indexing."""
        return cls(make_embedder(settings.embedding, "index"), settings.chunking, settings.embedding.vectors)

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def documents(self, articles: Sequence[Article]) -> Iterator[IndexedDocument]:
        """Embedded in groups, texts of many articles in one call: an engine that pads
        a batch to its longest text (sentence-transformers) then fills its batches with
        texts of similar length, where one article's few texts would make small, ragged
        batches. A group closes at GROUP_SIZE texts, so that a large archive is never
        held in memory whole.

        The last document of each group ``ends_batch``, and only there is a checkpoint
        written: a padding model's vectors differ in their last bits with the texts
        batched beside them, so a resumed run must start its groups where the killed
        run's closed. Copies are not counted towards a group's size, so that a resumed
        run, which restores a later copy of a checkpointed article instead of handing
        it here, closes its groups at the same articles as an uninterrupted one.
        """
        group: list[_Pending] = []
        keys: set[str] = set()
        size = 0
        for article in articles:
            sentences = split_sentences(article.text)
            chunks = chunk_article(article, sentences, self._embedder.count_tokens, self._chunking)
            item = _Pending(article, content_hash(article), chunks, sentences)
            group.append(item)
            if item.key not in keys and item.key not in self._copies:
                keys.add(item.key)
                size += self._texts_embedded(item)
                if size >= GROUP_SIZE:
                    yield from self._embedded(group)
                    group, keys, size = [], set(), 0
        yield from self._embedded(group)

    def remember(self, documents: Iterable[IndexedDocument]) -> None:
        """Kept as the copy cache keeps what this engine embeds: a later copy of one is
        then not embedded, and counts towards no group, as in an uninterrupted run."""
        for document in documents:
            key = _Pending(document.article, document.content_hash, document.chunks, document.sentences).key
            if key in self._copies:
                self._copies.get(key)  # what a copy of it does to the cache's order
            else:
                self._copies.put(key, (document.chunk_vectors, document.sentence_vectors))

    def _embedded(self, group: Sequence[_Pending]) -> Iterator[IndexedDocument]:
        """The group's documents in order, embedded in one call; an exact copy of an
        article embedded before (in this group or an earlier one) is not embedded again."""
        vectors: dict[str, tuple[Vectors, Vectors]] = {}
        first: dict[str, _Pending] = {}
        for item in group:
            if item.key in self._copies:
                vectors[item.key] = self._copies.get(item.key)
            elif item.key not in first:
                first[item.key] = item
        for key, made in zip(first, self._embed(list(first.values())), strict=True):
            vectors[key] = made
            self._copies.put(key, made)
        for position, item in enumerate(group):
            document = indexed_document(
                item.article, item.digest, item.chunks, item.sentences, *vectors[item.key]
            )
            embedded = self._texts_embedded(item) if first.get(item.key) is item else 0
            yield replace(document, texts_embedded=embedded, ends_batch=position == len(group) - 1)

    def _texts_embedded(self, item: _Pending) -> int:
        """The texts embedding the item takes."""
        if self._vectors == "late":
            return len(item.chunks)
        if self._vectors == "sentences":
            return len(item.sentences)
        return len(item.chunks) + len(item.sentences)

    def _embed(self, items: Sequence[_Pending]) -> list[tuple[Vectors, Vectors]]:
        """Chunk and sentence vectors of each item, as ``embedding.vectors`` makes them."""
        if not items:
            return []
        if self._vectors == "late":
            assert isinstance(self._embedder, SpanEmbedder)
            texts = [text for item in items for text in item.chunk_texts]
            spans = [chunk_spans for item in items for chunk_spans in item.sentence_spans()]
            chunk_rows, span_rows = self._embedder.embed_passage_spans(texts, spans)
            out, chunk_row, span_row = [], 0, 0
            for item in items:
                taken = sum(len(members) for members in item.members)
                out.append((chunk_rows[chunk_row : chunk_row + len(item.chunks)],
                            item.sentences_from_spans(span_rows[span_row : span_row + taken])))  # fmt: skip
                chunk_row += len(item.chunks)
                span_row += taken
            return out
        sentence_texts = [text for item in items for text in item.sentence_texts]
        chunk_texts = (
            [text for item in items for text in item.chunk_texts] if self._vectors == "separate" else []
        )
        rows = self._embedder.embed_passages(chunk_texts + sentence_texts)
        out, chunk_row, sentence_row = [], 0, len(chunk_texts)
        for item in items:
            sentence_vectors = rows[sentence_row : sentence_row + len(item.sentences)]
            if self._vectors == "separate":
                chunk_vectors = rows[chunk_row : chunk_row + len(item.chunks)]
            else:
                chunk_vectors = item.chunks_from_sentences(sentence_vectors)
            out.append((chunk_vectors, sentence_vectors))
            chunk_row += len(item.chunks)
            sentence_row += len(item.sentences)
        return out


@dataclass(frozen=True)
class _Pending:
    """An article cut into chunks and sentences, waiting for its group to be embedded."""

    article: Article
    digest: str
    chunks: Sequence[Chunk]
    sentences: Sequence[Sentence]

    @cached_property
    def chunk_texts(self) -> list[str]:
        """What the embedder sees for each chunk: its context, then its text."""
        return [embedding_text(self.article, chunk) for chunk in self.chunks]

    @cached_property
    def sentence_texts(self) -> list[str]:
        """What the embedder sees for each sentence: the title, then the sentence."""
        return sentence_embedding_texts(self.article, self.sentences)

    @cached_property
    def key(self) -> str:
        """What the article's vectors are made of: its embedded texts, whitespace runs
        made one space, so that a copy filed again (spaced another way) shares them."""
        shape = f"{len(self.chunks)} {len(self.sentences)}\x1f"
        texts = "\x1f".join(" ".join(t.split()) for t in [*self.chunk_texts, *self.sentence_texts])
        return hashlib.sha256((shape + texts).encode()).hexdigest()

    @cached_property
    def members(self) -> list[list[int]]:
        """For each chunk, the sentences (their positions) it is made of."""
        return [
            [i for i, s in enumerate(self.sentences) if s.start >= chunk.start and s.end <= chunk.end]
            for chunk in self.chunks
        ]

    def sentence_spans(self) -> list[list[tuple[int, int]]]:
        """For each chunk, where its sentences lie in its embedded text (context first,
        then the chunk)."""
        spans = []
        for chunk, text, members in zip(self.chunks, self.chunk_texts, self.members, strict=True):
            offset = len(text) - (chunk.end - chunk.start) - chunk.start
            spans.append(
                [(self.sentences[i].start + offset, self.sentences[i].end + offset) for i in members]
            )
        return spans

    def sentences_from_spans(self, pooled: Vectors) -> Vectors:
        """Each sentence's vector from those its chunks pooled for it: the mean, where
        the overlap put it in two."""
        total = np.zeros((len(self.sentences), pooled.shape[1]), dtype=np.float32)
        for row, i in enumerate(i for members in self.members for i in members):
            total[i] += pooled[row]
        return unit_rows(total)

    def chunks_from_sentences(self, sentence_vectors: Vectors) -> Vectors:
        """Each chunk's vector: the mean of its sentences' vectors, normalized."""
        if not self.chunks:
            return np.empty((0, sentence_vectors.shape[1]), dtype=np.float32)
        return unit_rows(np.stack([sentence_vectors[members].mean(axis=0) for members in self.members]))


class _CopyCache:
    """The chunk and sentence vectors of recent articles by :attr:`_Pending.key`, the
    oldest dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[str, tuple[Vectors, Vectors]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> tuple[Vectors, Vectors]:
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: str, vectors: tuple[Vectors, Vectors]) -> None:
        self._entries[key] = vectors
        self._bytes += vectors[0].nbytes + vectors[1].nbytes
        while self._bytes > self._max_bytes and len(self._entries) > 1:
            _, (chunks, sentences) = self._entries.popitem(last=False)
            self._bytes -= chunks.nbytes + sentences.nbytes
