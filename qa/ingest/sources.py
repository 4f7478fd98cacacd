"""Read articles from sources: a folder of .txt/.md/.jsonl files, or one file.

The stored text is exactly the source text (no newline translation, no stripping),
so that every offset the service returns points into what the source holds.

A bad file or line (invalid UTF-8, empty, too large, not JSON, no ``text``, a
duplicate id, a ``published`` that is not an ISO 8601 date, a ``meta`` of the wrong
shape) is reported by path and line and skipped, or, with ``strict``, fails the
whole read: either way nothing half-read reaches an index.

Metadata: a JSONL article may carry ``published`` and ``meta``, an object of
strings or lists of strings (``{"section": "politics", "tags": ["g20", "syria"]}``).
A text file may start with a front matter block of ``key: value`` lines between
two ``---`` lines (``published: 2015-11-16``, ``section: politics``, ``tags: [g20,
syria]``); the article's text is what follows the block, byte for byte.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import SourceSettings
from qa.errors import SourceError
from qa.records import Article, Meta

TEXT_SUFFIXES = frozenset({".txt", ".md"})
JSONL_SUFFIX = ".jsonl"
MAX_TITLE_CHARS = 100


@dataclass(frozen=True)
class SourceReport:
    articles: list[Article]
    # One line per skipped file or JSONL line: "path[:line]: what is wrong".
    problems: list[str]


class _SkipError(Exception):
    """A file or line that cannot become an article; the message says why, and
    ``line`` where in a text file."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_articles(
    source: Path, *, strict: bool = False, max_article_bytes: int = SourceSettings.max_article_bytes
) -> SourceReport:
    """All readable articles of ``source``, in a stable order (sorted file names, then lines).

    A file or JSONL line above ``max_article_bytes`` (``source.max_article_bytes``) is skipped.
    """
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
        for where, item in _read_file(path, max_article_bytes):
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


def _read_file(path: Path, max_bytes: int) -> Iterator[tuple[str, Article | _SkipError]]:
    if path.suffix.lower() == JSONL_SUFFIX:
        yield from _read_jsonl(path, max_bytes)
        return
    try:
        text, published, meta = _front_matter(_decode(_read_bytes(path, max_bytes), path))
        if not text.strip():
            raise _SkipError("the file is empty")
        title = _title_of(text, path.suffix.lower())
        yield str(path), Article(path.stem, title, text, published=published, meta=meta)
    except _SkipError as skip:
        yield (f"{path}:{skip.line}" if skip.line else str(path)), skip


_FRONT_MATTER_LINE = re.compile(r"([A-Za-z_][\w.-]*)\s*:\s*(.*)")


def _front_matter(text: str) -> tuple[str, str | None, Meta]:
    """A text file's body, and the date and metadata of its front matter block, if any."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return text, None, {}
    published: str | None = None
    meta: dict[str, object] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            return "".join(lines[number:]), published, _meta(meta)
        if not line.strip():
            continue
        match = _FRONT_MATTER_LINE.fullmatch(line.strip())
        if match is None:
            raise _SkipError(f"front matter line is not 'key: value': {line.strip()!r}", number)
        key, value = match.groups()
        try:
            if key == "published":
                published = _published(value)
            elif value.startswith("[") and value.endswith("]"):
                meta[key] = [part.strip() for part in value[1:-1].split(",")]
            else:
                meta[key] = value
            _meta(meta)
        except _SkipError as skip:
            raise _SkipError(str(skip), number) from skip
    raise _SkipError("front matter block is not closed with '---'", 1)


def _published(value: object) -> str | None:
    """An ISO 8601 date or date-time (2015-11-16, 2015-11-16T10:30:00+02:00), as given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _SkipError("'published' must be a string")
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _SkipError(f"'published' is not an ISO 8601 date or date-time: {value!r}") from None
    return value


def _meta(value: object) -> Meta:
    """Metadata: an object whose values are strings or lists of strings.

    A blank string means no value: archives export a missing section as "" (one ANT
    article does), and that is no reason to lose the article. A key left with no value
    is left out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _SkipError("'meta' must be an object of strings or lists of strings")
    meta: Meta = {}
    for key, item in value.items():
        values = [item] if isinstance(item, str) else item
        if not key.strip() or not isinstance(values, list):
            raise _SkipError(f"'meta' key {key!r} must hold a string or a list of strings")
        if not all(isinstance(v, str) for v in values):
            raise _SkipError(f"'meta' key {key!r} must hold strings")
        if present := tuple(v for v in values if v.strip()):
            meta[key] = present
    return meta


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        if path.stat().st_size > max_bytes:
            raise _SkipError(f"larger than {_size(max_bytes)}, too large for one article")
        return path.read_bytes()
    except OSError as exc:
        raise _SkipError(f"cannot read: {exc.strerror or exc}") from exc


def _size(limit: int) -> str:
    """The limit as the messages give it: in MB when it is whole megabytes (the default's 8 MB)."""
    return f"{limit // 2**20} MB" if limit % 2**20 == 0 else f"{limit} bytes"


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


def _read_jsonl(path: Path, max_bytes: int) -> Iterator[tuple[str, Article | _SkipError]]:
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
                if len(raw) > max_bytes:
                    raise _SkipError(f"line longer than {_size(max_bytes)}")
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
    for name in ("title", "url"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise _SkipError(f"{name!r} must be a string")
        optional[name] = value
    title = optional["title"] or _title_of(text, ".txt")
    published = _published(record.get("published"))
    return Article(doc_id, title, text, optional["url"], published, _meta(record.get("meta")))
