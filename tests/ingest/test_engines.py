"""qa.ingest.engines: the engines the settings accept are the ones the registry opens, and
the local engine makes each way of vectors (embedding.vectors) and embeds a copy once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from qa.config import REINDEX_ENGINES, ChunkingSettings, Settings
from qa.embed.base import Embedder
from qa.errors import ConfigError
from qa.ingest.engines.local import LocalEngine
from qa.ingest.engines.registry import ENGINES, open_engine
from qa.ingest.pipeline import build_index
from qa.records import Article
from qa.store.index import read_manifest
from qa.text.chunk import embedding_text, sentence_embedding_texts
from qa.types import Vectors


def test_the_settings_name_exactly_the_registered_engines() -> None:
    assert tuple(ENGINES) == REINDEX_ENGINES


def test_the_default_engine_is_local_with_the_index_embedder(base_settings: Settings) -> None:
    with open_engine(base_settings) as engine:
        assert isinstance(engine, LocalEngine)
        assert (engine.name, engine.actors, engine.dimension) == ("local", 1, 384)


def _articles() -> list[Article]:
    text = (
        "طلب رئيس الوزراء البريطاني ديفيد كاميرون من الرئيس الروسي فلاديمير بوتين "
        "التركيز على ضرب تنظيم الدولة. "
        "وجاء ذلك خلال لقاء على هامش قمة مجموعة العشرين في أنطاليا التركية. "
        "وقال المتحدث باسم الحكومة إن اللقاء استمر ساعة كاملة."
    )
    return [
        Article("a", "قمة أنطاليا", text),
        Article(
            "b",
            "خبر آخر",
            "أعلنت وزارة الصحة عن افتتاح مستشفى جديد في العاصمة. وسيستقبل المستشفى المرضى الشهر المقبل.",
        ),
        # The same story filed again under another section, spaced another way.
        Article("a-again", "قمة أنطاليا", text.replace(". ", ".  ")),
    ]


def _cosine(a: Vectors, b: Vectors) -> npt.NDArray[np.float32]:
    cosines: npt.NDArray[np.float32] = np.sum(a * b, axis=1)
    return cosines


def test_sentences_mode_embeds_each_sentence_once_and_pools_the_chunks(
    base_settings: Settings, embedder: Embedder
) -> None:
    small = ChunkingSettings(max_tokens=40, overlap_tokens=20)  # several chunks, overlapping
    first, other, copy = LocalEngine(embedder, small, "sentences").documents(_articles())
    assert len(first.chunks) > 1 and first.texts_embedded == len(first.sentences)
    expected = embedder.embed_passages(sentence_embedding_texts(first.article, first.sentences))
    assert np.allclose(first.sentence_vectors, expected, atol=1e-6)
    for chunk, vector in zip(first.chunks, first.chunk_vectors, strict=True):
        inside = [i for i, s in enumerate(first.sentences) if chunk.start <= s.start and s.end <= chunk.end]
        mean = first.sentence_vectors[inside].mean(axis=0)
        assert np.allclose(vector, mean / np.linalg.norm(mean), atol=1e-6)
    # The copy is not embedded again: its vectors are the first's, its offsets its own.
    assert copy.texts_embedded == 0 and other.texts_embedded == len(other.sentences)
    assert np.array_equal(copy.chunk_vectors, first.chunk_vectors)
    assert np.array_equal(copy.sentence_vectors, first.sentence_vectors)
    assert [copy.article.text[s.start : s.end] for s in copy.sentences] == [
        first.article.text[s.start : s.end] for s in first.sentences
    ]
    assert copy.sentences != first.sentences  # spaced another way: other offsets


def test_separate_mode_embeds_chunks_and_sentences_as_indexes_did_before(embedder: Embedder) -> None:
    first, _, copy = LocalEngine(embedder, ChunkingSettings(), "separate").documents(_articles())
    assert first.texts_embedded == len(first.chunks) + len(first.sentences) and copy.texts_embedded == 0
    chunk_texts = [embedding_text(first.article, c) for c in first.chunks]
    assert np.allclose(first.chunk_vectors, embedder.embed_passages(chunk_texts), atol=1e-6)


def test_late_mode_embeds_each_chunk_once_and_pools_its_sentences(st_embedder: Embedder) -> None:
    small = ChunkingSettings(max_tokens=40, overlap_tokens=20)
    first, other, copy = LocalEngine(st_embedder, small, "late").documents(_articles())
    assert len(first.chunks) > 1 and first.texts_embedded == len(first.chunks) and copy.texts_embedded == 0
    # A chunk's vector is its embedding; a sentence's, close to its own embedding in the
    # context of its chunk, and closest to it of all the sentences.
    chunk_texts = [embedding_text(first.article, c) for c in first.chunks]
    assert _cosine(first.chunk_vectors, st_embedder.embed_passages(chunk_texts)).min() > 0.999
    alone = st_embedder.embed_passages(sentence_embedding_texts(first.article, first.sentences))
    similarity = first.sentence_vectors @ alone.T
    assert np.diag(similarity).min() > 0.8
    assert (similarity.argmax(axis=1) == np.arange(len(first.sentences))).all()
    assert np.allclose(np.linalg.norm(other.sentence_vectors, axis=1), 1.0, atol=1e-5)


def test_late_mode_needs_an_engine_that_shows_its_token_states(embedder: Embedder) -> None:
    with pytest.raises(ConfigError, match=r"embedding\.vectors = 'late'.*sentence-transformers"):
        LocalEngine(embedder, ChunkingSettings(), "late")


def test_a_build_given_an_embedder_makes_vectors_the_way_the_settings_say(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    source = tmp_path / "a.jsonl"
    records = [{"id": a.doc_id, "title": a.title, "text": a.text} for a in _articles()[:2]]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    separate = sample_settings.replace({"embedding.vectors": "separate"})
    summary = build_index(source, tmp_path / "index", separate, embedder, progress=False)
    assert summary.texts_embedded == summary.chunks + summary.sentences
    assert read_manifest(tmp_path / "index").vectors == "separate"
