"""Logging set-up of the service, one for every way it starts (``qa serve`` in one
process, and each worker process of ``qa serve --workers N``), so that all write the
same lines."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """Log INFO and above to stderr with a time, the level and the logger's name."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
