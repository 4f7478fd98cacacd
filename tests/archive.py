"""A generated archive for tests at scale: articles of pseudo-Arabic words with
clustered unit vectors, ingested without the model (``publish_update`` with
precomputed vectors), as a distributed reindex would hand them over.

Run as a module it builds or updates an index, for tests that kill it midway:
``python -m tests.archive INDEX FIRST COUNT [--merge-factor N]``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.ingest.indexed import indexed_document
from qa.ingest.pipeline import ingest
from qa.records import Article, Chunk, Manifest, Sentence, SentenceKind
from qa.store.segment_writer import IndexedDocument

MODEL = "intfloat/multilingual-e5-small"
DIMENSION = 384
CHUNKS_PER_ARTICLE = 4
SENTENCES_PER_CHUNK = 3
WORDS_PER_SENTENCE = 6
CLUSTERS = 200
_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"


SECTIONS = ("politics", "sport", "economy", "culture", "science")


def vocabulary(size: int = 5000, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = list(_LETTERS)
    return ["".join(rng.choice(letters, rng.integers(4, 8))) for _ in range(size)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)
    return unit


@functools.cache
def centers(seed: int = 11) -> np.ndarray:
    return _unit(np.random.default_rng(seed).standard_normal((CLUSTERS, DIMENSION)))


def article_vectors(doc_id: str, revision: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Chunk and sentence vectors of an article, the same on every call."""
    seed = int.from_bytes(hashlib.sha256(f"{doc_id}/{revision}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    cluster = centers()[rng.integers(CLUSTERS)]
    chunk_vectors = _unit(cluster + 0.7 * rng.standard_normal((CHUNKS_PER_ARTICLE, DIMENSION)) / 10)
    noise = rng.standard_normal((CHUNKS_PER_ARTICLE, SENTENCES_PER_CHUNK, DIMENSION)) / 10
    sentence_vectors = _unit(chunk_vectors[:, None, :] + 0.8 * noise).reshape(-1, DIMENSION)
    return chunk_vectors, sentence_vectors


def generated_document(number: int, revision: int = 0, words: list[str] | None = None) -> IndexedDocument:
    """Article ``number`` of the archive; another ``revision`` changes its text and vectors."""
    doc_id = f"doc-{number}"
    words = words or vocabulary()
    rng = np.random.default_rng(number * 1000 + revision)
    title = f"خبر {number}"
    text, sentences, chunks = "", [], []
    for c in range(CHUNKS_PER_ARTICLE):
        chunk_start = len(text)
        for _ in range(SENTENCES_PER_CHUNK):
            sentence = " ".join(words[i] for i in rng.integers(len(words), size=WORDS_PER_SENTENCE)) + "."
            if text:
                text += " "
            sentences.append(Sentence(len(text), len(text) + len(sentence), SentenceKind.SENTENCE, c))
            text += sentence
        chunks.append(Chunk(doc_id, chunk_start + (1 if c else 0), len(text), title))
    chunk_vectors, sentence_vectors = article_vectors(doc_id, revision)
    # A date and metadata for the filter tests: a day of 2015 and two keys.
    published = (datetime.date(2015, 1, 1) + datetime.timedelta(days=number % 365)).isoformat()
    meta: dict[str, tuple[str, ...]] = {
        "section": (SECTIONS[number % len(SECTIONS)],),
        "source": ("wire" if number % 3 == 0 else "desk",),
    }
    article = Article(doc_id, title, text, published=published, meta=meta)
    digest = hashlib.sha256(f"{doc_id}/{revision}".encode()).hexdigest()
    return indexed_document(article, digest, chunks, sentences, chunk_vectors, sentence_vectors)


def documents(first: int, count: int, revision: int = 0) -> Iterator[IndexedDocument]:
    words = vocabulary()
    for number in range(first, first + count):
        yield generated_document(number, revision, words)


def build(index: Path, settings: Settings, first: int, count: int, revision: int = 0) -> Manifest:
    return ingest(
        index, settings.replace({"index.path": index}), documents(first, count, revision),
        model=MODEL, dimension=DIMENSION,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index", type=Path)
    parser.add_argument("first", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--merge-factor", type=int, default=8)
    args = parser.parse_args()
    build(args.index, Settings().replace({"index.merge_factor": args.merge_factor}), args.first, args.count)


if __name__ == "__main__":
    main()
