"""qa.ingest.engines.registry: the engines the settings accept are the ones it opens."""

from __future__ import annotations

from qa.config import REINDEX_ENGINES, Settings
from qa.ingest.engines.local import LocalEngine
from qa.ingest.engines.registry import ENGINES, open_engine


def test_the_settings_name_exactly_the_registered_engines() -> None:
    assert tuple(ENGINES) == REINDEX_ENGINES


def test_the_default_engine_is_local_with_the_index_embedder(base_settings: Settings) -> None:
    with open_engine(base_settings) as engine:
        assert isinstance(engine, LocalEngine)
        assert (engine.name, engine.actors, engine.dimension) == ("local", 1, 384)
