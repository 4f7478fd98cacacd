"""Filters inside the search, on a generated archive: every result satisfies the
filter, a request for k gets k whenever k allowed chunks exist, and the results
equal an exact search over the allowed rows alone."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

import qa.store.segment_reader
from qa.cli import main
from qa.config import IndexSettings, Settings
from qa.embed.base import Embedder
from qa.errors import InvalidRequestError
from qa.ingest.pipeline import build_index
from qa.records import Filters
from qa.search.filters import parse_filters
from qa.serve.http.app import create_app
from qa.serve.service import QAService
from qa.store.index import Index, load_index
from qa.text.tokens import tokens
from tests import archive
from tests.conftest import DEV_CORPUS

ARTICLES = 1500  # 6,000 chunks


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("filters") / "idx"
    archive.build(path, Settings().replace({"index.kind": "ivf", "index.nlist": 64}), 0, ARTICLES)
    return path


@pytest.fixture(scope="module")
def filtered_archive(archive_path: Path) -> Iterator[Index]:
    index = load_index(
        archive_path, IndexSettings(nprobe=4), model=archive.MODEL, dimension=archive.DIMENSION
    )
    yield index
    index.close()


def document_of(index: Index, chunk_id: int) -> tuple[str, str | None, dict[str, tuple[str, ...]]]:
    article = index.document(index.chunks([chunk_id])[0].doc_id)
    return article.doc_id, article.published, article.meta


def matches(filters: Filters, doc_id: str, published: str | None, meta: dict[str, tuple[str, ...]]) -> bool:
    day = datetime.date.fromisoformat(published) if published else None
    if (filters.published_from or filters.published_to) and day is None:
        return False
    if filters.published_from and day is not None and day < filters.published_from:
        return False
    if filters.published_to and day is not None and day > filters.published_to:
        return False
    if filters.doc_ids and doc_id not in filters.doc_ids:
        return False
    return all(set(values) & set(meta.get(key, ())) for key, values in filters.meta.items())


def allowed_count(index: Index, filters: Filters) -> int:
    return sum(int(np.count_nonzero(mask)) for mask in index.allowed(filters))


days = st.integers(0, 364).map(lambda n: datetime.date(2015, 1, 1) + datetime.timedelta(days=n))
filter_strategy = st.builds(
    Filters,
    published_from=st.none() | days,
    published_to=st.none() | days,
    doc_ids=st.lists(st.integers(0, ARTICLES + 20).map(lambda n: f"doc-{n}"), max_size=30).map(tuple),
    meta=st.dictionaries(
        st.sampled_from(["section", "source"]),
        st.lists(st.sampled_from([*archive.SECTIONS, "wire", "desk", "none"]), min_size=1, max_size=3).map(
            tuple
        ),
        max_size=2,
    ),
)


# Each allowed row scored from its vector, or the IVF index's search.
@pytest.mark.parametrize("exact_scan_row_cost", [0, 1 << 30])
# The fixture only sets the same value for every example.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filters=filter_strategy, k=st.sampled_from([1, 10, 50]), seed=st.integers(0, 1000))
def test_every_result_satisfies_the_filter_and_k_come_whenever_k_exist(
    filtered_archive: Index, exact_scan_row_cost: int, filters: Filters, k: int, seed: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(qa.store.segment_reader, "EXACT_SCAN_ROW_COST", exact_scan_row_cost)
    index = filtered_archive
    query = archive.article_vectors(f"query-{seed}")[0][0]
    allowed = index.allowed(filters)
    found = index.search(query, k, allowed)
    assert len(found) == min(k, allowed_count(index, filters))
    for chunk_id, _ in found:
        assert matches(filters, *document_of(index, chunk_id)), (filters, chunk_id)
    lexical = index.lexical(tokens(index.document("doc-7").text[:200]), allowed)
    for chunk_id in lexical.top(20):
        assert matches(filters, *document_of(index, chunk_id))


@pytest.mark.parametrize(
    "filters",
    [
        Filters(meta={"section": ("sport",)}),
        Filters(published_from=datetime.date(2015, 3, 1), published_to=datetime.date(2015, 3, 31)),
        Filters(meta={"section": ("politics", "culture"), "source": ("wire",)}),
        Filters(doc_ids=("doc-3", "doc-40", "doc-1499")),
    ],
)
# Both ways a segment searches allowed rows: scoring each from its vector, and the
# index skipping the others; with every one of the 64 lists probed, the index's
# search is exact too.
@pytest.mark.parametrize(("exact_scan_row_cost", "nprobe"), [(0, 4), (1 << 30, 64)])
def test_filtered_results_equal_an_exact_search_of_the_allowed_rows(
    archive_path: Path,
    filters: Filters,
    exact_scan_row_cost: int,
    nprobe: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(qa.store.segment_reader, "EXACT_SCAN_ROW_COST", exact_scan_row_cost)
    index = load_index(
        archive_path, IndexSettings(nprobe=nprobe), model=archive.MODEL, dimension=archive.DIMENSION
    )
    rows = np.flatnonzero(index.allowed(filters)[0])
    vectors = index.views[0].segment.chunk_vectors(rows)
    for seed in range(5):
        query = archive.article_vectors(f"query-{seed}")[0][0]
        exact = rows[np.argsort(-(vectors @ query), kind="stable")[:10]]
        found = [chunk_id for chunk_id, _ in index.search(query, 10, index.allowed(filters))]
        assert found == [int(row) for row in exact], filters
    index.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"published_from": "16/11/2015"}, "filter published_from '16/11/2015' is not a date"),
        ({"published_from": "2015-12-01", "published_to": "2015-11-01"}, "is after published_to"),
        ({"doc_ids": [f"d{i}" for i in range(101)]}, "filter doc_ids has 101 values; at most 100"),
        (
            {"meta": {"section": [str(i) for i in range(101)]}},
            "filter meta.section has 101 values; at most 100",
        ),
    ],
)
def test_invalid_filters_name_the_problem(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filters(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sectioned_settings(
    tmp_path_factory: pytest.TempPathFactory, base_settings: Settings, embedder: Embedder
) -> Settings:
    """An index of 6 dev articles, each given a section and a date."""
    folder = tmp_path_factory.mktemp("sectioned")
    lines = DEV_CORPUS.read_text("utf-8").splitlines()[:6]
    records = []
    for n, line in enumerate(lines):
        record = json.loads(line)
        record["meta"] = {"section": SECTIONS[n % 2]}
        record["published"] = f"2015-11-{10 + n:02d}"
        records.append(json.dumps(record, ensure_ascii=False))
    (folder / "corpus.jsonl").write_text("\n".join(records) + "\n", "utf-8")
    settings = base_settings.replace({"index.path": folder / "idx"})
    build_index(folder / "corpus.jsonl", folder / "idx", settings, embedder, progress=False)
    return settings


@pytest.fixture(scope="module")
def sectioned_client(sectioned_settings: Settings, embedder: Embedder) -> Iterator[TestClient[Litestar]]:
    service = QAService.open(sectioned_settings, embedder=embedder)
    with TestClient(app=create_app(sectioned_settings, service=service)) as client:
        yield client


SECTIONS = ("people", "places")


def test_the_api_answers_and_searches_only_within_its_filters(sectioned_client: TestClient[Litestar]) -> None:
    client = sectioned_client
    allowed = {client.get(f"/api/documents/arcd-00{n}").json()["doc_id"] for n in (1, 3, 5)}
    assert client.get("/api/documents/arcd-001").json()["meta"] == {"section": ["people"]}
    results = client.get("/api/search", params={"q": "من هو", "k": 50, "meta.section": "people"}).json()[
        "results"
    ]
    assert results and {r["doc_id"] for r in results} <= allowed
    body = {
        "question": "متى ولد؟",
        "filters": {"meta": {"section": ["people"]}, "published_to": "2015-11-12"},
    }
    answer = client.post("/api/ask", json=body).json()
    assert answer["passages"] and {p["doc_id"] for p in answer["passages"]} <= {"arcd-001", "arcd-003"}
    assert {c["doc_id"] for c in answer["citations"]} <= {"arcd-001", "arcd-003"}
    only = client.get("/api/search", params=[("q", "من هو"), ("doc_id", "arcd-002"), ("k", "3")]).json()
    assert [r["doc_id"] for r in only["results"]] == ["arcd-002"] * len(only["results"]) and only["results"]
    schema = client.get("/schema/openapi.json").json()
    assert "FiltersRequest" in json.dumps(schema) and "published_from" in json.dumps(
        schema["paths"]["/api/search"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"filters": {"section": ["people"]}}, "unknown field `section`"),
        (
            {"filters": {"published_from": "2015-31-12"}},
            "filters.published_from: Invalid RFC3339 encoded date",
        ),
        (
            {"filters": {"published_from": "2015-12-01", "published_to": "2015-11-01"}},
            "is after published_to",
        ),
        (
            {"filters": {"doc_ids": [str(i) for i in range(101)]}},
            "filters.doc_ids: Expected `array` of length <= 100",
        ),
        ({"filters": {"meta": {"section": "people"}}}, "filters.meta"),
    ],
)
def test_invalid_filters_get_a_400_naming_the_problem(
    sectioned_client: TestClient[Litestar], body: dict[str, object], message: str
) -> None:
    response = sectioned_client.post("/api/ask", json={"question": "متى ولد؟", **body})
    assert response.status_code == 400 and message in response.json()["detail"], response.json()
    search = sectioned_client.get("/api/search", params={"q": "x", "published_to": "yesterday"})
    assert (
        search.status_code == 400 and "published_to: Invalid RFC3339 encoded date" in search.json()["detail"]
    )


def test_search_newest_first_orders_the_same_results_by_date(sectioned_client: TestClient[Litestar]) -> None:
    params: dict[str, str | int] = {"q": "من هو", "k": 6}
    relevant = sectioned_client.get("/api/search", params=params).json()["results"]
    newest = sectioned_client.get("/api/search", params={**params, "sort": "newest"}).json()["results"]
    assert sorted(r["chunk_id"] for r in newest) == sorted(r["chunk_id"] for r in relevant)
    days = [int(r["doc_id"][-3:]) for r in newest]  # arcd-00N was published on 2015-11-(9 + N)
    assert days == sorted(days, reverse=True) and len(set(days)) > 1
    bad = sectioned_client.get("/api/search", params={**params, "sort": "oldest"})
    assert bad.status_code == 400


def test_the_cli_asks_within_filters_and_refuses_a_bad_one(
    sectioned_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    index = str(sectioned_settings.index.path)
    ask = ["ask", "--index", index, "--json", "متى ولد؟", "--meta", "section=places", "--to", "2015-11-14"]
    assert main(ask) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["passages"] and {p["doc_id"] for p in answer["passages"]} <= {"arcd-002", "arcd-004"}
    assert main(["ask", "--index", index, "x", "--meta", "section"]) == 1
    assert "--meta 'section': expected KEY=VALUE" in capsys.readouterr().err
    assert main(["ask", "--index", index, "x", "--from", "2015-11-20", "--to", "2015-11-01"]) == 1
    assert "is after published_to" in capsys.readouterr().err
