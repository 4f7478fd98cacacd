"""The health of the configured model: failures in a row, and a pause after too many.

A model that keeps failing would slow every request by its timeout; after
``llm.failures_before_pause`` failures in a row it is not called for
``llm.pause_seconds`` and answers stay extractive. ``/healthz`` reports it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from qa.config import LLMSettings


class LLMHealth:
    """Consecutive failures of the model; after ``failures_before_pause`` of them the
    service stops calling it for ``pause_seconds`` (answers stay extractive)."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.failures_in_row = 0
        self.paused_until = 0.0
        self.last_success: str | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None

    def paused(self) -> str | None:
        """Why the model is not being called now, if it is not."""
        with self._lock:
            left = self.paused_until - time.monotonic()
            if left <= 0:
                return None
            return (
                f"the model failed {self.failures_in_row} times in a row; "
                f"not called for another {left:.0f} s (last error: {self.last_error})"
            )

    def record_success(self) -> None:
        with self._lock:
            self.failures_in_row = 0
            self.paused_until = 0.0
            self.last_success = _now()

    def record_failure(self, error: str) -> None:
        with self._lock:
            self.failures_in_row += 1
            self.last_error = error
            self.last_error_at = _now()
            if self.failures_in_row >= self.settings.failures_before_pause:
                self.paused_until = time.monotonic() + self.settings.pause_seconds

    def summary(self) -> dict[str, Any]:
        """What ``/healthz`` reports under ``llm``."""
        paused = self.paused()
        with self._lock:
            return {
                "configured": self.settings.enabled,
                "model": self.settings.model,
                "last_success": self.last_success,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "failures_in_row": self.failures_in_row,
                "paused": paused,
            }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
