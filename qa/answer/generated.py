"""Generated answers: evidence -> a prompt (``qa.answer.prompt``) -> the model -> only
the sentences that their cited spans support. No HTTP server here.

The model's answer is checked sentence by sentence (``qa.answer.verify``), whole or
as it streams; its markers are renumbered to the citations shown, in order of first
use. Everything the answer needs comes with the passages: no index is read here.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import anyio

from qa.answer.extractive import related
from qa.answer.prompt import NO_ANSWER_MARKER, Prompt, build_prompt, candidate_sentences
from qa.answer.verify.sentences import AnswerSentence, complete_sentences, split_answer
from qa.answer.verify.verifier import Span, Verdict, Verifier
from qa.config import LLMSettings
from qa.embed.base import Embedder
from qa.errors import LLMError
from qa.llm.chat import ChatModel, StreamState
from qa.llm.client import ChatClient
from qa.llm.health import LLMHealth
from qa.llm.tokens import token_counter
from qa.records import (
    Answer,
    AnswerMode,
    AnswerPiece,
    Citation,
    Outcome,
    Passage,
    RemovedSentence,
    Timings,
    Turn,
)


class AnswerGenerator:
    """Generates verified answers with the configured model; one per service, so that
    its connection pool and the model's health outlive index reloads."""

    def __init__(
        self,
        settings: LLMSettings,
        embedder: Embedder,
        max_sentences: int,
        *,
        model: ChatModel | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.count_tokens = token_counter(settings.encoding)
        self.model: ChatModel = model or ChatClient(settings)
        self.health = LLMHealth(settings)

    async def aclose(self) -> None:
        await self.model.aclose()

    def _verifier(self) -> Verifier:
        llm = self.settings
        return Verifier(self.embedder, llm.min_similarity, llm.min_similarity_cross_language)

    def _cut_off(self) -> LLMError:
        limit = self.settings.max_answer_tokens
        return LLMError(f"the answer was cut at llm.max_answer_tokens ({limit}) mid-sentence")

    def prompt(self, question: str, passages: Sequence[Passage], turns: Sequence[Turn]) -> Prompt:
        candidates = candidate_sentences(passages)
        return build_prompt(question, turns, candidates, self.settings, self.max_sentences, self.count_tokens)

    async def generate(self, question: str, passages: tuple[Passage, ...], turns: Sequence[Turn]) -> Answer:
        """The model's whole answer, verified; LLMError when the model fails."""
        started = time.perf_counter()
        # Counting tokens blocks: off the event loop, as is everything below that embeds.
        prompt = await anyio.to_thread.run_sync(
            self.prompt, question, passages, turns, abandon_on_cancel=True
        )
        prompt_ms = _ms_since(started)
        completion = await self.model.complete(prompt.messages)
        started = time.perf_counter()
        text = completion.text.strip()
        if completion.finish_reason == "length" and not _ends_sentence(text):
            raise self._cut_off()
        verdicts: list[Verdict] = []
        if not _is_no_answer(text):
            verifier = self._verifier()
            verdicts = await anyio.to_thread.run_sync(
                lambda: verifier.check(split_answer(text), _spans(prompt))
            )
        timings = Timings(round(prompt_ms, 1), round(completion.model_ms, 1), round(_ms_since(started), 1))
        return _answer(question, passages, prompt, verdicts, timings)

    async def stream(
        self, question: str, passages: tuple[Passage, ...], turns: Sequence[Turn]
    ) -> AsyncIterator[AnswerPiece | Answer]:
        """Each verified sentence as soon as it is complete, then the whole answer.

        LLMError when the model fails before a sentence was shown; after that, what
        was shown stands, and the answer says what went wrong in ``llm_error``.
        """
        started = time.perf_counter()
        prompt = await anyio.to_thread.run_sync(
            self.prompt, question, passages, turns, abandon_on_cancel=True
        )
        prompt_ms = _ms_since(started)
        spans = _spans(prompt)
        verifier = self._verifier()
        state = StreamState()
        verdicts: list[Verdict] = []
        numbering: dict[int, int] = {}
        shown = 0
        verify_seconds = 0.0
        buffer = ""
        error: str | None = None

        async def checked(pieces: Sequence[str]) -> AsyncIterator[AnswerPiece]:
            nonlocal verify_seconds, shown
            begun = time.perf_counter()
            sentences = [sentence for piece in pieces for sentence in split_answer(piece)]
            new = await anyio.to_thread.run_sync(verifier.check, sentences, spans)
            verify_seconds += time.perf_counter() - begun
            verdicts.extend(new)
            for verdict in new:
                if verdict.reason is None:
                    yield AnswerPiece((" " if shown else "") + _renumbered(verdict.sentence, numbering))
                    shown += 1

        try:
            async for delta in self.model.stream(prompt.messages, state):
                buffer += delta
                if _is_no_answer(buffer):
                    continue
                complete, buffer = complete_sentences(buffer)
                if complete:
                    async for piece in checked(complete):
                        yield piece
        except LLMError as exc:
            if not shown:
                raise
            error = str(exc)
        tail = buffer.strip()
        if tail and not _is_no_answer(tail):
            if error is not None or (state.finish_reason == "length" and not _ends_sentence(tail)):
                reason = "cut off before its end" + (f" ({error})" if error else " at llm.max_answer_tokens")
                verdicts.extend(Verdict(s, reason, {}) for s in split_answer(tail))
            else:
                async for piece in checked([tail]):
                    yield piece
        if error is None and state.finish_reason == "length" and not shown:
            raise self._cut_off()
        timings = Timings(round(prompt_ms, 1), round(state.model_ms, 1), round(verify_seconds * 1000, 1))
        answer = _answer(question, passages, prompt, verdicts, timings)
        yield replace(answer, llm_error=error)


def _spans(prompt: Prompt) -> dict[int, Span]:
    return {
        n: Span(sentence.text, sentence.title, sentence.vector) for n, sentence in prompt.evidence.items()
    }


def _answer(
    question: str,
    passages: tuple[Passage, ...],
    prompt: Prompt,
    verdicts: Sequence[Verdict],
    timings: Timings,
) -> Answer:
    removed = tuple(RemovedSentence(v.sentence.raw, v.reason) for v in verdicts if v.reason is not None)
    kept = [v for v in verdicts if v.reason is None]
    if not kept:
        # The model is asked only when the evidence is strong enough to answer from: when
        # it writes nothing that the passages bear out, they are shown as related.
        return Answer(question, related(question), False, (), passages, AnswerMode.GENERATED, removed,
                      timings=timings, outcome=Outcome.RELATED)  # fmt: skip
    numbering: dict[int, int] = {}
    text = " ".join(_renumbered(v.sentence, numbering) for v in kept)
    similarity: dict[int, float] = {}
    for verdict in kept:
        for n, value in verdict.similarity.items():
            similarity[n] = max(similarity.get(n, -1.0), value)
    # Retrieval collapsed the copies of a story into one passage: its citations name the others.
    copies = {passage.doc_id: passage.also_in for passage in passages}
    citations = tuple(
        Citation(new, e.doc_id, e.title, e.start, e.end, e.text, round(similarity[old], 4),
                 copies.get(e.doc_id, ()))
        for old, new in numbering.items()
        for e in [prompt.evidence[old]]
    )  # fmt: skip
    return Answer(question, text, True, citations, passages, AnswerMode.GENERATED, removed, timings=timings)


def _renumbered(sentence: AnswerSentence, numbering: dict[int, int]) -> str:
    """The sentence with its markers renumbered to the citations' ``n`` (in order of
    first appearance over the answer), one ``[n]`` each, at the sentence's end."""
    for n in sentence.cites:
        numbering.setdefault(n, len(numbering) + 1)
    markers = "".join(f"[{numbering[n]}]" for n in sentence.cites)
    claim = sentence.claim
    end = re.search(r"[.!?؟…]+$", claim)
    if end:
        return f"{claim[: end.start()]} {markers}{end.group()}"
    return f"{claim} {markers}"


def _is_no_answer(text: str) -> bool:
    return text.strip().strip("\"'`*.").upper().startswith(NO_ANSWER_MARKER)


def _ends_sentence(text: str) -> bool:
    return bool(re.search(r"[.!?؟…](\s*\[[^\]]*\])*\s*$|\]\s*$", text.strip()))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
