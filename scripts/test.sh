#!/usr/bin/env bash
# Install into .venv with the dev extras if needed (and Chromium, for the widget's
# browser tests), then lint, type-check and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv "dev"

echo "==> ruff" >&2
.venv/bin/ruff check qa tests scripts
echo "==> mypy" >&2
.venv/bin/mypy
ensure_chromium
echo "==> pytest" >&2
exec .venv/bin/pytest "$@"
