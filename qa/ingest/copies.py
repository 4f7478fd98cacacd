"""Syndicated copies: the same agency story, run by several papers, grouped at ingest.

An article's *signature* is a MinHash (datasketch) of the word shingles of its text,
normalized for matching (``qa.text.normalize``: diacritics, alef and yeh forms, case
and whitespace do not matter; punctuation is dropped with the words split on it).
Two articles are copies of one story when the shingles of the shorter are, by
MinHash's estimate, at least ``copies.threshold`` in the longer (its *containment*), and
their Jaccard similarity is at least ``MIN_JACCARD``. Containment, not Jaccard alone,
because a paper that drops or adds a sentence of a news brief of three changes its
Jaccard by a third while the rest is the same story: on ANT, copies made by replacing 5%
of the words and dropping or adding a sentence have a Jaccard of 0.33 or more in 95% of
cases, where different articles of one template or follow-ups of one story reach that
twice as often as they reach the containment of copies (scripts/bench_copies.py).
MinHashLSH finds the candidates; each is then confirmed by its
estimates, since LSH alone lets through pairs below the threshold.

A document's *group* is the doc_id of the first-indexed member of its group; an
article that copies no one is its own group. A later copy joins the group of the
indexed copy it resembles most and no older document is rewritten, so grouping never
changes what a reindex embeds (``content_hash`` ignores it). Articles of one run that
copy each other group together, the first in the run's order naming the group unless
an indexed member exists.

The store keeps both with each document (as a string and bytes: it knows nothing of
MinHash); a reindex reads those of the served documents back
(:meth:`qa.store.index.Index.copies`) to group what it adds.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from datasketch import LeanMinHash, MinHash, MinHashLSH

from qa.config import CopiesSettings
from qa.records import Article
from qa.store.segment_reader import StoredCopy
from qa.text.normalize import normalize

# The MinHash scheme and seed every signature is made with: a stored signature is only
# comparable with one made the same way.
_SCHEME = "affine32"
_SEED = 1
# A signature on disk: the shingle width, the number of permutations and the number of
# shingles (for the containment), then the hash values (uint32, little-endian). The
# header lets a reindex skip signatures made with other settings rather than compare
# what is not comparable.
_HEADER = struct.Struct("<HHI")
_WORD = re.compile(r"\w+")
# Below this Jaccard similarity two texts are not copies whatever their containment: a
# short text found in a long one (a one-line brief quoted by a long report) is not a copy
# of it. Copies made as in scripts/bench_copies.py are above 0.3 in 99% of cases.
MIN_JACCARD = 0.25
# Candidates are looked up by LSH below MIN_JACCARD and then confirmed: LSH's S-curve
# misses about half the pairs lying right at its threshold.
_CANDIDATE_JACCARD = 0.15
# LSH bands are chosen weighing a missed candidate above a needless one: each needless
# one costs only a comparison of two arrays.
_LSH_WEIGHTS = (0.2, 0.8)


@dataclass(frozen=True)
class Copy:
    """A document's group and signature, as the store keeps them."""

    group: str
    signature: bytes


def shingles(text: str, width: int) -> set[bytes]:
    """The word shingles of ``text`` after normalization: runs of ``width`` words
    (one shingle of all the words when there are fewer)."""
    words = _WORD.findall(normalize(text))
    if len(words) <= width:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + width]).encode() for i in range(len(words) - width + 1)}


@dataclass(frozen=True)
class Signature:
    """A signature read back: its hash values and the number of shingles it was made of."""

    values: npt.NDArray[np.uint32]
    shingles: int


class Signer:
    """Makes the signatures of texts with one setting's shingle width and permutations."""

    def __init__(self, settings: CopiesSettings) -> None:
        self.settings = settings
        # Permutations are drawn once: drawing them for each MinHash costs more than hashing.
        self._permutations = MinHash(num_perm=settings.num_perm, seed=_SEED, scheme=_SCHEME).permutations

    def sign(self, text: str) -> bytes:
        """The signature of ``text``; empty for a text without words (copies of nothing)."""
        found = shingles(text, self.settings.shingle_words)
        if not found:
            return b""
        minhash = MinHash(
            num_perm=self.settings.num_perm, seed=_SEED, permutations=self._permutations, scheme=_SCHEME
        )
        minhash.update_batch(found)
        values = np.asarray(minhash.hashvalues, dtype="<u4")
        header = _HEADER.pack(self.settings.shingle_words, self.settings.num_perm, len(found))
        return header + values.tobytes()

    def read(self, signature: bytes) -> Signature | None:
        """A signature made with these settings; None for an empty one or one made with
        others (a changed shingle width or number of permutations)."""
        if len(signature) != _HEADER.size + 4 * self.settings.num_perm:
            return None
        width, num_perm, count = _HEADER.unpack_from(signature)
        if (width, num_perm) != (self.settings.shingle_words, self.settings.num_perm):
            return None
        return Signature(np.frombuffer(signature, dtype="<u4", offset=_HEADER.size).astype(np.uint32), count)


def similarities(a: Signature, b: Signature) -> tuple[float, float]:
    """The Jaccard similarity of two signatures' shingle sets and the containment of the
    smaller in the larger, as MinHash estimates them (the intersection from the Jaccard
    and the two sizes)."""
    jaccard = float(np.count_nonzero(a.values == b.values)) / len(a.values)
    common = jaccard / (1 + jaccard) * (a.shingles + b.shingles)
    return jaccard, min(1.0, common / max(1, min(a.shingles, b.shingles)))


class CopyGrouper:
    """Gives each article of a run its group, against the served documents (``known``)
    and the articles of the run before it.

    ``replaced``: ids of served documents this run rewrites or removes, which are no
    one's copy any more (an article is never matched with its own old text).
    """

    def __init__(
        self, settings: CopiesSettings, known: Mapping[str, StoredCopy], replaced: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.signer = Signer(settings)
        self._lsh = MinHashLSH(
            threshold=_CANDIDATE_JACCARD,
            num_perm=settings.num_perm,
            weights=_LSH_WEIGHTS,
        )
        # The signatures LSH holds, and every live document's group.
        self._signatures: dict[str, Signature] = {}
        self._groups: dict[str, str] = {}
        # How many live documents carry each group id: an id is never given to a new group
        # while documents of another carry it (their first member was replaced or removed).
        self._members: Counter[str] = Counter()
        gone = set(replaced)
        with self._lsh.insertion_session() as session:
            for doc_id, stored in known.items():
                if doc_id in gone:
                    continue
                self._groups[doc_id] = stored.group
                self._members[stored.group] += 1
                read = self.signer.read(stored.signature)
                if read is not None:
                    self._signatures[doc_id] = read
                    session.insert(doc_id, _lean(read), check_duplication=False)

    def add(self, article: Article) -> Copy:
        """The group and signature of ``article``, which later articles may then copy."""
        self._forget(article.doc_id)  # its older text (a served document it replaces) is no one's copy
        signature = self.signer.sign(article.text)
        read = self.signer.read(signature)
        group = None if read is None else self._best_match(read)
        if group is None:
            group = self._fresh(article.doc_id)
        if read is not None:
            self._signatures[article.doc_id] = read
            self._lsh.insert(article.doc_id, _lean(read), check_duplication=False)
        self._groups[article.doc_id] = group
        self._members[group] += 1
        return Copy(group, signature)

    def _forget(self, doc_id: str) -> None:
        if doc_id in self._signatures:
            self._lsh.remove(doc_id)
            del self._signatures[doc_id]
        if doc_id in self._groups:
            self._members[self._groups.pop(doc_id)] -= 1

    def _best_match(self, signature: Signature) -> str | None:
        """The group of the document it copies most (the highest Jaccard of those whose
        containment is at or above the threshold), if any."""
        best: tuple[float, str] | None = None
        for candidate in self._lsh.query(_lean(signature)):
            score, containment = similarities(signature, self._signatures[candidate])
            if score < MIN_JACCARD or containment < self.settings.threshold:
                continue
            # Ties go to the smaller id, so that a run's grouping does not hang on set order.
            if best is None or score > best[0] or (score == best[0] and str(candidate) < best[1]):
                best = (score, str(candidate))
        return None if best is None else self._groups[best[1]]

    def _fresh(self, doc_id: str) -> str:
        """A new group's id: the article's own, unless documents of another group still carry it."""
        if self._members[doc_id] <= 0:
            return doc_id
        n = 2
        while self._members[f"{doc_id}#{n}"] > 0:
            n += 1
        return f"{doc_id}#{n}"


def _lean(signature: Signature) -> LeanMinHash:
    # A lean MinHash holds only the values: what LSH reads, without drawing permutations.
    return LeanMinHash(seed=_SEED, hashvalues=signature.values, scheme=_SCHEME)
