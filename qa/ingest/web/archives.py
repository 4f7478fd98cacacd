"""Web pages saved to disk: ``.html`` files and WARC web archives (``.warc``, ``.warc.gz``).

``qa reindex --source PATH`` indexes pages someone already crawled: a folder of
pages saved from a browser or by ``wget``, or the WARC files of a web archive
(Heritrix, wget --warc-file, browsertrix, Common Crawl). :func:`read_saved_pages`
yields each HTML page with the URL it was fetched from, for the extractor; the
rest of a WARC (requests, revisits, images, redirects, 404s) is passed over
silently, as an archive is mostly that.

A damaged archive must not cost the pages before the damage, nor stop a read of
many files: problems (a record cut short, a file that is no WARC, a page over
``max_bytes``) are yielded as ``str`` items in their place, in order, and the read
goes on with the next file.
"""

from __future__ import annotations

import email.message
import gzip
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.limitreader import LimitReader

HTML_SUFFIXES = frozenset({".html", ".htm"})
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Reads of a record's payload, in bytes: small enough that a page over max_bytes
# is noticed without holding much more than max_bytes.
CHUNK = 1 << 16
# The mark a browser's "Save page as" leaves: <!-- saved from url=(0045)https://... -->
_SAVED_FROM = re.compile(rb"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", re.IGNORECASE)


@dataclass(frozen=True)
class SavedPage:
    """One page of a saved archive."""

    url: str  # the WARC target URI, or for an .html file its canonical/og:url or file:// URI
    body: bytes  # the HTTP payload, transfer and content encodings undone
    charset: str | None  # from the WARC record's HTTP Content-Type (None for .html files)
    where: str  # "archive.warc.gz record 12" / a path, for messages


def read_saved_pages(path: Path, *, max_bytes: int) -> Iterator[SavedPage | str]:
    """The HTML pages under ``path`` (a folder, read recursively, or one file), and problems.

    Files are read in sorted order of their paths, so two reads of one folder give
    the same sequence. Files other than ``.html``, ``.htm``, ``.warc`` and
    ``.warc.gz`` in a folder are passed over; named directly, one is a problem.
    """
    if path.is_dir():
        files = sorted(
            (file for file in path.rglob("*") if file.is_file() and _kind(file)),
            key=lambda file: file.relative_to(path).parts,
        )
        for file in files:
            yield from _read_file(file, max_bytes)
    elif path.is_file():
        if _kind(path):
            yield from _read_file(path, max_bytes)
        else:
            yield f"{path}: not an .html, .htm, .warc or .warc.gz file"
    else:
        yield f"{path}: no such file or folder"


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".warc", ".warc.gz")):
        return "warc"
    if path.suffix.lower() in HTML_SUFFIXES:
        return "html"
    return None


def _read_file(path: Path, max_bytes: int) -> Iterator[SavedPage | str]:
    if _kind(path) == "html":
        yield _read_html(path, max_bytes)
    else:
        yield from _read_warc(path, max_bytes)


# --- Saved .html files ----------------------------------------------------------------------------


def _read_html(path: Path, max_bytes: int) -> SavedPage | str:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return f"{path}: {size} bytes, above the limit of {max_bytes}; skipped"
        body = path.read_bytes()
    except OSError as error:
        return f"{path}: cannot be read ({error.strerror or error})"
    url = saved_page_url(body) or path.resolve().as_uri()
    return SavedPage(url=url, body=body, charset=None, where=str(path))


def saved_page_url(body: bytes) -> str | None:
    """Where a saved page came from: its canonical link, og:url, or a browser's "saved from" mark.

    Only an absolute http(s) URL counts (a relative one is resolved against the
    page's <base href>, when it has one): a saved file has no URL of its own to
    resolve against, and a file:// guess would only mislead.
    """
    document = None
    try:
        # A page without a <meta charset> is taken by libxml2 for Latin-1; saved
        # pages are nearly all UTF-8, so a body that decodes as UTF-8 is read as such.
        document = lxml.html.document_fromstring(body.decode("utf-8"))
    except (UnicodeDecodeError, etree.ParserError, ValueError):
        try:
            document = lxml.html.document_fromstring(body)
        except (etree.ParserError, ValueError):
            document = None
    if document is not None:
        base = _first(document.xpath("//base/@href")) or ""
        candidates = [
            href
            for link in document.xpath("//link[@rel][@href]")
            if "canonical" in str(link.get("rel", "")).lower().split()
            for href in [link.get("href")]
        ]
        candidates += document.xpath("//meta[@property='og:url']/@content")
        for candidate in candidates:
            url = _http_url(urljoin(base, str(candidate).strip()) if base else str(candidate).strip())
            if url:
                return url
    mark = _SAVED_FROM.search(body[:4096])
    return _http_url(mark.group(1).decode("ascii", errors="replace")) if mark else None


def _first(values: Any) -> str | None:
    return str(values[0]).strip() if isinstance(values, list) and values else None


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname else None


# --- WARC -----------------------------------------------------------------------------------------


def _read_warc(path: Path, max_bytes: int) -> Iterator[SavedPage | str]:
    """The 200 HTML responses of one WARC file, then a problem if it ends in a damaged record.

    warcio reads a gzip member that stops short as if the file ended before it, and
    a record whose block stops short as a short block; neither raises. So each
    record's block is checked for bytes missing, and, after the last record, the
    file for bytes left that no record accounts for: either is a record cut short.

    A WARC gzip'd as one whole file (``gzip archive.warc``) rather than a member a
    record, which warcio refuses as it cannot seek in it, is read again through
    ``gzip``, past the records already given.
    """
    try:
        with path.open("rb") as stream:
            outcome = yield from _warc_records(path, stream, max_bytes, skip=0)
        if isinstance(outcome, int):
            with gzip.open(path, "rb") as inflated:
                yield from _warc_records(path, inflated, max_bytes, skip=outcome)
    except OSError as error:
        yield f"{path}: cannot be read ({error.strerror or error})"


def _warc_records(
    path: Path, stream: BinaryIO | gzip.GzipFile, max_bytes: int, *, skip: int
) -> Generator[SavedPage | str, None, int | None]:
    """Yield the pages and problems of ``stream``, passing over its first ``skip`` records.

    Returns, rather than yields, the count of records read whole when the file turns
    out to be gzip'd whole, so that the caller can read it again inflated.
    """
    done = 0  # records read whole; the one being read is number done + 1, counting from 1
    end = 0  # the offset where the last whole record ended
    try:
        records = ArchiveIterator(stream)
        for number, record in enumerate(records, 1):
            where = f"{path.name} record {number}"
            if record.rec_type is None:
                yield f"{path}: record {number} has no WARC header; the archive is cut short or damaged"
                return None
            page = _page_of(record, where, max_bytes) if number > skip else None
            records.read_to_end(record)
            if _block_cut_short(record):
                yield f"{path}: cut short in record {number}; the records before it were read"
                return None
            if page is not None:
                yield page
            end = records.get_record_offset() + records.get_record_length()
            done = number
    except ArchiveLoadFailed as error:
        message = " ".join(str(error).split())
        if "non-chunked gzip" in message and skip == 0:
            return done
        if done == 0:
            yield f"{path}: not a WARC archive ({message})"
        else:
            yield f"{path}: record {done + 1} is damaged ({message}); the records before it were read"
        return None
    except Exception as error:  # warcio and gzip fail on a damaged record in many ways
        message = " ".join(str(error).split())
        yield f"{path}: record {done + 1} is damaged ({type(error).__name__}: {message})"
        return None
    if _bytes_left(stream, end):
        if done == 0:
            yield f"{path}: not a WARC archive, or cut short in its first record"
        else:
            yield f"{path}: cut short in record {done + 1}; the records before it were read"
    elif done == 0:
        yield f"{path}: the WARC archive is empty"
    return None


def _page_of(record: Any, where: str, max_bytes: int) -> SavedPage | str | None:
    """The HTML page of a response record; None for any other record; a problem if too large."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    if record.http_headers.get_statuscode() != "200":
        return None
    media_type, charset = _content_type(record.http_headers.get_header("Content-Type") or "")
    if media_type not in PAGE_TYPES:
        return None
    url = (record.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
    if not url:
        return f"{where}: a response without a WARC-Target-URI; skipped"
    body = _read_bounded(record.content_stream(), max_bytes)
    if body is None:
        return f"{where} ({url}): the page is larger than {max_bytes} bytes; skipped"
    return SavedPage(url=url, body=body, charset=charset, where=where)


def _read_bounded(stream: Any, max_bytes: int) -> bytes | None:
    """All of ``stream``, or None once it passes ``max_bytes`` (decoded bytes: a gzip bomb stops)."""
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _content_type(value: str) -> tuple[str, str | None]:
    """A Content-Type's media type (lower case) and charset parameter (as sent), as email parses them."""
    message = email.message.Message()
    message["Content-Type"] = value
    charset = message.get_param("charset")
    return message.get_content_type(), (charset.strip() or None) if isinstance(charset, str) else None


def _block_cut_short(record: Any) -> bool:
    """Whether the file ended before the record's Content-Length did."""
    raw = record.raw_stream
    return isinstance(raw, LimitReader) and raw.limit > 0


def _bytes_left(stream: BinaryIO | gzip.GzipFile, end: int) -> bool:
    """Whether the file holds more than whitespace after ``end`` (a record warcio could not read)."""
    stream.seek(end)
    while chunk := stream.read(CHUNK):
        if chunk.strip():
            return True
    return False
