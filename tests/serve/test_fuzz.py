"""schemathesis against the live OpenAPI schema: no server error, no response off-schema."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import start_server

CONFIG = Path(__file__).parents[1] / "schemathesis.toml"
HOOKS = Path(__file__).parents[1] / "schemathesis_hooks.py"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(sample_index: Path) -> None:
    server = start_server(sample_index, QA_LIMITS_RATE_LIMIT_PER_MINUTE="0")
    try:
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
                "run", f"{server.base}/schema/openapi.json",
                "--checks", "all", "--max-examples", "40", "--seed", "20261129", "--no-color",
            ],
            capture_output=True, text=True, timeout=900,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failure" not in result.stdout.lower().split("summary")[-1]
