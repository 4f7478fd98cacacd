"""Texts that the tokenizer and embedding checks of both backends run on."""

from __future__ import annotations

import json
import random

from qa.text.sentences import split_sentences

from .conftest import DEV_CORPUS, SAMPLE_ARTICLE


def sample_lines() -> list[str]:
    """Every line of the sample article, and every sentence as the indexer cuts them."""
    text = SAMPLE_ARTICLE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines + [text[s.start : s.end] for s in split_sentences(text)]


def dev_sentences() -> list[str]:
    """Every title, paragraph and sentence (as the indexer cuts them) of the dev corpus."""
    texts: list[str] = []
    for line in DEV_CORPUS.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        texts.append(doc["title"])
        texts.extend(p for p in doc["text"].split("\n") if p.strip())
        texts.extend(doc["text"][s.start : s.end] for s in split_sentences(doc["text"]))
    return texts


ARABIC_WORDS = (
    "قمة",
    "مجموعة",
    "العشرين",
    "في",
    "أنطاليا",
    "التركية",
    "الرئيس",
    "الأميركي",
    "باراك",
    "أوباما",
    "ونظيره",
    "الروسي",
    "فلاديمير",
    "بوتين",
    "سوريا",
    "الأمم",
    "المتحدة",
    "لإطلاق",
    "النار",
    "تنظيم",
    "الدولة",
    "الإسلامية",
    "داعش",
    "باريس",
    "هجمات",
    "اللاجئين",
    "الاقتصاد",
    "العالمي",
    "والنمو",
    "المستدام",
    "الصحفيين",
    "البيت",
    "الأبيض",
    "مَدْرَسَةٌ",
    "كِتَابٌ",
    "اللّٰه",
    "ـــــالعربيةـــــ",
    "إنّ",
)
ENGLISH_WORDS = (
    "G20",
    "summit",
    "Antalya",
    "Turkey",
    "President",
    "Obama",
    "Putin",
    "Syria",
    "ceasefire",
    "United",
    "Nations",
    "refugees",
    "economy",
    "growth",
    "Paris",
    "attacks",
    "ISIS",
    "Daesh",
    "talks",
    "leaders",
    "Sunday",
    "November",
    "don't",
    "U.S.",
    "e-mail",
    "state-of-the-art",
    "COVID-19",
    "iPhone",
    "McDonald's",
    "naïve",
    "café",
)
EXTRAS = (
    "2015",
    "١٥",
    "٢٠١٥",
    "15نوفمبر/تشرين",
    "35%",
    "$1.5bn",
    "،",
    "؟",
    "؛",
    "«",
    "»",
    "(داعش)",
    '"الدولة"',
    "...",
    "—",
    "–",
    "https://example.org/a?b=1",
    "user@example.com",
    "#G20",
    "@POTUS",
    "ﷺ",
    "ﻻ",
    "٪",
    "٫",
    "3.14",
    "1,000",
    "x²",
    "½",
    "ﬁ",
    "Ｆｕｌｌ",
    "😀",
    "🇹🇷",
    "♥️",
)
SEPARATORS = (" ", " ", " ", " ", "  ", "\t", "\n", " \n ", "\u00a0", "\u200f", "\u200c", "")


def mixed_strings(count: int = 200, seed: int = 20151115) -> list[str]:
    """Deterministic Arabic/English mixtures with odd spacing, marks and symbols."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(count):
        words = [
            rng.choice(rng.choice((ARABIC_WORDS, ARABIC_WORDS, ENGLISH_WORDS, EXTRAS)))
            for _ in range(rng.randint(1, 25))
        ]
        text = words[0]
        for word in words[1:]:
            text += rng.choice(SEPARATORS) + word
        if rng.random() < 0.2:
            text = rng.choice((" ", "  ", "\n")) + text
        if rng.random() < 0.2:
            text += rng.choice((" ", "  ", "\n", ".", " ."))
        out.append(text)
    return out
