"""The ``qa`` command: ``qa serve``, ``qa reindex`` and ``qa ask``.

Errors of the package are printed as one line on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.config import Settings, load_settings
from qa.errors import QAError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $QA_CONFIG or ./config.toml)")
    common.add_argument("--index", type=Path, help="index directory (setting index.path)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (setting server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (setting server.port)")
    serve.set_defaults(run=_serve)

    reindex = commands.add_parser("reindex", parents=[common], help="build the index from a source")
    add_reindex_arguments(reindex)
    reindex.set_defaults(run=_reindex)

    ask = commands.add_parser("ask", parents=[common], help="answer one question in the terminal")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, help="passages to retrieve (setting retrieval.default_k)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.set_defaults(run=_ask)
    return parser


def add_reindex_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=Path, help="folder or .jsonl file of articles (setting source.path)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "index.path": getattr(args, "index", None),
        "source.path": getattr(args, "source", None),
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
    }


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from qa.app import create_app
    from qa.service import QAService

    # Load once before binding, so a missing or mismatched index fails with its own
    # message instead of a server that starts and then cannot answer.
    service = QAService.open(settings)
    app = create_app(settings, service=service)
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="info")
    return 0


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from qa.build import build_index
    from qa.embed import make_embedder

    summary = build_index(
        settings.source.path,
        settings.index.path,
        settings,
        make_embedder(settings.embedding),
        progress=False if args.no_progress else None,
    )
    print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False))
    return 0


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa.service import QAService

    service = QAService.open(settings)
    answer = service.ask(args.question, args.k)
    if args.json:
        print(json.dumps(dataclasses.asdict(answer), ensure_ascii=False, indent=2))
        return 0
    print(answer.answer)
    for citation in answer.citations:
        where = f"{citation.doc_id}, characters {citation.start}-{citation.end}"
        print(f"  [{citation.n}] {citation.title} ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
