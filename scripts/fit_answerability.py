#!/usr/bin/env python3
"""Fit the answerability model that gives every answer its confidence.

Usage: python scripts/fit_answerability.py [--index DIR] [--out qa/answerability.json]
                                           [--held-back-share 0.5] [--c 1.0]

Every question of the sets below goes through the service's own retrieval and
answering (``qa.answer.extractive``, at ``min_confidence`` 0, so that every question gets its
best answer); its signals (``qa.answer.confidence.Signals``) and whether that answer is
right (answerable, and the answer holds the gold span) are recorded. A logistic
regression (scikit-learn, used here only) is fitted on the fitting part and written
as JSON: means, scales, weights, and the held-back part. Then the script prints, on
the held-back part, found on answerable questions per language, abstention per kind
of unanswerable question, the reliability table and the expected calibration error
at the ``min_confidence`` it picks: the highest that still answers 96% of the
fitting part's answerable questions in each language.

The split is by document (tests/data/README.md): a document is held back when the
first byte of sha256(doc_id) is below 256 * share; a question about no document
(general knowledge) by the same rule over its qid; the older
tests/data/unanswerable.jsonl (no documents, no kinds) is all fitting.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from qa.answer.confidence import AnswerabilityModel, Signals
from qa.config import load_settings
from qa.embed.registry import make_embedder
from qa.eval.evaluate import EvalQuestion, answer_is_right, calibration, load_questions, reliability_table
from qa.ingest.pipeline import ensure_index
from qa.serve.service import QAService

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CORPUS = DATA / "arcd" / "corpus.jsonl"
# (file, language of its question field): the answerable sets, then the unanswerable.
QUESTION_SETS = [
    (DATA / "arcd" / "questions.jsonl", "ar"),
    (DATA / "dev_questions_en.jsonl", "en"),
    (DATA / "questions_en_more.jsonl", "en"),
    (DATA / "unanswerable_more.jsonl", "all"),
]
FITTING_ONLY = [(DATA / "unanswerable.jsonl", "all")]
FEATURES = list(Signals(**{field.name: 0.0 for field in dataclasses.fields(Signals)}).features())
# The share of each language's answerable fitting questions min_confidence keeps.
KEEP_ANSWERABLE = 0.96


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=REPO / "indexes" / "eval-corpus")
    parser.add_argument("--out", type=Path, default=REPO / "qa" / "answerability.json")
    parser.add_argument("--held-back-share", type=float, default=0.5)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularization strength")
    parser.add_argument(
        "--signals",
        type=Path,
        help="keep the questions' signals in this JSON file, and reuse them when it exists",
    )
    args = parser.parse_args()

    settings = load_settings(REPO / "config.toml", environ={}).replace(
        {"index.path": args.index, "answer.min_confidence": 0.0}
    )
    embedder = make_embedder(settings.embedding)
    ensure_index(CORPUS, args.index, settings, embedder)
    questions = [q for path, lang in QUESTION_SETS for q in load_questions(path, lang)]
    fitting_only = [q for path, lang in FITTING_ONLY for q in load_questions(path, lang)]
    documents = {json.loads(line)["id"] for line in CORPUS.read_text("utf-8").splitlines()}
    held_back_documents = sorted(d for d in documents if _held_back(d, args.held_back_share))
    held_back_questions = sorted(
        q.qid for q in questions if q.doc_id is None and _held_back(q.qid, args.held_back_share)
    )
    placeholder = _model_data([0.0] * len(FEATURES), 0.0, np.zeros(len(FEATURES)), np.ones(len(FEATURES)),
                              held_back_documents, held_back_questions)  # fmt: skip
    split = AnswerabilityModel(placeholder)
    if args.signals and args.signals.exists():
        rows = [tuple(row) for row in json.loads(args.signals.read_text())]
    else:
        service = QAService.open(settings, embedder=embedder, answerability=split)
        try:
            rows = [_row(service, q) for q in questions + fitting_only]
        finally:
            service.close()
        if args.signals:
            args.signals.write_text(json.dumps(rows))
    held = np.array([split.is_held_back(q.qid, q.doc_id) for q in questions] + [False] * len(fitting_only))
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    mean, scale = x[~held].mean(axis=0), x[~held].std(axis=0)
    scale[scale == 0] = 1.0
    fitted = LogisticRegression(C=args.c, max_iter=5000).fit((x[~held] - mean) / scale, y[~held])
    data = _model_data(list(fitted.coef_[0]), float(fitted.intercept_[0]), mean, scale,
                       held_back_documents, held_back_questions)  # fmt: skip
    model = AnswerabilityModel(data)
    confidence = np.array([model.confidence(Signals(*r[2])) if r[2] else 0.0 for r in rows])
    asked = questions + fitting_only
    threshold = _threshold(asked, confidence, ~held)
    data["fitted_on"] = {"questions": int((~held).sum()), "right": int(y[~held].sum())}
    data["min_confidence"] = threshold
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); min_confidence {threshold}")
    _report("held-back", asked, confidence, y, held, threshold)
    _report("fitting", asked, confidence, y, ~held, threshold)
    weights = sorted(zip(FEATURES, fitted.coef_[0], strict=True), key=lambda item: -abs(item[1]))
    print("weights (standardized):", ", ".join(f"{name} {value:+.2f}" for name, value in weights))
    return 0


def _held_back(key: str, share: float) -> bool:
    return hashlib.sha256(key.encode()).digest()[0] < 256 * share


def _model_data(
    weights: list[float],
    bias: float,
    mean: np.ndarray,
    scale: np.ndarray,
    held_back_documents: list[str],
    held_back_questions: list[str],
) -> dict[str, object]:
    return {
        "features": FEATURES,
        "mean": [round(float(v), 6) for v in mean],
        "scale": [round(float(v), 6) for v in scale],
        "weights": [round(float(v), 6) for v in weights],
        "bias": round(bias, 6),
        "held_back_documents": held_back_documents,
        "held_back_questions": held_back_questions,
    }


def _row(service: QAService, question: EvalQuestion) -> tuple[list[float], int, list[float] | None]:
    """The question's features, whether its best answer is right, and its raw signals."""
    asked = service.retrieve(question.question)
    signals = service.answerer.signals(asked.question, asked.retrieval)
    answer = service.extractive(asked)
    right = int(answer.found and answer_is_right(answer, question))
    if signals is None:
        return [0.0] * len(FEATURES), right, None
    values = signals.features()
    return [values[name] for name in FEATURES], right, list(vars(signals).values())


def _threshold(questions: list[EvalQuestion], confidence: np.ndarray, part: np.ndarray) -> float:
    """The highest confidence (to 0.01) at which each language's answerable questions
    of ``part`` are still answered at least KEEP_ANSWERABLE of the time."""
    limits = []
    for lang in ("ar", "en"):
        chosen = [
            c
            for q, c, p in zip(questions, confidence, part, strict=True)
            if p and q.answerable and q.lang == lang
        ]
        limits.append(float(np.quantile(chosen, 1 - KEEP_ANSWERABLE)))
    return float(np.floor(min(limits) * 100) / 100)


def _report(
    name: str,
    questions: list[EvalQuestion],
    confidence: np.ndarray,
    right: np.ndarray,
    part: np.ndarray,
    threshold: float,
) -> None:
    chosen = [i for i in range(len(questions)) if part[i]]
    print(f"\n## {name} part: {len(chosen)} questions")
    for lang in ("ar", "en"):
        found = [
            confidence[i] >= threshold
            for i in chosen
            if questions[i].answerable and questions[i].lang == lang
        ]
        print(f"found on answerable, {lang}: {np.mean(found):.3f} of {len(found)}")
    for kind in ("general", "near_miss", "changed_detail", "unanswerable"):
        refused = [confidence[i] < threshold for i in chosen if questions[i].kind == kind]
        if refused:
            print(f"abstains, {kind}: {np.mean(refused):.3f} of {len(refused)}")
    buckets, ece = calibration([float(confidence[i]) for i in chosen], [bool(right[i]) for i in chosen])
    print(reliability_table(buckets))
    print(f"expected calibration error: {ece:.4f}")


if __name__ == "__main__":
    sys.exit(main())
