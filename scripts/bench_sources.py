#!/usr/bin/env python3
"""Web sources, measured in one run (docs/sources.md): extraction quality, crawl speed,
the second round over an unchanged site, and syndicated copies found after re-templating.

1. Extraction: ``--articles`` ANT articles rendered as pages of the three templates of
   ``tests/news_site.py`` (header, navigation, related links, comments, share buttons,
   ads, footer, inline scripts; some windows-1256, some with a wrong header charset);
   token F1 of the extracted text against the article's, title and day exact, per
   template; and pages a second of extraction alone, on one core.
2. Crawl: the same articles spread over ``--hosts`` sites on loopback (politeness off:
   no delay, 4 requests a host at once), crawled from their feeds and sitemaps: articles fetched
   and extracted a second, embedding excluded.
3. Second round: the same crawl again, every page asked again (a conditional request):
   bodies downloaded and pages extracted; then ``qa reindex`` twice over one site, with
   the texts embedded by the second.
4. Copies: ``--copies`` ANT articles edited lightly (scripts/bench_copies.py), re-rendered
   in another template than their original and extracted again, grouped after every
   ANT article: recall and precision of the copies found.

    python scripts/bench_sources.py [--ant PATH] [--articles 1200] [--hosts 8] [--copies 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))  # bench_copies

from qa.config import Settings, load_settings  # noqa: E402
from qa.ingest.web.crawl import crawl  # noqa: E402
from qa.ingest.web.extract import ExtractedPage, NotAnArticle, extract_page  # noqa: E402
from qa.ingest.web.state import CrawlState  # noqa: E402
from qa.records import Article  # noqa: E402
from tests.news_site import (  # noqa: E402
    NewsSite,
    SiteArticle,
    Template,
    iter_pages,
    load_site_articles,
    make_article,
    plain_title,
    render_article,
    token_f1,
)

ANT = REPO.parent / "shared" / "data" / "ant" / "ant.jsonl"
FAST_FETCH = {
    "fetch.allow_private_hosts": True,
    "fetch.min_delay_seconds": 0.0,
    "fetch.concurrency": 32,
    "fetch.per_host_concurrency": 4,
}


def listings(site: NewsSite) -> list[str]:
    """A site's feeds and sitemap index: every article is in one of them."""
    special = site.special
    return [special.rss, special.atom, special.json_feed, special.sitemap_index]


def extraction(articles: list[SiteArticle]) -> None:
    with NewsSite(articles, traps=False) as site:
        pages = list(iter_pages(site))
    scores: dict[str, list[tuple[float, bool, bool]]] = defaultdict(list)
    started = time.perf_counter()
    extracted: list[tuple[SiteArticle, ExtractedPage | None]] = []
    for url, article, body in pages:
        try:
            extracted.append((article, extract_page(body, url, charset=article.header_charset)))
        except NotAnArticle:
            extracted.append((article, None))
    seconds = time.perf_counter() - started
    for article, page in extracted:
        if page is None:
            scores[article.template].append((0.0, False, False))
            continue
        scores[article.template].append(
            (
                token_f1(page.text, article.text),
                plain_title(page.title) == plain_title(article.title),
                (page.published or "")[:10] == article.day,
            )
        )
    print(f"\n## Extraction ({len(pages)} pages, one core)\n")
    print("| template | pages | token F1 mean | lowest | title exact | day exact |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    every: list[tuple[float, bool, bool]] = []
    for template, rows in sorted(scores.items()):
        every += rows
        print(
            f"| {template} | {len(rows)} | {sum(r[0] for r in rows) / len(rows):.4f} | "
            f"{min(r[0] for r in rows):.4f} | {sum(r[1] for r in rows) / len(rows):.4f} | "
            f"{sum(r[2] for r in rows) / len(rows):.4f} |"
        )
    print(
        f"| all | {len(every)} | {sum(r[0] for r in every) / len(every):.4f} | "
        f"{min(r[0] for r in every):.4f} | {sum(r[1] for r in every) / len(every):.4f} | "
        f"{sum(r[2] for r in every) / len(every):.4f} |"
    )
    print(f"\nextraction alone: {len(pages) / seconds:.1f} pages/s ({seconds:.2f} s)")


def crawl_rounds(articles: list[SiteArticle], hosts: int, settings: Settings) -> None:
    shares = [articles[i::hosts] for i in range(hosts)]
    sites = [NewsSite(share, traps=False).start() for share in shares]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            state = CrawlState(Path(scratch) / "state.sqlite")
            sources = [url for site in sites for url in listings(site)]
            for name, recheck in (("first round", None), ("second, every page asked again", 0.0),
                                  ("second, pages not due", None)):  # fmt: skip
                round_settings = settings
                if recheck is not None:
                    round_settings = settings.replace({"watch.recheck_seconds": recheck})
                for site in sites:
                    site.clear_log()
                started = time.perf_counter()
                result = crawl(sources, round_settings, state)
                seconds = time.perf_counter() - started
                summary = result.summary
                page_bodies = sum(
                    entry.bytes_sent
                    for site in sites
                    for entry in site.requests
                    if entry.status == 200 and not entry.path.startswith(("/robots", "/sitemap"))
                )
                statuses = Counter(entry.status for site in sites for entry in site.requests)
                rows.append((name, len(result.articles), summary, seconds, page_bodies, statuses))
            state.close()
    finally:
        for site in sites:
            site.close()
    print(f"\n## Crawl ({len(articles)} articles on {hosts} hosts on loopback, politeness off)\n")
    print(
        "| round | articles | fetched | 304 | not asked | requests | article bodies downloaded "
        "| seconds | new articles/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, count, summary, seconds, page_bodies, statuses in rows:
        rate = (summary.new + summary.updated) / seconds  # articles fetched and extracted
        print(
            f"| {name} | {count} | {summary.fetched} | {statuses.get(304, 0)} | {summary.not_asked} | "
            f"{summary.requests} | {page_bodies:,} B | {seconds:.2f} | {rate:.1f} |"
        )


def reindex_twice(articles: list[SiteArticle], settings: Settings) -> None:
    from qa.embed.registry import make_embedder
    from qa.ingest.pipeline import build_index

    embedder = make_embedder(settings.embedding, "index")
    with NewsSite(articles, traps=False) as site, tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "idx"
        round_settings = settings.replace({"index.path": index, "watch.recheck_seconds": 0.0})
        first = build_index(listings(site), index, round_settings, embedder, progress=False)
        site.clear_log()
        second = build_index(listings(site), index, round_settings, embedder, progress=False)
        bodies = sum(e.bytes_sent for e in site.requests if e.status == 200 and e.path != "/robots.txt")
    print(f"\n## qa reindex twice over one unchanged site ({len(articles)} articles)\n")
    print(
        "| round | documents | texts embedded | pages fetched | 304 | article and listing bodies | version |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, summary, downloaded in (("first", first, None), ("second", second, bodies)):
        crawl_summary = summary.crawl
        assert crawl_summary is not None
        print(
            f"| {name} | {summary.documents} | {summary.texts_embedded} | {crawl_summary.fetched} | "
            f"{crawl_summary.unchanged} | {'-' if downloaded is None else f'{downloaded} B'} | "
            f"{summary.version} |"
        )


def copies(ant: Path, count: int, settings: Settings) -> None:
    """Copies re-templated: each edited copy is rendered in another template than its
    original's page would be, and extracted, as a second paper's page is read."""
    from bench_copies import TABLE_HEADER, measure_copies

    templates: tuple[Template, ...] = ("wordpress", "legacy", "modern")

    def retemplated(original: Article, copy: Article) -> Article:
        template = templates[sum(map(ord, original.doc_id)) % len(templates)]
        page = make_article(copy.doc_id, copy.title, copy.text, "2017-01-25", "politic", template)
        body = render_article(page, base_url="https://copies.example")
        extracted = extract_page(body, copy.url or "https://copies.example/", charset="utf-8")
        return dataclasses.replace(copy, text=extracted.text)

    result = measure_copies(settings.copies, ant, count, rewrite=retemplated)
    print(f"\n## Syndicated copies ({count} edited, re-templated copies; every ANT article a distractor)\n")
    print(TABLE_HEADER)
    print(result.row())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ant", type=Path, default=ANT)
    parser.add_argument("--articles", type=int, default=1200)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--reindexed", type=int, default=40, help="articles of the reindex-twice site")
    args = parser.parse_args()
    settings = load_settings(REPO / "config.toml").replace(FAST_FETCH)
    articles = load_site_articles(args.ant, limit=args.articles)
    random.Random(7).shuffle(articles)
    print(f"# bench_sources ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(f"command: python scripts/bench_sources.py --articles {args.articles} --hosts {args.hosts} "
          f"--copies {args.copies}")  # fmt: skip
    extraction(articles)
    crawl_rounds(articles, args.hosts, settings)
    reindex_twice(sorted(articles, key=lambda a: len(a.text))[: args.reindexed], settings)
    if args.copies:
        copies(args.ant, args.copies, settings)


if __name__ == "__main__":
    main()
