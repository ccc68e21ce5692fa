"""Intent matching and slot filling over one utterance.

Every phrase, keyword and pattern of every candidate intent is located in the normalised text.
A match lying inside a longer match of another intent is discarded (不是 beats 是, "not really"
beats "really"); the intent with the longest remaining match wins, an utterance that *is* one of
an intent's phrases beats everything, and ties go to ``priority``, then to the state's own intents
before the global ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from voicebot.dialog.languages import Language, Reading
from voicebot.dialog.script import IntentSpec, SlotSpec

SlotValue = Decimal | date | time | datetime | str

_EXACT_BONUS = 10_000


@dataclass(frozen=True, slots=True)
class IntentMatcher:
    name: str
    phrases: tuple[str, ...]  # normalised phrases and keywords
    patterns: tuple[re.Pattern[str], ...]
    priority: int

    @classmethod
    def compile(cls, name: str, spec: IntentSpec, language: Language) -> IntentMatcher:
        """Raises ``re.error`` for a bad pattern."""
        phrases = tuple(
            dict.fromkeys(
                normalized
                for phrase in (*spec.phrases, *spec.keywords)
                if (normalized := language.normalize(phrase))
            )
        )
        patterns = tuple(re.compile(pattern) for pattern in spec.patterns)
        return cls(name, phrases, patterns, spec.priority)

    def spans(self, language: Language, text: str) -> list[tuple[int, int, bool]]:
        """(start, end, is the whole utterance) for every place this intent is expressed."""
        found = [
            (start, end, phrase == text)
            for phrase in self.phrases
            if phrase in text  # cheap test first: most phrases are absent
            for start, end in language.find(text, phrase)
        ]
        found.extend(
            (match.start(), match.end(), match.start() == 0 and match.end() == len(text))
            for pattern in self.patterns
            for match in pattern.finditer(text)
            if match.end() > match.start()
        )
        return found


def best_intent(
    language: Language,
    text: str,
    candidates: Sequence[IntentMatcher],
    ignore: IntentMatcher | None = None,
) -> IntentMatcher | None:
    """The intent ``text`` (already normalised) expresses best, if any; candidates in priority
    order (the state's own intents first). ``ignore``'s phrases only hide what lies inside them."""
    spans = [
        (start, end, exact, index)
        for index, matcher in enumerate(candidates)
        for start, end, exact in matcher.spans(language, text)
    ]
    if ignore is not None:
        spans += [(start, end, False, -1) for start, end, _ in ignore.spans(language, text)]
    scores: dict[int, int] = {}
    for start, end, exact, index in spans:
        if index < 0:
            continue
        length = end - start
        covered = any(
            other != index and s <= start and end <= e and e - s > length
            for s, e, _, other in spans
        )
        if covered:
            continue
        score = length + (_EXACT_BONUS if exact else 0)
        scores[index] = max(scores.get(index, 0), score)
    if not scores:
        return None
    winner = max(scores, key=lambda i: (scores[i], candidates[i].priority, -i))
    return candidates[winner]


def mentions(language: Language, text: str, matcher: IntentMatcher) -> bool:
    return bool(matcher.spans(language, text))


def extract_slot(
    spec: SlotSpec,
    language: Language,
    utterance: str,
    normalized: str,
    reading: Reading,
    now: datetime,
) -> SlotValue | None:
    """The value a slot of this kind takes from an utterance, if it has one (``now`` is local)."""
    if spec.type == "amount":
        return reading.amount
    if spec.type == "date":
        return reading.day
    if spec.type == "time":
        return reading.time_of_day.resolved() if reading.time_of_day else None
    if spec.type == "datetime":
        moment = reading.datetime_at(now)
        return moment if moment is not None and moment > now else None
    if spec.type == "text":
        text = utterance.strip()
        return text or None
    for choice, words in spec.choices.items():
        if any(
            any(True for _ in language.find(normalized, language.normalize(word)))
            for word in words
        ):
            return choice
    return None  # the slot's default applies when the outcome is recorded
