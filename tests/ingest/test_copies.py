"""Syndicated copies: grouped at ingest (qa.ingest.copies), kept through reindexes and
merges, and answered once with the other copies listed (also_in). Real ANT articles
(tests/data/ant/articles.jsonl), the real model, real indexes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from qa.config import CopiesSettings, IndexSettings, Settings
from qa.embed.base import Embedder
from qa.ingest.copies import CopyGrouper
from qa.ingest.pipeline import build_index
from qa.records import Article, Filters
from qa.search.retrieve import Retriever
from qa.serve.http.schemas import AskResponse
from qa.serve.service import QAService
from qa.store.index import Index, load_index
from qa.store.segment_reader import StoredCopy
from tests.conftest import REPO

ANT = REPO / "tests" / "data" / "ant" / "articles.jsonl"
STORY = "JA-economy-52-20161115"
# A question the story answers, in its words.
QUESTION = "كم هكتارا من المساحات المخصصة للمناطق الصناعية سنويا؟"


def ant_articles() -> dict[str, Article]:
    articles = {}
    for line in ANT.read_text("utf-8").splitlines():
        record = json.loads(line)
        meta = {
            key: (value,) if isinstance(value, str) else tuple(value) for key, value in record["meta"].items()
        }
        articles[record["id"]] = Article(
            record["id"], record["title"], record["text"], record["url"], record["published"], meta
        )
    return articles


def edited(article: Article, doc_id: str, source: str) -> Article:
    """``article`` as another paper runs it: a few words changed, a sentence added, the
    whitespace and diacritics different, its own title and address."""
    text = article.text.replace("اليوم", "أمس").replace("حاليا", "حاليًا").replace("\n", "\n\n")
    text = text.replace("  ", " ").replace("المناطق", "المَناطق", 1)
    text += " وأكد الوزير أن الخطة ستعرض على البرلمان قريبا."
    return Article(
        doc_id, article.title + " | " + source, text, f"https://{source}.example/{doc_id}", article.published,
        {"source": (source,), "section": article.meta.get("section", ())},
    )  # fmt: skip


def write_source(path: Path, articles: list[Article]) -> None:
    records = [
        {"id": a.doc_id, "title": a.title, "text": a.text, "url": a.url, "published": a.published,
         "meta": {key: list(values) for key, values in a.meta.items()}}
        for a in articles
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def groups(articles: list[Article], settings: CopiesSettings | None = None) -> dict[str, str]:
    grouper = CopyGrouper(settings or CopiesSettings(), {})
    return {article.doc_id: grouper.add(article).group for article in articles}


def opened(path: Path, embedder: Embedder) -> Index:
    return load_index(path, IndexSettings(), model=embedder.model_id, dimension=embedder.dimension)


def test_exact_and_lightly_edited_copies_group_and_other_articles_do_not() -> None:
    articles = ant_articles()
    story = articles[STORY]
    exact = replace(story, doc_id="exact-copy", title="another title", url="https://b.example/1")
    light = edited(story, "edited-copy", "c")
    assert light.text != story.text
    found = groups([*articles.values(), exact, light])
    assert found["exact-copy"] == found["edited-copy"] == STORY
    # Different articles, of one section and of all, are each their own group.
    assert all(found[doc_id] == doc_id for doc_id in articles)


def test_articles_of_one_section_are_not_copies() -> None:
    articles = ant_articles()
    for section in ("economy", "sport", "localNews"):
        members = [a for a in articles.values() if section in a.meta.get("section", ())]
        assert len(members) >= 6
        assert len(set(groups(members).values())) == len(members)


def test_the_threshold_setting_changes_grouping() -> None:
    story = ant_articles()[STORY]
    light = edited(story, "edited-copy", "c")
    assert groups([story, light], CopiesSettings(threshold=0.7))["edited-copy"] == STORY
    assert groups([story, light], CopiesSettings(threshold=0.99))["edited-copy"] == "edited-copy"


def test_a_replaced_first_member_does_not_lend_its_id_to_another_group() -> None:
    """A document whose group is named after a document that changed into another story
    keeps its group; the changed one gets a new id rather than joining it by name."""
    articles = ant_articles()
    story, other = articles[STORY], articles["JA-economy-130-20161125"]
    first = CopyGrouper(CopiesSettings(), {})
    stored = {a.doc_id: first.add(a) for a in [story, edited(story, "copy", "b")]}
    assert stored["copy"].group == STORY
    known = {doc_id: StoredCopy(copy.group, copy.signature) for doc_id, copy in stored.items()}
    again = CopyGrouper(CopiesSettings(), known, replaced=[STORY])
    assert again.add(replace(other, doc_id=STORY)).group == f"{STORY}#2"


def test_a_copy_in_a_later_reindex_joins_the_group_without_reembedding_it(
    tmp_path: Path, sample_settings: Settings, embedder: Embedder
) -> None:
    articles = ant_articles()
    story, other = articles[STORY], articles["JA-economy-73-20170209"]
    source, index_path = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_source(source, [story, other])
    first = build_index(source, index_path, sample_settings, embedder, progress=False)
    assert first.added == 2

    copy = edited(story, "copy-b", "b")
    write_source(source, [story, other, copy])
    second = build_index(source, index_path, sample_settings, embedder, progress=False)
    assert (second.added, second.updated, second.unchanged) == (1, 0, 2)
    index = opened(index_path, embedder)
    try:
        # Only the copy was embedded: its own sentences (the chunks are pooled from them).
        (segment,) = [view for view in index.views if "copy-b" in dict(view.segment.content_hashes())]
        assert second.texts_embedded == segment.info.sentences
        assert index.copy_groups([STORY, "copy-b", other.doc_id]) == {
            STORY: STORY, "copy-b": STORY, other.doc_id: other.doc_id,
        }  # fmt: skip
        assert set(index.copies()) == {STORY, "copy-b", other.doc_id}
    finally:
        index.close()


def test_groups_survive_a_merge(tmp_path: Path, sample_settings: Settings, embedder: Embedder) -> None:
    settings = sample_settings.replace({"index.merge_factor": 2})
    story = ant_articles()[STORY]
    source, index_path = tmp_path / "corpus.jsonl", tmp_path / "idx"
    write_source(source, [story])
    build_index(source, index_path, settings, embedder, progress=False)
    write_source(source, [story, edited(story, "copy-b", "b")])
    summary = build_index(source, index_path, settings, embedder, progress=False)
    assert summary.merges >= 1 and summary.segments == 1
    index = opened(index_path, embedder)
    try:
        assert index.copy_groups([STORY, "copy-b"]) == {STORY: STORY, "copy-b": STORY}
        signatures = index.copies()
        assert all(len(copy.signature) > 100 for copy in signatures.values())
    finally:
        index.close()


@pytest.fixture(scope="module")
def copies_index(
    tmp_path_factory: pytest.TempPathFactory, base_settings: Settings, embedder: Embedder
) -> tuple[Path, Settings]:
    """Three copies of one story from three sources, among other ANT articles."""
    articles = ant_articles()
    story = articles[STORY]
    copies = [
        replace(story, meta={**story.meta, "source": ("a",)}),
        edited(story, "copy-b", "b"),
        edited(story, "copy-c", "c"),
    ]
    others = [a for doc_id, a in articles.items() if doc_id != STORY][:12]
    folder = tmp_path_factory.mktemp("copies")
    settings = base_settings.replace({"index.path": folder / "idx"})
    write_source(folder / "corpus.jsonl", [*copies, *others])
    build_index(folder / "corpus.jsonl", folder / "idx", settings, embedder, progress=False)
    return folder / "idx", settings


def test_copies_answer_once_with_the_others_listed(
    copies_index: tuple[Path, Settings], embedder: Embedder
) -> None:
    _, settings = copies_index
    service = QAService.open(settings, embedder=embedder)
    try:
        answer = service.ask(QUESTION, k=5)
        story = [p for p in answer.passages if p.doc_id in {STORY, "copy-b", "copy-c"}]
        assert len(story) == 1, [p.doc_id for p in answer.passages]
        assert len(answer.passages) == 5  # as many distinct passages as asked
        assert answer.found
        (citation,) = {c.doc_id: c for c in answer.citations}.values()
        listed = {copy.doc_id: copy.url for copy in citation.also_in}
        expected = {STORY: ant_articles()[STORY].url, "copy-b": "https://b.example/copy-b",
                    "copy-c": "https://c.example/copy-c"}  # fmt: skip
        del expected[citation.doc_id]
        assert listed == expected
        # The wire types carry them, in the citation and in its passage.
        wire = AskResponse.of(answer, 1.0, removed_text=False)
        assert {c.doc_id for c in wire.citations[0].also_in} == set(expected)
        assert {c.doc_id for c in wire.passages[0].also_in} == set(expected)

        # A filter on one source returns that source's copy, with no other listed.
        for source, doc_id in (("a", STORY), ("b", "copy-b"), ("c", "copy-c")):
            filtered = service.retriever.retrieve(QUESTION, 3, Filters(meta={"source": (source,)}))
            assert [p.doc_id for p in filtered.passages] == [doc_id] * len(filtered.passages)
            assert all(not p.also_in for p in filtered.passages)
    finally:
        service.close()


def test_without_copies_retrieval_is_unchanged(
    copies_index: tuple[Path, Settings], embedder: Embedder
) -> None:
    """Passages of different stories never collapse: those of other articles are as many as asked."""
    path, _ = copies_index
    index = opened(path, embedder)
    try:
        passages = Retriever(index, embedder).retrieve("أسعار المواد الغذائية والتضخم", 8).passages
        assert len(passages) == 8
        story = {STORY, "copy-b", "copy-c"}
        assert len({p.doc_id for p in passages} & story) <= 1
        assert all(not p.also_in for p in passages if p.doc_id not in story)
    finally:
        index.close()
