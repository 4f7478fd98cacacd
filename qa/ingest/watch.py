"""``qa watch``: follow a site all day, one reindex round every ``watch.every_seconds``.

Each round crawls the sources (feeds and sitemaps first; then only new pages and
those that may have changed, with conditional requests), and publishes what changed
as an incremental update, which a running ``qa serve`` picks up by itself (hot
reload). A round with nothing new publishes nothing.

What survives a restart or a ``kill -9``: the crawl state (every page fetched, with
its validators and article, committed one by one) and the served index, which a
round only replaces by its atomic publish. A round that fails, for any reason, leaves
the served index as it was; the next round starts over from the state.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from qa.config import Settings
from qa.errors import ConfigError, QAError
from qa.ingest.engines.base import IndexingEngine
from qa.ingest.pipeline import BuildSummary, build_index


def watch(
    sources: Sequence[str | Path],
    settings: Settings,
    engine: IndexingEngine,
    *,
    every: float | None = None,
    once: bool = False,
    progress: bool = False,
    allow_removals: bool = False,
    on_round: Callable[[BuildSummary | None], None] | None = None,
) -> int:
    """Run rounds until stopped (SIGTERM or SIGINT: the round under way finishes
    first); with ``once``, one round. Returns the exit status: 0, or 1 when the only
    round (``once``) failed. Each round prints one JSON summary line on stdout."""
    interval = settings.watch.every_seconds if every is None else every
    stop = threading.Event()
    previous = _on_signals(stop)
    try:
        while True:
            started = time.monotonic()
            summary = _round(sources, settings, engine, progress=progress, allow_removals=allow_removals)
            if on_round is not None:
                on_round(summary)
            if once:
                return 0 if summary is not None else 1
            remaining = interval - (time.monotonic() - started)
            if stop.wait(max(0.0, remaining)) or stop.is_set():
                print("stopped", file=sys.stderr)
                return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _round(
    sources: Sequence[str | Path],
    settings: Settings,
    engine: IndexingEngine,
    *,
    progress: bool,
    allow_removals: bool,
) -> BuildSummary | None:
    """One reindex round: its summary, or None when it failed (and said why)."""
    try:
        summary = build_index(
            sources, settings.index.path, settings, engine, progress=progress, allow_removals=allow_removals
        )
    except ConfigError:
        raise  # no later round can do better
    except QAError as exc:
        print(f"round failed, the served index is unchanged: {exc}", file=sys.stderr)
        return None
    print(json.dumps(dataclasses.asdict(summary), ensure_ascii=False), flush=True)
    crawl = summary.crawl
    if crawl is not None:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(crawl.skipped.items()))
        print(
            f"round: {crawl.fetched} fetched, {crawl.unchanged} unchanged (304), {crawl.not_asked} not due, "
            f"{crawl.new} new, {crawl.updated} updated, {crawl.gone} gone, {summary.removed} removed"
            f"{'; skipped: ' + skipped if skipped else ''}; {summary.seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return summary


_Handler = Callable[[int, FrameType | None], object] | int | None


def _on_signals(stop: threading.Event) -> dict[signal.Signals, _Handler]:
    """SIGTERM and SIGINT set ``stop``: the round under way finishes (its publish is one
    atomic step either way), then the loop ends. Only on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(number: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop now
        print("stopping after this round (again to stop now)", file=sys.stderr, flush=True)
        stop.set()

    previous: dict[signal.Signals, _Handler] = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        previous[number] = signal.getsignal(number)
        signal.signal(number, handler)
    return previous
