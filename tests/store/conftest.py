"""The generated archive the storage tests share (``tests/archive.py``): 50k chunks
with clustered vectors, ingested without the model, built once for the package."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa.config import IndexSettings, Settings
from qa.store.index import Index, load_index
from tests import archive

ARTICLES = 12500  # 50k chunks


def open_index(path: Path, **settings: object) -> Index:
    return load_index(path, IndexSettings(**settings), model=archive.MODEL, dimension=archive.DIMENSION)  # type: ignore[arg-type]


def copy_of(index: Path, target: Path) -> Path:
    """A copy of an index made of hard links: segment files are never written to."""
    shutil.copytree(index.parent, target, symlinks=True, copy_function=os.link)
    return target / index.name


@pytest.fixture(scope="package")
def archive_50k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("archive") / "idx"
    archive.build(index, Settings(), 0, ARTICLES)
    return index


def query_vectors(count: int) -> list[np.ndarray]:
    """Vectors shaped like the archive's (near its clusters) but not in it."""
    return [archive.article_vectors(f"query-{i}")[0][0] for i in range(count)]
