"""The indexing engines by name, and :func:`open_engine`, which opens the one
``reindex.engine`` names. ``qa.config.REINDEX_ENGINES`` (which the settings are checked
against, below this layer) lists the same names; a test keeps the two equal."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qa.config import Settings
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.engines.local import LocalEngine
from qa.ingest.engines.ray import RayEngine

# Ray itself, an extra, is imported only when a RayEngine is made.
ENGINES: Mapping[str, Callable[[Settings], IndexingEngine]] = {
    LocalEngine.name: LocalEngine.from_settings,
    RayEngine.name: RayEngine,
}


def open_engine(settings: Settings) -> IndexingEngine:
    """The engine ``reindex.engine`` names, ready to index."""
    return ENGINES[settings.reindex.engine](settings)
