"""Intent matching and slot filling over one utterance.

Every phrase, keyword and pattern of every candidate intent is located in the normalised text.
A match lying inside a longer match of another intent is discarded (不是 beats 是, "not really"
beats "really"); the intent with the longest remaining match wins, an utterance that *is* one of
an intent's phrases beats everything, and ties go to ``priority``, then to the state's own intents
before the global ones.

Languages with a sound model (Korean, see :mod:`voicebot.dialog.phonetics`) also tolerate a
misheard utterance: unless it is exactly one of the phrases, every candidate intent is scored by
how close the utterance sounds to its nearest phrase, and an intent that is both close enough
(``SOUND_THRESHOLD``) and clearly closer than any other (``SOUND_MARGIN``) wins over the plain
match; otherwise the plain match stands, or nothing does (a no-match, so the dialog reprompts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Final

from voicebot.dialog.languages import Language, Reading
from voicebot.dialog.phonetics import Sounds, korean_sounds, similarity
from voicebot.dialog.script import IntentSpec, SlotSpec

SlotValue = Decimal | date | time | datetime | str

_EXACT_BONUS = 10_000
# Primary language subtag → how its text sounds (languages without one match exactly only).
SOUND_MODELS: Final[dict[str, Callable[[str], Sounds]]] = {"ko": korean_sounds}
SOUND_THRESHOLD: Final = 0.65
SOUND_MARGIN: Final = 0.15


def sound_model(language: Language) -> Callable[[str], Sounds] | None:
    return SOUND_MODELS.get(language.code.split("-", 1)[0].lower())


@dataclass(frozen=True, slots=True)
class IntentMatcher:
    name: str
    phrases: tuple[str, ...]  # normalised phrases and keywords
    patterns: tuple[re.Pattern[str], ...]
    priority: int
    sounds: tuple[Sounds, ...] = ()  # the phrases' sounds, for languages with a sound model

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
        sounds_of = sound_model(language)
        sounds = tuple(s for p in phrases if (s := sounds_of(p))) if sounds_of else ()
        return cls(name, phrases, patterns, spec.priority, sounds)

    def closeness(self, heard: Sounds, floor: float = 0.0) -> float:
        """How close sounds are to this intent's nearest phrase (0 below ``floor``)."""
        return max((similarity(heard, phrase, floor) for phrase in self.sounds), default=0.0)

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
    winner = max(scores, key=lambda i: (scores[i], candidates[i].priority, -i)) if scores else None
    if winner is not None and scores[winner] >= _EXACT_BONUS:
        return candidates[winner]
    closest = _closest_by_sound(language, text, candidates, spans)
    if closest is not None:
        return closest
    return candidates[winner] if winner is not None else None


def _closest_by_sound(
    language: Language,
    text: str,
    candidates: Sequence[IntentMatcher],
    spans: Sequence[tuple[int, int, bool, int]],
) -> IntentMatcher | None:
    """The candidate that clearly sounds closest to ``text``, if the language has a sound model.

    Text inside an ignored phrase is left out first.
    """
    sounds_of = sound_model(language)
    if sounds_of is None:
        return None
    kept = [True] * len(text)
    for start, end, _, index in spans:
        if index < 0:
            kept[start:end] = [False] * (end - start)
    heard = sounds_of("".join(ch for ch, keep in zip(text, kept, strict=True) if keep))
    if not heard:
        return None
    # Scores under the threshold less the margin can neither win nor block a winner.
    floor = SOUND_THRESHOLD - SOUND_MARGIN
    ranked = sorted(
        ((matcher.closeness(heard, floor), -i) for i, matcher in enumerate(candidates)),
        reverse=True,
    )
    if not ranked or ranked[0][0] < SOUND_THRESHOLD:
        return None
    runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
    if ranked[0][0] - runner_up < SOUND_MARGIN:
        return None
    return candidates[-ranked[0][1]]


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
            any(True for _ in language.find(normalized, language.normalize(word))) for word in words
        ):
            return choice
    return None  # the slot's default applies when the outcome is recorded
