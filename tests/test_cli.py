"""The command line: `qa serve` as a real server on loopback, `qa ask`, `qa reindex`."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qa.config import Settings

from .conftest import (
    CAMERON_SENTENCE,
    OUTCOME_BANDS,
    REPO,
    SAMPLE_CORPUS,
    SAMPLE_THRESHOLDS_ENV,
    as_environ,
    free_port,
    start_server,
)

QA = [sys.executable, "-m", "qa.cli"]


def run_qa(
    *args: str, cwd: Path = REPO, settings: dict[str, str] = SAMPLE_THRESHOLDS_ENV
) -> subprocess.CompletedProcess[str]:
    """``qa ARGS`` with the given QA_* settings and no others."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")} | settings
    return subprocess.run([*QA, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def server(sample_index: Path) -> Iterator[str]:
    server = start_server(sample_index)
    yield server.base
    server.stop()


def test_qa_serve_answers_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as client:
        body = client.post("/api/ask", json={"question": "What did Cameron ask Putin?", "k": 3}).json()
        assert body["citations"][0]["quote"] == CAMERON_SENTENCE
        assert len(body["passages"]) == 3
        citation = body["citations"][0]
        text = client.get(f"/api/documents/{citation['doc_id']}").json()["text"]
        assert text[citation["start"] : citation["end"]] == citation["quote"]
        assert client.get("/healthz").json()["status"] == "ok"
        bad = client.post("/api/ask", json={"question": ""})
        assert bad.status_code == 400


def test_qa_ask_prints_the_answer_and_its_citation(sample_index: Path) -> None:
    result = run_qa("ask", "--index", str(sample_index), "ماذا طلب كاميرون من بوتين؟")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(CAMERON_SENTENCE)
    assert lines[1].startswith("  [1] ") and "g20-antalya-2015, characters " in lines[1]


@pytest.mark.parametrize("band", ["answered", "related", "not_found"])
def test_qa_ask_json_says_the_outcome_beside_found(sample_index: Path, band: str) -> None:
    result = run_qa(
        "ask",
        "--index",
        str(sample_index),
        "--json",
        "What did Cameron ask Putin?",
        settings=as_environ(OUTCOME_BANDS[band]),
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["outcome"] == band and body["found"] is (band == "answered")
    assert 0.01 <= body["confidence"] < 0.99 and len(body["passages"]) == 5
    assert bool(body["citations"]) is (band == "answered")


def test_qa_ask_shows_a_related_answer_as_its_line_then_the_passages(sample_index: Path) -> None:
    question = "ماذا طلب كاميرون من بوتين؟"
    shown = run_qa(
        "ask", "--index", str(sample_index), question, settings=as_environ(OUTCOME_BANDS["related"])
    )
    assert shown.returncode == 0, shown.stderr
    listed = run_qa(
        "ask", "--index", str(sample_index), "--json", question, settings=as_environ(OUTCOME_BANDS["related"])
    )
    passages = json.loads(listed.stdout)["passages"]
    lines = shown.stdout.splitlines()
    assert lines[0] == "قد لا يجيب الأرشيف عن هذا مباشرة. أقرب المقاطع:"
    # Each passage: its number, title, document and offsets, then how its text begins;
    # no "[n]" line, which is how a citation of an answer is printed.
    assert len(lines) == 1 + 2 * len(passages) and not any(line.startswith("  [") for line in lines)
    for n, passage in enumerate(passages, start=1):
        head, text = lines[2 * n - 1], lines[2 * n]
        where = f"({passage['doc_id']}, characters {passage['start']}-{passage['end']})"
        assert head == f"  passage {n}: {passage['title']} {where}"
        assert text.startswith("    ") and text.endswith("…")
        assert " ".join(passage["text"].split()).startswith(text.strip().removesuffix("…"))


def test_qa_ask_prints_a_refusal_alone_without_passages(sample_index: Path) -> None:
    result = run_qa(
        "ask",
        "--index",
        str(sample_index),
        "What did Cameron ask Putin?",
        settings=as_environ(OUTCOME_BANDS["not_found"]),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["The sources do not answer this question."]


def test_qa_serve_refuses_a_missing_index(tmp_path: Path) -> None:
    result = run_qa("serve", "--index", str(tmp_path / "none"), "--port", str(free_port()))
    assert result.returncode == 1
    assert "qa reindex" in result.stderr and "Traceback" not in result.stderr


def test_reindex_script_prints_a_json_summary(tmp_path: Path, sample_settings: Settings) -> None:
    index = tmp_path / "idx"
    result = subprocess.run(
        [sys.executable, "scripts/reindex.py", "--source", str(SAMPLE_CORPUS), "--index", str(index)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["documents"] == 1 and summary["chunks"] >= 2 and summary["seconds"] > 0
    assert (index / "manifest.json").is_file()


def test_reindex_reports_and_skips_bad_lines_by_default(tmp_path: Path) -> None:
    source = tmp_path / "src.jsonl"
    source.write_text('{"id": "a", "text": "نص أول."}\n{"id": "b"}\nnot json\n', "utf-8")
    result = run_qa("reindex", "--source", str(source), "--index", str(tmp_path / "idx"))
    assert result.returncode == 3, result.stderr  # published, but input was skipped
    assert "src.jsonl:2: missing or empty 'text'" in result.stderr
    assert "src.jsonl:3: not valid JSON" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["documents"] == 1 and summary["skipped"] == 2


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no such file or folder"),
        ({"a.txt": b"\xc3\x28", "b.txt": "نص.".encode()}, "a.txt: invalid UTF-8 at byte 0 (line 1)"),
        ({"a.jsonl": b'{"id": "x", "text": "t"}\n{"id": 1,\n'}, "a.jsonl:2: not valid JSON"),
    ],
)
def test_reindex_of_a_bad_source_fails_and_keeps_the_previous_index(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    index = tmp_path / "idx"
    good = run_qa("reindex", "--source", str(SAMPLE_CORPUS), "--index", str(index))
    assert good.returncode == 0, good.stderr
    before = index.resolve()
    source = tmp_path / "src"
    if files:
        source.mkdir()
        for name, content in files.items():
            (source / name).write_bytes(content)
    result = run_qa("reindex", "--strict", "--source", str(source), "--index", str(index))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert index.resolve() == before and (index / "manifest.json").is_file()
    shutil.rmtree(tmp_path / "src", ignore_errors=True)
