# Sourced by run.sh and test.sh: make .venv and install the project into it when
# it is missing or pyproject.toml changed since the last install.
# Usage: ensure_venv ""      (runtime)   or   ensure_venv "dev"   (with dev extras)

ensure_venv() {
    local extras=$1
    local python=${QA_PYTHON:-python3}
    local stamp=".venv/.installed${extras:+-$extras}"
    local want
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    if [[ ! -x .venv/bin/python ]]; then
        echo "==> creating .venv with $($python --version)" >&2
        "$python" -m venv .venv
    fi
    echo "==> installing the project into .venv${extras:+ (with $extras extras)}" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --editable ".${extras:+[$extras]}"
    rm -f .venv/.installed*
    echo "$want" > "$stamp"
}
