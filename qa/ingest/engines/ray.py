"""The Ray engine of ``qa reindex --engine ray``: articles cut and embedded by a Ray
Data actor pool, one embedder per actor, on one machine's cores or a whole cluster.

The driver (the reindex process) reads the sources, picks the new and changed
articles and writes the segment, exactly as with the local engine; only the cutting
and embedding move. Each actor runs :class:`qa.ingest.engines.local.LocalEngine` over its
batch of articles, so both engines cut the same chunks and sentences and embed the same texts
with the same model. Results come back in the order the articles were sent
(``preserve_order``), streamed: the driver writes a document as soon as it arrives and
never holds the whole archive's vectors.

Faults: Ray Data restarts an actor that dies and retries its batch (``max_restarts``
and ``max_task_retries`` are unlimited for its actor pools), so the output is the same.
The run's actors belong to the driver's job and end with it; a driver killed before
it publishes leaves the served index untouched, as any interrupted reindex does.

A cluster is joined at ``reindex.ray_address`` (which is ``$RAY_ADDRESS`` when no file,
variable or flag sets it: ``qa.config`` reads it with the settings); without one a
Ray is started on this machine, bound to 127.0.0.1, and stopped after the run. Both
are bounded by ``reindex.ray_timeout_seconds``: a head that does not answer, or a
cluster without room for the embedders, fails the run with the address in the
message (Ray itself would wait for minutes).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from qa.config import Settings
from qa.errors import ClusterError, ConfigError, QAError
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.engines.local import LocalEngine
from qa.records import Article
from qa.store.segment_writer import IndexedDocument

if TYPE_CHECKING:
    from types import ModuleType

RAY_INSTALL = "pip install -e '.[ray]'"
# Articles an actor cuts and embeds in one call: about 190 texts of the dev corpus,
# ten seconds for one CPU, a fraction of one for a GPU. Fewer for a small run, so that
# every actor gets several batches and none waits for the last one.
MAX_ARTICLES_PER_BATCH = 16
BATCHES_PER_ACTOR = 8


class EmbedArticles:
    """A Ray Data actor: one embedder, loaded once, cutting and embedding batches of
    pickled articles into pickled :class:`IndexedDocument` s."""

    def __init__(self, settings: Settings) -> None:
        self._engine = LocalEngine.from_settings(settings)

    def __call__(self, batch: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        articles: list[Article] = [pickle.loads(blob) for blob in batch["article"]]
        documents = [pickle.dumps(document) for document in self._engine.documents(articles)]
        return {"position": batch["position"], "document": np.array(documents, dtype=object)}


def _describe_model(settings: Settings) -> tuple[str, int]:
    """The model id and dimension an actor's embedder reports (run on the cluster)."""
    engine = LocalEngine.from_settings(settings)
    return engine.model_id, engine.dimension


class RayEngine(IndexingEngine):
    """Cuts and embeds on a Ray cluster; see the module's documentation."""

    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        reindex = settings.reindex
        self._address = reindex.ray_address
        deadline = time.monotonic() + reindex.ray_timeout_seconds
        self._where = f"the Ray cluster at {self._address}" if self._address else "the local Ray"
        if not self._address or _is_loopback(self._address):
            # Ray swaps a loopback address for the machine's network address, so that
            # other nodes could reach it, unless told the cluster is this machine alone
            # (read when Ray is imported).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        self._ray = _import_ray()
        if self._address:
            _wait_for_head(self._address, deadline, reindex.ray_timeout_seconds)
            self._ray.init(address=self._address, logging_level=logging.WARNING)
        else:
            # A Ray of this machine for this run, on loopback only, and without the
            # token file that Ray's default authentication writes to $HOME.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            self._ray.init(
                _node_ip_address="127.0.0.1", include_dashboard=False, logging_level=logging.WARNING
            )
        try:
            self._actors = self._wait_for_room(deadline)
            self._model_id, self._dimension = self._probe(deadline)
        except BaseException:
            self.close()
            raise

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def actors(self) -> int:
        return self._actors

    def documents(self, articles: Sequence[Article]) -> Iterator[IndexedDocument]:
        if not articles:
            return
        data = self._ray.data
        context = data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        batch = max(
            1, min(MAX_ARTICLES_PER_BATCH, math.ceil(len(articles) / (self._actors * BATCHES_PER_ACTOR)))
        )
        rows = [{"position": i, "article": pickle.dumps(a)} for i, a in enumerate(articles)]
        reindex = self._settings.reindex
        resources: dict[str, Any] = {"num_cpus": reindex.ray_cpus_per_actor}
        if reindex.ray_gpus_per_actor:
            resources["num_gpus"] = reindex.ray_gpus_per_actor
        dataset = data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch)).map_batches(
            EmbedArticles,
            fn_constructor_kwargs={"settings": self._settings},
            batch_size=batch,
            batch_format="numpy",
            compute=data.ActorPoolStrategy(size=self._actors),
            **resources,
        )
        expected = 0
        try:
            for result in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for position, blob in zip(result["position"], result["document"], strict=True):
                    if int(position) != expected:  # preserve_order guarantees it; never write out of order
                        raise ClusterError(f"{self._where} returned article {position}, expected {expected}")
                    expected += 1
                    yield pickle.loads(blob)
        except QAError:
            raise
        except Exception as exc:  # Ray raises its own kinds, wrapping the actor's
            raise _cluster_error(exc, self._where) from exc

    def close(self) -> None:
        """Leave the cluster (stopping the local Ray, when this run started it)."""
        self._ray.shutdown()

    def _wait_for_room(self, deadline: float) -> int:
        """The number of actors to run, once the cluster has room for them all."""
        reindex = self._settings.reindex
        cpus, gpus = reindex.ray_cpus_per_actor, reindex.ray_gpus_per_actor
        while True:
            total = self._ray.cluster_resources()
            fits = int(min(total.get("CPU", 0) // cpus, total.get("GPU", 0) // gpus if gpus else math.inf))
            wanted = reindex.ray_actors or max(fits, 1)
            if fits >= wanted:
                return wanted
            if time.monotonic() >= deadline:
                need = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
                raise ClusterError(
                    f"{self._where} has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs: "
                    f"no room for {wanted} embedders of {need} each after "
                    f"{reindex.ray_timeout_seconds:g} s; start more nodes "
                    f"(ray start --address {self._address or 'HEAD'}) or lower reindex.ray_actors"
                )
            time.sleep(1.0)

    def _probe(self, deadline: float) -> tuple[str, int]:
        """Load the model once on the cluster: the id and dimension the index records,
        and an early, clear failure where a node cannot load it."""
        reindex = self._settings.reindex
        probe = self._ray.remote(num_cpus=reindex.ray_cpus_per_actor, num_gpus=reindex.ray_gpus_per_actor)(
            _describe_model
        )
        reference = probe.remote(self._settings)
        try:
            model_id, dimension = self._ray.get(reference, timeout=max(1.0, deadline - time.monotonic()))
        except self._ray.exceptions.GetTimeoutError as exc:
            self._ray.cancel(reference, force=True)
            raise ClusterError(
                f"{self._where} did not start an embedder within {reindex.ray_timeout_seconds:g} s"
            ) from exc
        except Exception as exc:
            raise _cluster_error(exc, self._where) from exc
        return str(model_id), int(dimension)


def _import_ray() -> ModuleType:
    # Ray Data's per-dataset log lines and its progress bars (off below, which it warns
    # about) would bury the reindex's own bar and summary; its other warnings still show.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(
            f"reindex engine 'ray' needs the ray extra ({exc.name} is missing): {RAY_INSTALL}"
        ) from exc
    return ray


def _wait_for_head(address: str, deadline: float, timeout: float) -> None:
    """Return once the head's port accepts connections; Ray's own connect retries for
    minutes against an address where nothing answers."""
    if address == "auto" or address.startswith("ray://"):
        return  # Ray finds the head itself, or its client library bounds the wait
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"reindex.ray_address {address!r} must be HOST:PORT (the head's GCS port) or 'auto'"
        )
    while True:
        try:
            with socket.create_connection(
                (host, int(port)), timeout=max(0.1, min(5.0, deadline - time.monotonic()))
            ):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"cannot reach the Ray cluster at {address} within {timeout:g} s: {exc}"
                ) from exc
            time.sleep(0.5)


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _cluster_error(exc: Exception, where: str) -> QAError:
    """A package error for a failure on the cluster: the actor's own error when it was
    one of ours (a model folder missing on a node), else Ray's, naming the cluster."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, QAError):
        return type(cause)(f"on {where}: {cause}")
    return ClusterError(f"{where} failed: {type(exc).__name__}: {exc}")
