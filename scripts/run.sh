#!/usr/bin/env bash
# Install into .venv if needed, build the sample index if missing, and serve on
# http://127.0.0.1:8000. Extra arguments go to `qa serve` (e.g. --port 8123 --index DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""

if [[ ! -f indexes/sample/manifest.json ]]; then
    echo "==> building the sample index from corpus/" >&2
    .venv/bin/qa reindex --source corpus --index indexes/sample
fi
exec .venv/bin/qa serve "$@"
