"""BM25 over normalized Arabic-aware tokens (bm25s), saved beside the vectors.

bm25s keeps the scores as a sparse matrix, so scoring a question against every
chunk is one sparse lookup rather than a loop in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]


class LexicalIndex:
    """BM25 scores of a question against a fixed list of texts, by their row."""

    def __init__(self, model: bm25s.BM25 | None, size: int) -> None:
        self._model = model
        self.size = size

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> LexicalIndex:
        if not any(token_lists):
            return cls(None, len(token_lists))
        model = bm25s.BM25()
        # bm25s drops rows that have no tokens at all; a placeholder keeps row = id.
        model.index([list(tokens) or ["\u0000"] for tokens in token_lists], show_progress=False)
        return cls(model, len(token_lists))

    def save(self, folder: Path) -> None:
        folder.mkdir()
        (folder / "size").write_text(str(self.size))
        if self._model is not None:
            self._model.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        size = int((folder / "size").read_text())
        if not (folder / "params.index.json").is_file():
            return cls(None, size)
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        return cls(bm25s.BM25.load(str(folder)), size)

    def coverage(self, query_tokens: Sequence[str]) -> float:
        """The share of the query's tokens that occur anywhere in the texts.

        Low for a question in another language than the archive (an English
        question over Arabic articles): its few matches are then noise.
        """
        if self._model is None or not query_tokens:
            return 0.0
        vocabulary = self._model.vocab_dict
        return sum(token in vocabulary for token in query_tokens) / len(query_tokens)

    def scores(self, query_tokens: Sequence[str]) -> Scores:
        """One BM25 score per row; zeros where no token of the query occurs."""
        if self._model is None or not query_tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores(list(query_tokens)), dtype=np.float32)
