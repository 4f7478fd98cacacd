"""Semantic search and cited question answering over news archives, Arabic first.

The public API, for use as a library (the HTTP API and ``qa`` CLI are built on it)::

    from qa import QAService, load_settings

    settings = load_settings()
    service = QAService.open(settings)
    answer = service.ask("What did Cameron ask Putin?")
    for citation in answer.citations:
        print(citation.doc_id, citation.start, citation.end, citation.quote)

Names are imported on first use (PEP 562), so ``import qa.errors`` or ``qa.config``
loads no model, no FAISS and no web framework.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_PUBLIC = {
    "load_settings": "qa.config",
    "Settings": "qa.config",
    "QAService": "qa.serve.service",
    "create_app": "qa.serve.http.app",
    "read_articles": "qa.ingest.sources",
    "build_index": "qa.ingest.pipeline",
    "parse_filters": "qa.search.filters",
    "Article": "qa.records",
    "Answer": "qa.records",
    "AnswerMode": "qa.records",
    "Citation": "qa.records",
    "Filters": "qa.records",
    "Passage": "qa.records",
    "Turn": "qa.records",
    "QAError": "qa.errors",
    "ConfigError": "qa.errors",
    "IndexUnavailableError": "qa.errors",
    "InvalidRequestError": "qa.errors",
    "LLMError": "qa.errors",
    "NotFoundError": "qa.errors",
    "SourceError": "qa.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
