"""A real archive built from scratch, killed half way and resumed: the ANT corpus.

Builds the ANT archive (``../shared/data/ant/ant.jsonl``, 10,138 Tunisian news
articles; ``--articles N`` takes the 100 articles the questions are about and the first
others up to N) three times, each a ``qa reindex`` process of its own:

1. ``before``: as indexes were built before ``embedding.vectors``: every chunk and
   every sentence embedded (``separate``);
2. ``now``: with the setting's default (``sentences``, or ``--vectors``), uninterrupted;
3. ``resumed``: the same build, killed with SIGKILL once its checkpoints hold about half
   the archive, and run again to the end.

Printed, one table: articles, texts and tokens embedded a second, wall time, peak
memory (the process's maximum resident set), bytes on disk, texts embedded per article
and tokens embedded per source token, the share of the archive's texts the kill cost
(embedded before it and after the last checkpoint: embedded twice), whether the resumed
build equals the uninterrupted one (counts, every vector, the top 5 of every question),
and, on the questions over the archive (``questions.jsonl``, English and Arabic apart)
and on the dev set (``../shared/data/dev``, built twice, in process): retrieval hit@1 and
hit@5, answer hit, and found.

    python scripts/bench_archive.py [--articles N] [--backend sentence-transformers] [--out DIR]

On 2 cores the whole archive takes hours (docs/indexing.md says how long, and how to
make it faster); ``--articles 1000`` measures the same things in about 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.config import IndexSettings, Settings, load_settings
from qa.embed.base import Embedder
from qa.embed.registry import make_embedder
from qa.eval.evaluate import EvalQuestion, evaluate, load_questions
from qa.ingest.checkpoints import checkpoints_root
from qa.ingest.pipeline import build_index
from qa.ingest.sources import read_articles
from qa.records import Article
from qa.serve.service import QAService
from qa.store.index import load_index, read_manifest
from qa.store.segment_reader import StoredDocument
from qa.text.chunk import chunk_article, embedding_text, sentence_embedding_texts
from qa.text.sentences import split_sentences

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
ANT = SHARED / "ant" / "ant.jsonl"
ANT_QUESTIONS = SHARED / "ant" / "questions.jsonl"
DEV_CORPUS = SHARED / "dev" / "corpus.jsonl"
DEV_QUESTIONS = SHARED / "dev" / "questions.jsonl"
# The resumed build is killed once its checkpoints hold this share of the articles.
KILL_AT = 0.5
# reindex.checkpoint_every's default: about 20 checkpoints a build of the whole archive.
CHECKPOINT_EVERY = 500
BUILDS = ("before", "now", "resumed")
# The measures whose now / before the targets are about.
RATIOS = ("wall s", "texts embedded per article", "tokens embedded per source token")


@dataclass(frozen=True)
class Build:
    """One ``qa reindex`` run, as its summary and the operating system saw it."""

    name: str
    vectors: str
    seconds: float
    peak_bytes: int
    summary: dict[str, object]
    disk_bytes: int

    @property
    def texts(self) -> int:
        return int(str(self.summary["texts_embedded"]))


@dataclass(frozen=True)
class Quality:
    """The answering path over one index, per question language."""

    hit_at_1: dict[str, float]
    hit_at_5: dict[str, float]
    answer_hit: dict[str, float]
    found: dict[str, float]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=0, help="articles of ANT to build (0 = all)")
    parser.add_argument(
        "--vectors", default="", help="embedding.vectors of the new builds (default: setting)"
    )
    parser.add_argument("--backend", default="", help="embedding.index_backend of every build")
    parser.add_argument("--out", type=Path, default=REPO / "indexes" / "bench-archive")
    parser.add_argument("--no-dev", action="store_true", help="skip the dev set's two builds")
    parser.add_argument(
        "--builds", default=",".join(BUILDS),
        help="builds to run, of before,now,resumed (resumed needs now); the others' cells stay empty",
    )  # fmt: skip
    args = parser.parse_args(argv)
    builds = [name.strip() for name in args.builds.split(",") if name.strip()]
    if not builds or set(builds) - set(BUILDS) or ("resumed" in builds and "now" not in builds):
        parser.error(f"--builds takes some of {','.join(BUILDS)}, and resumed only with now")

    settings = load_settings(REPO / "config.toml")
    if args.backend:
        settings = settings.replace({"embedding.index_backend": args.backend})
    vectors = args.vectors or settings.embedding.vectors
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    source = _archive(args.out / "ant.jsonl", args.articles)
    articles = read_articles(source, max_article_bytes=settings.source.max_article_bytes).articles
    embedder = make_embedder(settings.embedding, "index")
    print(f"{len(articles)} articles; counting what each way embeds", file=sys.stderr)
    counts = {name: _embedded_tokens(articles, embedder, settings, name) for name in ("separate", vectors)}

    environ = {"QA_EMBEDDING_INDEX_BACKEND": settings.embedding.engine("index")}
    total = len(articles)
    before = _build("before", source, args.out, "separate", environ, total) if "before" in builds else None
    now = _build("now", source, args.out, vectors, environ, total) if "now" in builds else None
    resumed, lost, equal = None, 0.0, ""
    if now is not None and "resumed" in builds:
        lost = _build_killed(source, args.out, vectors, environ, now)
        resumed = _build("resumed", source, args.out, vectors, environ, total)

    query = make_embedder(settings.embedding, "query")
    questions = load_questions(ANT_QUESTIONS, "all", texts={a.doc_id: a.text for a in articles})
    quality = {
        b.name: _quality(_index(args.out, b.name), settings, query, questions)
        for b in (before, now) if b is not None
    }  # fmt: skip
    if resumed is not None:
        equal = _equal(_index(args.out, "now"), _index(args.out, "resumed"), settings, query, questions)
    ways = [way for way, build in (("separate", before), (vectors, now)) if build is not None]
    dev = {} if args.no_dev else _dev_quality(args.out, settings, embedder, query, ways)

    print(_table(len(articles), before, now, resumed, lost, counts, quality, equal, dev, vectors))
    return 0


def _archive(path: Path, articles: int) -> Path:
    """ANT, or its first ``articles`` articles with every article a question is about."""
    lines = ANT.read_text("utf-8").splitlines()
    if articles:
        asked = {json.loads(line)["doc_id"] for line in ANT_QUESTIONS.read_text("utf-8").splitlines()}
        keep = [line for line in lines if json.loads(line)["id"] in asked]
        others = [line for line in lines if json.loads(line)["id"] not in asked]
        lines = keep + others[: max(0, articles - len(keep))]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _embedded_tokens(
    articles: Sequence[Article], embedder: Embedder, settings: Settings, vectors: str
) -> tuple[int, int, int]:
    """Source tokens, texts and tokens the way ``vectors`` embeds (exact copies once)."""
    source = texts = tokens = 0
    seen: set[tuple[str, str]] = set()
    for article in articles:
        source += embedder.count_tokens(article.text)
        if (article.title, " ".join(article.text.split())) in seen:
            continue
        seen.add((article.title, " ".join(article.text.split())))
        sentences = split_sentences(article.text)
        chunks = chunk_article(article, sentences, embedder.count_tokens, settings.chunking)
        made = []
        if vectors in ("separate", "late"):
            made += [embedding_text(article, chunk) for chunk in chunks]
        if vectors in ("separate", "sentences"):
            made += sentence_embedding_texts(article, sentences)
        texts += len(made)
        tokens += sum(embedder.count_tokens(text) for text in made)
    return source, texts, tokens


def _command(source: Path, out: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "qa.cli", "reindex", "--config", str(REPO / "config.toml"),
            "--source", str(source), "--index", str(_index(out, name)), "--no-progress"]  # fmt: skip


def _checkpoint_every(articles: int) -> int:
    """The default reindex.checkpoint_every, but at least 20 checkpoints a build, so that a
    small archive measures what a kill of a large one costs."""
    return max(1, min(CHECKPOINT_EVERY, articles // 20))


def _env(vectors: str, environ: dict[str, str], articles: int) -> dict[str, str]:
    return {**os.environ, **environ, "QA_EMBEDDING_VECTORS": vectors,
            "QA_REINDEX_CHECKPOINT_EVERY": str(_checkpoint_every(articles))}  # fmt: skip


def _index(out: Path, name: str) -> Path:
    return out / name


def _build(name: str, source: Path, out: Path, vectors: str, environ: dict[str, str], articles: int) -> Build:
    print(f"building {name} ({vectors})", file=sys.stderr)
    started = time.perf_counter()
    process = subprocess.Popen(_command(source, out, name), env=_env(vectors, environ, articles),
                               stdout=subprocess.PIPE)  # fmt: skip
    stdout, peak = _wait(process)
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 3):
        raise SystemExit(f"qa reindex of {name} failed with exit status {process.returncode}")
    summary = json.loads(stdout)
    return Build(name, vectors, seconds, peak, summary, _disk_bytes(_index(out, name)))


def _build_killed(
    source: Path, out: Path, vectors: str, environ: dict[str, str], uninterrupted: Build
) -> float:
    """Run the ``resumed`` build until its checkpoints hold KILL_AT of the articles, then
    kill it half a checkpoint after its last one (what a kill costs on average); returns
    the share of the archive's texts it embedded after its last checkpoint (lost with
    the process, so embedded twice)."""
    total = int(str(uninterrupted.summary["added"]))
    every = _checkpoint_every(total)
    seconds_per_checkpoint = every * uninterrupted.seconds / max(total, 1)
    rate = uninterrupted.texts / max(uninterrupted.seconds, 1e-9)
    print(f"building resumed ({vectors}), to be killed at {KILL_AT:.0%}", file=sys.stderr)
    process = subprocess.Popen(_command(source, out, "resumed"), env=_env(vectors, environ, total),
                               stdout=subprocess.DEVNULL)  # fmt: skip
    root = checkpoints_root(_index(out, "resumed"))
    checkpointed, last = 0, time.monotonic()
    while process.poll() is None:
        held = sum(1 for _ in root.glob("*/[0-9]*.json")) * every
        if held != checkpointed:
            checkpointed, last = held, time.monotonic()
        if checkpointed >= KILL_AT * total and time.monotonic() - last >= seconds_per_checkpoint / 2:
            break
        time.sleep(0.1)
    lost_seconds = time.monotonic() - last
    process.send_signal(signal.SIGKILL)
    process.wait()
    if not checkpointed or process.returncode != -signal.SIGKILL:
        raise SystemExit("the build ended before it could be killed: use more --articles")
    return lost_seconds * rate / max(uninterrupted.texts, 1)


def _wait(process: subprocess.Popen[bytes]) -> tuple[bytes, int]:
    """The process's output and its peak resident memory, in bytes, once it ends."""
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return stdout, usage.ru_maxrss * 1024  # Linux counts kilobytes


def _disk_bytes(index: Path) -> int:
    return sum(p.stat().st_size for p in index.resolve().rglob("*") if p.is_file())


def _open(index: Path, settings: Settings, query: Embedder) -> QAService:
    return QAService.open(settings.replace({"index.path": index, "llm.base_url": ""}), embedder=query)


def _quality(index: Path, settings: Settings, query: Embedder, questions: Sequence[EvalQuestion]) -> Quality:
    service = _open(index, settings, query)
    try:
        by_language = {}
        for lang in ("ar", "en"):
            asked = [q for q in questions if q.lang == lang and q.answerable]
            if asked:
                by_language[lang] = evaluate(service, asked, k=5)
    finally:
        service.close()
    return Quality(
        {lang: r.hit_at_1 or 0.0 for lang, r in by_language.items()},
        {lang: r.hit_at_5 or 0.0 for lang, r in by_language.items()},
        {lang: r.answer_hit or 0.0 for lang, r in by_language.items()},
        {lang: r.found_when_answerable or 0.0 for lang, r in by_language.items()},
    )


def _documents(index: Path) -> dict[str, StoredDocument]:
    manifest = read_manifest(index)
    opened = load_index(index, IndexSettings(), model=manifest.model, dimension=manifest.dimension)
    deleted = opened.deleted_documents()
    try:
        return {
            document.article.doc_id: document
            for name, segment in opened.segments().items()
            for document in segment.stored_documents(frozenset(deleted.get(name, ())))
        }
    finally:
        opened.close()


def _equal(
    first: Path, second: Path, settings: Settings, query: Embedder, questions: Sequence[EvalQuestion]
) -> str:
    """Whether two builds hold the same documents, chunks, sentences and vectors, and
    answer every question with the same top 5; else what differs."""
    a, b = read_manifest(first), read_manifest(second)
    if (a.documents, a.chunks, a.sentences) != (b.documents, b.chunks, b.sentences):
        return f"counts differ: {a.documents, a.chunks, a.sentences} / {b.documents, b.chunks, b.sentences}"
    mine, theirs = _documents(first), _documents(second)
    for doc_id, document in mine.items():
        other = theirs.get(doc_id)
        if other is None or (document.chunks, document.sentences) != (other.chunks, other.sentences):
            return f"{doc_id}: chunks or sentences differ"
        if not (np.array_equal(document.chunk_vectors, other.chunk_vectors)
                and np.array_equal(document.sentence_vectors, other.sentence_vectors)):  # fmt: skip
            return f"{doc_id}: vectors differ"
    services = [_open(index, settings, query) for index in (first, second)]
    try:
        for question in questions:
            top = [[(p.doc_id, p.start, p.end) for p in s.search(question.question, 5)] for s in services]
            if top[0] != top[1]:
                return f"top 5 differ for {question.qid}"
    finally:
        for service in services:
            service.close()
    held = f"{a.documents} documents, {a.chunks} chunks, {a.sentences} sentences"
    return f"yes ({held}, {len(questions)} questions)"


def _dev_quality(
    out: Path, settings: Settings, embedder: Embedder, query: Embedder, ways: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Retrieval hit@1 and hit@5 on the dev set, built each way."""
    questions = [q for q in load_questions(DEV_QUESTIONS, "ar") if q.answerable]
    results = {}
    for vectors in dict.fromkeys(ways):
        index = out / f"dev-{vectors}"
        way = settings.replace({"embedding.vectors": vectors, "index.path": index})
        print(f"building the dev set ({vectors})", file=sys.stderr)
        build_index(DEV_CORPUS, index, way, embedder, progress=False)
        service = _open(index, way, query)
        try:
            report = evaluate(service, questions, k=5)
        finally:
            service.close()
        results[vectors] = (report.hit_at_1 or 0.0, report.hit_at_5 or 0.0)
    return results


def _table(
    articles: int,
    before: Build | None,
    now: Build | None,
    resumed: Build | None,
    lost: float,
    counts: dict[str, tuple[int, int, int]],
    quality: dict[str, Quality],
    equal: str,
    dev: dict[str, tuple[float, float]],
    vectors: str,
) -> str:
    """The benchmark's table: before and now side by side, then the resumed build; a
    build not run (``--builds``) leaves its cells empty."""
    source = counts["separate"][0]

    def build_rows(build: Build | None) -> list[str]:
        if build is None:
            return ["-"] * len(names)
        tokens = counts[build.vectors][2]
        return [
            f"{articles / build.seconds:.2f}",
            f"{build.texts / build.seconds:.1f}",
            f"{tokens / build.seconds:.0f}",
            f"{build.seconds:.0f}",
            f"{build.peak_bytes / 2**30:.2f}",
            f"{build.disk_bytes / 2**20:.1f}",
            f"{build.texts / articles:.2f}",
            f"{tokens / source:.3f}",
        ]

    names = [
        "articles/s", "texts embedded/s", "tokens embedded/s", "wall s", "peak memory GiB",
        "bytes on disk MiB", "texts embedded per article", "tokens embedded per source token",
    ]  # fmt: skip
    engine = next((b.summary.get("engine") for b in (before, now) if b is not None), "?")
    lines = [
        f"`python scripts/bench_archive.py{''.join(' ' + arg for arg in sys.argv[1:])}`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {articles} ANT articles, {engine} engine",
        "",
        f"| measure | before (separate) | now ({vectors}) | now / before |",
        "| --- | --- | --- | --- |",
    ]
    for name, old, new in zip(names, build_rows(before), build_rows(now), strict=True):
        ratio = ""
        if before is not None and now is not None and name in RATIOS:
            ratio = f"{float(new.split()[0]) / max(float(old.split()[0]), 1e-9):.3f}"
        lines.append(f"| {name} | {old} | {new} | {ratio} |")
    for lang in ("en", "ar"):
        for label, field in (("hit@1", "hit_at_1"), ("hit@5", "hit_at_5"), ("answer hit", "answer_hit"),
                             ("found", "found")):  # fmt: skip
            values = [getattr(quality[b], field).get(lang) if b in quality else None
                      for b in ("before", "now")]  # fmt: skip
            if values == [None, None]:
                continue
            lines.append(f"| ANT questions ({lang}) {label} | {_cells(values)} |")
    if dev:
        for label, position in (("hit@1", 0), ("hit@5", 1)):
            values = [dev[way][position] if way in dev else None for way in ("separate", vectors)]
            lines.append(f"| dev set {label} | {_cells(values)} |")
    if resumed is None:
        return "\n".join(lines)
    lines += [
        "",
        "| resumed build | |",
        "| --- | --- |",
        f"| killed (SIGKILL) with | {resumed.summary['resumed']} of {articles} articles checkpointed |",
        f"| work redone: texts embedded twice, share of the archive's | {lost:.3f} |",
        f"| resumed run: articles restored / texts embedded "
        f"| {resumed.summary['resumed']} / {resumed.texts} |",
        f"| resumed run wall s | {resumed.seconds:.0f} |",
        f"| equals the uninterrupted build | {equal} |",
    ]
    return "\n".join(lines)


def _cells(values: Sequence[float | None]) -> str:
    """Before, now and their difference, as table cells; "-" for what was not measured."""
    old, new = values
    shown = [f"{value:.3f}" if value is not None else "-" for value in values]
    difference = f"{new - old:+.3f}" if old is not None and new is not None else ""
    return " | ".join([*shown, difference])


if __name__ == "__main__":
    raise SystemExit(main())
