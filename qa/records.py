"""Records that cross module boundaries. No I/O here.

Every ``start``/``end`` pair is a half-open range of Python ``str`` indices (code
points) into the stored article text, which is exactly the source text.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum

from qa.types import Vectors

# An article's metadata: each key (e.g. "section", "source") with one or more values.
Meta = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Article:
    doc_id: str
    title: str
    text: str
    url: str | None = None
    # An ISO 8601 date or date-time, as the source gives it (checked when read).
    published: str | None = None
    meta: Meta = field(default_factory=dict)


class SentenceKind(StrEnum):
    SENTENCE = "sentence"
    HEADING = "heading"


@dataclass(frozen=True)
class Sentence:
    """One sentence (or heading line) of an article, by its character range."""

    start: int
    end: int
    kind: SentenceKind
    paragraph: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences of one article, embedded as one passage.

    ``context`` is what is embedded in front of the chunk without being part of its
    range: the article's title, and the heading the chunk sits under when that
    heading is not inside the chunk itself.
    """

    doc_id: str
    start: int
    end: int
    context: str = ""


@dataclass(frozen=True)
class Filters:
    """Only passages of the articles these allow (``qa.search.filters`` parses them)."""

    published_from: datetime.date | None = None
    published_to: datetime.date | None = None
    doc_ids: tuple[str, ...] = ()
    meta: Meta = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.published_from or self.published_to or self.doc_ids or self.meta)


@dataclass(frozen=True)
class PassageSentence:
    """A sentence (or heading line) of a retrieved passage, as answering reads it."""

    sentence_id: int
    start: int
    end: int
    kind: SentenceKind
    # Its dense similarity to the query retrieved for.
    similarity: float
    # Its stored unit vector (embedded under its article's title): what the verifier of
    # generated answers compares a claim citing it with.
    vector: Vectors = field(compare=False, repr=False)


@dataclass(frozen=True)
class CopyRef:
    """Another copy of a syndicated story (the same article run by another source),
    named where one copy answers for all (``also_in``)."""

    doc_id: str
    title: str
    url: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its text and relevance score, and what answering needs
    of its article and sentences, so that answering never reads the index.

    The first seven fields and ``also_in`` are sent to clients, by the HTTP API and
    ``qa ask --json`` alike: ``published`` and ``sentences`` are for answering.
    """

    chunk_id: int
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    # The article's publication date, as the source gives it.
    published: str | None = None
    # The chunk's sentences and headings, in text order.
    sentences: tuple[PassageSentence, ...] = ()
    # The other copies of its article (qa.ingest.copies) among the candidates retrieved,
    # whose passages this one stands for, best first.
    also_in: tuple[CopyRef, ...] = ()


@dataclass(frozen=True)
class Citation:
    """A quote of an article: ``document.text[start:end] == quote`` always."""

    n: int
    doc_id: str
    title: str
    start: int
    end: int
    quote: str
    score: float
    # The other copies of the quoted article that hold the same story (its passage's).
    also_in: tuple[CopyRef, ...] = ()


class Outcome(StrEnum):
    """What the service can say about a question: the three answers a reader sees."""

    # The archive states the answer: the quotes (or written sentences) and their citations.
    ANSWERED = "answered"
    # The archive has passages on the subject, but the service is not sure they answer:
    # shown as the closest passages, never as the answer.
    RELATED = "related"
    # Nothing in the archive is close enough to show.
    NOT_FOUND = "not_found"


class AnswerMode(StrEnum):
    """How an answer was made: the two names used from the API down to the modules."""

    # Quoted sentences of the articles (the default, and the fallback).
    EXTRACTIVE = "extractive"
    # Written by a model, every sentence verified against the spans it cites.
    GENERATED = "generated"


@dataclass(frozen=True)
class RemovedSentence:
    """A sentence of a model's answer that failed verification and was not shown.

    Its ``text`` is None where it is withheld: the HTTP API sends it only to admin
    requests or with ``server.removed_text`` (a sentence the verifier threw out may
    be false, and an API client could show it)."""

    text: str | None
    reason: str


@dataclass(frozen=True)
class Timings:
    """Where a written answer's time went, in milliseconds."""

    # Evidence, token budget and prompt.
    prompt_ms: float
    # The model's own time, from the request to its last token.
    model_ms: float
    # Splitting and checking the answer's sentences.
    verify_ms: float


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation; ``answer`` may be empty."""

    question: str
    answer: str = ""


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    found: bool
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    mode: AnswerMode = AnswerMode.EXTRACTIVE
    removed: tuple[RemovedSentence, ...] = ()
    # Why a written answer was not given, when a model is configured.
    llm_error: str | None = None
    timings: Timings | None = None
    # How likely the answer is right, in [0, 1] (qa.answer.confidence); shown also when
    # the answer is a refusal.
    confidence: float = 0.0
    # ``found`` is ``outcome is ANSWERED``: an answer made with found=True is answered,
    # one made with found=False is not_found unless it says related.
    outcome: Outcome = Outcome.NOT_FOUND

    def __post_init__(self) -> None:
        if self.found and self.outcome is not Outcome.ANSWERED:
            object.__setattr__(self, "outcome", Outcome.ANSWERED)
        elif not self.found and self.outcome is Outcome.ANSWERED:
            raise ValueError("an answer that is not found cannot be answered")


@dataclass(frozen=True)
class AnswerPiece:
    """A verified sentence of a written answer, streamed before the answer is complete."""

    text: str


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as one version serves it (``qa.store.layout``): its chunk and sentence
    ids are its rows plus its bases, unique across every version of an index."""

    name: str
    chunk_base: int
    sentence_base: int
    documents: int
    chunks: int
    sentences: int
    # Documents of the segment that a later reindex replaced or removed.
    deleted_documents: int
    # "flat" or "ivf", and the FAISS factory string of its chunk vectors.
    kind: str
    factory: str
    bytes: int
    # The digest of each of its files, by its path in the segment's folder
    # (``chunks.lex/rows.npy``), checked when the segment is opened (qa.store.segment_reader).
    digests: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Manifest:
    """What an index version was built with and holds; stored as ``manifest.json``.

    ``documents``, ``chunks`` and ``sentences`` count what is served, deleted rows left out.
    """

    format_version: int
    model: str
    dimension: int
    max_tokens: int
    overlap_tokens: int
    documents: int
    chunks: int
    sentences: int
    built_at: str
    code_version: str
    version: str
    source_digest: str
    segments: tuple[SegmentInfo, ...] = ()
    # The bases the next new segment takes.
    next_chunk_id: int = 0
    next_sentence_id: int = 0
    # The average token counts of chunks and sentences that BM25 weighs lengths against,
    # set by the first segment and inherited by every later one (qa.store.lexical).
    average_lengths: tuple[float, float] | None = None
    # How the chunk and sentence vectors were made (embedding.vectors); indexes of
    # before the setting embedded both.
    vectors: str = "separate"
