"""Serving a newly published index version without a restart."""

from __future__ import annotations

import logging
import threading

import anyio

from qa.errors import QAError
from qa.serve.service import QAService
from qa.store.index import load_index

logger = logging.getLogger("qa.serve.reload")


class LiveService:
    """The service of the version published at ``index.path``, replaced by a newer one
    without a restart.

    :meth:`refresh` opens a newly published version beside the served one (mapping
    only the segments the served one does not hold) and swaps it in with one
    assignment. A request reads :attr:`current` once and is answered
    entirely from that version; the old version is freed when its last request ends.
    """

    def __init__(self, service: QAService) -> None:
        self._service = service
        self._lock = threading.Lock()
        # Why the last reload failed (the old version is still served), if it did.
        self.reload_error: str | None = None

    @property
    def current(self) -> QAService:
        return self._service

    def refresh(self) -> bool:
        """Swap in the version ``index.path`` now points at, if it is new; True if swapped."""
        with self._lock:
            served = self._service
            path = served.settings.index.path
            try:
                folder = path.resolve(strict=True)
            except OSError:
                return False  # the link is being replaced or was removed: keep serving
            if folder == served.index.folder:
                return False
            try:
                index = load_index(
                    path,
                    served.settings.index,
                    model=served.embedder.model_id,
                    dimension=served.embedder.dimension,
                    opened=served.index.segments(),
                )
            except QAError as exc:
                self.reload_error = f"could not load {folder.name}: {exc}"
                logger.error("index reload failed, still serving %s: %s", served.index.manifest.version, exc)
                return False
            self._service = QAService(
                served.settings, served.embedder, index, served.generator, served.answerability, served.gate
            )
            self.reload_error = None
            logger.info("now serving index version %s", index.manifest.version)
            return True

    def disk_problem(self) -> str | None:
        """What is wrong with the served version's files on disk, if anything: the
        service keeps answering from the files it holds open, but a restart would fail."""
        return self._service.index.disk_problem()


async def watch_index(live: LiveService, interval: float) -> None:
    """Look for a newly published index version every ``interval`` seconds."""
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(live.refresh)
        except Exception:  # a watcher that dies silently would stop all reloads
            logger.exception("index reload check failed")
