#!/usr/bin/env python3
"""The index at archive scale: build an archive of N chunks, then measure search,
answers, start-up, memory, workers and an incremental update on it.

Embedding a million chunks here would take most of a day, so the archive is made
without the model, from real parts: every sentence of the ARCD dev corpus is
embedded once with the real model (cached in the work folder), and each generated
article is a run of 7-14 consecutive sentences of one dev article, its text made of
those sentences. A sentence vector is the real one with a little noise (|noise| =
0.1, so that copies are not identical), and a chunk vector is the normalized mean of
its sentences' vectors (real chunk embeddings are close to it). The questions are
the dev set's real questions, embedded with the real model. Vocabulary is the dev
corpus's alone, so BM25 posting lists are longer than in a real archive of the same
size: a pessimistic case for lexical search.

Every article also gets a publication day (uniform over ten years, FIRST_DAY on) and
a ``section`` out of SECTIONS, so that filters (issue 14) can be measured: a section
allows about 1% of the archive, the first five years about 50%, and date ranges of
other lengths give the other shares where the exact scan and the index are weighed.

The archive is ingested through ``qa.ingest.pipeline.ingest`` (precomputed vectors), the same
way a distributed reindex hands its vectors over.

Usage: python scripts/bench_scale.py --chunks 1000000 [--work indexes/bench-scale]
Prints a table, then a JSON summary as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import qa.store.segment_reader  # noqa: E402
from qa.config import Settings, load_settings  # noqa: E402
from qa.embed.registry import make_embedder  # noqa: E402
from qa.ingest.indexed import indexed_document  # noqa: E402
from qa.ingest.pipeline import ensure_index, ingest  # noqa: E402
from qa.records import (  # noqa: E402
    Article,
    Chunk,
    Filters,
    Sentence,
    SentenceKind,
)
from qa.store.index import Index, load_index, read_manifest  # noqa: E402
from qa.store.segment_writer import IndexedDocument  # noqa: E402
from qa.text.sentences import split_sentences  # noqa: E402
from qa.types import Vectors  # noqa: E402

CORPUS = REPO / "tests" / "data" / "arcd" / "corpus.jsonl"
QUESTIONS = REPO / "tests" / "data" / "arcd" / "questions.jsonl"
SAMPLE = REPO / "corpus"
SENTENCE_NOISE = 0.1
UPDATED_ARTICLES = 100
SECTIONS = 100
FIRST_DAY = datetime.date(2016, 1, 1)
DAYS = 3653  # 2016-01-01 .. 2025-12-31


def unit(vectors: np.ndarray) -> np.ndarray:
    normalized: np.ndarray = (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)
    return normalized


class Pool:
    """The dev corpus's sentences and questions with their real embeddings."""

    def __init__(self, work: Path, settings: Settings) -> None:
        cache = work / "pool.npz"
        articles = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]
        self.titles = [a["title"] for a in articles]
        self.sentences = [[a["text"][s.start : s.end] for s in split_sentences(a["text"])] for a in articles]
        questions = [json.loads(line) for line in QUESTIONS.read_text("utf-8").splitlines()]
        self.questions = [q["question_ar"] for q in questions]
        if cache.exists():
            stored = np.load(cache)
            self.sentence_vectors, self.question_vectors = stored["sentences"], stored["questions"]
            return
        print("embedding the dev corpus's sentences and questions once (cached)...", file=sys.stderr)
        embedder = make_embedder(settings.embedding)
        texts = [f"{title}\n{s}" for title, run in zip(self.titles, self.sentences, strict=True) for s in run]
        self.sentence_vectors = embedder.embed_passages(texts)
        self.question_vectors = embedder.embed_queries(self.questions)
        np.savez(cache, sentences=self.sentence_vectors, questions=self.question_vectors)

    def offsets(self) -> list[int]:
        starts, total = [], 0
        for run in self.sentences:
            starts.append(total)
            total += len(run)
        return starts


def generated(
    pool: Pool, first: int, count: int, revision: int = 0
) -> Iterator[tuple[IndexedDocument, Vectors]]:
    """Articles ``first`` .. ``first + count`` and their chunk vectors; another
    ``revision`` is another text (another run of sentences) under the same id."""
    starts = pool.offsets()
    for number in range(first, first + count):
        seed = int.from_bytes(hashlib.sha256(f"{number}/{revision}".encode()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        source = int(rng.integers(len(pool.sentences)))
        run = pool.sentences[source]
        length = min(len(run), int(rng.integers(7, 15)))
        begin = int(rng.integers(len(run) - length + 1))
        picked = range(begin, begin + length)
        doc_id = f"a{number}"
        title = f"{pool.titles[source]} ({number})"
        text, sentences = "", []
        for i in picked:
            if text:
                text += " "
            sentences.append(Sentence(len(text), len(text) + len(run[i]), SentenceKind.SENTENCE, 0))
            text += run[i]
        real = pool.sentence_vectors[[starts[source] + i for i in picked]]
        noise = rng.standard_normal(real.shape).astype(np.float32)
        sentence_vectors = unit(real + SENTENCE_NOISE * unit(noise))
        # Chunks of 3 or 4 sentences (the dev corpus averages 3.4 a chunk).
        bounds, position = [0], 0
        while position < length:
            position = min(length, position + int(rng.choice([3, 4, 5], p=[0.3, 0.5, 0.2])))
            bounds.append(position)
        chunks = [
            Chunk(doc_id, sentences[a].start, sentences[b - 1].end, title)
            for a, b in itertools.pairwise(bounds)
        ]
        chunk_vectors = unit(
            np.stack([sentence_vectors[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
        )
        digest = hashlib.sha256(f"{doc_id}/{revision}".encode()).hexdigest()
        published = FIRST_DAY + datetime.timedelta(days=int(rng.integers(DAYS)))
        section = f"s{int(rng.integers(SECTIONS)):02d}"
        article = Article(doc_id, title, text, published=published.isoformat(), meta={"section": (section,)})
        yield (
            indexed_document(article, digest, chunks, sentences, chunk_vectors, sentence_vectors),
            chunk_vectors,
        )


def build(pool: Pool, path: Path, settings: Settings, chunks: int) -> tuple[np.ndarray, int, float]:
    """Ingest articles until ``chunks`` chunks; returns the chunk vectors in id order,
    the number of articles and the seconds it took."""
    vectors: list[Vectors] = []
    count = [0, 0]

    def documents() -> Iterator[IndexedDocument]:
        every = 0.1 if sys.stderr.isatty() else 30.0
        with tqdm(total=chunks, desc="building", unit="chunk", file=sys.stderr, mininterval=every) as bar:
            number = 0
            while count[0] < chunks:
                document, chunk_vectors = next(generated(pool, number, 1))
                vectors.append(chunk_vectors)
                count[0] += len(document.chunks)
                bar.update(len(document.chunks))
                number += 1
                yield document
            count[1] = number

    started = time.perf_counter()
    ingest(path, settings, documents(), model=settings.embedding.model, dimension=384)
    return np.concatenate(vectors), count[1], time.perf_counter() - started


def date_filter(share: float, offset_days: int = 0) -> Filters:
    """Articles published in a window of ``share`` of the ten years."""
    start = FIRST_DAY + datetime.timedelta(days=offset_days)
    return Filters(
        published_from=start, published_to=start + datetime.timedelta(days=round(share * DAYS) - 1)
    )


def filtered_search(
    index: Index, chunk_vectors: np.ndarray, queries: np.ndarray, filters: Filters, limit: int = 10
) -> dict[str, float]:
    """A filtered dense search as a request makes it (the filter's rows, then the
    search): its recall@``limit`` against an exact scan of the allowed rows, its
    p50 in ms, the share of chunks the filter allows, and the share of searches
    that returned min(limit, allowed rows) results."""
    rows = np.flatnonzero(index.allowed(filters)[0])
    allowed_vectors = chunk_vectors[rows]
    found, full, times = 0, 0, []
    for query in queries:
        similarities = allowed_vectors @ query
        exact = set(rows[np.argsort(-similarities)[:limit]].tolist())
        started = time.perf_counter()
        result = index.search(query, limit, index.allowed(filters))
        times.append((time.perf_counter() - started) * 1000)
        found += len(exact & {chunk_id for chunk_id, _ in result})
        full += len(result) == min(limit, rows.size)
    return {
        "share": rows.size / len(chunk_vectors),
        "recall": found / (min(limit, rows.size) * len(queries)),
        "p50_ms": statistics.median(times),
        "full": full / len(queries),
    }


def measure_filters(index: Index, chunk_vectors: np.ndarray, queries: np.ndarray) -> dict[str, object]:
    """Issue 14's measures: a 1% filter (one section) and a 50% one (five of the ten
    years) against the unfiltered search, and the exact scan weighed against the
    index's selector at several shares, to place the switch between them."""
    started = time.perf_counter()
    index.allowed(Filters(meta={"section": ("s00",)}))  # the first filter reads each segment's table
    table_s = time.perf_counter() - started
    one_percent = filtered_search(index, chunk_vectors, queries, Filters(meta={"section": ("s07",)}))
    half = date_filter(0.5)
    unfiltered_ms, half_ms = [], []
    for query in queries:  # alternated, so that both see the same machine
        started = time.perf_counter()
        index.search(query, 10)
        unfiltered_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        index.search(query, 10, index.allowed(half))
        half_ms.append((time.perf_counter() - started) * 1000)
    half_result = filtered_search(index, chunk_vectors, queries[:200], half)
    cost = qa.store.segment_reader.EXACT_SCAN_ROW_COST
    sweep = []
    for share in (0.001, 0.003, 0.01, 0.02, 0.05, 0.1):
        filters = date_filter(share, offset_days=1000)
        qa.store.segment_reader.EXACT_SCAN_ROW_COST = 0  # every allowed row scored from its vector
        exact = filtered_search(index, chunk_vectors, queries[:200], filters)
        qa.store.segment_reader.EXACT_SCAN_ROW_COST = 1 << 62  # the index's search
        selector = filtered_search(index, chunk_vectors, queries[:200], filters)
        qa.store.segment_reader.EXACT_SCAN_ROW_COST = cost
        chosen = filtered_search(index, chunk_vectors, queries[:200], filters)
        sweep.append({
            "share": round(exact["share"], 4),
            "rows": round(exact["share"] * len(chunk_vectors)),
            "exact_p50_ms": round(exact["p50_ms"], 2),
            "index_p50_ms": round(selector["p50_ms"], 2),
            "index_recall_at_10": round(selector["recall"], 4),
            "chosen_p50_ms": round(chosen["p50_ms"], 2),
        })  # fmt: skip
    return {
        "filter_table_s": round(table_s, 2),
        "filter_share": round(one_percent["share"], 4),
        "filtered_recall_at_10": round(one_percent["recall"], 4),
        "filtered_p50_ms": round(one_percent["p50_ms"], 2),
        "filtered_full": min(one_percent["full"], half_result["full"]),
        "half_filter_share": round(half_result["share"], 4),
        "half_filter_recall_at_10": round(half_result["recall"], 4),
        "half_filter_p50_ms": round(statistics.median(half_ms), 2),
        "unfiltered_p50_ms": round(statistics.median(unfiltered_ms), 2),
        "half_filter_ratio": round(statistics.median(half_ms) / statistics.median(unfiltered_ms), 2),
        "exact_scan_row_cost": cost,
        "switch_sweep": sweep,
    }


def print_table(heading: str, rows: list[tuple[str, object, str]]) -> None:
    print(f"| {heading:<48} | {'value':>10} | target |")
    print(f"|{'-' * 50}|{'-' * 12}|--------|")
    for name, value, target in rows:
        print(f"| {name:<48} | {value:>10} | {target} |")


def print_filters(measured: dict[str, object]) -> None:
    rows = [
        ("share of chunks the 1% filter allows", measured["filter_share"], ""),
        ("recall@10 vs exact, 1% filter", measured["filtered_recall_at_10"], ">= 0.95"),
        ("dense search p50 with it (ms)", measured["filtered_p50_ms"], "<= 30"),
        ("share of chunks the 50% filter allows", measured["half_filter_share"], ""),
        ("  p50 with it / unfiltered p50", measured["half_filter_ratio"], "<= 1.5"),
        ("searches that returned min(k, allowed)", measured["filtered_full"], "1.0"),
        ("first filter: reading the documents (s)", measured["filter_table_s"], ""),
    ]
    print()
    print_table("filtered dense search", rows)
    print(
        f"\nexact scan against the index's search (EXACT_SCAN_ROW_COST {measured['exact_scan_row_cost']}):\n"
    )
    print("| share | rows | exact scan p50 (ms) | index p50 (ms) | index recall@10 | chosen p50 (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for point in measured["switch_sweep"]:  # type: ignore[attr-defined]
        print(
            f"| {point['share']} | {point['rows']} | {point['exact_p50_ms']} | {point['index_p50_ms']} "
            f"| {point['index_recall_at_10']} | {point['chosen_p50_ms']} |"
        )  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, int(share * len(values)))]


def memory_mb(pid: int, field: str) -> float:
    """VmRSS from /proc/PID/status, or Pss from smaps_rollup, in MB."""
    if field == "Rss":
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in lines if line.startswith("VmRSS:")) / 1024
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith(f"{field}:")) / 1024


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in process_tree(int(child)))]


# The admin token of the servers this benchmark starts (their /healthz names the worker).
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"


class Server:
    def __init__(self, index: Path, workers: int = 1) -> None:
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
        # One address sends every request; /healthz names its worker to the admin only.
        env.update(
            QA_LIMITS_RATE_LIMIT_PER_MINUTE="0", QA_LIMITS_MAX_CONCURRENT_PER_CLIENT="0",
            QA_SERVER_WORKERS=str(workers), QA_SERVER_ADMIN_TOKEN=ADMIN_TOKEN,
        )  # fmt: skip
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--port", str(self.port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        seen: set[int] = set()
        while len(seen) < workers:
            assert self.process.poll() is None, "qa serve exited"
            try:
                headers = {"Connection": "close", "Authorization": f"Bearer {ADMIN_TOKEN}"}
                health = httpx.get(f"{self.base}/healthz", headers=headers, timeout=5)
                if health.status_code == 200:
                    seen.add(health.json()["worker"])
            except httpx.TransportError:
                time.sleep(0.05)
        self.ready_s = time.perf_counter() - started

    def pss_mb(self) -> float:
        return sum(memory_mb(pid, "Pss") for pid in process_tree(self.process.pid))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> float:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return (time.perf_counter() - started) * 1000


def latencies(server: Server, questions: list[str]) -> tuple[float, float]:
    """p50 of GET /api/search and of POST /api/ask over ``questions``, in ms."""
    with httpx.Client(base_url=server.base, timeout=60) as client:
        for question in questions[:5]:  # warm-up
            timed(client, "GET", "/api/search", params={"q": question})
        search = [timed(client, "GET", "/api/search", params={"q": q}) for q in questions]
        ask = [timed(client, "POST", "/api/ask", json={"question": q}) for q in questions]
    return statistics.median(search), statistics.median(ask)


def ask_all(server: Server, questions: list[str]) -> None:
    """Ask every question, a connection each (so that every worker gets its share)."""
    with httpx.Client(base_url=server.base, timeout=60, headers={"Connection": "close"}) as client:
        for question in questions:
            timed(client, "POST", "/api/ask", json={"question": question})


async def throughput(server: Server, questions: list[str], seconds: float, clients: int) -> float:
    """Searches a second that ``clients`` concurrent clients get in ``seconds``."""
    done = 0
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
            turn = number
            while time.monotonic() < deadline:
                turn += clients
                # A connection a request, as from many users: the kernel hands each new
                # connection to a worker waiting in accept(), so the load spreads.
                response = await http.get(
                    "/api/search",
                    params={"q": questions[turn % len(questions)]},
                    headers={"Connection": "close"},
                )
                assert response.status_code == 200
                done += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return done / seconds


def folder_bytes(folder: Path) -> int:
    """Bytes of a folder's files, each file (inode) counted once."""
    seen: dict[int, int] = {}
    for item in folder.rglob("*"):
        if item.is_file():
            status = item.stat()
            seen[status.st_ino] = status.st_size
    return sum(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=REPO / "indexes" / "bench-scale")
    parser.add_argument("--questions", type=int, default=1000, help="questions asked over HTTP")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load test")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the load test")
    parser.add_argument("--reuse", action="store_true", help="reuse the archive a previous run built")
    parser.add_argument(
        "--filters-only", action="store_true", help="measure the dense search and its filters, then stop"
    )
    args = parser.parse_args()
    settings = load_settings()
    args.work.mkdir(parents=True, exist_ok=True)
    pool = Pool(args.work, settings)

    path = args.work / f"archive-{args.chunks}"
    settings = settings.replace({"index.path": path})
    saved_vectors = args.work / f"archive-{args.chunks}-chunk-vectors.npy"
    if args.reuse and saved_vectors.exists() and path.exists():
        chunk_vectors, build_s = np.load(saved_vectors), 0.0
        articles = int(read_manifest(path).documents)
    else:
        for leftover in (path, path.with_name(path.name + ".versions"), path.with_name(path.name + ".lock")):
            if leftover.is_symlink() or leftover.is_file():
                leftover.unlink()
            elif leftover.exists():
                shutil.rmtree(leftover)
        chunk_vectors, articles, build_s = build(pool, path, settings, args.chunks)
        np.save(saved_vectors, chunk_vectors)
    manifest = read_manifest(path)
    (segment,) = manifest.segments
    print(f"built {manifest.chunks} chunks, {manifest.sentences} sentences, {articles} articles in "
          f"{build_s:.0f} s: {segment.kind} {segment.factory}", file=sys.stderr)  # fmt: skip

    # Dense search in process: recall@10 against an exact scan, and its latency.
    index = load_index(path, settings.index, model=manifest.model, dimension=manifest.dimension)
    queries = pool.question_vectors[:1000]
    found, dense_ms = 0, []
    for query in queries:
        exact = set(np.argpartition(-(chunk_vectors @ query), 10)[:10].tolist())
        started = time.perf_counter()
        approximate = index.search(query, 10)
        dense_ms.append((time.perf_counter() - started) * 1000)
        found += len(exact & {chunk_id for chunk_id, _ in approximate})
    recall = found / (10 * len(queries))
    lexical_ms = []
    from qa.text.tokens import tokens

    for question in pool.questions[:300]:
        started = time.perf_counter()
        index.lexical(tokens(question)).top(50)
        lexical_ms.append((time.perf_counter() - started) * 1000)
    filters = measure_filters(index, chunk_vectors, queries)
    index.close()
    del chunk_vectors
    if args.filters_only:
        print(f"\nrecall@10 unfiltered {recall:.4f}, dense p50 {statistics.median(dense_ms):.2f} ms")
        print_filters(filters)
        print(json.dumps(filters))
        return

    questions = pool.questions[: args.questions]
    sample_settings = load_settings().replace({"index.path": args.work / "sample"})
    ensure_index(
        SAMPLE, sample_settings.index.path, sample_settings, make_embedder(sample_settings.embedding)
    )
    sample = Server(sample_settings.index.path)
    search_sample_ms, _ = latencies(sample, questions[:200])
    sample.stop()

    one = Server(path)
    ready_s = one.ready_s
    search_ms, ask_ms = latencies(one, questions[:300])
    ask_all(one, questions[300:])  # up to args.questions questions in all
    rss_mb = memory_mb(one.process.pid, "Rss")
    one_throughput = asyncio.run(throughput(one, questions, args.seconds, args.clients))
    one_pss = one.pss_mb()
    one.stop()
    # The same questions, spread over both workers, before the two are weighed.
    two = Server(path, workers=2)
    ask_all(two, questions)
    two_throughput = asyncio.run(throughput(two, questions, args.seconds, args.clients))
    second_worker_mb = two.pss_mb() - one_pss
    two.stop()

    # An update of UPDATED_ARTICLES articles (half changed, half new) on a copy made of
    # hard links, so that the archive stays as built for --reuse. Its vectors come
    # ready, so the time is all but embedding.
    copy = args.work / "updated"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    shutil.copytree(
        path.with_name(path.name + ".versions"), copy / (path.name + ".versions"), copy_function=os.link
    )
    (copy / path.name).symlink_to(os.readlink(path))
    updated_path = copy / path.name
    before = folder_bytes(updated_path.resolve())
    half = UPDATED_ARTICLES // 2
    update = [d for d, _ in generated(pool, 0, half, revision=1)]
    update += [d for d, _ in generated(pool, articles, UPDATED_ARTICLES - half)]
    started = time.perf_counter()
    updated = ingest(updated_path, settings.replace({"index.path": updated_path}), update,
                     model=manifest.model, dimension=manifest.dimension)  # fmt: skip
    update_s = time.perf_counter() - started
    written = folder_bytes(updated_path.resolve() / "segments" / updated.segments[-1].name)
    written += sum(
        (updated_path.resolve() / name).stat().st_size for name in ("manifest.json", "deleted.json")
    )
    shutil.rmtree(copy)

    parts: dict[str, int] = {}
    for item in (path.resolve() / "segments" / segment.name).rglob("*"):
        if item.is_file():
            part = item.relative_to(path.resolve() / "segments" / segment.name).parts[0]
            parts[part] = parts.get(part, 0) + item.stat().st_size
    summary = {
        "chunks": manifest.chunks,
        "sentences": manifest.sentences,
        "kind": segment.factory,
        "nprobe": settings.index.nprobe,
        "build_s": round(build_s, 1),
        "recall_at_10": round(recall, 4),
        "dense_p50_ms": round(statistics.median(dense_ms), 2),
        "lexical_p50_ms": round(statistics.median(lexical_ms), 2),
        "search_p50_ms": round(search_ms, 1),
        "search_p50_ms_sample": round(search_sample_ms, 1),
        "search_ratio": round(search_ms / search_sample_ms, 2),
        "ask_p50_ms": round(ask_ms, 1),
        "ready_s": round(ready_s, 2),
        "rss_mb": round(rss_mb),
        "second_worker_mb": round(second_worker_mb),
        "workers_throughput_ratio": round(two_throughput / one_throughput, 2),
        "throughput_1_worker": round(one_throughput, 1),
        "update_s": round(update_s, 2),
        "update_bytes_ratio": round(written / before, 5),
        "index_bytes": before,
        "bytes_per_chunk": {part: round(size / segment.chunks) for part, size in sorted(parts.items())},
        **filters,
    }
    rows = [
        ("recall@10 vs exact", summary["recall_at_10"], ">= 0.95"),
        ("dense search p50 (ms)", summary["dense_p50_ms"], "<= 10"),
        ("BM25 chunks+sentences p50 (ms)", summary["lexical_p50_ms"], ""),
        ("GET /api/search p50 (ms)", summary["search_p50_ms"], ""),
        ("  same on the sample index (ms)", summary["search_p50_ms_sample"], ""),
        ("  ratio", summary["search_ratio"], "<= 2.0"),
        ("POST /api/ask p50 (ms)", summary["ask_p50_ms"], "<= 120"),
        ("qa serve ready (s)", summary["ready_s"], "<= 15"),
        (f"RSS after {args.questions} questions (MB)", summary["rss_mb"], "<= 4096"),
        ("memory added by a 2nd worker (MB, PSS)", summary["second_worker_mb"], "<= 400"),
        ("throughput 2 workers / 1", summary["workers_throughput_ratio"], ">= 1.6"),
        (f"update of {UPDATED_ARTICLES} articles, no embedding (s)", summary["update_s"], "<= 20"),
        ("bytes written / index bytes", summary["update_bytes_ratio"], "<= 0.05"),
    ]
    print(f"\n{manifest.chunks} chunks, {manifest.sentences} sentences ({segment.factory}, nprobe "
          f"{settings.index.nprobe}), built in {build_s:.0f} s\n")  # fmt: skip
    print_table("measure", rows)
    print_filters(filters)
    print("\nbytes a chunk, by file: " + ", ".join(f"{k} {v}" for k, v in summary["bytes_per_chunk"].items()))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
