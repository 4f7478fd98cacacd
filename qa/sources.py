"""Read articles from sources: a folder of .txt/.md/.jsonl files, or one file.

The stored text is exactly the source text (no newline translation, no stripping),
so that every offset the service returns points into what the source holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qa.errors import SourceError
from qa.records import Article

TEXT_SUFFIXES = frozenset({".txt", ".md"})
JSONL_SUFFIX = ".jsonl"
MAX_TITLE_CHARS = 100


def read_articles(source: Path) -> list[Article]:
    """All articles of ``source``, in a stable order (sorted file names, then lines)."""
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
    seen: dict[str, str] = {}
    for path in files:
        for where, article in _read_file(path):
            if article.doc_id in seen:
                first = seen[article.doc_id]
                raise SourceError(
                    f"{where}: duplicate document id {article.doc_id!r} (first seen at {first})"
                )
            seen[article.doc_id] = where
            articles.append(article)
    return articles


def _read_file(path: Path) -> Iterator[tuple[str, Article]]:
    suffix = path.suffix.lower()
    if suffix == JSONL_SUFFIX:
        yield from _read_jsonl(path)
    elif suffix in TEXT_SUFFIXES:
        text = _read_text(path)
        if not text.strip():
            raise SourceError(f"{path}: the file is empty")
        yield str(path), Article(doc_id=path.stem, title=_title_of(text, suffix), text=text)
    else:
        raise SourceError(f"{path}: unsupported file type (expected .txt, .md or .jsonl)")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(f"{path}:{line}: invalid UTF-8 at byte {exc.start}") from exc


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


def _read_jsonl(path: Path) -> Iterator[tuple[str, Article]]:
    text = _read_text(path)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{where}: not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise SourceError(f"{where}: expected a JSON object")
        yield where, _article_from_record(record, where)


def _article_from_record(record: dict[str, Any], where: str) -> Article:
    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise SourceError(f"{where}: missing or empty 'id'")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SourceError(f"{where}: missing or empty 'text'")
    optional: dict[str, str | None] = {}
    for name in ("title", "url", "published"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise SourceError(f"{where}: {name!r} must be a string")
        optional[name] = value
    title = optional["title"] or _title_of(text, ".txt")
    return Article(
        doc_id=doc_id, title=title, text=text, url=optional["url"], published=optional["published"]
    )
