"""How sure the service is that its answer is right: a small calibrated model over
signals that retrieval and answering already compute. No HTTP.

The model is a logistic regression fitted by ``scripts/fit_answerability.py`` (with
scikit-learn, at fitting time only) on questions over the dev corpus, answerable and
not, and measured on questions about other documents (docs/quality.md). It
is shipped as ``answerability.json`` beside this module: feature names, their means
and scales, the weights, and the documents and questions it was not fitted on (the
held-back part that ``qa eval`` measures by default). Evaluating it is a dot product.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ConfigError

MODEL_PATH = Path(__file__).with_name("answerability.json")


@dataclass(frozen=True)
class Signals:
    """What the service knows about a question's evidence, as numbers. Absolute
    ones only: gaps between passages or the top article's share of them depend on
    the size of the archive, and a model fitted on one archive misread them on
    another (the one-article sample answered "What is the boiling point of water?")."""

    # Retrieval score of the top passage (qa.search.retrieve).
    top_score: float
    # Answer score of the best sentence (qa.answer.extractive) and its dense similarity to the question.
    sentence_score: float
    sentence_similarity: float
    # Share of the question's tokens found in the archive at all, and in the answer sentence.
    coverage: float
    sentence_overlap: float
    # The question names a number (3+ digits), and one of them is in none of the top passages.
    has_number: float
    number_missing: float
    # The question asks for a name, number, date or place (qa.answer.slots), and the
    # answer sentence holds no filler of that kind that the question does not.
    slot_asked: float
    slot_unmet: float
    # The share of the question's names and places that the answer's article (its
    # retrieved passages) holds in no script.
    entities_missing: float
    # The question is not in the language of the top passage (English over Arabic).
    cross_language: float

    def features(self) -> dict[str, float]:
        """The signals, plus the ones that mean something else across languages
        (scores and overlaps of an English question over Arabic text run lower)."""
        values = dataclasses.asdict(self)
        for name in ("top_score", "sentence_similarity", "coverage", "sentence_overlap"):
            values[f"cross_{name}"] = self.cross_language * values[name]
        return values


class AnswerabilityModel:
    """confidence = sigmoid(w . (features - mean) / scale + b)."""

    def __init__(self, data: dict[str, Any], where: str = "the answerability model") -> None:
        try:
            self.features: list[str] = list(data["features"])
            self._mean = np.asarray(data["mean"], dtype=np.float64)
            self._scale = np.asarray(data["scale"], dtype=np.float64)
            self._weights = np.asarray(data["weights"], dtype=np.float64)
            self._bias = float(data["bias"])
            self.held_back_documents = frozenset(str(d) for d in data["held_back_documents"])
            self.held_back_questions = frozenset(str(q) for q in data["held_back_questions"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: not an answerability model ({exc})") from exc
        if not len(self.features) == len(self._mean) == len(self._scale) == len(self._weights):
            raise ConfigError(f"{where}: features, mean, scale and weights differ in length")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> AnswerabilityModel:
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the answerability model ({exc})") from exc
        return cls(data, str(path))

    def confidence(self, signals: Signals) -> float:
        values = signals.features()
        try:
            x = np.array([values[name] for name in self.features], dtype=np.float64)
        except KeyError as exc:
            raise ConfigError(f"the answerability model needs the unknown signal {exc}") from exc
        logit = float(self._weights @ ((x - self._mean) / self._scale)) + self._bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))

    def is_held_back(self, qid: str, doc_id: str | None) -> bool:
        """Whether a question is in the part the model was not fitted on: by its
        document, or by its id for a question about no document."""
        return doc_id in self.held_back_documents if doc_id else qid in self.held_back_questions
