"""Semantic search and cited question answering over news archives, Arabic first."""

__version__ = "0.1.0"
