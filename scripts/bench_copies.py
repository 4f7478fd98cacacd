"""How well syndicated copies are grouped (qa.ingest.copies), measured on the ANT corpus.

Copies are made of ``--copies`` ANT articles the way papers re-run an agency story:
about 5% of the words replaced by other words of the corpus, a sentence dropped or a
short one of another article added (at most a quarter of the copy's words: a longer one
makes the copy as much the other story as this one; an earlier version of this bench
added any, and scored 3 such half-and-half copies grouped with the other story as
errors: precision 0.985), the whitespace changed (lines joined, spaces doubled) and
some diacritics added. They are grouped after all 10,138 ANT articles, which are the
distractors; ANT's own exact duplicates (the same text under several ids) are true
copies too. Printed: recall of the made copies (grouped with their original) and their
precision (of the pairs a made copy is grouped in, those with its original's text), and
over every pair the groups make, precision and recall against what is known. ANT also
holds articles that are not exact duplicates but revisions of one story (a score
corrected, "tomorrow" become "today"), which no list names: the pairs grouped that are
not known copies are counted (``unknown pairs``, each with its true containment and
Jaccard, to judge by eye with ``--show-unknown``) and count against the pairwise
precision, which is so a lower bound. Also the time to sign every ANT article, and to
group them all with the copies.

    python scripts/bench_copies.py [--ant PATH] [--copies 200] [--threshold 0.8 0.6 ...]

``measure_copies`` is the measurement, for other scripts (scripts/bench_sources.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from qa.config import CopiesSettings
from qa.ingest.copies import CopyGrouper, Signer, shingles
from qa.records import Article
from qa.text.normalize import normalize

REPO = Path(__file__).resolve().parent.parent
ANT = REPO.parent / "shared" / "data" / "ant" / "ant.jsonl"
# Share of an article's words a copy replaces.
REPLACED_SHARE = 0.05
# The longest sentence a copy gains from another article, as a share of its own words.
MAX_ADDED_SHARE = 0.25
_SENTENCE_END = re.compile(r"(?<=[.!؟?])\s+")
# Fatha, damma, kasra, shadda: what an editor's keyboard adds to a word or two.
_DIACRITICS = "\u064e\u064f\u0650\u0651"


@dataclass(frozen=True)
class CopiesBench:
    """What one setting of copies.* measured."""

    settings: CopiesSettings
    articles: int
    copies: int
    # Made copies grouped with their original, and of the pairs made copies are grouped
    # in, those of copies of one text.
    copy_recall: float
    copy_precision: float
    # The same precision over the copies of originals that ANT holds no unlabelled near
    # copy of (see measure_copies), and how many those are.
    clean_copies: int
    clean_copy_precision: float
    # Over every pair of documents in one predicted group, and every pair of true copies.
    pair_precision: float
    pair_recall: float
    # Grouped pairs that are not known copies, with their true containment and Jaccard.
    unknown_pairs: tuple[tuple[str, str, float, float], ...]
    # Seconds to sign every ANT article, and to group them and the copies.
    sign_seconds: float
    group_seconds: float

    def row(self) -> str:
        """The line of TABLE_HEADER's table."""
        settings = self.settings
        return (
            f"| {settings.threshold} | {settings.shingle_words} | {settings.num_perm} "
            f"| {self.copy_recall:.3f} "
            f"| {self.copy_precision:.4f} | {self.clean_copies} | {self.clean_copy_precision:.4f} "
            f"| {self.pair_precision:.4f} | {self.pair_recall:.3f} | {len(self.unknown_pairs)} "
            f"| {self.sign_seconds:.1f} | {self.group_seconds:.1f} |"
        )


TABLE_HEADER = (
    "| threshold | shingle words | permutations | copy recall | copy precision | copies judged "
    "| their precision | pair precision | pair recall | unknown pairs | sign s | group s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def read_ant(path: Path) -> list[Article]:
    articles = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            articles.append(Article(record["id"], record["title"], record["text"], record.get("url")))
    return articles


def edited_copy(article: Article, other: Article, rng: random.Random, vocabulary: Sequence[str]) -> Article:
    """A lightly edited re-run of ``article`` (``other`` gives the sentence it may gain)."""
    sentences = [s for s in _SENTENCE_END.split(article.text) if s.strip()]
    # A light edit: a sentence gained is short beside the story (at most a quarter of its
    # words), else the copy would be as much the other article as this one.
    budget = MAX_ADDED_SHARE * len(article.text.split())
    extra = [s for s in _SENTENCE_END.split(other.text) if s.strip() and len(s.split()) <= budget]
    if len(sentences) > 2 and (rng.random() < 0.5 or not extra):
        del sentences[rng.randrange(len(sentences))]
    elif extra:
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(extra))
    words = " ".join(sentences).split()
    for position in rng.sample(range(len(words)), max(1, round(REPLACED_SHARE * len(words)))):
        words[position] = rng.choice(vocabulary)
    for position in rng.sample(range(len(words)), min(3, len(words))):
        words[position] = words[position] + rng.choice(_DIACRITICS)
    joiners = [rng.choice((" ", " ", " ", "  ", "\n")) for _ in words]
    text = "".join(word + joiner for word, joiner in zip(words, joiners, strict=True)).strip()
    return Article(
        f"copy-of-{article.doc_id}", article.title, text, f"https://copies.example/{article.doc_id}"
    )


def measure_copies(
    settings: CopiesSettings,
    ant: Path = ANT,
    copies: int = 200,
    seed: int = 0,
    rewrite: Callable[[Article, Article], Article] | None = None,
) -> CopiesBench:
    """Copies of ``copies`` ANT articles grouped among all of ANT (see the module).
    ``rewrite(original, copy)`` makes each copy what a crawl reads of it (e.g. its text
    extracted from a page in another template: scripts/bench_sources.py)."""
    articles = read_ant(ant)
    rng = random.Random(seed)
    vocabulary = sorted({word for article in rng.sample(articles, 500) for word in article.text.split()})
    originals = rng.sample([a for a in articles if len(a.text.split()) >= 40], copies)
    made = [edited_copy(a, rng.choice(articles), rng, vocabulary) for a in originals]
    if rewrite is not None:
        made = [rewrite(original, copy) for original, copy in zip(originals, made, strict=True)]

    signer = Signer(settings)
    started = time.perf_counter()
    for article in articles:
        signer.sign(article.text)
    sign_seconds = time.perf_counter() - started

    started = time.perf_counter()
    grouper = CopyGrouper(settings, {})
    groups = {article.doc_id: grouper.add(article).group for article in [*articles, *made]}
    group_seconds = time.perf_counter() - started

    # The truth: articles of one normalized text are copies, and a made copy is its original's.
    truth: dict[str, str] = {}
    first_of_text: dict[str, str] = {}
    for article in articles:
        truth[article.doc_id] = first_of_text.setdefault(normalize(article.text), article.doc_id)
    for original, copy in zip(originals, made, strict=True):
        truth[copy.doc_id] = truth[original.doc_id]

    copy_recall = sum(groups[c.doc_id] == groups[o.doc_id] for c, o in zip(made, originals, strict=True))
    predicted, true = _pairs(groups), _pairs(truth)
    made_ids = {copy.doc_id for copy in made}
    of_copies = {pair for pair in predicted if made_ids & set(pair)}
    by_id = {a.doc_id: a for a in [*articles, *made]}
    unknown = tuple(
        (a, b, *_similarities(by_id[a].text, by_id[b].text, settings.shingle_words))
        for a, b in sorted(predicted - true)
    )
    # The originals ANT itself holds unlabelled near copies of (revisions of one story,
    # templated bulletins): a made copy grouped with those cannot be judged, so the
    # precision over the copies of the other originals is the one that can be trusted.
    unlabelled = {doc for pair in predicted - true if not made_ids & set(pair) for doc in pair}
    clean = [(c, o) for c, o in zip(made, originals, strict=True) if o.doc_id not in unlabelled]
    clean_ids = {c.doc_id for c, _ in clean}
    of_clean = {pair for pair in of_copies if clean_ids & set(pair)}
    return CopiesBench(
        settings=settings,
        articles=len(articles),
        copies=copies,
        copy_recall=copy_recall / copies,
        copy_precision=len(of_copies & true) / max(1, len(of_copies)),
        clean_copies=len(clean),
        clean_copy_precision=len(of_clean & true) / max(1, len(of_clean)),
        pair_precision=len(predicted & true) / max(1, len(predicted)),
        pair_recall=len(predicted & true) / max(1, len(true)),
        unknown_pairs=unknown,
        sign_seconds=sign_seconds,
        group_seconds=group_seconds,
    )


def _pairs(groups: dict[str, str]) -> set[tuple[str, str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for doc_id, group in groups.items():
        members[group].append(doc_id)
    return {pair for ids in members.values() for pair in itertools.combinations(sorted(ids), 2)}


def _similarities(a: str, b: str, width: int) -> tuple[float, float]:
    """The true containment and Jaccard similarity of two texts' shingles."""
    first, second = shingles(a, width), shingles(b, width)
    common = len(first & second)
    return (
        round(common / max(1, min(len(first), len(second))), 3),
        round(common / max(1, len(first | second)), 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ant", type=Path, default=ANT)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, nargs="*", default=[CopiesSettings().threshold])
    parser.add_argument("--shingle-words", type=int, nargs="*", default=[CopiesSettings().shingle_words])
    parser.add_argument("--num-perm", type=int, nargs="*", default=[CopiesSettings().num_perm])
    parser.add_argument("--show-unknown", action="store_true", help="list grouped pairs not known as copies")
    args = parser.parse_args()
    print(TABLE_HEADER)
    for threshold, width, num_perm in itertools.product(args.threshold, args.shingle_words, args.num_perm):
        settings = replace(CopiesSettings(), threshold=threshold, shingle_words=width, num_perm=num_perm)
        bench = measure_copies(settings, args.ant, args.copies, args.seed)
        print(bench.row())
        if args.show_unknown:
            for a, b, containment, jaccard in bench.unknown_pairs:
                print(f"    {a}  {b}  containment {containment}  jaccard {jaccard}")


if __name__ == "__main__":
    main()
