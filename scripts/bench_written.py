#!/usr/bin/env python3
"""Our own time per written answer: evidence, token budget, prompt and verification.

Builds (or reuses) an index of the sample corpus, then asks every question of
tests/data/sample_questions.jsonl in Arabic and English through the written path
(``QAService.generated``, behind ``POST /api/ask``) against a scripted model on
loopback that answers at once with two sentences quoting the best evidence. The
model's own time is measured apart and left out. Prints a table of p50/p95 of
prompt_ms, verify_ms and their sum.

Usage: python scripts/bench_written.py [--index DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa.config import load_settings  # noqa: E402
from qa.embed.registry import make_embedder  # noqa: E402
from qa.ingest.pipeline import ensure_index  # noqa: E402
from qa.records import AnswerMode  # noqa: E402
from qa.serve.service import QAService  # noqa: E402
from tests.scripted_llm import Reply, evidence, scripted_llm  # noqa: E402


def two_sentences(request: dict[str, Any]) -> Reply:
    """Two cited sentences: one quoting the first evidence sentence (checked without
    an embedding), and one in other words (the question restated), which is embedded."""
    (first, text), (second, _) = list(evidence(request).items())[:2]
    question = request["messages"][-1]["content"].rsplit("Question: ", 1)[-1].rstrip("?؟")
    return Reply(f"{text.rstrip('.')} [{first}]. The archive says this about {question} [{second}].")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=REPO / "indexes" / "bench-written")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings(REPO / "config.toml", environ={}).replace({"index.path": args.index})
    embedder = make_embedder(settings.embedding)
    ensure_index(REPO / "corpus", args.index, settings, embedder)
    rows = [
        json.loads(line)
        for line in (REPO / "tests/data/sample_questions.jsonl").read_text("utf-8").splitlines()
    ]
    questions = [row[f"question_{lang}"] for row in rows for lang in ("ar", "en")] * args.repeat
    prompt_ms: list[float] = []
    verify_ms: list[float] = []
    written = 0
    with scripted_llm() as llm:
        llm.reply(two_sentences)
        service = QAService.open(
            settings.replace({"llm.base_url": llm.base_url, "llm.model": "x"}), embedder=embedder
        )

        async def run() -> None:
            nonlocal written
            for question in questions:
                answer = await service.generated(service.retrieve(question))
                if answer.mode is AnswerMode.GENERATED and answer.timings is not None:
                    written += 1
                    prompt_ms.append(answer.timings.prompt_ms)
                    verify_ms.append(answer.timings.verify_ms)
            await service.aclose()

        anyio.run(run)
    own = [p + v for p, v in zip(prompt_ms, verify_ms, strict=True)]
    print(f"questions {len(questions)}, written answers {written} (the rest refused before the model)")
    print("| measure (ms) | p50 | p95 |\n| --- | --- | --- |")
    for name, values in (
        ("prompt (evidence, budget)", prompt_ms),
        ("verification", verify_ms),
        ("ours in all", own),
    ):
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"| {name} | {statistics.median(ordered):.1f} | {p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
