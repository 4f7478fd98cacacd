import itertools

from qa.config import ChunkingSettings
from qa.embed.base import Embedder
from qa.records import Article
from qa.text.chunk import chunk_article, embedding_text
from qa.text.sentences import split_sentences
from tests.conftest import SAMPLE_CORPUS, SAMPLE_DOC_ID


def sample_article() -> Article:
    text = (SAMPLE_CORPUS / f"{SAMPLE_DOC_ID}.txt").read_text("utf-8")
    return Article(SAMPLE_DOC_ID, text.split("\n")[0], text)


def test_chunks_are_whole_sentences_within_the_token_budget(embedder: Embedder) -> None:
    article = sample_article()
    sentences = split_sentences(article.text)
    settings = ChunkingSettings(max_tokens=128, overlap_tokens=32)
    chunks = chunk_article(article, sentences, embedder.count_tokens, settings)
    starts = {s.start for s in sentences}
    ends = {s.end for s in sentences}
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.doc_id == SAMPLE_DOC_ID
        assert chunk.start in starts and chunk.end in ends
        inside = [s for s in sentences if chunk.start <= s.start and s.end <= chunk.end]
        if len(inside) > 1:  # a lone over-budget sentence still makes a chunk
            assert embedder.count_tokens(embedding_text(article, chunk)) <= settings.max_tokens + len(inside)
    covered = set()
    for chunk in chunks:
        covered |= {s.start for s in sentences if chunk.start <= s.start and s.end <= chunk.end}
    assert covered == starts


def test_consecutive_chunks_of_a_section_overlap_by_sentences(embedder: Embedder) -> None:
    article = sample_article()
    sentences = split_sentences(article.text)
    chunks = chunk_article(article, sentences, embedder.count_tokens, ChunkingSettings(128, 100))
    overlapping = [(a, b) for a, b in itertools.pairwise(chunks) if b.start < a.end]
    assert overlapping
    for _, b in overlapping:
        assert b.start in {s.start for s in sentences}


def test_a_heading_starts_a_chunk_and_travels_as_context(embedder: Embedder) -> None:
    article = sample_article()
    sentences = split_sentences(article.text)
    chunks = chunk_article(article, sentences, embedder.count_tokens, ChunkingSettings(64, 0))
    heading = "كاميرون يدعو بوتين للتركيز على داعش"
    heading_start = article.text.index(heading)
    assert any(c.start == heading_start for c in chunks)
    later = [c for c in chunks if c.start > heading_start]
    assert later and all(heading in c.context for c in later)
    assert all(embedding_text(article, c).endswith(article.text[c.start : c.end]) for c in chunks)


def test_a_title_is_context_unless_it_is_the_first_line_itself(embedder: Embedder) -> None:
    from qa.ingest.sources import read_articles

    article = read_articles(SAMPLE_CORPUS).articles[0]
    assert article.title.endswith("…")
    settings = ChunkingSettings(128, 0)
    chunks = chunk_article(article, split_sentences(article.text), embedder.count_tokens, settings)
    assert chunks[0].context == ""
    assert all(article.title.removesuffix("…") not in c.context for c in chunks)
    titled = Article("x", "قمة العشرين", "نص أول.\nنص ثان.")
    titled_chunks = chunk_article(titled, split_sentences(titled.text), embedder.count_tokens, settings)
    assert [c.context for c in titled_chunks] == ["قمة العشرين"]
