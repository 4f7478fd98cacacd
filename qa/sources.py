"""Read articles from sources: a folder of .txt/.md/.jsonl files, or one file.

The stored text is exactly the source text (no newline translation, no stripping),
so that every offset the service returns points into what the source holds.

A bad file or line (invalid UTF-8, empty, too large, not JSON, no ``text``, a
duplicate id) is reported by path and line and skipped, or, with ``strict``,
fails the whole read: either way nothing half-read reaches an index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import SourceError
from qa.records import Article

TEXT_SUFFIXES = frozenset({".txt", ".md"})
JSONL_SUFFIX = ".jsonl"
MAX_TITLE_CHARS = 100
# One article's text at most: far above any news article, low enough that a stray
# dump or binary file cannot exhaust memory when it is embedded.
MAX_ARTICLE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class SourceReport:
    articles: list[Article]
    # One line per skipped file or JSONL line: "path[:line]: what is wrong".
    problems: list[str]


class _SkipError(Exception):
    """A file or line that cannot become an article; the message says why."""


def read_articles(source: Path, *, strict: bool = False) -> SourceReport:
    """All readable articles of ``source``, in a stable order (sorted file names, then lines)."""
    if not source.exists():
        raise SourceError(f"{source}: no such file or folder")
    if source.is_dir():
        files = sorted(
            path
            for path in source.rglob("*")
            if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES | {JSONL_SUFFIX}
        )
        if not files:
            raise SourceError(f"{source}: no .txt, .md or .jsonl files in this folder")
    else:
        files = [source]

    articles: list[Article] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in files:
        for where, item in _read_file(path):
            if isinstance(item, Article) and item.doc_id in seen:
                item = _SkipError(
                    f"duplicate document id {item.doc_id!r} (first seen at {seen[item.doc_id]})"
                )
            if isinstance(item, _SkipError):
                if strict:
                    raise SourceError(f"{where}: {item}")
                problems.append(f"{where}: {item}")
                continue
            seen[item.doc_id] = where
            articles.append(item)
    if not articles:
        raise SourceError(f"{source}: no readable article" + (f" ({problems[0]})" if problems else ""))
    return SourceReport(articles, problems)


def _read_file(path: Path) -> Iterator[tuple[str, Article | _SkipError]]:
    if path.suffix.lower() == JSONL_SUFFIX:
        yield from _read_jsonl(path)
        return
    try:
        text = _decode(_read_bytes(path), path)
        if not text.strip():
            raise _SkipError("the file is empty")
        yield str(path), Article(doc_id=path.stem, title=_title_of(text, path.suffix.lower()), text=text)
    except _SkipError as skip:
        yield str(path), skip


def _read_bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_ARTICLE_BYTES:
            raise _SkipError(
                f"larger than {MAX_ARTICLE_BYTES // (1024 * 1024)} MB, too large for one article"
            )
        return path.read_bytes()
    except OSError as exc:
        raise _SkipError(f"cannot read: {exc.strerror or exc}") from exc


def _decode(data: bytes, path: Path, line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = line + data[: exc.start].count(b"\n")
        raise _SkipError(f"invalid UTF-8 at byte {exc.start} (line {at})") from exc


def _title_of(text: str, suffix: str) -> str:
    """The first non-empty line, without a Markdown heading marker, cut at a word."""
    for line in text.splitlines():
        line = line.strip()
        if suffix == ".md":
            line = line.lstrip("#").strip()
        if not line:
            continue
        if len(line) <= MAX_TITLE_CHARS:
            return line
        cut = line.rfind(" ", 0, MAX_TITLE_CHARS)
        return line[: cut if cut > 0 else MAX_TITLE_CHARS].rstrip(" ،,") + "…"
    return ""


def _read_jsonl(path: Path) -> Iterator[tuple[str, Article | _SkipError]]:
    """One article a line, read line by line so that a large archive file streams."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield str(path), _SkipError(f"cannot read: {exc.strerror or exc}")
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                if len(raw) > MAX_ARTICLE_BYTES:
                    raise _SkipError(f"line longer than {MAX_ARTICLE_BYTES // (1024 * 1024)} MB")
                try:
                    record = json.loads(_decode(raw, path, number))
                except json.JSONDecodeError as exc:
                    raise _SkipError(f"not valid JSON: {exc.msg}") from exc
                if not isinstance(record, dict):
                    raise _SkipError("expected a JSON object")
                yield where, _article_from_record(record)
            except _SkipError as skip:
                yield where, skip


def _article_from_record(record: dict[str, Any]) -> Article:
    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise _SkipError("missing or empty 'id'")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _SkipError("missing or empty 'text'")
    optional: dict[str, str | None] = {}
    for name in ("title", "url", "published"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise _SkipError(f"{name!r} must be a string")
        optional[name] = value
    title = optional["title"] or _title_of(text, ".txt")
    return Article(
        doc_id=doc_id, title=title, text=text, url=optional["url"], published=optional["published"]
    )
