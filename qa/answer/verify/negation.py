"""Whether a claim drops a negation of the spans it cites, or adds one.

The cues, matched on normalized words (a glued و ف ب ل aside): English not, n't, no,
never, neither, nor, none, nobody, nothing, nowhere, cannot, without, unless; Arabic
لم لن لا ليس (ليست لست ...); verbs of denial and rejection (deny, refute, reject; نفى
ينفي نفت تنفي, أنكر ينكر, رفض يرفض and their forms); and Arabic nominal negation غير دون
بدون بلا عدم (غير ساحلي, landlocked). Not cues: لا يزال, ما زال, لم يزل (still), لا سيما,
لا بد, لا شك, غير أن (however), "not only", "no doubt", and ما altogether (mostly "what"
in news Arabic; its negating use cannot be told without a parser). A cue negates what
follows it in its clause, up to a new predicate (وهو, حيث, كما, which, because) or the
next cue; a verb of denial reaches into the next clauses until it holds two content
words ("denied, on Monday, that").

* A claim drops a negation when it carries none (no cue, and no word such as un-,
  non-, -less, failed, refused, only, فقط, سوى, إلا, امتنع) and restates what a cue of
  a span in its own language negates: the first negated word, or half the negated
  words, and at least one word found only in the negated part of the cited text
  (light stemming: article, clitics, future س, pronoun suffixes; English -s, -ed,
  -ing). Over a span in another language, where words cannot be compared, the
  verifier compares meanings instead (``qa.answer.verify.verifier``).
* A claim adds a negation when it negates (a cue, "without" and "unless" aside) and
  no cited span says "not" in any way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qa.answer.verify.clauses import THAT, Token, split_clauses, word_set
from qa.text.language import is_mostly_arabic
from qa.text.tokens import stems

# Negation cues, normalized. A particle negates what follows it in its clause.
_EN_PARTICLES = word_set("not no never neither nor none nobody nothing nowhere cannot without unless")
_NOT_REVERSING = word_set("without unless")
_AR_PARTICLES = word_set("لم لن لا ليس ليست لست لسنا ليسوا لستم ليسا ليستا لسن")
# A verb of denial or rejection negates its object, which may come after a comma
# ("denied, on Monday, that ..."): its scope runs into the next clauses until it has words.
_DENIALS = word_set("""deny denies denied denying denial refute refutes refuted refuting reject rejects
    rejected rejecting rejection نفى نفت نفوا نفيا نفاه نفاها نفته نفتها ينفي تنفي ينفون ينفيان
    تنفيان أنكر أنكرت أنكروا ينكر تنكر ينكرون أنكره أنكرها رفض رفضت رفضوا رفضا يرفض ترفض يرفضون
    رفضه رفضها رفضته يرفضه يرفضها يرفضونه""")
# Nominal negation: غير ساحلي (landlocked), دون علاج (untreated), عدم. English writes
# most of these as un-, non-, -less or another word altogether, so they are compared
# within a language only, never across.
_AR_NOMINAL = word_set("غير دون بدون بلا عدم")
# Not negations after all: لا يزال / لم يزل (still), لا سيما (especially), لا بد (must),
# لا شك (no doubt); "not only", "no doubt". (ما is left out as a cue altogether: in news
# Arabic it is mostly "what" (كل ما هو ضروري) or ما زال, "still"; its negating use
# before a past verb cannot be told from those without a parser.)
_AR_NOT_NEGATED = word_set("زال زالت زالوا يزال تزال يزالون تزالان يزل تزل سيما بد شك ريب")
_EN_NOT_NEGATED = word_set("only just merely doubt")
# "لا ... فحسب، بل" and "ليس ... فقط، بل": not only.
_AR_ONLY = word_set("فقط فحسب")
# A negation's scope ends where a new predicate starts (وهو أمر ..., which ...).
_SCOPE_ENDS = word_set(
    "وهو وهي وهم وهما وهن حيث كما ثم إذ لأن لأنه لأنها بسبب which who whom whose while because"
)
# What else says "not" in a claim: a claim with one of these (or a cue) is taken to keep
# its span's negation, in either language (un-, non-, -less; failed, refused, only ...).
_NEGATION_LIKE = re.compile(
    r"un(?!der|til|cle|esco|animous|i(?![nm]))[a-z]{3,}|non(?:-?[a-z]{3,})?|[a-z]{3,}less|fail\w*|unable"
    r"|refus\w*|declin\w*|lack\w*|absen\w*|except\w*|only|merely|barely|hardly|scarcely|instead|oppos\w*"
    r"|veto\w*|avoid\w*"
)
_AR_NEGATION_LIKE = word_set("""فقط فحسب سوى إلا امتنع امتنعت يمتنع تمتنع عارض عارضت يعارض تعارض
    غياب غاب فشل فشلت يفشل تفشل عجز عجزت تجنب انعدام""")
# Words too common to tell what a claim restates.
_STOPWORDS = word_set("""a an the of to in on at by for from with as that this these those it its is are was
    were be been being has have had do does did and or but if than then so such there their they he
    she his her we our you will would shall should can could may might must any some all also ever
    yet even about into over after before said says say في من إلى على عن مع أن إن أنه أنها أنهم
    التي الذي الذين هذا هذه ذلك تلك هو هي هم هما كان كانت يكون تكون قد لقد ما ماذا إذا أو أم ثم كل
    بعد قبل عند حتى منذ بين أي أية أيّة لهذه لهذا بها به فيها فيه منها منه عليها عليه له لها لهم
    بأن بأنه بأنها وأن يوم قال قالت""")
# Longest first: هما before ه.
_ARABIC_SUFFIXES = ("هما", "هم", "هن", "ها", "ه", "نا", "كم")


@dataclass(frozen=True)
class Scope:
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


def _cue_forms(word: str) -> set[str]:
    """A word, and the word without a glued و ف ب ل (ولم, فلا, بدون, لغير)."""
    forms = {word}
    if len(word) > 2 and word[0] in "وفبل":
        forms.add(word[1:])
    return forms


def _cue(clause: Sequence[Token], position: int) -> str | None:
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
        return None if following in THAT else "nominal"
    return None


def _content(token: Token) -> frozenset[str] | None:
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


def negation_scopes(text: str) -> tuple[list[Scope], list[frozenset[str]]]:
    """The negations of ``text``, each with what it negates, and the content words that
    no negation reaches.

    A particle's scope is the rest of its clause, up to a new predicate (وهو, which) or
    the next cue: negation reaches forward in English and Arabic alike ("did not extend
    its mission to Syria", "لن تمد مهمتها إلى سوريا"). A verb of denial's scope goes on
    into the next clauses until it holds two content words.
    """
    clauses = split_clauses(text)
    scopes: list[Scope] = []
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
            scopes.append(Scope(token.text, kind != "nominal", tuple(words), token.start, end))
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
    for clause in split_clauses(text):
        for position, token in enumerate(clause):
            if _cue(clause, position) in kinds and not (reversing and token.norm in _NOT_REVERSING):
                return token.text
    return None


def carries_negation(text: str) -> bool:
    """Whether ``text`` says "not" in any way: a cue, or a word of _NEGATION_LIKE."""
    if _has_cue(text, frozenset({"particle", "denial", "nominal"})):
        return True
    words = {token.norm for clause in split_clauses(text) for token in clause}
    return any(_NEGATION_LIKE.fullmatch(word) or _cue_forms(word) & _AR_NEGATION_LIKE for word in words)


def without_negations(text: str, scopes: Sequence[Scope]) -> str:
    """``text`` with the negations of ``scopes`` and what they negate cut out."""
    kept, start = [], 0
    for scope in sorted(scopes, key=lambda scope: scope.start):
        kept.append(text[start : scope.start])
        start = max(start, scope.end)
    kept.append(text[start:])
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def _restates(claim: Sequence[frozenset[str]], scope: Scope, rest: Sequence[frozenset[str]]) -> bool:
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
    if carries_negation(claim):
        added = _has_cue(claim, frozenset({"particle", "denial"}), reversing=True)
        if added and not any(carries_negation(text) for text in spans.values()):
            sources = ", ".join(f"[{n}]" for n in spans)
            verb = "does not" if len(spans) == 1 else "do not"
            return f"adds a negation '{added}' that its source{'s' * (len(spans) > 1)} {sources} {verb} have"
        return None
    words = [forms for clause in split_clauses(claim) for token in clause if (forms := _content(token))]
    negations = {
        n: negation_scopes(text)
        for n, text in spans.items()
        if is_mostly_arabic(text) == is_mostly_arabic(claim)
    }
    rest = [forms for _, others in negations.values() for forms in others]
    for n, (scopes, _) in negations.items():
        for scope in scopes:
            if _restates(words, scope, rest):
                return f"drops the negation '{scope.cue}' of its source [{n}]"
    return None
