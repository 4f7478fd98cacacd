"""The service under hostile clients and on the open internet (issue 20): bounded work
per request, the rate limit, connection limits, honest logs, no internals in any
response. Real servers on loopback, the real model and index; the scripted model
stands in for an external endpoint."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.stores.memory import MemoryStore
from litestar.testing import TestClient

from qa.answer.generated import AnswerGenerator
from qa.config import MIN_ADMIN_TOKEN_CHARS, Settings, load_settings
from qa.embed.base import Embedder
from qa.errors import ConfigError, IndexUnavailableError, LLMError, RequestTimeoutError, ServiceBusyError
from qa.ingest.pipeline import build_index
from qa.llm.chat import ChatMessage, StreamState
from qa.llm.client import ChatClient
from qa.serve.http import app as app_module
from qa.serve.http import middleware
from qa.serve.http.app import create_app
from qa.serve.http.errors import loggable, without_paths
from qa.serve.questions import QueryGate, bounded_query
from qa.serve.service import QAService
from qa.types import Vectors
from tests.conftest import ADMIN, ADMIN_TOKEN, CAMERON_SENTENCE, REPO, Server, start_server
from tests.scripted_llm import Reply, ScriptedLLM, evidence_number, scripted_llm

QUESTION = "What did Cameron ask Putin?"
SUPPORTED = "Cameron said he would ask Putin to focus Russian air strikes in Syria on the Islamic State"
# A question and turns at the API's limits: 1,000 characters each, five turns.
LONG = ("ماذا طلب كاميرون من بوتين في قمة مجموعة العشرين في أنطاليا بشأن الضربات الجوية " * 20)[:1000]


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with scripted_llm() as server:
        yield server


def from_address(address: str, **options: Any) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), **options)


# --- bounded work per request --------------------------------------------------------


def test_the_retrieval_query_is_cut_to_its_token_budget(embedder: Embedder) -> None:
    count = embedder.count_tokens
    history = [f"{n} {LONG}"[:1000] for n in range(5)]
    assert count("\n".join([*history, LONG])) > 1000  # what the query was before
    query = bounded_query(LONG, history, count, 128, 2)
    assert count(query) <= 128 and LONG.startswith(query) and not query.endswith(" ")
    # Short turns fit: the most recent ones, oldest first, then the question.
    assert bounded_query("and when?", ["a", "b", "c"], count, 128, 2) == "b\nc\nand when?"
    assert bounded_query("and when?", ["a", "b"], count, 128, 0) == "and when?"
    # A turn that does not fit is left out, with every turn before it.
    assert bounded_query("and when?", ["a", LONG], count, 128, 2) == "and when?"


def test_ordinary_questions_stay_fast_while_one_client_floods(sample_index: Path) -> None:
    """Six requests at the API's limits from one address, within the rate limit, no
    longer delay another client's ordinary questions by seconds."""
    server = start_server(sample_index, QA_LIMITS_MAX_CONCURRENT_PER_CLIENT="0")
    flood = {"question": LONG, "history": [f"{n} {LONG}"[:1000] for n in range(5)]}
    try:
        with from_address("127.0.0.2", base_url=server.base, timeout=60) as reader:
            assert reader.post("/api/ask", json={"question": QUESTION}).status_code == 200

            def flooder() -> None:
                with from_address("127.0.0.3", base_url=server.base, timeout=60) as client:
                    client.post("/api/ask", json=flood)

            threads = [threading.Thread(target=flooder) for _ in range(6)]
            for thread in threads:
                thread.start()
            seconds = []
            for _ in range(6):
                started = time.perf_counter()
                assert reader.post("/api/ask", json={"question": QUESTION}).status_code == 200
                seconds.append(time.perf_counter() - started)
            for thread in threads:
                thread.join(timeout=60)
    finally:
        server.stop()
    assert statistics.median(seconds) < 1.5, seconds


def test_a_client_gets_429_beyond_its_concurrent_requests(sample_index: Path, llm: ScriptedLLM) -> None:
    """A client may hold at most limits.max_concurrent_per_client requests; others are not affected."""
    llm.reply(Reply("NO_ANSWER", delay=3.0))
    server = start_server(
        sample_index, QA_LIMITS_MAX_CONCURRENT_PER_CLIENT="1", QA_LLM_BASE_URL=llm.base_url,
        QA_LLM_MODEL="scripted", QA_LLM_TIMEOUT_SECONDS="10",
    )  # fmt: skip
    try:
        slow = threading.Thread(
            target=lambda: httpx.post(f"{server.base}/api/ask", json={"question": QUESTION}, timeout=30)
        )
        slow.start()
        time.sleep(1.0)  # the slow request is waiting for the model
        second = httpx.get(f"{server.base}/api/search", params={"q": "بوتين"})
        with from_address("127.0.0.2", base_url=server.base) as other:
            elsewhere = other.get("/api/search", params={"q": "بوتين"})
        slow.join(timeout=30)
        after = httpx.get(f"{server.base}/api/search", params={"q": "بوتين"})
    finally:
        server.stop()
        llm.reply(Reply("NO_ANSWER"))
    assert second.status_code == 429 and "at most 1 from one client" in second.json()["detail"]
    assert second.headers["retry-after"] == "1"
    assert elsewhere.status_code == 200 and after.status_code == 200


class CountingEmbedder:
    """The real embedder, counting the questions it embeds."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.queries = 0

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        self.queries += len(texts)
        return self._embedder.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embedder.embed_passages(texts)

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)


def test_the_wait_for_the_embedder_is_bounded_and_late_work_is_dropped(
    sample_settings: Settings, sample_index: Path, embedder: Embedder
) -> None:
    gate = QueryGate(0.3)
    with gate.turn():  # another question holds the embedder
        started = time.monotonic()
        with pytest.raises(ServiceBusyError, match=r"no embedder was free within 0\.3 s"), gate.turn():
            pass
        assert 0.25 < time.monotonic() - started < 1.0
        with pytest.raises(RequestTimeoutError), gate.turn(deadline=time.monotonic() + 0.1):
            pass
    counting = CountingEmbedder(embedder)
    service = QAService.open(sample_settings, embedder=counting)
    try:
        warmed = counting.queries
        # Its client was answered 503 already: nothing is embedded or searched.
        with pytest.raises(RequestTimeoutError):
            service.retrieve(QUESTION, deadline=time.monotonic() - 1)
        assert counting.queries == warmed
        assert service.retrieve(QUESTION, deadline=time.monotonic() + 30).retrieval.passages
    finally:
        service.close()


def test_a_question_starting_with_nul_is_answered(service: QAService) -> None:
    answer = service.ask("\x00" + QUESTION + "\x07")
    assert answer.question == QUESTION and answer.citations[0].quote == CAMERON_SENTENCE


# --- the written path ----------------------------------------------------------------


def test_a_stream_of_keep_alive_comments_stops_at_the_model_timeout(
    sample_settings: Settings, llm: ScriptedLLM
) -> None:
    settings = sample_settings.replace(
        {"llm.base_url": llm.base_url, "llm.model": "x", "llm.timeout_seconds": 1.0}
    )
    llm.reply(Reply("Too late.", keep_alive=6.0))

    async def read() -> None:
        client = ChatClient(settings.llm)
        try:
            async for _ in client.stream([ChatMessage("user", "hi")], StreamState()):
                pass
        finally:
            await client.aclose()

    started = time.monotonic()
    try:
        with pytest.raises(LLMError, match="did not answer within 1 s"):
            anyio.run(read)
    finally:
        llm.reply(Reply("NO_ANSWER"))
    assert time.monotonic() - started < 3.0


def llm_settings(settings: Settings, llm: ScriptedLLM, **extra: Any) -> Settings:
    return settings.replace(
        {"llm.base_url": llm.base_url, "llm.model": "scripted", "llm.timeout_seconds": 2.0, **extra}
    )


def test_written_answers_run_under_the_request_timeout_and_off_the_event_loop(
    sample_settings: Settings, sample_index: Path, embedder: Embedder, llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Building a prompt reads whole articles and counts tokens: made slow here, as an
    # article of a very long day would make it.
    slow_prompt = AnswerGenerator.prompt

    def prompt(self: AnswerGenerator, *args: Any) -> Any:
        time.sleep(2.5)
        return slow_prompt(self, *args)

    monkeypatch.setattr(AnswerGenerator, "prompt", prompt)
    llm.reply(Reply("NO_ANSWER"))
    settings = llm_settings(sample_settings, llm, **{"limits.request_timeout_seconds": 2.1})
    service = QAService.open(settings, embedder=embedder)
    with TestClient(app=create_app(settings, service=service)) as client:
        health: list[float] = []

        def check_health() -> None:
            time.sleep(0.8)
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            health.append(time.perf_counter() - started)

        checker = threading.Thread(target=check_health)
        checker.start()
        started = time.perf_counter()
        response = client.post("/api/ask", json={"question": QUESTION})
        took = time.perf_counter() - started
        checker.join()
        events = client.post("/api/ask/stream", json={"question": QUESTION}).text
    assert response.status_code == 503 and "took longer than 2.1 s" in response.json()["detail"]
    assert took < 2.4
    assert health[0] < 0.5, "the event loop was blocked"
    assert "event: error" in events and "took longer than 2.1 s" in events


def test_removed_sentences_say_why_but_their_text_only_to_admins(
    sample_settings: Settings, sample_index: Path, embedder: Embedder, llm: ScriptedLLM
) -> None:
    def script(request: dict[str, Any]) -> Reply:
        cameron = evidence_number(request, "سيدعو الرئيس الروسي فلاديمير بوتين")
        return Reply(f"{SUPPORTED} [{cameron}]. The moon is made of cheese [{cameron}].")

    llm.reply(script)
    settings = llm_settings(sample_settings, llm, **{"server.admin_token": ADMIN_TOKEN})
    service = QAService.open(settings, embedder=embedder)
    try:
        with TestClient(app=create_app(settings, service=service)) as client:
            public = client.post("/api/ask", json={"question": QUESTION}).json()
            stream = client.post("/api/ask/stream", json={"question": QUESTION}).text
            admin = client.post("/api/ask", json={"question": QUESTION}, headers=ADMIN).json()
    finally:
        llm.reply(Reply("NO_ANSWER"))
    assert public["mode"] == "generated" and len(public["removed"]) == 1
    assert public["removed"][0]["text"] is None and public["removed"][0]["reason"]
    assert "cheese" not in json.dumps(public) and "cheese" not in stream
    assert admin["removed"][0]["text"].startswith("The moon is made of cheese")


# --- the rate limit ------------------------------------------------------------------


def test_the_rate_limit_counts_articles_and_trusts_only_the_configured_proxies(sample_index: Path) -> None:
    def statuses(server: Server, path: str, headers: dict[str, str], times: int = 4) -> list[int]:
        return [httpx.get(server.base + path, headers=headers).status_code for _ in range(times)]

    server = start_server(sample_index, QA_LIMITS_RATE_LIMIT_PER_MINUTE="3")
    try:
        # "/documents" once exempted /api/documents/{id}: whole articles without a limit.
        assert statuses(server, "/api/documents/g20-antalya-2015", {}) == [200, 200, 200, 429]
        assert statuses(server, "/healthz", {}) == [200] * 4
        # The proxy on loopback is trusted: each reader behind it has a bucket of their own.
        for reader in ("203.0.113.5", "203.0.113.6"):
            forwarded = {"X-Forwarded-For": reader}
            assert statuses(server, "/api/search?q=x", forwarded) == [200, 200, 200, 429]
    finally:
        server.stop()
    server = start_server(sample_index, QA_LIMITS_RATE_LIMIT_PER_MINUTE="3", QA_SERVER_FORWARDED_ALLOW_IPS="")
    try:
        # No proxy trusted: a client cannot pick a new address for each request.
        spoofed = [
            httpx.get(f"{server.base}/api/search?q=x", headers={"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(4)
        ]
        assert [r.status_code for r in spoofed] == [200, 200, 200, 429]
    finally:
        server.stop()


def test_the_rate_limit_drops_the_counts_of_clients_gone_quiet(
    sample_settings: Settings, service: QAService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "RATE_LIMIT_PURGE_SECONDS", 0.2)
    app = create_app(sample_settings, service=service)
    with TestClient(app=app) as client:
        store = app.stores.get(middleware.RATE_LIMIT_STORE)
        assert isinstance(store, MemoryStore)
        assert client.get("/api/search", params={"q": "x"}).status_code == 200
        with client.portal() as portal:
            portal.call(lambda: store.set("gone-quiet", b"1", expires_in=1))
            time.sleep(1.6)
            keys = set(store._store)
    # The live client's count stays; the key that expired is gone without being read.
    assert len(keys) == 1 and "gone-quiet" not in keys


# --- what the service says, and what it logs -----------------------------------------


@pytest.fixture(scope="module")
def slashed_index(
    sample_settings: Settings, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("slashed")
    article = {"id": "2015/11/16/g20//summit", "title": "G20", "text": CAMERON_SENTENCE}
    (folder / "articles.jsonl").write_text(json.dumps(article, ensure_ascii=False) + "\n", "utf-8")
    index = folder / "index"
    build_index(folder / "articles.jsonl", index, sample_settings.replace({"index.path": index}), embedder)
    return index


def test_document_ids_with_slashes_are_cited_and_open(slashed_index: Path) -> None:
    server = start_server(slashed_index)
    try:
        citation = httpx.post(f"{server.base}/api/ask", json={"question": QUESTION}, timeout=30).json()[
            "citations"
        ][0]
        doc_id = citation["doc_id"]
        assert doc_id == "2015/11/16/g20//summit"
        as_is = httpx.get(f"{server.base}/api/documents/{doc_id}")
        encoded = httpx.get(f"{server.base}/api/documents/" + doc_id.replace("/", "%2F"))
        page = httpx.get(
            f"{server.base}/documents/" + doc_id.replace("/", "%2F"),
            params={"start": citation["start"], "end": citation["end"]},
        )
        missing = httpx.get(f"{server.base}/api/documents/2015/11/16/g20/summit")
    finally:
        server.stop()
    assert as_is.status_code == encoded.status_code == 200 and as_is.json()["doc_id"] == doc_id
    assert page.status_code == 200 and "<mark" in page.text
    assert missing.status_code == 404


def test_malformed_bodies_are_400_and_the_log_says_what_was_sent(sample_index: Path) -> None:
    server = start_server(sample_index, QA_LIMITS_RATE_LIMIT_PER_MINUTE="4")
    try:
        nested = '{"question": "x", "history": ' + "[" * 30000 + "]" * 30000 + "}"
        deep_meta = '{"question": "x", "filters": {"meta": ' + '{"a": ' * 9000 + "1" + "}" * 9000 + "}}"
        headers = {"Content-Type": "application/json"}
        bodies = [
            httpx.post(f"{server.base}/api/ask", content=body, headers=headers)
            for body in (nested, deep_meta)
        ]
        limited = [httpx.get(f"{server.base}/api/search", params={"q": "x"}) for _ in range(3)]  # 2 + 3 > 4
        forged = httpx.get(f"{server.base}/api/search%0AINFO%20qa.access%20GET%20/forged%20200?q=x")
        time.sleep(0.5)
        log = "".join(server.log)
    finally:
        server.stop()
    assert [r.status_code for r in bodies] == [400, 400]
    assert all("nested too deeply" in r.json()["detail"] for r in bodies)
    assert "Traceback" not in log and "RecursionError" not in log
    assert [r.status_code for r in limited] == [200, 200, 429]
    assert "GET /api/search 429" in log and "GET /api/search 500" not in log
    assert forged.status_code in (404, 429)
    assert not any(line.lstrip().startswith("INFO qa.access") for line in log.splitlines())
    assert "/api/search\\x0aINFO qa.access GET /forged 200" in log


def test_loggable_and_without_paths() -> None:
    assert loggable("/a\nb\r\x00\u2028ب") == "/a\\x0ab\\x0d\\x00\\x2028ب"
    message = "/srv/qa/indexes/news.versions/2026/segments/abc: unreadable documents.npz (x); reindex"
    assert without_paths(message) == "abc: unreadable documents.npz (x); reindex"
    assert (
        without_paths("no path, 3/4 of it, http://example.org/x")
        == "no path, 3/4 of it, http://example.org/x"
    )


def test_503_bodies_name_no_path(
    sample_settings: Settings, service: QAService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise IndexUnavailableError(f"{tmp_path}/segments/abc: unreadable documents.npz; reindex")

    monkeypatch.setattr(service, "search", broken)
    with TestClient(app=create_app(sample_settings, service=service)) as client:
        response = client.get("/api/search", params={"q": "x"})
    assert response.status_code == 503 and str(tmp_path) not in response.text
    assert response.json()["detail"] == "abc: unreadable documents.npz; reindex"


def test_the_admin_token_is_read_from_the_environment_only_hidden_and_long(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nadmin_token = "{ADMIN_TOKEN}"\n')
    with pytest.raises(ConfigError, match="QA_SERVER_ADMIN_TOKEN"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match=f"at least {MIN_ADMIN_TOKEN_CHARS} characters"):
        load_settings(REPO / "config.toml", environ={"QA_SERVER_ADMIN_TOKEN": "s3cret-token"})
    settings = load_settings(REPO / "config.toml", environ={"QA_SERVER_ADMIN_TOKEN": ADMIN_TOKEN})
    assert settings.server.admin_token == ADMIN_TOKEN and ADMIN_TOKEN not in repr(settings)


def test_the_schema_pages_load_nothing_from_outside(sample_settings: Settings, service: QAService) -> None:
    with TestClient(app=create_app(sample_settings, service=service)) as client:
        assert client.get("/schema/openapi.json").status_code == 200
        for path in ("/schema", "/schema/redoc", "/schema/swagger", "/schema/elements"):
            response = client.get(path)
            assert response.status_code == 404 or "<script" not in response.text, path
    settings = sample_settings.replace({"server.openapi_ui": True})
    with TestClient(app=create_app(settings, service=service)) as client:
        page = client.get("/schema/redoc").text
    assert f"/redoc/{app_module.REDOC_VERSION}/bundles/" in page
    assert "fonts.googleapis" not in page and "branding@main" not in page


# --- connections ---------------------------------------------------------------------


def closed(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed ``sock`` within ``wait`` seconds."""
    ends = time.monotonic() + wait
    try:
        while (left := ends - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(4096) == b"":  # what is left of a response is read first
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        pass
    return False


def test_slow_idle_and_surplus_connections_are_closed(sample_index: Path) -> None:
    server = start_server(
        sample_index, QA_SERVER_MAX_CONNECTIONS="20", QA_SERVER_HEADER_TIMEOUT_SECONDS="3",
        QA_SERVER_BODY_TIMEOUT_SECONDS="3", QA_SERVER_KEEP_ALIVE_SECONDS="1",
    )  # fmt: skip
    port = int(server.base.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    try:
        opened = time.monotonic()
        for _ in range(30):  # a slowloris: headers that never end
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        time.sleep(0.3)
        surplus = [closed(sock, 0.02) for sock in sockets]
        assert surplus == [False] * 20 + [True] * 10, surplus
        assert all(closed(sock, 5) for sock in sockets[:20])
        assert 2.5 < time.monotonic() - opened < 4.5
        # A body that never ends, a connection that sends nothing, one idle after a request.
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"qu")  # fmt: skip
        silent = socket.create_connection(("127.0.0.1", port))
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in idle.recv(64)
        started = time.monotonic()
        assert closed(idle, 3) and time.monotonic() - started < 2
        assert closed(body, 5) and closed(silent, 5)
        assert time.monotonic() - started < 4.5
        assert httpx.get(f"{server.base}/healthz").status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    assert "did not send its request headers within 3 s" in "".join(server.log)
    assert "did not send its request body within 3 s" in "".join(server.log)
