"""Checks a written answer against the evidence it cites. No HTTP, no model calls.

A model's answer is split into sentences, each with the evidence numbers it cites
(``[2][5]``). A sentence is kept only when all of these hold:

* it cites at least one evidence sentence, and every number it cites exists;
* every number in it (a year, a date, a count; Western or Arabic-Indic digits, or
  a number written out in English or Arabic) is written in a cited span;
* every name in an English sentence (a capitalized word) is in a cited span,
  matched across scripts by its consonants;
* it keeps the negations of its spans and adds none (below);
* it is close in meaning to a cited span: the embedding model is multilingual, so
  an English sentence is compared with its Arabic span directly. A word-for-word
  quote needs no embedding, but only when it is one or more whole clauses of the
  span in a row, or the whole sentence, on word boundaries (normalized, punctuation
  aside; the first word may lose a glued و/ف and a clause its opening "and"/"but"/
  لكن). A clause is a part of the span between clause punctuation (, ; : — – ، ؛
  brackets, quotation marks, sentence ends) or before a word that opens a clause
  (but, however, لكن, بل, بينما, غير أن, إلا أن): a part of a clause is no quote, since
  "the minister resigned on Monday" is in "Officials denied reports that the
  minister resigned on Monday".

Negations. The cues, matched on normalized words (a glued و ف ب ل aside): English
not, n't, no, never, neither, nor, none, nobody, nothing, nowhere, cannot, without,
unless; Arabic لم لن لا ليس (ليست لست ...); verbs of denial and rejection (deny,
refute, reject; نفى ينفي نفت تنفي, أنكر ينكر, رفض يرفض and their forms); and
Arabic nominal negation غير دون بدون بلا عدم (غير ساحلي, landlocked). Not cues: لا يزال,
ما زال, لم يزل (still), لا سيما, لا بد, لا شك, غير أن (however), "not only", "no doubt",
and ما altogether (mostly "what" in news Arabic; its negating use cannot be told
without a parser). A cue negates what follows it in its clause, up to a new
predicate (وهو, حيث, كما, which, because) or the next cue; a verb of denial reaches
into the next clauses until it holds two content words ("denied, on Monday, that").

* A claim drops a negation when it carries none (no cue, and no word such as un-,
  non-, -less, failed, refused, only, فقط, سوى, إلا, امتنع) and restates what a cue of
  a span in its own language negates: the first negated word, or half the negated
  words, and at least one word found only in the negated part of the cited text
  (light stemming: article, clitics, future س, pronoun suffixes; English -s, -ed,
  -ing). Over a span in another language, where words cannot be compared, such a
  claim stays only when the span without its negated parts, or a cited span with
  no negation, is NEGATION_MARGIN closer to it in meaning than the negated parts
  are; nominal negation is not compared across languages (English writes it as
  "landlocked", "untreated").
* A claim adds a negation when it negates (a cue, "without" and "unless" aside) and
  no cited span says "not" in any way.

Anything else is removed and reported with the reason, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from qa.embed.embedders import Embedder
from qa.text.normalize import normalize, stems
from qa.types import Vectors

# A citation marker: [3], [3, 5], [٣]; several may follow each other.
_MARKER = re.compile(
    r"\[\s*([0-9\u0660-\u0669\u06F0-\u06F9]+(?:\s*[,،]\s*[0-9\u0660-\u0669\u06F0-\u06F9]+)*)\s*\]"
)
# An answer sentence ends at . ! ? ؟ … (then any markers) before white space that is
# followed by something other than another marker.
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?؟…])(?<!\b[A-Z]\.)((?:\s*\[[^\]\n]{1,20}\])*)[ \t]*(?:\n+|[ \t]+(?=[^\s\[]))|\n+"
)


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of a model's answer: its words (markers removed) and what it cites."""

    raw: str
    claim: str
    cites: tuple[int, ...]


@dataclass(frozen=True)
class Span:
    """An evidence sentence as the verifier sees it: its text, the title of its
    article (names and dates the sentence leaves to it), and its stored vector."""

    text: str
    title: str
    vector: Vectors


@dataclass(frozen=True)
class Verdict:
    sentence: AnswerSentence
    # None when kept; else why the sentence was removed.
    reason: str | None
    # Similarity of the sentence to each span it cites, by evidence number.
    similarity: Mapping[int, float]


def _quotes(claim: str, span: str) -> bool:
    """Whether ``claim`` is word for word (normalized, punctuation aside) one or more whole
    clauses of ``span`` in a row, or all of it.

    A part of a clause is no quote: "the minister resigned on Monday" is in "Officials
    denied reports that the minister resigned on Monday" and says the opposite. The
    first word may lose a glued و or ف, and a clause its opening "and"/"but"/لكن.
    """
    words = [token.norm for clause in _clauses(claim) for token in clause]
    if not words:
        return False
    clauses = [[token.norm for token in clause] for clause in _clauses(span)]
    for first, clause in enumerate(clauses):
        for start in _clause_starts(clause):
            run = list(start)
            following = first + 1
            while len(run) < len(words) and following < len(clauses):
                run += clauses[following]
                following += 1
            if len(run) == len(words) and _same_words(words, run):
                return True
    return False


def _clause_starts(clause: list[str]) -> list[list[str]]:
    """A clause as a quote may begin it: whole, or without its opening conjunctions."""
    starts = [clause]
    while clause and clause[0] in _LEADING_CONJUNCTIONS:
        clause = clause[1:]
        starts.append(clause)
    return [start for start in starts if start]


def _same_words(claim: list[str], span: list[str]) -> bool:
    first, other = claim[0], span[0]
    same_first = first == other or (other[:1] in ("و", "ف") and other[1:] == first)
    return same_first and claim[1:] == span[1:]


def _is_arabic(text: str) -> bool:
    """Whether most letters of ``text`` are Arabic."""
    letters = [char for char in text if char.isalpha()]
    return sum("\u0600" <= char <= "\u06ff" for char in letters) * 2 > len(letters)


def split_answer(text: str) -> list[AnswerSentence]:
    """The sentences of ``text``, each with the evidence numbers its markers name."""
    sentences = []
    for piece in _pieces(text):
        numbers: list[int] = []
        for match in _MARKER.finditer(piece):
            for part in re.split(r"\s*[,،]\s*", match.group(1)):
                number = int(normalize(part))
                if number not in numbers:
                    numbers.append(number)
        claim = re.sub(r"\s+", " ", _MARKER.sub(" ", piece)).strip()
        claim = re.sub(r"\s+([.!?؟…,،:;])", r"\1", claim)
        sentences.append(AnswerSentence(piece, claim, tuple(numbers)))
    return sentences


def complete_sentences(text: str) -> tuple[list[str], str]:
    """The sentences of a growing ``text`` that are certainly complete, and the rest.

    The last piece is held back: more markers, or the rest of the sentence, may
    still come.
    """
    pieces = _pieces(text)
    if not pieces:
        return [], text
    rest_start = text.rfind(pieces[-1])
    return pieces[:-1], text[rest_start:]


def _pieces(text: str) -> list[str]:
    pieces = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        end = match.start() + len(match.group(1) or "")
        if text[start:end].strip():
            pieces.append(text[start:end].strip())
        start = match.end()
    if text[start:].strip():
        pieces.append(text[start:].strip())
    return pieces


class Verifier:
    """Decides which answer sentences their cited spans support."""

    def __init__(
        self, embedder: Embedder, min_similarity: float, min_similarity_cross_language: float
    ) -> None:
        self.embedder = embedder
        # A sentence and a span in one language score higher for the same support than
        # an English sentence does against an Arabic span: each has its threshold.
        self.min_similarity = min_similarity
        self.min_similarity_cross_language = min_similarity_cross_language

    def check(self, sentences: Sequence[AnswerSentence], evidence: Mapping[int, Span]) -> list[Verdict]:
        """One verdict a sentence, in order. The claims are embedded in one call."""
        verdicts: list[Verdict | None] = []
        to_embed: list[int] = []
        for position, sentence in enumerate(sentences):
            reason = self._reason_before_meaning(sentence, evidence)
            quoted = {
                n: 1.0 for n in sentence.cites if reason is None and _quotes(sentence.claim, evidence[n].text)
            }
            if reason or quoted:
                # A sentence that quotes its span word for word needs no embedding.
                verdicts.append(Verdict(sentence, reason, quoted))
            else:
                verdicts.append(None)
                to_embed.append(position)
        if to_embed:
            vectors = self.embedder.embed_queries([sentences[p].claim for p in to_embed])
            for position, vector in zip(to_embed, vectors, strict=True):
                sentence = sentences[position]
                similarity = {n: float(evidence[n].vector @ vector) for n in sentence.cites}
                best_n = max(similarity, key=lambda n: similarity[n])
                best = similarity[best_n]
                threshold = self.min_similarity
                if _is_arabic(sentence.claim) != _is_arabic(evidence[best_n].text):
                    threshold = self.min_similarity_cross_language
                reason = None
                if best < threshold:
                    reason = f"not close enough in meaning to the cited text ({best:.2f} < {threshold:.2f})"
                verdicts[position] = Verdict(sentence, reason, similarity)
            embedded = dict(zip(to_embed, vectors, strict=True))
            self._check_negations_across_languages(verdicts, embedded, evidence)
        return [v for v in verdicts if v is not None]

    def _check_negations_across_languages(
        self, verdicts: list[Verdict | None], vectors: Mapping[int, Vectors], evidence: Mapping[int, Span]
    ) -> None:
        """Removes a kept sentence that carries no negation of its own and cites a span in
        another language with one, unless it is clearly about what the negation does not reach.

        Words cannot be compared across languages, so the sentence is compared with two
        halves of such a span: the negations with what they negate ("نفت الجماعة علاقتها
        بالحادثة"), and the rest. It stays only when the rest, or a cited span without a
        negation, is NEGATION_MARGIN closer to it than a negated part is. One embedding
        call for all of them.
        """
        parts: dict[int, list[tuple[int, str]]] = {}  # position: (evidence number, first cue)
        texts: list[str] = []
        for position, verdict in enumerate(verdicts):
            if verdict is None or verdict.reason is not None or position not in vectors:
                continue
            claim = verdict.sentence.claim
            if _carries_negation(claim):
                continue
            for n in verdict.sentence.cites:
                span = evidence[n]
                if _is_arabic(claim) == _is_arabic(span.text):
                    continue  # compared word by word, before the meaning
                scopes = [scope for scope in _negations(span.text)[0] if scope.strong and scope.words]
                if scopes:
                    parts.setdefault(position, []).append((n, scopes[0].cue))
                    negated = " … ".join(span.text[scope.start : scope.end] for scope in scopes)
                    texts.append(_titled(span.title, _without(span.text, scopes)))
                    texts.append(_titled(span.title, negated))
        if not texts:
            return
        part_vectors = iter(self.embedder.embed_passages(texts))
        for position, negated_spans in parts.items():
            verdict = verdicts[position]
            assert verdict is not None
            cited = set(verdict.sentence.cites) - {n for n, _ in negated_spans}
            safe = [verdict.similarity[n] for n in cited]
            worst, worst_cue = -1.0, ""
            for n, cue in negated_spans:
                safe.append(float(next(part_vectors) @ vectors[position]))
                closeness = float(next(part_vectors) @ vectors[position])
                if closeness > worst:
                    worst, worst_cue = closeness, f"drops the negation '{cue}' of its source [{n}]"
            if max(safe) < worst + NEGATION_MARGIN:
                verdicts[position] = replace(verdict, reason=worst_cue)

    def _reason_before_meaning(self, sentence: AnswerSentence, evidence: Mapping[int, Span]) -> str | None:
        if not sentence.cites:
            return "cites no evidence"
        unknown = [n for n in sentence.cites if n not in evidence]
        if unknown:
            return "cites " + ", ".join(f"[{n}]" for n in unknown) + ", which is not an evidence sentence"
        if not re.search(r"\w", sentence.claim):
            return "has no words"
        cited = " ".join(f"{evidence[n].title} {evidence[n].text}" for n in sentence.cites)
        missing_numbers = sorted(numbers(sentence.claim) - numbers(cited), key=float)
        if missing_numbers:
            return "names " + ", ".join(missing_numbers) + ", which the cited text does not"
        missing_names = unsupported_names(sentence.claim, cited)
        if missing_names:
            return "names " + ", ".join(missing_names) + ", which the cited text does not"
        return negation_reason(sentence.claim, {n: evidence[n].text for n in sentence.cites})


# --- clauses and negations -----------------------------------------------------------
def _word_set(text: str) -> frozenset[str]:
    """The normalized words of a list written one word after another."""
    return frozenset(normalize(word) for word in text.split())


# Diacritics and tatweel may sit inside an Arabic word; normalize() drops them.
_MARKS = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640"
# A word as written (an English "'s" or "n't" kept on it), a number, or punctuation that
# ends a clause.
_TOKEN = re.compile(
    rf"(?P<word>(?:[^\W\d_]|[{_MARKS}])+(?:['’](?:[^\W\d_])+)?)"
    r"|(?P<number>\d+(?:[.,٫٬،]\d+)*)"
    r"|(?P<mark>[,;:()\[\]{}«»\"“”‘’،؛—–!?؟…]|\.+|(?<!\w)['-](?!\w))"
)
# Words that open a clause of their own: what follows "but" is not said by what precedes it.
_CLAUSE_OPENERS = _word_set("""but however whereas although though لكن لكنه لكنها لكنهم لكنهما ولكن ولكنه
    ولكنها ولكنهم بل وبل بينما وبينما""")
# غير أن, إلا أن: "however". (غير alone negates: غير ساحلي, landlocked.)
_THAT = _word_set("أن أنه أنها أنهم أنهما")
_OPENER_BEFORE_THAT = _word_set("غير وغير إلا")
# Conjunctions a quote may leave off the start of a clause.
_LEADING_CONJUNCTIONS = _word_set("and but so yet however و ف لكن ولكن بل ثم")

# Negation cues, normalized. A particle negates what follows it in its clause.
_EN_PARTICLES = _word_set("not no never neither nor none nobody nothing nowhere cannot without unless")
_NOT_REVERSING = _word_set("without unless")
_AR_PARTICLES = _word_set("لم لن لا ليس ليست لست لسنا ليسوا لستم ليسا ليستا لسن")
# A verb of denial or rejection negates its object, which may come after a comma
# ("denied, on Monday, that ..."): its scope runs into the next clauses until it has words.
_DENIALS = _word_set("""deny denies denied denying denial refute refutes refuted refuting reject rejects
    rejected rejecting rejection نفى نفت نفوا نفيا نفاه نفاها نفته نفتها ينفي تنفي ينفون ينفيان
    تنفيان أنكر أنكرت أنكروا ينكر تنكر ينكرون أنكره أنكرها رفض رفضت رفضوا رفضا يرفض ترفض يرفضون
    رفضه رفضها رفضته يرفضه يرفضها يرفضونه""")
# Nominal negation: غير ساحلي (landlocked), دون علاج (untreated), عدم. English writes
# most of these as un-, non-, -less or another word altogether, so they are compared
# within a language only, never across.
_AR_NOMINAL = _word_set("غير دون بدون بلا عدم")
# Not negations after all: لا يزال / لم يزل (still), لا سيما (especially), لا بد (must),
# لا شك (no doubt); "not only", "no doubt". (ما is left out as a cue altogether: in news
# Arabic it is mostly "what" (كل ما هو ضروري) or ما زال, "still"; its negating use
# before a past verb cannot be told from those without a parser.)
_AR_NOT_NEGATED = _word_set("زال زالت زالوا يزال تزال يزالون تزالان يزل تزل سيما بد شك ريب")
_EN_NOT_NEGATED = _word_set("only just merely doubt")
# "لا ... فحسب، بل" and "ليس ... فقط، بل": not only.
_AR_ONLY = _word_set("فقط فحسب")
# A negation's scope ends where a new predicate starts (وهو أمر ..., which ...).
_SCOPE_ENDS = _word_set(
    "وهو وهي وهم وهما وهن حيث كما ثم إذ لأن لأنه لأنها بسبب which who whom whose while because"
)
# What else says "not" in a claim: a claim with one of these (or a cue) is taken to keep
# its span's negation, in either language (un-, non-, -less; failed, refused, only ...).
_NEGATION_LIKE = re.compile(
    r"un(?!der|til|cle|esco|animous|i(?![nm]))[a-z]{3,}|non(?:-?[a-z]{3,})?|[a-z]{3,}less|fail\w*|unable"
    r"|refus\w*|declin\w*|lack\w*|absen\w*|except\w*|only|merely|barely|hardly|scarcely|instead|oppos\w*"
    r"|veto\w*|avoid\w*"
)
_AR_NEGATION_LIKE = _word_set("""فقط فحسب سوى إلا امتنع امتنعت يمتنع تمتنع عارض عارضت يعارض تعارض
    غياب غاب فشل فشلت يفشل تفشل عجز عجزت تجنب انعدام""")
# Words too common to tell what a claim restates.
_STOPWORDS = _word_set("""a an the of to in on at by for from with as that this these those it its is are was
    were be been being has have had do does did and or but if than then so such there their they he
    she his her we our you will would shall should can could may might must any some all also ever
    yet even about into over after before said says say في من إلى على عن مع أن إن أنه أنها أنهم
    التي الذي الذين هذا هذه ذلك تلك هو هي هم هما كان كانت يكون تكون قد لقد ما ماذا إذا أو أم ثم كل
    بعد قبل عند حتى منذ بين أي أية أيّة لهذه لهذا بها به فيها فيه منها منه عليها عليه له لها لهم
    بأن بأنه بأنها وأن يوم قال قالت""")
# An English sentence over an Arabic span with a negation, and none of its own, is kept
# only when it is this much closer to the span's words that no negation reaches than to
# the negated ones. Measured on tests/data/claims.jsonl: the one supported claim of the
# kind is 0.064 closer to the rest (claim-061, Brazil "never missed a World Cup" and won
# five), the seven that drop the negation are 0.019 closer at most.
NEGATION_MARGIN = 0.04
# Longest first: هما before ه.
_ARABIC_SUFFIXES = ("هما", "هم", "هن", "ها", "ه", "نا", "كم")


@dataclass(frozen=True)
class _Token:
    """A word or number of a text: as written, normalized, and where it is."""

    text: str
    norm: str
    start: int
    end: int


@dataclass(frozen=True)
class _Scope:
    """A negation cue of a span and what it negates."""

    cue: str
    # A particle or a verb of denial (not nominal negation, which is compared within a
    # language only).
    strong: bool
    # The content words it negates, each as the forms it may be matched by.
    words: tuple[frozenset[str], ...]
    # Where it lies in the span, cue included.
    start: int
    end: int


def _clauses(text: str) -> list[list[_Token]]:
    """The words of ``text`` by clause: split at clause punctuation (, ; : — ، ؛ quotes,
    brackets, sentence ends) and before a word that opens a clause (but, لكن, بل, بينما,
    غير أن, إلا أن)."""
    tokens: list[_Token | None] = []
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "mark":
            tokens.append(None)
        else:
            tokens.append(_Token(match.group(), normalize(match.group()), match.start(), match.end()))
    clauses: list[list[_Token]] = [[]]
    for position, token in enumerate(tokens):
        if token is None:
            clauses.append([])
            continue
        following = tokens[position + 1] if position + 1 < len(tokens) else None
        if token.norm in _CLAUSE_OPENERS or (
            token.norm in _OPENER_BEFORE_THAT and following is not None and following.norm in _THAT
        ):
            clauses.append([])
        clauses[-1].append(token)
    return [clause for clause in clauses if clause]


def _cue_forms(word: str) -> set[str]:
    """A word, and the word without a glued و ف ب ل (ولم, فلا, بدون, لغير)."""
    forms = {word}
    if len(word) > 2 and word[0] in "وفبل":
        forms.add(word[1:])
    return forms


def _cue(clause: Sequence[_Token], position: int) -> str | None:
    """What negation the word at ``position`` is: "particle", "denial", "nominal" or None."""
    word = clause[position].norm
    following = clause[position + 1].norm if position + 1 < len(clause) else ""
    forms = _cue_forms(word)
    if word.endswith(("n't", "n’t")) or forms & _EN_PARTICLES:
        return None if following in _EN_NOT_NEGATED else "particle"
    if forms & _AR_PARTICLES:
        if following in _AR_NOT_NEGATED or any(token.norm in _AR_ONLY for token in clause):
            return None
        return "particle"
    if forms & _DENIALS:
        return "denial"
    if forms & _AR_NOMINAL:
        return None if following in _THAT else "nominal"
    return None


def _content(token: _Token) -> frozenset[str] | None:
    """The forms a content word may be matched by (light stemming: an Arabic article,
    clitic, future س and pronoun suffix; an English plural or -ed/-ing), or None for a
    stop word."""
    word = token.norm
    if word in _STOPWORDS or len(word) < 2:
        return None
    if word.isascii():
        word = re.sub(r"['’]s$", "", word)
        english = {word}
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                english.add(word[: -len(suffix)])
        return frozenset(english)
    forms = {word, *stems(word)}
    for form in list(forms):
        if form.startswith("س") and len(form) >= 4 and form[1] in "يتنا":
            forms.add(form[1:])  # ستمد: تمد
        for suffix in _ARABIC_SUFFIXES:
            if form.endswith(suffix) and len(form) - len(suffix) >= 3:
                base = form[: -len(suffix)]
                # علاقتها: علاقة, whose ة is written ت before a suffix.
                forms |= {base, base[:-1] + "ه"} if base.endswith("ت") else {base}
                break
    return frozenset(forms)


def _negations(text: str) -> tuple[list[_Scope], list[frozenset[str]]]:
    """The negations of ``text``, each with what it negates, and the content words that
    no negation reaches.

    A particle's scope is the rest of its clause, up to a new predicate (وهو, which) or
    the next cue: negation reaches forward in English and Arabic alike ("did not extend
    its mission to Syria", "لن تمد مهمتها إلى سوريا"). A verb of denial's scope goes on
    into the next clauses until it holds two content words.
    """
    clauses = _clauses(text)
    scopes: list[_Scope] = []
    negated: set[tuple[int, int]] = set()
    for c, clause in enumerate(clauses):
        for t, token in enumerate(clause):
            kind = _cue(clause, t)
            if kind is None or (c, t) in negated:
                continue
            negated.add((c, t))
            words: list[frozenset[str]] = []
            end = token.end
            at_c, at_t = c, t + 1
            while at_c < len(clauses):
                if at_t >= len(clauses[at_c]):
                    if kind != "denial" or len(words) >= 2:
                        break
                    at_c, at_t = at_c + 1, 0  # "denied, on Monday, that ..."
                    continue
                other = clauses[at_c][at_t]
                if other.norm in _SCOPE_ENDS or _cue(clauses[at_c], at_t) is not None:
                    break
                negated.add((at_c, at_t))
                forms = _content(other)
                if forms is not None:
                    words.append(forms)
                end = other.end
                at_t += 1
            scopes.append(_Scope(token.text, kind != "nominal", tuple(words), token.start, end))
    rest = [
        forms
        for c, clause in enumerate(clauses)
        for t, token in enumerate(clause)
        if (c, t) not in negated and (forms := _content(token)) is not None
    ]
    return scopes, rest


def _has_cue(text: str, kinds: frozenset[str], *, reversing: bool = False) -> str | None:
    """The first negation cue of ``text`` of one of ``kinds``, as written; with
    ``reversing``, only one that denies what its sentence says ("without" and "unless"
    add a circumstance or a condition instead)."""
    for clause in _clauses(text):
        for position, token in enumerate(clause):
            if _cue(clause, position) in kinds and not (reversing and token.norm in _NOT_REVERSING):
                return token.text
    return None


def _carries_negation(text: str) -> bool:
    """Whether ``text`` says "not" in any way: a cue, or a word of _NEGATION_LIKE."""
    if _has_cue(text, frozenset({"particle", "denial", "nominal"})):
        return True
    words = {token.norm for clause in _clauses(text) for token in clause}
    return any(_NEGATION_LIKE.fullmatch(word) or _cue_forms(word) & _AR_NEGATION_LIKE for word in words)


def _titled(title: str, text: str) -> str:
    """A text as the index embeds a sentence: under its article's title."""
    return f"{title}\n{text}" if title else text


def _without(text: str, scopes: Sequence[_Scope]) -> str:
    """``text`` with the negations of ``scopes`` and what they negate cut out."""
    kept, start = [], 0
    for scope in sorted(scopes, key=lambda scope: scope.start):
        kept.append(text[start : scope.start])
        start = max(start, scope.end)
    kept.append(text[start:])
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def _restates(claim: Sequence[frozenset[str]], scope: _Scope, rest: Sequence[frozenset[str]]) -> bool:
    """Whether a claim's words restate what ``scope`` negates: they hold the negated
    word that comes first (the verb or noun negated) or half the negated words, and at
    least one of them is not also in the text that no negation reaches."""
    if not scope.words:
        return False

    def matches(word: frozenset[str], others: Sequence[frozenset[str]]) -> bool:
        return any(word & other for other in others)

    restated = [word for word in scope.words if matches(word, claim)]
    only_negated = [word for word in claim if matches(word, scope.words) and not matches(word, rest)]
    return bool(only_negated) and (matches(scope.words[0], claim) or 2 * len(restated) >= len(scope.words))


def negation_reason(claim: str, spans: Mapping[int, str]) -> str | None:
    """Why ``claim`` reverses the cited ``spans`` (evidence number to text), or None.

    * It drops a negation: a span in the claim's language negates words that the claim
      restates ("Officials denied reports that the minister resigned on Monday" against
      "The minister resigned on Monday"), and the claim carries no negation. (A claim
      in another language is measured against the span without its negations, by
      Verifier.check.)
    * It adds one: the claim negates (not, never, لم, لن, نفى ...) and no cited span
      says "not" in any way.
    """
    if _carries_negation(claim):
        added = _has_cue(claim, frozenset({"particle", "denial"}), reversing=True)
        if added and not any(_carries_negation(text) for text in spans.values()):
            sources = ", ".join(f"[{n}]" for n in spans)
            verb = "does not" if len(spans) == 1 else "do not"
            return f"adds a negation '{added}' that its source{'s' * (len(spans) > 1)} {sources} {verb} have"
        return None
    words = [forms for clause in _clauses(claim) for token in clause if (forms := _content(token))]
    negations = {n: _negations(text) for n, text in spans.items() if _is_arabic(text) == _is_arabic(claim)}
    rest = [forms for _, others in negations.values() for forms in others]
    for n, (scopes, _) in negations.items():
        for scope in scopes:
            if _restates(words, scope, rest):
                return f"drops the negation '{scope.cue}' of its source [{n}]"
    return None


# --- numbers -------------------------------------------------------------------------

# Ordinals count as their number ("the third largest" is 3); "first" is left out,
# like "one": it is mostly not a rank ("for the first time").
_EN_ORDINALS = {
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
}  # fmt: skip
_EN_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
}  # fmt: skip
# Arabic number words with their usual variants (normalized when the table is built).
# "One" (واحد, one) is left out on purpose: it is mostly not a count ("one of the leaders").
_AR_NUMBER_WORDS = {
    20: "عشرون عشرين", 30: "ثلاثون ثلاثين", 40: "أربعون أربعين", 50: "خمسون خمسين", 60: "ستون ستين",
    70: "سبعون سبعين", 80: "ثمانون ثمانين", 90: "تسعون تسعين", 100: "مائة مئة مئات",
    200: "مئتا مئتان مئتين مائتا مائتان مائتين", 300: "ثلاثمائة ثلاثمئة", 400: "أربعمائة أربعمئة",
    500: "خمسمائة خمسمئة", 600: "ستمائة ستمئة", 700: "سبعمائة سبعمئة", 800: "ثمانمائة ثمانمئة",
    900: "تسعمائة تسعمئة", 1000: "ألف آلاف", 2000: "ألفان ألفين", 1_000_000: "مليون ملايين",
    1_000_000_000: "مليار مليارات",
    # Ordinals, masculine and feminine.
    2: "اثنان اثنين اثنتان اثنتين اثنا اثنتا ثاني ثانية", 3: "ثلاث ثلاثة ثالث ثالثة",
    4: "أربع أربعة رابع رابعة", 5: "خمس خمسة خامس خامسة", 6: "ست ستة سادس سادسة",
    7: "سبع سبعة سابع سابعة", 8: "ثماني ثمان ثمانية ثامن ثامنة", 9: "تسع تسعة تاسع تاسعة",
    10: "عشر عشرة عاشر عاشرة",
}  # fmt: skip
_AR_NUMBERS = {normalize(word): value for value, words in _AR_NUMBER_WORDS.items() for word in words.split()}
# أحد عشر (11): "one" counts only before "ten".
_ELEVEN = normalize("أحد")
_DIGITS = re.compile(r"\d+(?:[.,٫٬،]\d+)*")
_WORDS = re.compile(r"[^\W\d_]+")


def numbers(text: str) -> set[str]:
    """The numbers ``text`` writes, as canonical strings: digits of any script
    ("١٩٥٨" -> "1958", "1,000" -> "1000"), number words ("fifteen", "خمسة عشر" -> "15"),
    and "twenty-three"/"ثلاثة وعشرون" -> "23"."""
    folded = normalize(text)
    found: set[str] = set()
    for match in _DIGITS.finditer(folded):
        digits = match.group().replace("٫", ".").replace("٬", ",").replace("،", ",")
        # "1,000,000" is one number; "3,5" in an Arabic text is three and a half.
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")
        found.add(digits.replace(",", "."))
    words = _WORDS.findall(folded.replace("-", " "))
    values = [_word_value(word) for word in words]
    for position, word in enumerate(words[:-1]):
        if word in (_ELEVEN, "eleven") and values[position + 1] == 10:
            values[position] = 1
    position = 0
    while position < len(values):
        value = values[position]
        following = values[position + 1] if position + 1 < len(values) else None
        position += 1
        if value is None:
            continue
        # Two words that make one number: خمسة عشر (15), ثلاثة وعشرون (23), twenty three.
        if following is not None and (
            (value < 10 and (following == 10 or 20 <= following < 100))
            or (20 <= value < 100 and following < 10)
        ):
            found.add(str(value + following))
            position += 1
            continue
        found.add(str(value))
    return found


def _word_value(word: str) -> int | None:
    if word in _EN_NUMBERS:
        return _EN_NUMBERS[word]
    if word in _EN_ORDINALS:
        return _EN_ORDINALS[word]
    for form in (word, *stems(word)):
        if form in _AR_NUMBERS:
            return _AR_NUMBERS[form]
        # و glued to a number word: وعشرون
        if form.startswith("و") and form[1:] in _AR_NUMBERS:
            return _AR_NUMBERS[form[1:]]
    return None


# --- names ---------------------------------------------------------------------------

# Capitalized English words that are not names: sentence openings, months, days,
# titles, and the common nouns of proper names (the "University" of a university).
_NOT_NAMES_TEXT = """
    a an the this that these those he she it they we i his her its their our in on at by for of to
    from with as after before during when while according but and or also however both all some many most
    more mr mrs ms dr sir president prime minister king queen prince princess sheikh emir sultan caliph
    pope foreign secretary general chief head leader january february march april may june july august
    september october november december monday tuesday wednesday thursday friday saturday sunday there
    here what who whom which where why how under over between about against since until if so yet no not
    one first second third last next new north south east west central western eastern northern southern
    world war cup prize award university college school institute academy company organization
    organisation council committee party army navy force forces republic kingdom state states union
    league museum bank revolution front movement ministry parliament assembly court church mosque day
    games olympic olympics festival treaty agreement conference summit club team empire dynasty
    caliphate islamic muslim muslims arab arabs arabic christian christians jewish sunni shia english
    french national international federation association society city province region river sea ocean
    island islands mount desert gulf peninsula lake valley dam bridge tower palace hospital airport
    station street square liberation independence declaration constitution charter article chapter
    book film prophet imam saint holy great old estimates according world's"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
# English names of places and bodies that Arabic does not transliterate, with the
# normalized Arabic words that name them.
_EXONYMS = {
    "egypt": "مصر", "egyptian": "مصر", "japan": "اليابان", "japanese": "اليابان", "jordan": "الاردن",
    "jordanian": "الاردن", "morocco": "المغرب", "moroccan": "المغرب", "germany": "المانيا",
    "german": "المانيا", "greece": "اليونان", "greek": "اليونان", "india": "الهند", "indian": "الهند",
    "china": "الصين", "chinese": "الصين", "algeria": "الجزاير", "algerian": "الجزاير",
    "netherlands": "هولندا", "dutch": "هولندا", "austria": "النمسا", "sweden": "السويد",
    "america": "امريكا اميركا الامريكيه الاميركيه الامريكي الاميركي المتحده",
    "american": "امريكا اميركا الامريكيه الاميركيه الامريكي الاميركي المتحده",
    "united": "المتحده", "nations": "الامم", "us": "المتحده", "usa": "المتحده", "un": "الامم",
    "nato": "الناتو الاطلسي", "atlantic": "الاطلسي", "mediterranean": "المتوسط", "red": "الاحمر",
    "arabia": "السعوديه العربيه", "saudi": "السعوديه", "emirates": "الامارات", "uae": "الامارات",
    "bahrain": "البحرين", "yemen": "اليمن", "sudan": "السودان", "lebanon": "لبنان", "kuwait": "الكويت",
    "britain": "بريطانيا البريطاني البريطانيه", "british": "بريطانيا البريطاني البريطانيه",
    "uk": "بريطانيا المتحده", "england": "انجلترا انكلترا", "russia": "روسيا الروسي الروسيه",
    "russian": "روسيا الروسي الروسيه", "turkey": "تركيا التركي التركيه", "turkish": "تركيا التركي التركيه",
    "syria": "سوريا السوري السوريه", "syrian": "سوريا السوري السوريه", "iraq": "العراق",
    "iraqi": "العراق", "iran": "ايران", "iranian": "ايران", "palestine": "فلسطين", "palestinian": "فلسطين",
    "israel": "اسرايل", "israeli": "اسرايل", "ottoman": "العثمانيه العثماني العثمانيين",
    "ottomans": "العثمانيه العثماني العثمانيين", "europe": "اوروبا الاوروبي", "european": "اوروبا الاوروبي",
    "africa": "افريقيا الافريقي", "african": "افريقيا الافريقي", "asia": "اسيا الاسيوي الاسيويه",
    "asian": "اسيا الاسيويه", "islam": "الاسلام", "quran": "القران", "koran": "القران",
    "kremlin": "الكرملين", "pentagon": "البنتاغون", "white": "الابيض", "house": "البيت",
    "west": "الغرب", "middle": "الاوسط", "mecca": "مكه", "medina": "المدينه", "jerusalem": "القدس",
    "cairo": "القاهره", "damascus": "دمشق", "baghdad": "بغداد", "beirut": "بيروت", "riyadh": "الرياض",
}  # fmt: skip
_LATIN_NAME = re.compile(r"\b[A-Z][A-Za-z'’-]*[A-Za-z]")
# Consonant classes that Arabic and English spellings of one name share. Vowels,
# h, w, y and the Arabic long vowels, hamza and ain are left out: transliterations
# differ most there.
_ARABIC_CLASS = {
    "ب": "B", "پ": "B", "ت": "T", "ث": "T", "ط": "T", "د": "D", "ذ": "D", "ض": "D", "ظ": "D",
    "ج": "G", "غ": "G", "ك": "K", "ق": "K", "خ": "K", "س": "S", "ص": "S", "ز": "S", "ش": "X",
    "ر": "R", "ل": "L", "م": "M", "ن": "N", "ف": "F", "ڤ": "F",
}  # fmt: skip
_LATIN_RULES = (
    ("sch", "X"), ("sh", "X"), ("ch", "X"), ("th", "T"), ("ph", "F"), ("kh", "K"), ("gh", "G"),
    ("dh", "D"), ("ck", "K"), ("qu", "K"), ("ng", "N"), ("x", "KS"), ("b", "B"), ("p", "B"),
    ("t", "T"), ("d", "D"), ("j", "G"), ("g", "G"), ("k", "K"), ("q", "K"), ("c", "K"), ("s", "S"),
    ("z", "S"), ("r", "R"), ("l", "L"), ("m", "M"), ("n", "N"), ("f", "F"), ("v", "F"),
)  # fmt: skip
# Classes one spelling may use where the other uses the neighbour (Palestine/فلسطين,
# Bashar/بشار, George's g as ج, Osman/عثمان).
_ALIKE = frozenset({("B", "F"), ("K", "G"), ("S", "X"), ("T", "D"), ("S", "T")})
MIN_NAME_CLASSES = 2
# Two skeletons spell one name when their common subsequence covers this share of the longer.
MIN_NAME_OVERLAP = 0.6


def unsupported_names(claim: str, cited: str) -> list[str]:
    """The names in an English ``claim`` that the cited text does not write, in
    either script: a name matches a word of the cited text with the same consonants
    (Cameron/كاميرون, Sarajevo/سراييفو), or a known exonym (Egypt/مصر)."""
    cited_words = set(_WORDS.findall(normalize(cited)))
    cited_forms = {form for word in cited_words for form in stems(word)} | cited_words
    skeletons = {
        _arabic_skeleton(form) for word in cited_words if not word.isascii() for form in _name_forms(word)
    }
    skeletons |= {_latin_skeleton(word) for word in cited_words if word.isascii()}
    skeletons = {skeleton for skeleton in skeletons if len(skeleton) >= MIN_NAME_CLASSES}
    missing = []
    for name in _latin_names(claim):
        folded = name.casefold()
        if folded in cited_words or any(word in cited_forms for word in _EXONYMS.get(folded, "").split()):
            continue
        skeleton = _latin_skeleton(folded)
        if len(skeleton) < MIN_NAME_CLASSES:
            continue  # too short to tell (Al, IS)
        if not any(_skeletons_match(skeleton, other) for other in skeletons):
            missing.append(name)
    return missing


def _name_forms(word: str) -> set[str]:
    """An Arabic word as a name may be written: itself, without its article, or without
    a glued و ف ب ل (not ك, a rare clitic that would turn كاميرون into اميرون, Macron)."""
    forms = {word}
    stemmed = stems(word)
    if len(stemmed) == 1:
        forms.add(stemmed[0])
    elif word[0] in "وفبل":
        forms.add(word[1:])
    return forms


def _latin_names(claim: str) -> list[str]:
    names = []
    for match in _LATIN_NAME.finditer(claim):
        word = re.sub(r"['’]s$", "", match.group())
        folded = word.casefold()
        if folded not in _NOT_NAMES and folded not in _EN_NUMBERS and folded not in _EN_ORDINALS:
            names.append(word)
    return names


def _latin_skeleton(word: str) -> str:
    word = re.sub(r"['’-]", "", word)
    classes = []
    position = 0
    while position < len(word):
        for pattern, value in _LATIN_RULES:
            if word.startswith(pattern, position):
                classes.append(value)
                position += len(pattern)
                break
        else:
            position += 1
    return _collapse("".join(classes))


def _arabic_skeleton(word: str) -> str:
    return _collapse("".join(_ARABIC_CLASS.get(char, "") for char in word))


def _collapse(skeleton: str) -> str:
    """Doubled consonants are one (Mohammed/محمد, Hassan/حسن)."""
    return re.sub(r"(.)\1+", r"\1", skeleton)


def _skeletons_match(name: str, other: str) -> bool:
    """Whether two skeletons spell one name: they start alike, and their longest
    common subsequence covers MIN_NAME_OVERLAP of the longer one (classes in _ALIKE
    count as equal)."""
    longest = max(len(name), len(other))
    if not _alike(name[0], other[0]) or min(len(name), len(other)) / longest < MIN_NAME_OVERLAP:
        return False
    table = [[0] * (len(other) + 1) for _ in range(len(name) + 1)]
    for i, a in enumerate(name, start=1):
        for j, b in enumerate(other, start=1):
            same = _alike(a, b)
            table[i][j] = table[i - 1][j - 1] + 1 if same else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1] / longest >= MIN_NAME_OVERLAP


def _alike(a: str, b: str) -> bool:
    return a == b or (a, b) in _ALIKE or (b, a) in _ALIKE
