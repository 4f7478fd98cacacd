"""The files of an index on disk as files: flushing them, their digests, their identities.

Shared by the writing side (a version is flushed before it is published, and the
manifest records every segment file's digest) and the reading side (a segment is
checked against those digests when it is opened, and the health check compares the
files' identities with those it opened).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qa.errors import IndexUnavailableError


def fsync_tree(folder: Path) -> None:
    """Flush a folder's files, and the folders themselves, to disk."""
    for item in [*folder.rglob("*"), folder]:
        descriptor = os.open(item, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# Digests detect damage (a disk or a copy that garbles or cuts a file), not tampering:
# whoever can write a segment can write the manifest too. So the fastest checksum the
# standard library has (no faster hash package is installed): CRC-32, read 4 MiB at a
# time. Measured on this 2-core machine, one thread, a file of 0.8-1 GB in the page
# cache, the cores shared with other work: CRC-32 1,450-2,800 MB/s, SHA-256 (with the
# CPU's SHA instructions) 840-1,420 MB/s, BLAKE2b 520-870 MB/s; in each run CRC-32 was
# about twice SHA-256. Opening a segment of a million chunks (6.5 GB) reads it once:
# some 2.5-4.5 s, its files summed in parallel threads. A reload opens only the new
# segments. The checksum's name comes with each digest, so another could replace it.
DIGEST_BLOCK = 4 << 20


def file_digest(path: Path) -> str:
    """The digest of one file, as ``crc32:`` and eight hexadecimal digits."""
    checksum = 0
    buffer = bytearray(DIGEST_BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        while count := file.readinto(buffer):
            checksum = zlib.crc32(view[:count], checksum)
    return f"crc32:{checksum:08x}"


def _hashed(paths: Sequence[Path]) -> list[str]:
    """The digests of ``paths``, in order, a thread a core (zlib lets go of the GIL
    while it sums), the largest files started first so that none is left last alone."""
    order = sorted(range(len(paths)), key=lambda n: -paths[n].stat().st_size)
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        digests = list(pool.map(file_digest, [paths[n] for n in order]))
    found = [""] * len(paths)
    for position, digest in zip(order, digests, strict=True):
        found[position] = digest
    return found


def file_digests(folder: Path) -> dict[str, str]:
    """The digest of every file of ``folder``, by its path there (``chunks.lex/rows.npy``)."""
    paths = sorted(item for item in folder.rglob("*") if item.is_file())
    return {
        path.relative_to(folder).as_posix(): digest
        for path, digest in zip(paths, _hashed(paths), strict=True)
    }


def check_digests(folder: Path, digests: Mapping[str, str]) -> None:
    """Raise IndexUnavailableError naming the first file of ``folder`` that is missing
    or does not match its digest in ``digests``."""
    if not digests:
        raise IndexUnavailableError(f"{folder}: the manifest records no digests of its files; reindex")
    names = sorted(digests)
    for name in names:
        if not (folder / name).is_file():
            raise IndexUnavailableError(f"{folder}: {name} is missing; reindex")
    try:
        found = _hashed([folder / name for name in names])
    except OSError as exc:
        raise IndexUnavailableError(f"{folder}: unreadable segment file ({exc}); reindex") from exc
    for name, digest in zip(names, found, strict=True):
        if digest != digests[name]:
            raise IndexUnavailableError(f"{folder}: {name} does not match its digest; reindex")


# Inode, size and modification time: a file removed, replaced or written to since no longer matches.
FileIdentity = tuple[int, int, int]


def file_identity(path: Path) -> FileIdentity:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def file_identities(folder: Path) -> dict[Path, FileIdentity]:
    """The identity of every file of ``folder``, by its path in the folder."""
    return {item.relative_to(folder): file_identity(item) for item in folder.rglob("*") if item.is_file()}
