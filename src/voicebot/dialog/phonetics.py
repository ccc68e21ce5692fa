"""How close a misheard Korean utterance sounds to a phrase. Pure.

A telephone recogniser with a grammar rarely hears a short answer exactly: over an 8 kHz line the
hiss of ㅅ ㅆ ㅈ ㅊ (most of it above 4 kHz) is gone, so a syllable that starts with one is often
lost or heard as a neighbour (삼십만 원 → 만 원, 주세요 → 데요, 지금 바빠요 → 바빠요). The
recogniser then writes the grammar words nearest to what it heard.

Hangul is spelled out as the sounds it stands for — syllables decomposed by Unicode arithmetic into
initial, vowel and final; a silent ㅇ dropped; finals neutralised as they are pronounced (ㅅ ㅆ ㅈ
ㅊ ㅌ ㅎ → ㄷ) unless they carry over to a following vowel (있어요 → 이써요) — and compared with a
weighted edit distance: swapping sounds of one class (ㄱ ㄲ ㅋ, ㅐ ㅔ, ㄴ ㅁ …) costs less than
swapping unrelated ones; losing a hiss or an ㅎ costs less than losing anything else; a phrase's
first sounds may go missing at half price, and sounds the recogniser added before or after the
phrase cost half. :func:`similarity` turns the distance into a score in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

Sounds = tuple[str, ...]

_FIRST_SYLLABLE: Final = 0xAC00
_SYLLABLE_COUNT: Final = 11172
_PER_INITIAL: Final = 588  # 21 vowels x 28 finals
_PER_VOWEL: Final = 28
_INITIALS: Final = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS: Final = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_FINALS: Final = ("", "ㄱ", "ㄲ", "ㄳ", "ㄴ", "ㄵ", "ㄶ", "ㄷ", "ㄹ", "ㄺ", "ㄻ", "ㄼ", "ㄽ", "ㄾ",
                  "ㄿ", "ㅀ", "ㅁ", "ㅂ", "ㅄ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ",
                  "ㅎ")  # fmt: skip
_SILENT: Final = "ㅇ"
# A final ㅇ is the sound ng, not a silent initial.
_NG: Final = "ŋ"
# How a final is pronounced at the end of a syllable (the seven final sounds of Korean).
_NEUTRAL_FINALS: Final = {
    "ㄲ": "ㄱ", "ㅋ": "ㄱ", "ㄳ": "ㄱ", "ㄺ": "ㄱ", "ㄵ": "ㄴ", "ㄶ": "ㄴ", "ㅅ": "ㄷ", "ㅆ": "ㄷ",
    "ㅈ": "ㄷ", "ㅊ": "ㄷ", "ㅌ": "ㄷ", "ㅎ": "ㄷ", "ㄼ": "ㄹ", "ㄽ": "ㄹ", "ㄾ": "ㄹ", "ㅀ": "ㄹ",
    "ㄻ": "ㅁ", "ㅄ": "ㅂ", "ㅍ": "ㅂ", "ㄿ": "ㅂ", "ㅇ": _NG,
}  # fmt: skip

# Sounds of one class and what swapping two of them costs (a swap across classes costs 1).
_CLASSES: Final = (
    ("ㄱㄲㅋ", 0.3), ("ㄷㄸㅌ", 0.3), ("ㅂㅃㅍ", 0.3), ("ㅅㅆ", 0.2), ("ㅈㅉㅊ", 0.3),
    ("ㅅㅆㅈㅉㅊ", 0.4), ("ㄴㅁ" + _NG, 0.5), ("ㄴㄹ", 0.5), ("ㄱㄷㅂㄲㄸㅃㅋㅌㅍ", 0.6),
    ("ㅐㅔ", 0.2), ("ㅒㅖ", 0.2), ("ㅙㅚㅞ", 0.2), ("ㅐㅔㅙㅚㅞ", 0.4), ("ㅗㅜ", 0.5),
    ("ㅓㅗ", 0.5), ("ㅡㅜ", 0.5), ("ㅕㅛ", 0.5), ("ㅏㅘ", 0.5), ("ㅓㅝ", 0.5), ("ㅣㅢㅟ", 0.5),
    ("ㅏㅑ", 0.5), ("ㅓㅕ", 0.5), ("ㅗㅛ", 0.5), ("ㅜㅠ", 0.5),
)  # fmt: skip
# Hiss and breath: what an 8 kHz line loses first.
_WEAK: Final = frozenset("ㅅㅆㅈㅉㅊㅎ")
_WEAK_LOSS: Final = 0.4
_LOST_START: Final = 0.5  # per sound of the phrase's beginning the recogniser did not hear
_EXTRA_AT_ENDS: Final = 0.5  # per sound heard before or after the phrase


def korean_sounds(text: str) -> Sounds:
    """The sounds a text stands for (whitespace ignored; anything not Hangul kept as it is)."""
    syllables: list[tuple[str, str, str]] = []
    for ch in text:
        offset = ord(ch) - _FIRST_SYLLABLE
        if 0 <= offset < _SYLLABLE_COUNT:
            initial_index, rest = divmod(offset, _PER_INITIAL)
            vowel_index, final_index = divmod(rest, _PER_VOWEL)
            syllables.append((_INITIALS[initial_index], _VOWELS[vowel_index], _FINALS[final_index]))
        elif not ch.isspace():
            syllables.append(("", ch, ""))
    sounds: list[str] = []
    for index, (initial, vowel, final) in enumerate(syllables):
        if initial and initial != _SILENT:
            sounds.append(initial)
        sounds.append(vowel)
        if not final:
            continue
        following = syllables[index + 1][0] if index + 1 < len(syllables) else ""
        if following == _SILENT and final in _INITIALS and final != _SILENT:
            sounds.append(final)  # carried over: 있어요 is said 이써요
        else:
            sounds.append(_NEUTRAL_FINALS.get(final, final))
    return tuple(sounds)


@lru_cache(maxsize=4096)
def _swap(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return min((cost for group, cost in _CLASSES if a in group and b in group), default=1.0)


def _loss(sound: str) -> float:
    return _WEAK_LOSS if sound in _WEAK else 1.0


def distance(heard: Sequence[str], phrase: Sequence[str], limit: float) -> float | None:
    """The cheapest way to explain ``heard`` as ``phrase`` (see the module docstring), or None
    once it is sure to exceed ``limit``."""
    width = len(phrase)
    previous = [0.0] * (width + 1)
    for j in range(1, width + 1):
        previous[j] = previous[j - 1] + min(_LOST_START, _loss(phrase[j - 1]))
    for sound in heard:
        current = [previous[0] + _EXTRA_AT_ENDS]
        for j in range(1, width + 1):
            target = phrase[j - 1]
            added = _EXTRA_AT_ENDS if j == width else 1.0
            current.append(
                min(
                    previous[j] + added,
                    current[j - 1] + _loss(target),
                    previous[j - 1] + _swap(sound, target),
                )
            )
        if min(current) > limit:
            return None
        previous = current
    return previous[width] if previous[width] <= limit else None


def similarity(heard: Sequence[str], phrase: Sequence[str], floor: float = 0.0) -> float:
    """1 for a perfect match, falling with the cost per sound of the phrase; 0 below ``floor``."""
    if not heard or not phrase:
        return 0.0
    cost = distance(heard, phrase, (1.0 - floor) * len(phrase))
    if cost is None:
        return 0.0
    return max(0.0, 1.0 - cost / len(phrase))
