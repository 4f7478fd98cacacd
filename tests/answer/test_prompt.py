"""The prompt of a generated answer: its token budget."""

from __future__ import annotations

import numpy as np

from qa.answer.prompt import EvidenceSentence, build_prompt
from qa.config import Settings
from qa.llm.tokens import load_encoding
from qa.records import Turn

# The evidence's stored vectors play no part in packing a prompt.
VECTOR = np.zeros(4, np.float32)


def test_the_prompt_never_exceeds_its_budget_nor_cuts_a_sentence(base_settings: Settings) -> None:
    encoding = load_encoding("cl100k_base")

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    long_sentence = "وقال رئيس الوزراء البريطاني ديفيد كاميرون إنه سيدعو الرئيس الروسي بوتين " * 6
    candidates = [
        EvidenceSentence(0, f"doc-{i % 7}", f"عنوان {i % 7}", "2015-11-15", i * 1000, i * 1000 + 400,
                         f"{i}: {long_sentence[: 100 + 13 * i]}.", i, VECTOR)
        for i in range(60)
    ]  # fmt: skip
    turns = [Turn(f"question {i} " * 30, f"answer {i} " * 60) for i in range(5)]
    for max_context in (600, 1200, 4096):
        settings = base_settings.llm.__class__(max_context_tokens=max_context, max_answer_tokens=200)
        prompt = build_prompt("What did Cameron ask Putin?", turns, candidates, settings, 2, count)
        budget = max_context - 200
        assert prompt.tokens <= budget
        measured = sum(count(m.content) + 4 for m in prompt.messages) + 3
        assert measured == prompt.tokens
        user = prompt.messages[-1].content
        for n, sentence in prompt.evidence.items():
            assert f"[{n}] {sentence.text}" in user  # whole, never half
        # Best first: the evidence is a prefix of the candidates, less what did not fit.
        assert prompt.evidence and min(s.sentence_id for s in prompt.evidence.values()) == 0
        # Turns are dropped oldest first: what is kept is the newest ones.
        kept = [m.content for m in prompt.messages if m.role == "user"][:-1]
        assert kept == [t.question.strip() for t in turns[len(turns) - prompt.turns_kept :]]
    assert len(build_prompt("q", turns, candidates, settings, 2, count).evidence) > 10
