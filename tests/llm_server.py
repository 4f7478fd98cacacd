"""A real ``python -m qa.llm.local_server`` server on a loopback port, for tests that need an
OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .conftest import REPO, free_port

START_TIMEOUT_S = 120.0  # SmolLM2 loads in about a second; a big --model takes longer
STOP_TIMEOUT_S = 10.0


@contextmanager
def local_llm_server(model: Path | None = None) -> Iterator[str]:
    """Start the server on ``model`` (default: the bundled SmolLM2), yield its base URL
    ``http://127.0.0.1:PORT/v1`` once ``/health`` answers 200, and stop it on exit."""
    port = free_port()
    command = [sys.executable, "-m", "qa.llm.local_server", "--host", "127.0.0.1", "--port", str(port)]
    if model is not None:
        command += ["--model", str(model)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    # Draining the pipe keeps llama.cpp's per-request log from filling it and blocking the server.
    threading.Thread(target=lambda: log.extend(process.stdout or []), daemon=True).start()
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                time.sleep(0.2)  # let the reader thread collect the last lines
                raise AssertionError(f"qa.llm.local_server exited with {process.returncode}:\n{''.join(log)}")
            try:
                # 503 while the model loads, 200 once it serves.
                if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"qa.llm.local_server not ready within {START_TIMEOUT_S:.0f} s:\n{''.join(log)}"
                )
            time.sleep(0.2)
        yield f"{root}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
