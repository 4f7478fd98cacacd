"""`qa eval` on a fixed subset of the ARCD dev set: a quality regression fails the build.

The floors sit a little under the values measured on this subset (README, "Answer
quality"); the full dev set is scored with the same command.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qa.errors import SourceError
from qa.eval.evaluate import load_questions
from tests.conftest import REPO
from tests.scripted_llm import Reply, evidence, scripted_llm

DATA = REPO / "tests" / "data"
# A little under the values measured on the CI subset's held-back part (docs/quality.md).
# Floors of the held-back part, a little under what the shipped model measures
# (docs/quality.md): answered precision first, so Arabic questions are answered about
# half the time and English ones almost never (they are shown as related passages).
# The kinds of unanswerable question: the share not shown as answered.
FLOORS = {"answered_ar": 0.45, "shown": 0.95, "answered_precision": 0.70, "general": 0.95, "near_miss": 0.88,
          "changed_detail": 0.88, "calibration_error": 0.09}  # fmt: skip
QA = [sys.executable, "-m", "qa.cli"]


@pytest.fixture(scope="module")
def eval_index(dev_index: Path) -> Path:
    """The dev corpus's index, which `qa eval` finds up to date and reuses."""
    return dev_index


def run_eval(index: Path, report: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*QA, "eval", "--corpus", str(DATA / "arcd" / "corpus.jsonl"), "--index", str(index)]
    command += ["--json", str(report), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1800)


def test_arabic_subset_and_unanswerable_questions_meet_their_floors(eval_index: Path, tmp_path: Path) -> None:
    report = tmp_path / "ar.json"
    result = run_eval(
        eval_index, report,
        "--questions", str(DATA / "arcd" / "ci_questions.jsonl"),
        "--unanswerable", str(DATA / "unanswerable.jsonl"), "--part", "all",
        "--min-hit-at-1", "0.83", "--min-hit-at-5", "0.96", "--min-answer-hit", "0.42",
        "--min-found-when-answerable", "0.45", "--min-shown-when-answerable", "0.95",
        "--min-answered-precision", "0.80", "--min-abstained-when-unanswerable", "0.95",
        "--min-citation-validity", "1.0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    scores = json.loads(report.read_text())
    assert scores["answerable"] == 155 and scores["unanswerable"] == 57
    assert "| retrieval hit@1" in result.stdout


def test_english_questions_meet_their_floors(eval_index: Path, tmp_path: Path) -> None:
    report = tmp_path / "en.json"
    result = run_eval(
        eval_index, report,
        "--questions", str(DATA / "dev_questions_en.jsonl"), "--lang", "en", "--part", "all",
        "--min-hit-at-1", "0.70", "--min-hit-at-5", "0.95", "--min-shown-when-answerable", "0.95",
        "--min-citation-validity", "1.0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["answerable"] == 130


def test_held_back_questions_meet_the_answerability_floors(eval_index: Path, tmp_path: Path) -> None:
    """The questions of documents the answerability model was not fitted on (the
    default part): answered when answerable in both languages, refused by kind, and a
    confidence that says how often the answer is right."""
    report = tmp_path / "held.json"
    result = run_eval(
        eval_index, report,
        "--questions", str(DATA / "arcd" / "ci_questions.jsonl"), str(DATA / "dev_questions_en.jsonl"),
        str(DATA / "questions_en_more.jsonl"), "--unanswerable", str(DATA / "unanswerable_more.jsonl"),
        "--lang", "all", "--min-citation-validity", "1.0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    scores = json.loads(report.read_text())
    assert "(held-back part)" in result.stderr and "| expected calibration error" in result.stdout
    assert "Reliability" in result.stdout and "| 0.9-1.0 |" in result.stdout
    keys = ("found_by_language", "abstained_by_kind", "calibration_error", "answered_precision", "outcomes")
    held_back = {key: scores[key] for key in keys}
    assert scores["found_by_language"]["ar"] >= FLOORS["answered_ar"], held_back
    assert scores["answered_precision"] >= FLOORS["answered_precision"], held_back
    for row in scores["outcomes"]:
        if row["kind"] == "answerable":
            assert row["answered"] + row["related"] >= FLOORS["shown"], held_back
    for kind in ("general", "near_miss", "changed_detail"):
        assert scores["abstained_by_kind"][kind] >= FLOORS[kind], held_back
    assert scores["calibration_error"] <= FLOORS["calibration_error"], held_back


def test_eval_fails_below_a_floor(eval_index: Path, tmp_path: Path) -> None:
    result = run_eval(
        eval_index, tmp_path / "r.json",
        "--questions", str(DATA / "arcd" / "ci_questions.jsonl"), "--limit", "5", "--min-hit-at-5", "1.01",
    )  # fmt: skip
    assert result.returncode == 1
    assert "below threshold: hit_at_5" in result.stderr


def test_question_files_with_bad_lines_name_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"qid": "1", "question_ar": "سؤال؟"}\n{"qid": "2"}\n', "utf-8")
    with pytest.raises(SourceError, match=r"q\.jsonl:2: not a question record"):
        load_questions(path, "ar")


def test_eval_llm_scores_the_written_path(eval_index: Path, tmp_path: Path) -> None:
    """`qa eval --llm` against a scripted model on loopback that quotes the first
    evidence sentence: every answer is written, its citations valid, and the report
    holds the written path's measures."""

    def quote_first(request: dict[str, Any]) -> Reply:
        n, text = next(iter(evidence(request).items()))
        return Reply(f"{text} [{n}]")

    report = tmp_path / "llm.json"
    with scripted_llm() as llm:
        llm.reply(quote_first)
        result = run_eval(
            eval_index, report,
            "--questions", str(DATA / "arcd" / "ci_questions.jsonl"), "--limit", "8", "--llm",
            "--llm-url", llm.base_url, "--llm-model", "scripted", "--min-citation-validity", "1.0",
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    scores = json.loads(report.read_text())
    assert scores["written"] > 0.5 and scores["sentences_removed"] == 0.0
    assert scores["model_p50_ms"] > 0 and scores["own_p50_ms"] > 0
    assert len(llm.requests) >= 4
    assert "| sentences removed" in result.stdout


def test_questions_that_give_their_span_as_evidence_text_are_placed_in_the_article(tmp_path: Path) -> None:
    # As the ANT questions are written: the answer, and the sentence it is in.
    text = "افتتح الوزير المعرض. وحضر الافتتاح خمسون عارضا من عشر دول."
    row = {"qid": "q1", "doc_id": "d", "lang": "ar", "kind": "answerable", "question": "كم عارضا حضر؟",
           "answer": "خمسون عارضا", "evidence": "وحضر الافتتاح خمسون عارضا من عشر دول."}  # fmt: skip
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", "utf-8")
    (question,) = load_questions(path, "all", texts={"d": text})
    assert text[question.answer_start : question.answer_end] == "خمسون عارضا" == question.answer
    with pytest.raises(SourceError, match=r"q\.jsonl:1: .*the corpus is needed"):
        load_questions(path, "all")
    with pytest.raises(SourceError, match=r"q\.jsonl:1: .*not in the text of 'd'"):
        load_questions(path, "all", texts={"d": "نص آخر."})
