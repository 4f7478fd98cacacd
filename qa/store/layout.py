"""The layout of an index on disk: the names of its files and folders, and the record
that ``segment.json`` holds. The writing side (``qa.store.versions``,
``qa.store.segment_writer``) and the reading side (``qa.store.index``,
``qa.store.segment_reader``) both name files from here only.

An index at ``PATH`` (a symbolic link, so that publishing is one atomic rename)::

    PATH -> PATH.versions/<version>/
        manifest.json          model, chunking, counts, and the segments with their id bases
        deleted.json           documents of each segment that later versions replaced or removed
        segments/<segment>/    one immutable segment

A segment folder::

    segment.json          counts, and the kind and FAISS factory string of its vectors
    store.sqlite          documents (with their copy groups and signatures), chunks and sentences
                          with their offsets
    chunks.faiss          one unit vector a chunk: flat (exact) or IVF; row = chunk row
    sentences.f16         one unit vector a sentence, float16; row = sentence row
    chunk_sentences.npy   the sentence rows of every chunk, as [first, stop)
    documents.npz         each document's date and metadata, each chunk's document (for filters)
    chunks.lex/           BM25 postings of the chunks' tokens (with their context)
    sentences.lex/        BM25 postings of the sentences' tokens
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qa.errors import IndexUnavailableError

# 6: the manifest records a digest of every segment file.
# 7: each document's copy group and signature (syndicated copies, qa.ingest.copies).
FORMAT_VERSION = 7

# A version folder.
MANIFEST = "manifest.json"
DELETED = "deleted.json"
SEGMENTS = "segments"

# A segment folder.
SEGMENT_META = "segment.json"
STORE = "store.sqlite"
CHUNK_VECTORS = "chunks.faiss"
SENTENCE_VECTORS = "sentences.f16"
CHUNK_SENTENCES = "chunk_sentences.npy"
DOCUMENT_TABLE = "documents.npz"
CHUNK_LEXICAL = "chunks.lex"
SENTENCE_LEXICAL = "sentences.lex"


@dataclass(frozen=True)
class SegmentStats:
    """What ``segment.json`` records."""

    documents: int
    chunks: int
    sentences: int
    dimension: int
    # "flat" or "ivf", and the FAISS factory string that built the vectors.
    kind: str
    factory: str
    bytes: int
    # The average token counts of chunks and of sentences that BM25 weighed lengths against.
    average_lengths: tuple[float, float]
    # The digest of every file of the folder by its path there, segment.json included
    # (so not recorded in it: the manifest records them, see qa.store.files.file_digests).
    digests: dict[str, str] = field(default_factory=dict, hash=False)


def write_stats(folder: Path, stats: SegmentStats) -> None:
    recorded = {key: value for key, value in asdict(stats).items() if key != "digests"}
    (folder / SEGMENT_META).write_text(json.dumps(recorded, indent=2) + "\n", "utf-8")


def read_stats(folder: Path) -> SegmentStats:
    try:
        data = json.loads((folder / SEGMENT_META).read_text("utf-8"))
        return SegmentStats(**{**data, "average_lengths": tuple(data["average_lengths"])})
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise IndexUnavailableError(f"{folder}: unreadable segment ({exc}); reindex") from exc
