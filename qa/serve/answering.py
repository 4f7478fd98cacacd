"""Answering a retrieved question, in either mode: ``extractive`` (sentences quoted
from the passages) or ``generated`` (written by the model, every sentence verified
against the spans it cites), whole or streamed.

Both generated paths, whole and streamed, run through one core: it asks the model
only when the evidence is strong enough and the model is not paused after failures,
records the model's health, and falls back to the extractive answer (saying why in
``llm_error``) when the model fails.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import anyio

from qa.answer.extractive import ExtractiveAnswerer
from qa.answer.generated import AnswerGenerator
from qa.config import AnswerSettings
from qa.errors import LLMError
from qa.records import Answer, AnswerPiece
from qa.serve.questions import Asked

logger = logging.getLogger("qa.serve.answering")

# What the model yields for one question: verified sentences as they come, then the
# whole answer.
Generation = Callable[[AnswerGenerator, Asked], AsyncIterator[AnswerPiece | Answer]]


class Answering:
    def __init__(
        self, settings: AnswerSettings, answerer: ExtractiveAnswerer, generator: AnswerGenerator | None
    ) -> None:
        self.settings = settings
        self.answerer = answerer
        # None when no model is configured ([llm]): every answer is extractive.
        self.generator = generator

    def extractive(self, asked: Asked) -> Answer:
        return self.answerer.answer(asked.question, asked.retrieval)

    async def generated(self, asked: Asked) -> Answer:
        """The model's verified answer, or the extractive one (with ``llm_error`` if the
        model failed or is paused) when the model is not to be asked or fails.

        A generated answer carries the confidence of the evidence it was written
        from; a "not answered" reply, or one with no sentence verified, is
        ``found: false`` whatever that confidence."""
        async with aclosing(self._generated(asked, _whole)) as items:
            (answer,) = [item async for item in items]
        assert isinstance(answer, Answer)  # a whole answer comes with no pieces before it
        return answer

    def generated_stream(self, asked: Asked) -> AsyncGenerator[AnswerPiece | Answer, None]:
        """Verified sentences of the model's answer as they come, then the whole answer;
        the extractive answer alone (with ``llm_error``) if the model fails before a sentence."""
        return self._generated(asked, _streamed)

    async def _generated(
        self, asked: Asked, generation: Generation
    ) -> AsyncGenerator[AnswerPiece | Answer, None]:
        confidence = await anyio.to_thread.run_sync(
            self.answerer.confidence, asked.question, asked.retrieval, abandon_on_cancel=True
        )
        generator = self._generator_for(confidence)
        if not isinstance(generator, AnswerGenerator):
            yield await self._extractive_instead(asked, generator)
            return
        try:
            async for item in generation(generator, asked):
                yield dataclasses.replace(item, confidence=confidence) if isinstance(item, Answer) else item
        except LLMError as exc:
            generator.health.record_failure(str(exc))
            logger.warning("generated answer failed, answering with quotes: %s", exc)
            yield await self._extractive_instead(asked, str(exc))
            return
        generator.health.record_success()

    def _generator_for(self, confidence: float) -> AnswerGenerator | str | None:
        """The generator to ask; else None (no model configured, or evidence too weak to
        answer from at all), or why the model is paused after failures. The model is asked
        for "related" evidence too: it reads the passages, and a sentence of its answer
        that they bear out (verified) answers where the best quote alone was not sure."""
        if self.generator is None or confidence < self.settings.related_min_confidence:
            return None
        return self.generator.health.paused() or self.generator

    async def _extractive_instead(self, asked: Asked, llm_error: str | None) -> Answer:
        answer = await anyio.to_thread.run_sync(self.extractive, asked)
        return dataclasses.replace(answer, llm_error=llm_error)

    def model_health(self) -> dict[str, Any]:
        """The model's state for /healthz: configured or not, last success and error, paused."""
        if self.generator is None:
            return {"configured": False}
        return self.generator.health.summary()


async def _whole(generator: AnswerGenerator, asked: Asked) -> AsyncIterator[Answer]:
    # The model's whole answer in one reply (a non-streaming request).
    yield await generator.generate(asked.question, asked.retrieval.passages, asked.turns)


def _streamed(generator: AnswerGenerator, asked: Asked) -> AsyncIterator[AnswerPiece | Answer]:
    return generator.stream(asked.question, asked.retrieval.passages, asked.turns)
