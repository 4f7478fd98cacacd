"""The chat widget: its HTTP routes, and the widget itself in a real browser.

Real ``qa serve`` processes on loopback ports; pages that embed the widget are
served from other ports (other origins) by a small ``http.server``; Debian's
Chromium runs headless, driven by Playwright's sync API. Every browser test
fails on any console error or uncaught page error it does not expect, and saves
a screenshot under ``test-artifacts/``. With ``WIDGET_DOCS_SCREENSHOT=1`` the demo
test also writes ``docs/widget-demo.png``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    WebError,
    sync_playwright,
)

from qa.answer.extractive import NO_ANSWER, RELATED, RELATED_AR
from qa.config import LimitSettings, Settings
from qa.embed.base import Embedder
from qa.ingest.pipeline import build_index
from qa.serve.questions import contextual_query
from tests.conftest import (
    CAMERON_SENTENCE,
    OUTCOME_BANDS,
    REPO,
    SAMPLE_ARTICLE,
    SAMPLE_DOC_ID,
    Server,
    as_environ,
)
from tests.conftest import start_server as start_qa_server
from tests.scripted_llm import Reply, evidence_number, scripted_llm

ARTIFACTS = REPO / "test-artifacts"
DOCS_SCREENSHOT = REPO / "docs" / "widget-demo.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
TIMEOUT_MS = 30_000

ENGLISH = "What did Cameron ask Putin?"
ARABIC = "ماذا طلب كاميرون من بوتين؟"
FOLLOW_UP = "And what did Putin answer?"

HOSTILE_ID = "hostile-1"
HOSTILE_TITLE = '<b>عنوان</b><img src=x onerror="window.__pwned=3">'
HOSTILE_TEXT = (
    "خبر تجريبي عن الوسوم\n"
    'قال المتحدث الرسمي إن الوسم <img src=x onerror="window.__pwned=1"> يظهر في الموقع نصا عاديا. '
    "وأضاف المتحدث أن الوسم <script>window.__pwned=2</script> لا يعمل أبدا داخل المقالات.\n"
    "وافتتحت البلدية مكتبة عامة جديدة في وسط المدينة يوم الأحد."
)
# A sports report from Antalya beside the sample article (the G20 summit in Antalya):
# the two are in different sections.
SPORT_ID = "antalya-friendly"
SPORT_TITLE = "تركيا تفوز على روسيا وديا في أنطاليا"
SPORT_TEXT = (
    "فاز منتخب تركيا لكرة القدم على منتخب روسيا بهدفين مقابل هدف في مباراة ودية أقيمت في "
    "مدينة أنطاليا مساء الثلاثاء. "
    "وسجل المهاجم أردا توران هدف الفوز لمنتخب تركيا في الدقيقة الثمانين من المباراة.\n"
    "وقال مدرب المنتخب التركي إن الفوز يمنح اللاعبين ثقة كبيرة قبل بطولة أمم أوروبا."
)
SPORT_QUESTION = "من سجل هدف الفوز في مباراة تركيا وروسيا؟"
HOSTILE_QUESTION = 'ماذا قال المتحدث الرسمي عن الوسم؟ <img src=x onerror="window.__pwned=4">'


# ---------------------------------------------------------------------------
# Servers: `qa serve` subprocesses, and host pages on other origins


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., Server]]:
    """Start ``qa serve`` on ``index`` (with ``cors`` allowed, and other QA_* ``settings``);
    every server stops at module end."""
    started: list[Server] = []

    def start(index: Path, cors: tuple[str, ...] = (), **settings: str) -> Server:
        if cors:
            settings["QA_SERVER_CORS_ORIGINS"] = ",".join(cors)
        started.append(start_qa_server(index, **settings))
        return started[-1]

    yield start
    for server in started:
        server.stop()


class HostPages:
    """An ``http.server`` on its own loopback port: another origin that embeds the widget."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def put(self, path: str, body: str) -> str:
        self.pages[path] = body
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def host_page(script_src: str, **attributes: str) -> str:
    """A page of another site embedding the widget, with CSS that would spoil it if it leaked in."""
    attrs = "".join(f' data-{name}="{html.escape(value)}"' for name, value in attributes.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Some news site</title>
<link rel="icon" href="data:,">
<style>
  * {{ color: rgb(255, 0, 0) !important; font-size: 31px !important; letter-spacing: 3px;
        font-family: monospace; line-height: 3; }}
  button, textarea, mark {{ display: none !important; }}
</style></head>
<body>
<h2 id="page-heading">A news site</h2>
<p><a id="page-link" href="#top">A link of the page</a></p>
<form id="page-form"><mark id="page-mark">page text</mark></form>
<script src="{html.escape(script_src)}"{attrs} defer></script>
</body></html>"""


@pytest.fixture(scope="module")
def allowed_host() -> Iterator[HostPages]:
    host = HostPages()
    yield host
    host.close()


@pytest.fixture(scope="module")
def other_host() -> Iterator[HostPages]:
    host = HostPages()
    yield host
    host.close()


@pytest.fixture(scope="module")
def qa_server(start_server: Callable[..., Server], sample_index: Path, allowed_host: HostPages) -> Server:
    """The sample index, callable from ``allowed_host``'s origin (and not from ``other_host``'s)."""
    return start_server(sample_index, cors=(allowed_host.origin,))


@pytest.fixture(scope="module")
def banded_server(
    start_server: Callable[..., Server], sample_index: Path, allowed_host: HostPages
) -> Callable[[str], Server]:
    """The sample index served with the named band of OUTCOME_BANDS (one server each, started when
    first asked for), callable from ``allowed_host``'s origin."""
    servers: dict[str, Server] = {}

    def server(band: str) -> Server:
        if band not in servers:
            servers[band] = start_server(
                sample_index, cors=(allowed_host.origin,), **as_environ(OUTCOME_BANDS[band])
            )
        return servers[band]

    return server


@pytest.fixture(scope="module")
def hostile_server(
    start_server: Callable[..., Server],
    tmp_path_factory: pytest.TempPathFactory,
    sample_settings: Settings,
    embedder: Embedder,
) -> Server:
    """An index of one article whose title and text are full of HTML and script."""
    article = {"id": HOSTILE_ID, "title": HOSTILE_TITLE, "text": HOSTILE_TEXT}
    return start_server(jsonl_index(tmp_path_factory.mktemp("hostile"), [article], sample_settings, embedder))


@pytest.fixture(scope="module")
def sectioned_server(
    start_server: Callable[..., Server],
    tmp_path_factory: pytest.TempPathFactory,
    sample_settings: Settings,
    embedder: Embedder,
    allowed_host: HostPages,
) -> Server:
    """The sample article in section "world", a sports report from the same city in "sport"."""
    sample = SAMPLE_ARTICLE.read_text("utf-8")
    articles = [
        {
            "id": SAMPLE_DOC_ID,
            "title": "قمة العشرين في أنطاليا",
            "text": sample,
            "meta": {"section": "world"},
        },
        {"id": SPORT_ID, "title": SPORT_TITLE, "text": SPORT_TEXT, "meta": {"section": "sport"}},
    ]
    index = jsonl_index(tmp_path_factory.mktemp("sections"), articles, sample_settings, embedder)
    return start_server(index, cors=(allowed_host.origin,))


@pytest.fixture(scope="module")
def copies_server(
    start_server: Callable[..., Server],
    tmp_path_factory: pytest.TempPathFactory,
    sample_settings: Settings,
    embedder: Embedder,
) -> Server:
    """The sample article as three papers ran it: one story, three sources (qa.ingest.copies)."""
    sample = SAMPLE_ARTICLE.read_text("utf-8")
    articles = [
        {"id": f"g20-{source}", "title": f"قمة العشرين ({source})", "text": sample,
         "url": f"https://{source}.example/g20", "meta": {"source": source}}
        for source in ("a", "b", "c")
    ]  # fmt: skip
    return start_server(jsonl_index(tmp_path_factory.mktemp("copies"), articles, sample_settings, embedder))


def jsonl_index(folder: Path, articles: list[dict[str, Any]], settings: Settings, embedder: Embedder) -> Path:
    """An index built in ``folder`` from ``articles``, as JSONL records."""
    source = folder / "articles.jsonl"
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    index = folder / "index"
    build_index(source, index, settings.replace({"index.path": index}), embedder, progress=False)
    return index


def api_ask(server: Server, question: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.base}/api/ask", json={"question": question, **extra}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in re.split(r"\r\n\r\n|\n\n", text):
        lines = block.splitlines()
        names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        if data:
            events.append((names[0] if names else "message", json.loads("\n".join(data))))
    return events


# ---------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install -y chromium (scripts/test.sh does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    context: BrowserContext
    page: Page
    name: str
    errors: list[str] = field(default_factory=list)

    def snap(self, label: str) -> None:
        """A screenshot in the middle of a test (the fixture takes one at its end)."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{self.name}-{label}.png")

    @property
    def widget(self) -> Locator:
        return self.page.locator("[data-qa-widget]")

    def answers(self) -> Locator:
        return self.page.locator("[data-qa-answer]")

    def wait_answer(self, nth: int, state: str = "done") -> Locator:
        answer = self.answers().nth(nth)
        answer.and_(self.page.locator(f"[data-qa-state={state}]")).wait_for()
        return answer

    def shadow_eval(self, script: str, arg: Any = None) -> Any:
        """Run ``script`` (a function of the widget's shadow root and ``arg``) in the page."""
        return self.page.evaluate(
            f"([arg]) => ({script})(document.querySelector('[data-qa-widget]').shadowRoot, arg)", [arg]
        )

    def assert_no_errors(self, allowed: str | None = None) -> None:
        """No console error or page error, except ones matching the regular expression ``allowed``."""
        unexpected = [e for e in self.errors if allowed is None or not re.search(allowed, e)]
        assert unexpected == [], unexpected


@pytest.fixture
def tab(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    tab = Tab(context, context.new_page(), name)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(f"console error: {message.text}")

    def on_error(error: WebError) -> None:
        tab.errors.append(f"page error: {error.error}")

    context.on("console", on_console)
    context.on("weberror", on_error)
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    for number, page in enumerate(context.pages):
        suffix = "" if number == 0 else f"-{number}"
        page.screenshot(path=ARTIFACTS / f"{name}{suffix}.png")
    context.close()


WATCH_STREAMING = """root => {
  window.__qaSeen = {typing: 0, pieces: 0, rebuilt: false};
  new MutationObserver(records => {
    for (const record of records) {
      const target = record.target;
      if (target.nodeType === 1 && target.matches("[data-qa-answer-text]") && record.removedNodes.length) {
        window.__qaSeen.rebuilt = true;
      }
      for (const node of record.addedNodes) {
        if (node.nodeType === 1 && node.classList.contains("typing")) window.__qaSeen.typing++;
        if (node.nodeType === 3 && target.matches("[data-qa-answer-text]") && !window.__qaSeen.rebuilt) {
          window.__qaSeen.pieces++;
        }
      }
    }
  }).observe(root, {childList: true, subtree: true});
}"""


# ---------------------------------------------------------------------------
# Server side: history, the stream, the pages


def test_contextual_query_puts_the_earlier_questions_in_front() -> None:
    assert contextual_query(FOLLOW_UP) == FOLLOW_UP
    assert contextual_query(FOLLOW_UP, [ENGLISH]) == f"{ENGLISH}\n{FOLLOW_UP}"
    assert contextual_query("c", ["a", "  ", " b "]) == "a\nb\nc"


def test_a_follow_up_is_resolved_against_the_history(qa_server: Server) -> None:
    alone = api_ask(qa_server, FOLLOW_UP)
    followed = api_ask(qa_server, FOLLOW_UP, history=[ENGLISH])
    assert followed["question"] == FOLLOW_UP
    # Alone, "Putin" finds the Kremlin's statement; after the Cameron question,
    # the follow-up is about Cameron's meeting with Putin.
    assert "كاميرون" in followed["citations"][0]["quote"]
    assert followed["citations"][0]["quote"] != alone["citations"][0]["quote"]


def test_the_stream_sends_passages_citations_answer_then_done(qa_server: Server) -> None:
    expected = api_ask(qa_server, ENGLISH)
    response = httpx.post(f"{qa_server.base}/api/ask/stream", json={"question": ENGLISH}, timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["passages", "citations"] and names[-1] == "done"
    assert set(names[2:-1]) == {"answer"} and len(names) - 3 >= 2
    assert events[0][1]["passages"] == expected["passages"]
    assert events[1][1]["citations"] == expected["citations"]
    assert "".join(data["text"] for name, data in events if name == "answer") == expected["answer"]
    done = events[-1][1]
    assert done["answer"] == expected["answer"] and CAMERON_SENTENCE in done["answer"]
    assert done["question"] == ENGLISH and done["found"] is True and done["took_ms"] > 0
    assert done["outcome"] == expected["outcome"] == "answered"


MAX_HISTORY = LimitSettings().max_history_turns


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": ""}, "the question is empty"),
        ({"question": "س" * 1001}, "the limit is 1000"),
        ({"question": "بوتين", "k": 0}, "k must be between 1 and 50"),
        ({"question": 42}, "question: Expected `str`, got `int`"),
        ({"question": "بوتين", "history": "كاميرون"}, "history: Expected `array`, got `str`"),
        ({"question": "بوتين", "history": [1]}, "Expected `str | object`, got `int`"),
        ({"question": "بوتين", "history": ["س"] * (MAX_HISTORY + 1)}, f"the limit is {MAX_HISTORY}"),
        ({"question": "بوتين", "history": ["س" * 1001]}, "history question 1 is 1001 characters long"),
    ],
)
def test_bad_input_gets_the_same_400_from_the_stream_as_from_ask(
    qa_server: Server, body: object, message: str
) -> None:
    plain = httpx.post(f"{qa_server.base}/api/ask", json=body, timeout=60)
    streamed = httpx.post(f"{qa_server.base}/api/ask/stream", json=body, timeout=60)
    assert plain.status_code == streamed.status_code == 400
    assert streamed.headers["content-type"] == "application/json"
    assert plain.json() == streamed.json() and message in streamed.json()["detail"]


def test_widget_script_demo_page_and_document_page_are_served(qa_server: Server) -> None:
    with httpx.Client(base_url=qa_server.base, timeout=60) as client:
        script = client.get("/widget.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert "attachShadow" in script.text
        demo = client.get("/")
        assert demo.headers["content-type"].startswith("text/html")
        assert 'src="/widget.js"' in demo.text and f'data-qa-ask="{ARABIC}"' in demo.text
        text = client.get(f"/api/documents/{SAMPLE_DOC_ID}").json()["text"]
        start = text.index(CAMERON_SENTENCE)
        end = start + len(CAMERON_SENTENCE)
        page = client.get(f"/documents/{SAMPLE_DOC_ID}", params={"start": start, "end": end})
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        assert f'<mark data-qa-highlight id="qa-highlight">{CAMERON_SENTENCE}</mark>' in page.text
        assert client.get(f"/documents/{SAMPLE_DOC_ID}").text.count("<mark") == 0
        bad = client.get(f"/documents/{SAMPLE_DOC_ID}", params={"start": 5, "end": len(text) + 1})
        assert bad.status_code == 400 and "start < end" in bad.json()["detail"]
        assert client.get(f"/documents/{SAMPLE_DOC_ID}", params={"start": 5}).status_code == 400
        assert client.get("/documents/no-such-article").status_code == 404


def test_cors_allows_only_the_configured_origins(
    qa_server: Server, allowed_host: HostPages, other_host: HostPages
) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{qa_server.base}/api/ask/stream",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=30,
        )

    allowed = preflight(allowed_host.origin)
    assert allowed.status_code < 300
    assert allowed.headers["access-control-allow-origin"] == allowed_host.origin
    assert preflight(qa_server.base).headers["access-control-allow-origin"] == qa_server.base
    refused = preflight(other_host.origin)
    assert refused.headers.get("access-control-allow-origin") != other_host.origin


# ---------------------------------------------------------------------------
# In the browser


@pytest.mark.parametrize("question", [ENGLISH, ARABIC], ids=["english", "arabic"])
def test_demo_page_streams_an_answer_with_a_highlighted_citation(
    tab: Tab, qa_server: Server, question: str
) -> None:
    body = api_ask(qa_server, question)
    expected = body["citations"][0]
    page = tab.page
    page.goto(f"{qa_server.base}/")
    page.locator("[data-qa-input]").wait_for()  # open from the start (data-open="true")
    tab.shadow_eval(WATCH_STREAMING)
    page.locator(f'button[data-qa-ask="{question}"]').click()

    answer = tab.wait_answer(0)
    assert answer.get_attribute("data-qa-outcome") == "answered"
    seen = page.evaluate("window.__qaSeen")
    assert seen["typing"] == 1 and seen["pieces"] >= 2, seen  # typing dots, then the answer piece by piece
    assert expected["quote"] in answer.inner_text()
    markers = answer.locator("[data-qa-citation]")
    assert markers.count() >= 1
    markers.first.click()
    mark = answer.locator("mark[data-qa-highlight]")
    assert mark.text_content() == expected["quote"]
    # Each text gets its own direction: the Arabic passage right to left whatever the question's language.
    direction = "(root, selector) => getComputedStyle(root.querySelector(selector)).direction"
    assert tab.shadow_eval(direction, ".passage") == "rtl"
    assert tab.shadow_eval(direction, "[data-qa-answer-text]") == "rtl"
    assert tab.shadow_eval(direction, ".msg.user .text") == ("rtl" if question == ARABIC else "ltr")
    assert answer.locator(".source-title").text_content() == expected["title"]
    # The live region reads the whole answer out once it is complete.
    assert page.locator("[data-qa-announcer]").text_content() == body["answer"]

    if question == ARABIC and os.environ.get("WIDGET_DOCS_SCREENSHOT") == "1":
        # The question at the top of the conversation, then its answer and source.
        page.set_viewport_size({"width": 1280, "height": 960})
        scroll = "r => { const log = r.querySelector('.log'); log.scrollTop = log.scrollHeight; }"
        tab.shadow_eval(scroll)
        page.screenshot(path=DOCS_SCREENSHOT)
        page.set_viewport_size({"width": 1280, "height": 800})

    with tab.context.expect_page() as opened:
        answer.locator("[data-qa-document-link]").click()
    document = opened.value
    document.wait_for_load_state()
    highlight = document.locator("mark[data-qa-highlight]")
    assert highlight.text_content() == expected["quote"]
    in_view = "m => { const r = m.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    assert highlight.evaluate(in_view) is True and document.evaluate("scrollY") > 0
    assert document.locator("h1").text_content() == expected["title"]
    tab.assert_no_errors()


def test_follow_up_is_sent_with_the_history_and_a_new_conversation_forgets_it(
    tab: Tab, qa_server: Server
) -> None:
    page = tab.page
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/ask/stream") else None)
    page.goto(f"{qa_server.base}/")
    page.locator(f'button[data-qa-ask="{ENGLISH}"]').click()
    tab.wait_answer(0)
    page.locator(f'button[data-qa-ask="{FOLLOW_UP}"]').click()
    second = tab.wait_answer(1)
    first = api_ask(qa_server, ENGLISH)
    expected = api_ask(qa_server, FOLLOW_UP, history=[ENGLISH])
    # A turn that got an answer goes back with it.
    earlier = {"question": ENGLISH, "answer": first["answer"]}
    assert bodies == [{"question": ENGLISH}, {"question": FOLLOW_UP, "history": [earlier]}]
    assert expected["citations"][0]["quote"] in second.inner_text()
    # Both turns stay visible.
    assert page.locator(".msg.user").count() == 2 and tab.answers().count() == 2
    assert CAMERON_SENTENCE in tab.answers().first.inner_text()
    page.locator("[data-qa-new]").click()
    assert tab.answers().count() == 0 and page.locator(".msg.user").count() == 0
    page.locator(f'button[data-qa-ask="{ARABIC}"]').click()
    tab.wait_answer(0)
    assert bodies[-1] == {"question": ARABIC}
    tab.assert_no_errors()


def test_widget_on_an_allowed_origin_works_and_styles_do_not_mix(
    tab: Tab, qa_server: Server, allowed_host: HostPages
) -> None:
    # No data-api: the widget calls the origin it was loaded from.
    url = allowed_host.put("/allowed.html", host_page(f"{qa_server.base}/widget.js", open="true"))
    page = tab.page
    page.goto(url)
    page.locator("[data-qa-input]").fill(ENGLISH)
    page.locator("[data-qa-input]").press("Enter")
    answer = tab.wait_answer(0)
    expected = api_ask(qa_server, ENGLISH)["citations"][0]
    answer.locator("[data-qa-citation]").first.click()
    assert answer.locator("mark[data-qa-highlight]").text_content() == expected["quote"]
    # The page's `* { color: red !important; font-size: 31px !important }` and
    # `button, textarea, mark { display: none }` do not reach into the widget ...
    inside = tab.shadow_eval(
        """r => {
          const text = getComputedStyle(r.querySelector("[data-qa-answer-text]"));
          return [text.color, text.fontSize, text.letterSpacing,
                  getComputedStyle(r.querySelector("[data-qa-input]")).display,
                  getComputedStyle(r.querySelector("mark")).display];
        }"""
    )
    assert inside[:3] == ["rgb(29, 36, 48)", "16px", "normal"]
    assert inside[3] != "none" and inside[4] != "none"
    # ... and the widget's rules (`form { display: flex }`, `h2 { margin: 0 }`, the
    # yellow `mark`) do not reach the page.
    outside = page.evaluate(
        """() => [getComputedStyle(document.getElementById("page-form")).display,
                  getComputedStyle(document.getElementById("page-heading")).marginTop,
                  getComputedStyle(document.getElementById("page-mark")).display]"""
    )
    assert outside[0] == "block" and outside[1] != "0px" and outside[2] == "none"
    tab.assert_no_errors()


def test_widget_on_an_origin_not_allowed_says_so_and_offers_a_retry(
    tab: Tab, qa_server: Server, other_host: HostPages
) -> None:
    url = other_host.put(
        "/other.html", host_page(f"{qa_server.base}/widget.js", api=qa_server.base, open="true")
    )
    page = tab.page
    page.goto(url)
    page.locator("[data-qa-input]").fill(ENGLISH)
    page.locator("[data-qa-send]").click()
    answer = tab.wait_answer(0, state="error")
    message = answer.locator("[data-qa-error]")
    assert message.text_content() == (
        f"Cannot reach the answer service at {qa_server.base}. "
        "It may be down, or this site may not be allowed to use it."
    )
    assert message.get_attribute("role") == "alert"
    assert answer.locator("[data-qa-retry]").is_visible()
    assert any("CORS policy" in error for error in tab.errors), tab.errors
    tab.assert_no_errors(allowed=r"blocked by CORS policy|net::ERR_FAILED")


def test_errors_show_a_message_and_retry_and_nothing_hangs(
    tab: Tab, qa_server: Server, allowed_host: HostPages
) -> None:
    url = allowed_host.put(
        "/flaky.html", host_page(f"{qa_server.base}/widget.js", open="true", timeout="2", lang="en")
    )
    page = tab.page
    calls: list[str] = []
    held: list[Route] = []

    def flaky(route: Route) -> None:
        calls.append(route.request.url)
        if len(calls) == 1:
            route.abort("connectionrefused")  # the service is down
        elif len(calls) == 2:
            held.append(route)  # the service hangs: never answered
        else:
            route.continue_()

    page.route("**/api/ask/stream", flaky)
    page.goto(url)
    page.locator("[data-qa-input]").fill(ARABIC)
    page.locator("[data-qa-input]").press("Enter")
    answer = tab.wait_answer(0, state="error")
    assert "Cannot reach the answer service" in answer.locator("[data-qa-error]").inner_text()
    answer.locator("[data-qa-retry]").click()
    answer.and_(page.locator("[data-qa-state=streaming]")).wait_for()
    tab.wait_answer(0, state="error")  # the client gives up after data-timeout="2" seconds
    assert answer.locator("[data-qa-error]").text_content() == (
        "The answer service did not respond within 2 seconds."
    )
    answer.locator("[data-qa-retry]").click()
    tab.wait_answer(0)
    assert CAMERON_SENTENCE in answer.inner_text() and len(calls) == 3
    # An error answer of the service itself (400) is shown with its message.
    page.locator("[data-qa-input]").fill("س" * 1001)
    page.locator("[data-qa-input]").press("Enter")
    refused = tab.wait_answer(1, state="error")
    assert refused.locator("[data-qa-error]").text_content() == (
        "The service could not answer (error 400): the question is 1001 characters long; the limit is 1000"
    )
    page.unroute_all(behavior="ignoreErrors")
    tab.assert_no_errors(allowed=r"net::ERR_CONNECTION_REFUSED|status of 400 \(Bad Request\)")


def test_an_article_full_of_html_is_shown_as_text_and_runs_nothing(tab: Tab, hostile_server: Server) -> None:
    expected = api_ask(hostile_server, HOSTILE_QUESTION)
    quote = expected["citations"][0]["quote"]
    assert "<img src=x" in quote or "<script>" in quote, quote
    page = tab.page
    page.goto(f"{hostile_server.base}/")
    page.locator("[data-qa-input]").fill(HOSTILE_QUESTION)
    page.locator("[data-qa-input]").press("Enter")
    answer = tab.wait_answer(0)
    answer.locator("[data-qa-citation]").first.click()
    assert answer.locator("mark[data-qa-highlight]").text_content() == quote
    shown = tab.shadow_eval("r => r.querySelector('.log').innerText")
    hostile = ('<img src=x onerror="window.__pwned=1">', "<script>window.__pwned=2</script>")
    for visible in (HOSTILE_QUESTION, *hostile):
        assert visible in shown
    assert answer.locator(".source-title").text_content() == HOSTILE_TITLE
    assert tab.shadow_eval("r => r.querySelectorAll('img, script, b').length") == 0
    with tab.context.expect_page() as opened:
        answer.locator("[data-qa-document-link]").click()
    document = opened.value
    document.wait_for_load_state()
    assert document.locator("h1").text_content() == HOSTILE_TITLE
    assert document.locator("article").text_content() == HOSTILE_TEXT
    assert document.locator("mark[data-qa-highlight]").text_content() == quote
    assert document.evaluate("document.querySelectorAll('img, script, b').length") == 0
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    for opened_page in (page, document):
        assert opened_page.evaluate("typeof window.__pwned") == "undefined"
    tab.assert_no_errors()


def test_the_widget_is_usable_from_the_keyboard_alone(
    tab: Tab, qa_server: Server, allowed_host: HostPages
) -> None:
    url = allowed_host.put(
        "/keyboard.html", host_page(f"{qa_server.base}/widget.js", api=qa_server.base, lang="ar")
    )
    page = tab.page
    page.goto(url)
    page.locator("[data-qa-launcher]").wait_for()
    focused = "() => document.activeElement?.shadowRoot?.activeElement?.getAttributeNames() ?? []"
    for _ in range(5):
        page.keyboard.press("Tab")
        if "data-qa-launcher" in page.evaluate(focused):
            break
    assert "data-qa-launcher" in page.evaluate(focused)
    assert page.locator("[data-qa-launcher]").get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert "data-qa-input" in page.evaluate(focused)  # opening moves the focus to the question
    assert page.get_by_label("سؤالك").count() == 1  # the input is labelled (in Arabic: data-lang="ar")
    assert tab.widget.locator(".root").get_attribute("dir") == "rtl"

    page.keyboard.type("ماذا طلب كاميرون")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("من بوتين؟")
    assert page.locator("[data-qa-input]").input_value() == "ماذا طلب كاميرون\nمن بوتين؟"
    assert tab.answers().count() == 0
    page.keyboard.press("Enter")
    answer = tab.wait_answer(0)
    expected = api_ask(qa_server, "ماذا طلب كاميرون\nمن بوتين؟")
    assert CAMERON_SENTENCE in expected["answer"]
    assert page.locator("[data-qa-input]").input_value() == ""
    live = page.locator("[data-qa-announcer]")
    assert live.get_attribute("aria-live") == "polite"
    assert live.text_content() == expected["answer"]
    assert "data-qa-input" in page.evaluate(focused)

    page.keyboard.press("Shift+Tab")  # back from the input to the answer's last citation marker
    marker = "() => document.activeElement.shadowRoot.activeElement.getAttribute('data-qa-citation')"
    n = page.evaluate(marker)
    assert n == str(len(expected["citations"]))
    page.keyboard.press("Enter")
    quote = expected["citations"][int(n) - 1]["quote"]
    assert answer.locator("mark[data-qa-highlight]").text_content() == quote
    tab.snap("open")
    page.keyboard.press("Escape")
    assert not page.locator("[data-qa-input]").is_visible()
    assert "data-qa-launcher" in page.evaluate(focused)
    assert page.locator("[data-qa-launcher]").get_attribute("aria-expanded") == "false"
    tab.assert_no_errors()


WRITTEN = "Cameron said he would ask Putin to focus Russian air strikes in Syria on the Islamic State"


def test_a_written_answer_shows_its_markers_in_the_text_and_goes_back_with_the_follow_up(
    tab: Tab, sample_index: Path
) -> None:
    def cameron(request: dict[str, Any]) -> Reply:
        return Reply(f"{WRITTEN} [{evidence_number(request, 'سيدعو الرئيس الروسي فلاديمير بوتين')}].")

    with scripted_llm() as llm:
        llm.reply(cameron)
        server = start_qa_server(sample_index, QA_LLM_BASE_URL=llm.base_url, QA_LLM_MODEL="scripted")
        try:
            page = tab.page
            page.goto(f"{server.base}/")
            page.locator("[data-qa-input]").fill(ENGLISH)
            page.locator("[data-qa-input]").press("Enter")
            answer = tab.wait_answer(0)
            text = answer.locator("[data-qa-answer-text]")
            # The marker stands where the model wrote [1]; no "[1]" is left in the text.
            assert text.inner_text().strip() == f"{WRITTEN} 1."
            assert text.locator("[data-qa-citation]").count() == 1
            marker = text.locator('[data-qa-citation="1"]')
            assert marker.count() == 1
            marker.click()
            assert answer.locator("mark[data-qa-highlight]").text_content() == CAMERON_SENTENCE
            written = page.locator("[data-qa-announcer]").text_content() or ""
            assert WRITTEN in written

            llm.reply(Reply("NO_ANSWER"))
            page.locator("[data-qa-input]").fill(FOLLOW_UP)
            page.locator("[data-qa-input]").press("Enter")
            tab.wait_answer(1)
            assert len(llm.requests) == 2
            messages = llm.requests[-1]["messages"]
            pair = [{"role": "user", "content": ENGLISH}, {"role": "assistant", "content": written.strip()}]
            assert [{k: m[k] for k in ("role", "content")} for m in messages[1:3]] == pair
        finally:
            server.stop()
    tab.assert_no_errors()


def ask_scoped_widget(
    tab: Tab, server: Server, host: HostPages, filters: str, question: str
) -> tuple[Locator, list[Any]]:
    """Open a page whose widget has ``data-filters=filters`` and ask ``question``: the
    answer (done or failed), and the bodies the widget posted to the service."""
    url = host.put(
        f"/scoped-{len(host.pages)}.html", host_page(f"{server.base}/widget.js", filters=filters, open="true")
    )
    posted: list[Any] = []
    tab.page.on(
        "request", lambda r: posted.append(r.post_data_json) if r.url.endswith("/api/ask/stream") else None
    )
    tab.page.goto(url)
    tab.page.locator("[data-qa-input]").fill(question)
    tab.page.locator("[data-qa-input]").press("Enter")
    answer = tab.answers().nth(0)
    answer.and_(tab.page.locator("[data-qa-state=done], [data-qa-state=error]")).wait_for()
    return answer, posted


def cited_documents(answer: Locator) -> list[str]:
    """The documents of an answer's citations, each opened in turn: by its link to the article."""
    documents = []
    markers = answer.locator("[data-qa-citation]")
    for n in range(markers.count()):
        markers.nth(n).click()
        link = answer.locator("[data-qa-document-link]").last.get_attribute("href") or ""
        documents.append(link.split("/documents/")[1].split("?")[0])
    return documents


def test_a_widget_scoped_by_data_filters_answers_only_from_its_section(
    tab: Tab, sectioned_server: Server, allowed_host: HostPages
) -> None:
    # Unscoped, the question is answered from the sports report ...
    unscoped = api_ask(sectioned_server, SPORT_QUESTION)
    assert unscoped["found"] and {c["doc_id"] for c in unscoped["citations"]} == {SPORT_ID}
    # ... and so it is by a widget scoped to sport,
    sport, posted = ask_scoped_widget(
        tab, sectioned_server, allowed_host, '{"meta": {"section": ["sport"]}}', SPORT_QUESTION
    )
    assert sport.get_attribute("data-qa-state") == "done"
    assert posted == [{"question": SPORT_QUESTION, "filters": {"meta": {"section": ["sport"]}}}]
    assert set(cited_documents(sport)) == {SPORT_ID}
    assert "أردا توران" in (sport.locator("[data-qa-answer-text]").text_content() or "")
    # ... but a widget scoped to world news never sees it: its passages and any
    # citation come from the summit's article alone.
    world, _ = ask_scoped_widget(
        tab, sectioned_server, allowed_host, '{"meta": {"section": ["world"]}}', SPORT_QUESTION
    )
    assert world.get_attribute("data-qa-state") == "done"
    assert "in 1 article" in (world.locator(".status").text_content() or "")
    assert set(cited_documents(world)) <= {SAMPLE_DOC_ID}
    assert "أردا" not in (world.locator("[data-qa-answer-text]").text_content() or "")
    # The same request through the API retrieves from the summit's article alone.
    scoped = api_ask(sectioned_server, SPORT_QUESTION, filters={"meta": {"section": ["world"]}})
    assert {p["doc_id"] for p in scoped["passages"]} == {SAMPLE_DOC_ID}
    tab.assert_no_errors()


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            '{"meta": {"section": ["sport"]',
            "This chat is set up wrongly and cannot answer: data-filters is not JSON",
        ),
        ('["sport"]', "This chat is set up wrongly and cannot answer: data-filters is not a JSON object"),
        ('{"section": ["sport"]}', "The service could not answer (error 400): "),
    ],
)
def test_a_widget_with_bad_data_filters_says_so_and_never_asks_the_whole_archive(
    tab: Tab, sectioned_server: Server, allowed_host: HostPages, filters: str, message: str
) -> None:
    answer, posted = ask_scoped_widget(tab, sectioned_server, allowed_host, filters, SPORT_QUESTION)
    assert answer.get_attribute("data-qa-state") == "error"
    assert (answer.locator("[data-qa-error]").text_content() or "").startswith(message)
    assert answer.locator("[data-qa-retry]").is_visible()
    if "service" in message:  # sent as given: the service refuses it, naming the field
        assert posted == [{"question": SPORT_QUESTION, "filters": json.loads(filters)}]
        assert "unknown field `section`" in (answer.locator("[data-qa-error]").text_content() or "")
        tab.assert_no_errors(allowed=r"status of 400")
    else:  # not sent at all
        assert posted == []
        tab.assert_no_errors(allowed=r"^console error: QA widget: data-filters is not")


def test_history_questions_are_cut_by_code_points_and_never_split_an_emoji(
    tab: Tab, qa_server: Server
) -> None:
    # 499 characters, then an emoji (two UTF-16 units: the 500th and 501st), then more:
    # cut at 500 UTF-16 units, the emoji would be split and its lone half refused (400).
    head = "What did Cameron ask Putin? "
    first = head + "a" * (499 - len(head)) + "\U0001f600" + " and what else did they say?"
    assert len(first) < 1000 and len(first.encode("utf-16-le")) // 2 > 500
    cut = first[:499] + "\U0001f600"  # the first 500 code points
    follow_ups = [FOLLOW_UP, "Where did they meet?", "When did they meet?"]
    page = tab.page
    bodies: list[Any] = []
    statuses: list[int] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/ask/stream") else None)
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/ask/stream") else None)
    page.goto(f"{qa_server.base}/")
    page.locator("[data-qa-input]").wait_for()
    for number, question in enumerate([first, *follow_ups]):
        page.locator("[data-qa-input]").fill(question)
        page.locator("[data-qa-input]").press("Enter")
        answer = tab.answers().nth(number)
        answer.and_(page.locator("[data-qa-state=done], [data-qa-state=error]")).wait_for()
        assert answer.get_attribute("data-qa-state") == "done", answer.inner_text()
        assert answer.locator("[data-qa-error]").count() == 0
    assert statuses == [200] * 4
    assert [body["question"] for body in bodies] == [first, *follow_ups]
    for body in bodies[1:]:
        earlier = body["history"][0]
        assert (earlier["question"] if isinstance(earlier, dict) else earlier) == cut
    # Nothing the widget sends has a lone surrogate, even a question given to QAWidget.ask().
    page.evaluate("() => window.QAWidget.ask('Putin \\ud83d and Cameron')")
    tab.wait_answer(4)
    assert statuses == [200] * 5
    assert bodies[-1]["question"] == "Putin \ufffd and Cameron"
    sent = json.dumps(bodies, ensure_ascii=False)
    assert not re.search("[\ud800-\udfff]", sent), "a lone surrogate was sent"
    tab.assert_no_errors()


def test_a_citation_of_a_syndicated_story_lists_its_other_copies(tab: Tab, copies_server: Server) -> None:
    body = api_ask(copies_server, ARABIC)
    citation = body["citations"][0]
    copies = {copy["doc_id"]: copy["url"] for copy in citation["also_in"]}
    assert len(copies) == 2 and citation["doc_id"] not in copies
    assert {p["doc_id"] for p in body["passages"]} == {citation["doc_id"]}  # one copy answers for all
    page = tab.page
    page.goto(f"{copies_server.base}/")
    page.locator("[data-qa-input]").fill(ARABIC)
    page.locator("[data-qa-input]").press("Enter")
    answer = tab.wait_answer(0)
    line = answer.locator(f'[data-qa-also-in="{citation["n"]}"]')
    # The label in the answer's language (Arabic), then a link to each other copy's address.
    assert "ورد أيضًا في:" in (line.text_content() or "")
    links = line.locator("a[data-qa-copy]")
    assert links.count() == 2
    shown = {links.nth(i).get_attribute("data-qa-copy"): links.nth(i).get_attribute("href") for i in range(2)}
    assert shown == copies
    tab.assert_no_errors()


MUTED = "rgb(91, 101, 116)"  # the widget's --muted
INK = "rgb(29, 36, 48)"  # its --ink, an answer's text
TEXT_COLOR = "(root, selector) => getComputedStyle(root.querySelector(selector)).color"


def ask_in_widget(tab: Tab, url: str, question: str) -> Locator:
    """Open ``url`` (a page with the widget open), ask ``question``, and wait for the answer."""
    tab.page.goto(url)
    tab.page.locator("[data-qa-input]").fill(question)
    tab.page.locator("[data-qa-input]").press("Enter")
    return tab.wait_answer(0)


@pytest.mark.parametrize(
    ("question", "widget_lang"), [(ARABIC, "en"), (ENGLISH, "ar")], ids=["arabic", "english-on-arabic-widget"]
)
def test_a_related_answer_shows_that_it_may_not_answer_and_lists_the_passages(
    tab: Tab, banded_server: Callable[[str], Server], allowed_host: HostPages, question: str, widget_lang: str
) -> None:
    server = banded_server("related")
    body = api_ask(server, question)
    assert body["outcome"] == "related" and body["found"] is False and body["citations"] == []
    passages = body["passages"]
    assert len(passages) == 5
    arabic = question == ARABIC
    url = allowed_host.put(
        f"/related-{widget_lang}.html",
        host_page(f"{server.base}/widget.js", api=server.base, lang=widget_lang, open="true"),
    )
    answer = ask_in_widget(tab, url, question)
    assert answer.get_attribute("data-qa-outcome") == "related"
    # The line in the question's language (the service's own words), whatever the widget's.
    line = answer.locator("[data-qa-answer-text]")
    assert line.text_content() == (RELATED_AR if arabic else RELATED)
    # Nothing is presented as the answer: no citation marker, no hint to click one, and
    # the line is in the quiet colour, not an answer's.
    assert answer.locator("[data-qa-citation]").count() == 0 and answer.locator(".hint").count() == 0
    assert tab.shadow_eval(TEXT_COLOR, "[data-qa-answer-text]") == MUTED
    listed = answer.locator("[data-qa-related-passages]")
    assert listed.is_visible() and listed.get_attribute("role") == "list"
    assert listed.get_attribute("aria-label") == ("أقرب المقاطع" if arabic else "The closest passages")
    assert line.locator("[data-qa-passage]").count() == 0  # the passages are not in the answer's text
    direction = "(root, selector) => getComputedStyle(root.querySelector(selector)).direction"
    assert tab.shadow_eval(direction, "[data-qa-related-passages]") == ("rtl" if arabic else "ltr")
    assert tab.shadow_eval(direction, ".related-excerpt") == "rtl"  # the Arabic passages, either way
    items = listed.locator("[data-qa-passage]")
    assert items.count() == len(passages)
    for n, passage in enumerate(passages):
        item = items.nth(n)
        assert item.locator(".related-title").text_content() == passage["title"]
        assert item.locator(".related-title").is_visible() and item.locator(".related-excerpt").is_visible()
        shown = (item.locator(".related-excerpt").text_content() or "").removesuffix("…")
        assert len(shown) > 40 and " ".join(passage["text"].split()).startswith(shown)
        href = item.locator("[data-qa-passage-link]").get_attribute("href") or ""
        assert href == (
            f"{server.base}/documents/{passage['doc_id']}?start={passage['start']}&end={passage['end']}#qa-highlight"
        )
    # The list is taller than the conversation: the line that says what it is stays in view.
    in_view = """root => {
      const log = root.querySelector(".log").getBoundingClientRect();
      const line = root.querySelector("[data-qa-answer] [data-qa-answer-text]").getBoundingClientRect();
      return line.top >= log.top && line.bottom <= log.bottom;
    }"""
    assert tab.shadow_eval(in_view) is True
    # The live region says the line and how many passages follow.
    announced = tab.page.locator("[data-qa-announcer]").text_content() or ""
    assert announced.startswith(RELATED_AR if arabic else RELATED) and "5" in announced
    # A passage opens as a source does: its article, the passage highlighted.
    with tab.context.expect_page() as opened:
        items.first.locator("[data-qa-passage-link]").click()
    document = opened.value
    document.wait_for_load_state()
    assert document.locator("mark[data-qa-highlight]").text_content() == passages[0]["text"]
    tab.assert_no_errors()


def test_an_answered_answer_shows_its_citations_and_no_list_of_passages(
    tab: Tab, banded_server: Callable[[str], Server]
) -> None:
    server = banded_server("answered")
    body = api_ask(server, ENGLISH)
    assert body["outcome"] == "answered" and body["citations"]
    answer = ask_in_widget(tab, f"{server.base}/", ENGLISH)
    assert answer.get_attribute("data-qa-outcome") == "answered"
    assert CAMERON_SENTENCE in (answer.locator("[data-qa-answer-text]").text_content() or "")
    assert answer.locator("[data-qa-citation]").count() == len(body["citations"])
    assert answer.locator(".hint").is_visible()
    assert answer.locator("[data-qa-related-passages]").count() == 0
    assert tab.shadow_eval(TEXT_COLOR, "[data-qa-answer-text]") == INK
    answer.locator("[data-qa-citation]").first.click()
    assert answer.locator("mark[data-qa-highlight]").text_content() == body["citations"][0]["quote"]
    tab.assert_no_errors()


def test_a_not_found_answer_shows_the_refusal_alone(tab: Tab, banded_server: Callable[[str], Server]) -> None:
    server = banded_server("not_found")
    assert api_ask(server, ENGLISH)["outcome"] == "not_found"
    answer = ask_in_widget(tab, f"{server.base}/", ENGLISH)
    assert answer.get_attribute("data-qa-outcome") == "not_found"
    assert answer.locator("[data-qa-answer-text]").text_content() == NO_ANSWER
    assert answer.locator("[data-qa-citation]").count() == 0
    assert answer.locator("[data-qa-related-passages], [data-qa-passage]").count() == 0
    tab.assert_no_errors()
