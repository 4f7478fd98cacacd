"""`python -m qa.llm.local_server`: a real llama.cpp server on the bundled SmolLM2, over HTTP."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_TOKEN, REPO, SAMPLE_ARTICLE, start_server
from tests.llm_server import local_llm_server

MESSAGES = [{"role": "user", "content": "ما هي عاصمة مصر؟"}]


@pytest.fixture(scope="module")
def llm() -> Iterator[httpx.Client]:
    with local_llm_server() as base, httpx.Client(base_url=base, timeout=60) as client:
        yield client


def test_chat_completion(llm: httpx.Client) -> None:
    model = llm.get("/models").json()["data"][0]["id"]
    response = llm.post(
        "/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": 16, "temperature": 0, "stream": False},
    )
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert response.json()["model"] == model


def test_streamed_chat_completion(llm: httpx.Client) -> None:
    body = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0, "stream": True}
    # The server drops the connection after a stream without saying so (see qa.llm.local_server);
    # without this header the pooled connection breaks the next request about half the time.
    with llm.stream("POST", "/chat/completions", json=body, headers={"Connection": "close"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    choices = [json.loads(event)["choices"][0] for event in events[:-1]]
    assert "".join(c["delta"].get("content") or "" for c in choices).strip()
    assert choices[-1]["finish_reason"] in ("stop", "length")
    assert llm.get("/models").status_code == 200  # the client is still usable


def test_missing_model_file_exits_1_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qa.llm.local_server", "--model", "/nonexistent.gguf"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot read model file /nonexistent.gguf" in result.stderr


def test_the_generated_path_end_to_end_against_the_real_model(sample_index: Path) -> None:
    """`qa serve` with llm.base_url at a real llama.cpp server: the mechanism, not the
    wisdom of a 135M model. Every shown sentence cites a real span, every removed one
    is reported with its reason, and a model that fails verification or is cut off
    leaves the extractive answer or a refusal, never an error."""
    with local_llm_server() as base:
        server = start_server(
            sample_index,
            QA_LLM_BASE_URL=base,
            QA_LLM_MODEL="SmolLM2-135M-Instruct.Q4_1",
            QA_SERVER_ADMIN_TOKEN=ADMIN_TOKEN,
            QA_SERVER_REMOVED_TEXT="true",
        )
        try:
            with httpx.Client(base_url=server.base, timeout=60) as client:
                question = {"question": "What did Cameron ask Putin?"}
                body = client.post("/api/ask", json=question).json()
                events = client.post("/api/ask/stream", json=question).text
                health = client.get("/healthz", headers=ADMIN).json()["llm"]
        finally:
            server.stop()
    text = SAMPLE_ARTICLE.read_text("utf-8")
    assert body["mode"] in ("generated", "extractive")
    if body["mode"] == "generated":
        assert body["timings"]["model_ms"] > 0 and body["llm_error"] is None
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
        assert cited == {c["n"] for c in body["citations"]}
    else:
        assert body["llm_error"], "an extractive answer with a model configured says why"
    for citation in body["citations"]:
        assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert all(item["reason"] and item["text"] for item in body["removed"])
    assert "event: done" in events
    assert health["configured"] is True
    assert health["last_success"] or health["last_error"]
