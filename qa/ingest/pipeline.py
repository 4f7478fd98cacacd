"""The reindex pipeline: sources -> sentences -> chunks -> embeddings -> index.

Used by ``qa reindex``, ``scripts/reindex.py`` and ``qa eval``; never imported by
the service. Reindexing is incremental: a document whose content hash is in the
published version stays in its segment untouched; new and changed documents are
embedded into one new segment, and changed and removed ones are marked deleted in
the old. A change of model, dimension, chunking or index format makes every old
embedding unusable and forces a full rebuild, which the summary says. The new
version is written beside the served one under the build lock and published in one
atomic step; then, if a tier of segments is full, they merge and the merge is
published the same way (see ``qa.store.index``).

Nothing is lost silently:

- Skipped is not removed. A skipped JSONL line's id is usually unknowable, so while
  any file or line of the source is skipped, a run removes no served article: those
  it did not read are kept as they are (``kept_unread`` in the summary, and a line on
  stderr). A full rebuild cannot keep them (their embeddings are of another model or
  chunking), so with skipped input it refuses to drop any, unless ``allow_removals``.
- A run that would remove more than ``reindex.max_removed_share`` of the served
  articles refuses before embedding, unless ``allow_removals`` (``qa reindex
  --allow-removals``); nothing is published.
- The version served when the run began stays on disk through the run's last
  publish (the update's, then each merge's) and after it, beside the newest ones.
- Before embedding, the run estimates the bytes the new segment (and the checkpoints)
  need and refuses when the disk clearly has less; a full disk while writing is one
  :class:`DiskFullError` and leaves the served version in place.
- A run killed or failed after hours of embedding resumes: what it embedded is kept in
  checkpoints (``qa.ingest.checkpoints``) every ``reindex.checkpoint_every`` documents
  or ``reindex.checkpoint_seconds``, and the next run restores those documents instead
  of embedding them again (``resumed`` in the summary). A resumed run publishes the
  same documents, in the same order, with the same vectors, as one never interrupted;
  the checkpoints go once the update is published.

``qa reindex`` turns a run with skipped input into exit status 3 (published, but input
was skipped) unless ``--allow-skips``; this module only counts them.

Cutting and embedding the new and changed articles is the one stage that can run
elsewhere: an :class:`IndexingEngine` turns articles into indexed documents, in this
process (``qa.ingest.engines.local``) or on a Ray cluster (``qa.ingest.engines.ray``),
as ``reindex.engine`` says (``qa.ingest.engines.registry.open_engine``); every stage
before and after it is the same for both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from qa import __version__
from qa.config import Settings
from qa.embed.base import Embedder
from qa.errors import DiskFullError, IndexUnavailableError, RemovalRefusedError, SourceError
from qa.ingest.checkpoints import Checkpoints, discard_checkpoints
from qa.ingest.collect import Collected, collect
from qa.ingest.copies import CopyGrouper
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.engines.local import LocalEngine
from qa.ingest.indexed import content_hash, indexed_document, reindexed_document
from qa.ingest.sources import read_articles
from qa.ingest.web.crawl import CrawlSummary
from qa.records import Article, Manifest
from qa.store.index import Index, load_index, read_manifest
from qa.store.layout import FORMAT_VERSION
from qa.store.segment_writer import IndexedDocument
from qa.store.versions import (
    BuildInfo,
    format_bytes,
    free_bytes,
    index_lock,
    merges_due,
    publish_merge,
    publish_update,
    versions_dir,
)


@dataclass(frozen=True)
class BuildSummary:
    index: str
    version: str
    documents: int
    chunks: int
    sentences: int
    added: int
    updated: int
    removed: int
    unchanged: int
    chunks_embedded: int
    # Chunks and sentences embedded, and how many a second the update took them in.
    texts_embedded: int
    texts_per_second: float
    # Documents restored from the checkpoints of an interrupted run, not embedded again
    # (nor counted in chunks_embedded and texts_embedded).
    resumed: int
    skipped: int
    # Served articles not in the readable source, kept because input was skipped.
    kept_unread: int
    # Segments of the published version, and merges made after the update.
    segments: int
    merges: int
    # Why every document was embedded again, when the previous version could not be reused.
    full_rebuild: str | None
    # Where articles were cut and embedded ("local" or "ray"), by how many embedders.
    engine: str
    actors: int
    seconds: float
    # What the crawl of the web sources did, when there were any.
    crawl: CrawlSummary | None = None


# What a new segment takes on disk, estimated from the articles to embed before any
# is: about one text (a chunk or a sentence) every 140 characters, each vector about
# 3 bytes a dimension (float16 sentences; float32 chunks, a quarter of the texts,
# held twice while the segment is finished), the text stored and posted about twice
# (measured on the dev corpus). Rounded down, so that a refusal means clearly too
# little; a disk that fills anyway is caught while writing.
CHARS_PER_TEXT = 150
VECTOR_BYTES_PER_DIMENSION = 3
TEXT_COPIES = 2
# The checkpoints hold a float32 copy of every vector embedded until the update is published.
CHECKPOINT_BYTES_PER_DIMENSION = 4


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0
    texts_embedded: int = 0
    resumed: int = 0


def build_index(
    source: Path | str | Sequence[Path | str],
    index_path: Path,
    settings: Settings,
    engine: IndexingEngine | Embedder,
    *,
    strict: bool = False,
    progress: bool | None = None,
    allow_removals: bool = False,
    publish_as_you_go: bool = False,
) -> BuildSummary:
    """Index the articles of ``source`` (one source or several: folders, files, URLs;
    see :mod:`qa.ingest.collect`) into a new version published at ``index_path``,
    cutting and embedding with ``engine`` (an embedder: this process).

    All sources are read and checked (web sources crawled) before anything is
    embedded, under the build lock, which also makes the crawl state one writer's;
    bad files and lines are reported on stderr and skipped, or fail the run with
    ``strict``.
    Served articles the source lacks are removed by the rules of the module docstring:
    none while input is skipped, and no more than ``reindex.max_removed_share`` of
    them unless ``allow_removals`` (else :class:`RemovalRefusedError`).
    What an interrupted run of the same build embedded is restored from its checkpoints,
    not embedded again (``qa.ingest.checkpoints``). With ``publish_as_you_go`` every
    ``reindex.checkpoint_every`` documents are published as an update of their own, so
    that a first build answers from its first articles on.
    """
    started = time.perf_counter()
    if not isinstance(engine, IndexingEngine):
        engine = LocalEngine(engine, settings.chunking, settings.embedding.vectors)
    sources = [source] if isinstance(source, Path | str) else list(source)
    info = _build_info(settings, engine)
    counts = _Counts()
    show = sys.stderr.isatty() if progress is None else progress
    with index_lock(index_path):
        report = collect(sources, settings, index_path=index_path, strict=strict, progress=show)
        for problem in report.problems:
            print(f"skipped {problem}", file=sys.stderr)
        if report.crawl is not None:
            for problem in report.crawl.problems:
                print(f"not indexed {problem}", file=sys.stderr)
        # The version served now outlives every publish of this run: a run that goes
        # wrong leaves a version from before it on disk to go back to.
        keep = (index_path.resolve().name,) if index_path.exists() else ()
        previous, full_rebuild = _reusable_version(index_path, info, settings)
        hashes = previous.content_hashes() if previous is not None else {}
        changed = [a for a in report.articles if hashes.get(a.doc_id) != content_hash(a)]
        counts.unchanged = len(report.articles) - len(changed)
        served = hashes.keys() if previous is not None else _served_ids(index_path, settings)
        removed, kept_unread = _removals(
            index_path,
            served - {article.doc_id for article in report.articles},
            served=len(served),
            skipped=len(report.problems),
            reusable=previous is not None,
            max_share=settings.reindex.max_removed_share,
            allow=allow_removals,
        )
        if kept_unread:
            print(
                f"kept {len(kept_unread)} served articles that are not in the readable source: "
                f"{len(report.problems)} files or lines were skipped, and nothing is removed while "
                "input is skipped (fix them, or find them with --strict)",
                file=sys.stderr,
            )
        if not report.articles and previous is None:
            raise SourceError("no article could be read from the sources; nothing was published")
        digest = source_digest(report.articles)
        if previous is not None and not changed and not removed and previous.manifest.source_digest == digest:
            # Nothing to publish (a watch round over an unchanged site): the served
            # version stays, rather than a new one of the same content.
            print("no change: the served version stays", file=sys.stderr)
            # Whatever an interrupted run checkpointed is served already, or gone from the source.
            discard_checkpoints(index_path)
            return _summary(index_path, previous.manifest, counts, 0.0, report, removed, kept_unread,
                            full_rebuild, engine, 0, started)  # fmt: skip
        if publish_as_you_go and full_rebuild and served:
            raise RemovalRefusedError(
                f"{index_path}: this is a full rebuild ({full_rebuild}), and publishing as it goes "
                f"would serve only part of the {len(served)} served articles until it ends; nothing "
                "was published. Run it without --publish-as-you-go"
            )
        resume = _resume(index_path, info, settings, changed)
        _check_space(index_path, changed, info.dimension, resume.to_embed)
        embedding_started = time.perf_counter()
        try:
            # Starting at the restored: the bar's rate and ETA are of what is left to embed.
            with tqdm(total=len(changed), initial=resume.restored, desc="indexing", unit="doc",
                      disable=not show, file=sys.stderr) as bar:  # fmt: skip
                if resume.restored and resume.to_embed:
                    engine.remember(_restored(changed, resume))
                fresh = engine.documents(resume.to_embed) if resume.to_embed else iter(())
                documents = _grouped(
                    _in_run_order(changed, resume, fresh, hashes, counts, bar),
                    settings,
                    previous,
                    run=changed,
                    removed=removed,
                )
                if publish_as_you_go:
                    manifest, merges = _publish_in_steps(
                        index_path, info, settings, previous, documents, len(changed), removed, digest, keep
                    )
                else:
                    manifest = publish_update(
                        index_path, info, settings.index, previous=previous, documents=documents,
                        removed=removed, source_digest=digest, keep=keep,
                    )  # fmt: skip
        except BaseException:
            # A failed or interrupted run (Ctrl-C included) keeps what it embedded for the next.
            _keep_checkpoints(resume.checkpoints)
            raise
        # Published: the checkpoints are of no more use, and the disk they take is the index's.
        discard_checkpoints(index_path)
        embedding_seconds = time.perf_counter() - embedding_started
        if not publish_as_you_go:
            manifest, merges = _merge(index_path, manifest, settings, info, previous, keep)
    if full_rebuild:
        print(f"full rebuild: {full_rebuild}", file=sys.stderr)
    return _summary(index_path, manifest, counts, embedding_seconds, report, removed, kept_unread,
                    full_rebuild, engine, merges, started)  # fmt: skip


def _publish_in_steps(
    index_path: Path,
    info: BuildInfo,
    settings: Settings,
    previous: Index | None,
    documents: Iterator[IndexedDocument],
    total: int,
    removed: Collection[str],
    digest: str,
    keep: Sequence[str],
) -> tuple[Manifest, int]:
    """Publish ``documents`` (``total`` of them) as updates of ``reindex.checkpoint_every``
    documents each, merging after each one as a run does; the removals go with the first,
    and the source's digest with the last (an update before it holds only part of the
    source). Returns the last manifest and the merges made."""
    every = settings.reindex.checkpoint_every
    merges = 0
    published = 0
    opened: Index | None = None  # the version of the last step, opened here
    while True:
        step = min(every, total - published)
        last = published + step >= total
        manifest = publish_update(
            index_path, info, settings.index, previous=previous, documents=itertools.islice(documents, step),
            removed=removed if not published else (), source_digest=digest if last else "", keep=keep,
        )  # fmt: skip
        manifest, made = _merge(index_path, manifest, settings, info, previous, keep)
        merges += made
        published += step
        if opened is not None:
            opened.close()
        if last:
            return manifest, merges
        previous = opened = load_index(index_path, settings.index, model=info.model, dimension=info.dimension)


def _summary(
    index_path: Path,
    manifest: Manifest,
    counts: _Counts,
    embedding_seconds: float,
    report: Collected,
    removed: Collection[str],
    kept_unread: Collection[str],
    full_rebuild: str | None,
    engine: IndexingEngine,
    merges: int,
    started: float,
) -> BuildSummary:
    return BuildSummary(
        index=str(index_path),
        version=manifest.version,
        documents=manifest.documents,
        chunks=manifest.chunks,
        sentences=manifest.sentences,
        added=counts.added,
        updated=counts.updated,
        removed=len(removed),
        unchanged=counts.unchanged,
        chunks_embedded=counts.chunks_embedded,
        texts_embedded=counts.texts_embedded,
        texts_per_second=round(counts.texts_embedded / max(embedding_seconds, 1e-9), 1),
        resumed=counts.resumed,
        skipped=len(report.problems),
        kept_unread=len(kept_unread),
        segments=len(manifest.segments),
        merges=merges,
        full_rebuild=full_rebuild,
        engine=engine.name,
        actors=engine.actors,
        seconds=round(time.perf_counter() - started, 2),
        crawl=report.crawl,
    )


def ingest(
    index_path: Path,
    settings: Settings,
    documents: Iterable[IndexedDocument],
    *,
    model: str,
    dimension: int,
    removed: Iterable[str] = (),
) -> Manifest:
    """Publish documents embedded elsewhere (precomputed vectors, e.g. by a cluster)
    as one new segment, as a reindex would: each replaces the served document of
    the same id, ``removed`` ones are deleted, and full tiers merge afterwards.

    Build each document with :func:`qa.ingest.indexed.indexed_document`; its vectors must be
    unit vectors of ``model``, made with the settings' chunking.
    """
    chunking = settings.chunking
    info = BuildInfo(
        model, dimension, chunking.max_tokens, chunking.overlap_tokens, settings.embedding.vectors
    )
    with index_lock(index_path):
        keep = (index_path.resolve().name,) if index_path.exists() else ()
        previous, full_rebuild = _reusable_version(index_path, info, settings)
        if full_rebuild:
            raise IndexUnavailableError(f"{index_path}: cannot add to this index: {full_rebuild}")
        manifest = publish_update(
            index_path, info, settings.index, previous=previous,
            documents=_grouped(documents, settings, previous, removed=removed), removed=removed, keep=keep,
        )  # fmt: skip
        return _merge(index_path, manifest, settings, info, previous, keep)[0]


def source_digest(articles: Sequence[Article]) -> str:
    """A fingerprint of everything indexed from the articles."""
    digest = hashlib.sha256()
    for article in articles:
        digest.update(content_hash(article).encode())
    return digest.hexdigest()


def ensure_index(source: Path, index_path: Path, settings: Settings, embedder: Embedder) -> bool:
    """Build the index unless one of the same articles, model and chunking is there.

    Returns whether it built one.
    """
    try:
        manifest: Manifest | None = read_manifest(index_path)
    except IndexUnavailableError:
        manifest = None
    info = _build_info(settings, embedder)
    if manifest is not None and _incompatibility(manifest, info) is None:
        report = read_articles(source, max_article_bytes=settings.source.max_article_bytes)
        if manifest.source_digest == source_digest(report.articles):
            return False
    # This index mirrors the given corpus (a cache for evaluations): it may lose articles.
    build_index(source, index_path, settings, embedder, allow_removals=True)
    return True


def _build_info(settings: Settings, engine: IndexingEngine | Embedder) -> BuildInfo:
    chunking = settings.chunking
    return BuildInfo(engine.model_id, engine.dimension, chunking.max_tokens, chunking.overlap_tokens,
                     settings.embedding.vectors)  # fmt: skip


def _incompatibility(manifest: Manifest, info: BuildInfo) -> str | None:
    """Why the embeddings of a version cannot be reused for a build with ``info``, if so."""
    if (manifest.format_version, manifest.code_version) != (FORMAT_VERSION, __version__):
        return f"index format {manifest.format_version} (code {manifest.code_version}) is replaced"
    if (manifest.model, manifest.dimension) != (info.model, info.dimension):
        return f"the model changed from {manifest.model} to {info.model}"
    if (manifest.max_tokens, manifest.overlap_tokens) != (info.max_tokens, info.overlap_tokens):
        return (
            f"the chunking changed from {manifest.max_tokens}/{manifest.overlap_tokens} "
            f"to {info.max_tokens}/{info.overlap_tokens} tokens"
        )
    if manifest.vectors != info.vectors:
        return f"embedding.vectors changed from {manifest.vectors!r} to {info.vectors!r}"
    return None


def _merge(
    index_path: Path,
    manifest: Manifest,
    settings: Settings,
    info: BuildInfo,
    previous: Index | None,
    keep: Sequence[str] = (),
) -> tuple[Manifest, int]:
    """Merge the tiers of segments that are full, publishing each merge; returns the
    last manifest and the number of merges. Segments already open are reused, and the
    versions in ``keep`` are not pruned."""
    merges = 0
    opened = previous.segments() if previous is not None else {}
    while groups := merges_due(manifest, settings.index.merge_factor):
        index = load_index(
            index_path, settings.index, model=info.model, dimension=info.dimension, opened=opened
        )
        for group in groups:
            print(f"merging {len(group)} segments", file=sys.stderr)
        try:
            manifest = publish_merge(
                index_path, index, [name for group in groups for name in group], settings.index,
                reindexed_document, keep=keep,
            )  # fmt: skip
        except DiskFullError as exc:
            raise DiskFullError(f"the update was published, but merging its segments failed: {exc}") from exc
        opened = index.segments()
        merges += len(groups)
    return manifest, merges


def _reusable_version(
    index_path: Path, info: BuildInfo, settings: Settings
) -> tuple[Index | None, str | None]:
    """The published version whose embeddings can be reused, or why there is none to reuse."""
    if not index_path.exists():
        return None, None  # a first build
    try:
        manifest = read_manifest(index_path)
    except IndexUnavailableError as exc:
        return None, f"the published index is unreadable ({exc})"
    reason = _incompatibility(manifest, info)
    if reason is not None:
        return None, reason
    try:
        return load_index(index_path, settings.index, model=info.model, dimension=info.dimension), None
    except IndexUnavailableError as exc:
        return None, f"the published index is unreadable ({exc})"


def _served_ids(index_path: Path, settings: Settings) -> set[str]:
    """The ids a version whose embeddings cannot be reused serves, opened with its own
    model (a full rebuild loses those the source lacks); none when it cannot be read."""
    if not index_path.exists():
        return set()
    try:
        manifest = read_manifest(index_path)
        index = load_index(index_path, settings.index, model=manifest.model, dimension=manifest.dimension)
    except IndexUnavailableError:
        return set()  # another format, or damaged: there is nothing a rebuild could keep
    try:
        return set(index.live_documents())
    finally:
        index.close()


def _removals(
    index_path: Path,
    unread: set[str],
    *,
    served: int,
    skipped: int,
    reusable: bool,
    max_share: float,
    allow: bool,
) -> tuple[set[str], set[str]]:
    """The served articles the run removes and those it keeps though it did not read
    them, from the ``unread`` ones (served, not in the readable source); refuses a run
    that would remove too many (the rules of the module docstring)."""
    if skipped and reusable:
        return set(), unread  # any of them may be behind a skipped line: keep them all
    if not unread or allow:
        return unread, set()
    if skipped:
        raise RemovalRefusedError(
            f"{index_path}: a full rebuild cannot keep the {len(unread)} served articles that are not "
            f"in the readable source, and {skipped} files or lines of it were skipped; nothing was "
            "published. Fix the skipped input, or run qa reindex --allow-removals to drop those articles"
        )
    if len(unread) > max_share * served:
        raise RemovalRefusedError(
            f"{index_path}: this run would remove {len(unread)} of the {served} served articles "
            f"({len(unread) / served:.0%}), more than reindex.max_removed_share ({max_share:.0%}); "
            "nothing was published. If the source is complete, run qa reindex --allow-removals"
        )
    return unread, set()


def _check_space(
    index_path: Path, articles: Sequence[Article], dimension: int, to_embed: Sequence[Article]
) -> None:
    """Refuse, before embedding, an update the disk clearly has no room for: the new
    segment of ``articles``, and the checkpoints of those ``to_embed`` (the others are
    on disk already)."""
    if not articles:
        return
    characters = sum(len(a.text) for a in articles)
    text_bytes = sum(len(a.text.encode()) + len(a.title.encode()) for a in articles)
    needed = TEXT_COPIES * text_bytes + characters // CHARS_PER_TEXT * dimension * VECTOR_BYTES_PER_DIMENSION
    checkpointed = sum(len(a.text) for a in to_embed) // CHARS_PER_TEXT
    needed += checkpointed * dimension * CHECKPOINT_BYTES_PER_DIMENSION
    folder = versions_dir(index_path)
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(
            f"{folder}: {format_bytes(free)} free, but indexing the {len(articles)} new and changed "
            f"articles needs about {format_bytes(needed)}; nothing was embedded or published. Free "
            "some space and run qa reindex again"
        )


@dataclass(frozen=True)
class _Resume:
    """The articles of a run against the checkpoints of interrupted runs of the same build."""

    checkpoints: Checkpoints
    # Each article's content hash, and whether the checkpoints hold it.
    digests: list[str]
    restorable: list[bool]
    # The others, in the run's order: what the engine embeds.
    to_embed: list[Article]

    @property
    def restored(self) -> int:
        return len(self.digests) - len(self.to_embed)


def _resume(index_path: Path, info: BuildInfo, settings: Settings, changed: Sequence[Article]) -> _Resume:
    """Open the build's checkpoints and find which of the ``changed`` articles they
    hold; says on stderr what a resume restores, and what it found damaged or stale."""
    checkpoints = Checkpoints.open(
        index_path,
        info,
        every=settings.reindex.checkpoint_every,
        seconds=settings.reindex.checkpoint_seconds,
    )
    for problem in checkpoints.problems:
        print(problem, file=sys.stderr)
    digests = [content_hash(article) for article in changed]
    restorable = [digest in checkpoints for digest in digests]
    to_embed = [article for article, held in zip(changed, restorable, strict=True) if not held]
    resume = _Resume(checkpoints, digests, restorable, to_embed)
    if resume.restored:
        print(
            f"resuming: {resume.restored} of {len(changed)} articles already embedded in checkpoints "
            "of an interrupted run",
            file=sys.stderr,
        )
    return resume


def _restored(changed: Sequence[Article], resume: _Resume) -> Iterator[IndexedDocument]:
    """The documents of ``changed`` the checkpoints hold, in its order."""
    for article, digest, held in zip(changed, resume.digests, resume.restorable, strict=True):
        restored = resume.checkpoints.restore(digest) if held else None
        if restored is not None:
            yield indexed_document(article, digest, *restored)


def _in_run_order(
    changed: Sequence[Article],
    resume: _Resume,
    fresh: Iterator[IndexedDocument],
    hashes: dict[str, str],
    counts: _Counts,
    bar: tqdm[None],
) -> Iterator[IndexedDocument]:
    """The documents of ``changed`` in its order, each restored from the checkpoints or
    the next of ``fresh`` (the engine's, of ``resume.to_embed``, in the same order), so
    that a resumed run writes exactly what an uninterrupted one would. Fresh documents
    are checkpointed before they are handed on, counted and shown on the progress bar."""
    checkpoints = resume.checkpoints
    for article, digest, held in zip(changed, resume.digests, resume.restorable, strict=True):
        if article.doc_id in hashes:
            counts.updated += 1
        else:
            counts.added += 1
        restored = checkpoints.restore(digest) if held else None
        if restored is not None:
            counts.resumed += 1
            yield indexed_document(article, digest, *restored)
            continue
        document = next(fresh)
        checkpoints.add(document)
        counts.chunks_embedded += len(document.chunks)
        counts.texts_embedded += document.texts_embedded
        bar.update()
        yield document


def _keep_checkpoints(checkpoints: Checkpoints) -> None:
    """Write what a failing run has embedded since its last checkpoint. A failure here
    (the disk that failed the run, full) costs those documents only: the run's own
    error is the one reported."""
    try:
        checkpoints.flush()
    except (OSError, ValueError) as exc:
        print(
            f"the last checkpoint could not be written ({exc}); its documents are embedded again",
            file=sys.stderr,
        )


def _grouped(
    documents: Iterable[IndexedDocument],
    settings: Settings,
    previous: Index | None,
    *,
    run: Sequence[Article] | None = None,
    removed: Iterable[str] = (),
) -> Iterator[IndexedDocument]:
    """The documents with their copy groups and signatures (``qa.ingest.copies``), against
    the served ones of ``previous``. Given after the engine returns them, so that every
    engine makes documents the same way; grouping never changes what is embedded.

    With ``run`` (the articles in the run's order), the groups are given in that order
    whatever order the engine returns them in; without it (``ingest``), in the order
    the documents come."""
    grouper = CopyGrouper(
        settings.copies,
        previous.copies() if previous is not None else {},
        replaced=[*removed, *(article.doc_id for article in run or ())],
    )
    copies = {article.doc_id: grouper.add(article) for article in run or ()}
    for document in documents:
        copy = copies.get(document.article.doc_id) if run is not None else None
        if copy is None:
            copy = grouper.add(document.article)
        yield dataclasses.replace(document, copy_group=copy.group, signature=copy.signature)
