"""What an indexing engine is: the stage of a reindex that cuts new and changed
articles into chunks and sentences and embeds them, in this process
(``qa.ingest.engines.local``) or on many machines (``qa.ingest.engines.ray``). Every
stage before and after it (``qa.ingest.pipeline``) is the same for all engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import ClassVar

from qa.records import Article
from qa.store.segment_writer import IndexedDocument


class IndexingEngine(ABC):
    """Cuts articles into chunks and sentences and embeds them, in one process or on
    many machines. Used as a context manager: leaving it frees what it holds."""

    # What the reindex summary calls it ("engine"): "local" or "ray".
    name: ClassVar[str]

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    def actors(self) -> int:
        """Embedders working at once."""
        return 1

    @abstractmethod
    def documents(self, articles: Sequence[Article]) -> Iterator[IndexedDocument]:
        """The articles cut and embedded, in the order given."""

    def remember(self, documents: Iterable[IndexedDocument]) -> None:  # noqa: B027 (optional)
        """Documents an interrupted run embedded (restored from its checkpoints), in the
        run's order, so that a copy of one among the articles still to embed reuses its
        vectors as it would have in an uninterrupted run."""

    def close(self) -> None:  # noqa: B027 (optional: most engines hold nothing to free)
        """Free what the engine holds (a cluster connection)."""

    def __enter__(self) -> IndexingEngine:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
