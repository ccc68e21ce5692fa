"""What the analyst role sees of a borrower: numbers and names masked, the rest as stored.

Numbers and names also turn up inside free text: the bot greets the borrower by name, and a
borrower may say a new phone number, which a transcript and a risk flag's text keep verbatim.
:func:`mask_text` masks both there, and :func:`mask_numbers` (what the logs use too) masks
anything shaped like a phone number, written in digits or spoken in words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from voicebot.domain.phones import mask_phone

__all__ = ["mask_data", "mask_name", "mask_numbers", "mask_phone", "mask_text"]

# A run of 8+ digits, optionally with a leading + and single spaces/dashes between digits, not
# inside a Latin word or identifier (Chinese or Korean right beside it is fine); an ISO date
# (and what follows it) is not one.
_DIGITS = re.compile(
    r"(?<![0-9A-Za-z_+-])(?!\d{4}-\d{2}-\d{2})\+?\d(?:[ -]?\d){7,}(?![0-9A-Za-z_])"
)
# The same spoken, as speech recognisers write it: Chinese numerals (幺 is how 一 is read in
# phone numbers), Korean Sino-Korean numerals, English digit words; eight or more in a row.
_SPOKEN = re.compile(
    r"(?:[零〇一二两三四五六七八九幺][ ,，]?){7,}[零〇一二两三四五六七八九幺]"
    r"|(?:[영공일이삼사오육륙칠팔구] ?){7,}[영공일이삼사오육륙칠팔구]"
    r"|\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)[ ,-]+){7,}"
    r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b",
    re.IGNORECASE,
)
# Outcome fields that hold what was said, word for word (a complaint's, a risk flag's text).
FREE_TEXT_FIELDS = frozenset({"text"})


def mask_name(name: str) -> str:
    """Keep each word's first character: ``张三`` → ``张*``, ``Jane Doe`` → ``J*** D**``."""
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split(" "))


def mask_numbers(text: str) -> str:
    """Mask what looks like a phone number: ``13812345678`` → ``138****5678``; spoken, ``****``."""
    masked = _DIGITS.sub(
        lambda m: mask_phone("".join(c for c in m.group() if c in "+0123456789")), text
    )
    return _SPOKEN.sub("****", masked)


def mask_text(text: str, name: str | None = None) -> str:
    """Free text with the borrower's name (whole, or any word of it of two letters or more) and
    phone numbers masked."""
    if name:
        words = {name, *(w for w in name.split(" ") if len(w) >= 2)}
        for word in sorted(words, key=len, reverse=True):
            text = text.replace(word, mask_name(word))
    return mask_numbers(text)


def mask_data(data: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """An outcome's fields with its free text masked; amounts, dates and the rest as stored."""
    return {
        key: mask_text(value, name) if key in FREE_TEXT_FIELDS and isinstance(value, str) else value
        for key, value in data.items()
    }
