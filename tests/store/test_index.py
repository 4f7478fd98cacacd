import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from qa.config import IndexSettings, Settings
from qa.embed.base import Embedder
from qa.errors import IndexMismatchError, IndexUnavailableError
from qa.ingest.pipeline import build_index
from qa.search.retrieve import Retriever
from qa.store.index import load_index
from tests.conftest import SAMPLE_CORPUS

QUESTIONS = ["What did Cameron ask Putin?", "ماذا طلب كاميرون من بوتين؟", "مدة المحادثات بين أوباما وبوتين"]


def stored_chunks(index_path: Path) -> list[tuple[object, ...]]:
    rows = []
    for store in sorted(index_path.glob("segments/*/store.sqlite")):
        with sqlite3.connect(store) as connection:
            rows += connection.execute(
                'SELECT chunk_id, doc_id, start, "end", context FROM chunks'
            ).fetchall()
    return rows


def test_reindexing_the_same_source_gives_identical_chunks_and_results(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    results = []
    chunks = []
    for name in ("first", "second"):
        path = tmp_path / name
        build_index(SAMPLE_CORPUS, path, sample_settings, embedder, progress=False)
        index = load_index(path, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
        retriever = Retriever(index, embedder)
        results.append([retriever.retrieve(q, 5).passages for q in QUESTIONS])
        chunks.append(stored_chunks(path))
        index.close()
    assert chunks[0] == chunks[1] and len(chunks[0]) > 1
    assert results[0] == results[1]


def test_an_index_of_another_model_or_dimension_is_refused(
    tmp_path: Path, sample_index: Path, embedder: Embedder
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sample_index.resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"] = "intfloat/multilingual-e5-large"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="qa reindex"):
        load_index(copy, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
    with pytest.raises(IndexMismatchError, match="768 dimensions"):
        load_index(sample_index, IndexSettings(), model=embedder.model_id, dimension=768)


def test_a_missing_index_names_the_reindex_command(tmp_path: Path, embedder: Embedder) -> None:
    with pytest.raises(IndexUnavailableError, match="qa reindex"):
        load_index(tmp_path / "none", IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)
