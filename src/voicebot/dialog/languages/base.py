"""What every language pack offers the engine: matching text, reading slots, speaking values."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal, Protocol

from voicebot.dialog.calendar import at_local

CENT = Decimal("0.01")

SlotKind = Literal["amount", "date", "time", "datetime", "text", "choice"]

# A wall-clock time with no date; ``meridiem_known`` is False for "at three" (3 or 15?).
_AFTERNOON_GUESS_MAX_HOUR = 7  # "three" on its own means 15:00: nobody is called at 03:00
_DEFAULT_HOUR_FOR_A_DAY = 10  # "call me tomorrow" with no hour


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    hour: int
    minute: int = 0
    meridiem_known: bool = True

    def resolved(self) -> time:
        hour = self.hour
        if not self.meridiem_known and 1 <= hour <= _AFTERNOON_GUESS_MAX_HOUR:
            hour += 12
        return time(hour % 24, self.minute)


@dataclass(frozen=True, slots=True)
class Reading:
    """What one utterance says about money and time, relative to when it was said."""

    amount: Decimal | None = None
    day: date | None = None
    time_of_day: TimeOfDay | None = None
    # An instant the borrower gave relative to now ("in an hour"), aware and local.
    moment: datetime | None = None

    def datetime_at(self, now: datetime) -> datetime | None:
        """The instant meant by a date and/or time of day (``now`` is aware and local).

        A date alone means 10:00 that day (two hours from now if that is today); a time alone means
        its next occurrence.
        """
        if self.moment is not None:
            return self.moment
        if self.day is None and self.time_of_day is None:
            return None
        zone = now.tzinfo
        assert zone is not None, "now must be aware"
        today = now.date()
        if self.time_of_day is None:
            assert self.day is not None
            if self.day <= today:
                return (now + timedelta(hours=2)).replace(second=0, microsecond=0)
            return at_local(self.day, time(_DEFAULT_HOUR_FOR_A_DAY), zone)
        wall = self.time_of_day.resolved()
        day = self.day or today
        moment = at_local(day, wall, zone)
        if self.day is None and moment <= now:
            moment = at_local(today + timedelta(days=1), wall, zone)
        return moment


class Language(Protocol):
    """A language pack: one per script language (zh-CN, en-US, ko-KR)."""

    code: str

    def normalize(self, text: str) -> str:
        """The form phrases and utterances are compared in (case, width, spacing, punctuation)."""
        ...

    def find(self, normalized_text: str, normalized_phrase: str) -> Iterator[tuple[int, int]]:
        """Spans where a phrase occurs in a text, both already normalised (word-aware if needed)."""
        ...

    def read(self, text: str, now: datetime) -> Reading:
        """Amount, date, time of day and relative instant an utterance names (``now`` is local)."""
        ...

    def say_number(self, number: int) -> str: ...

    def say_digits(self, digits: str) -> str:
        """Digit by digit, as a phone number's last four are read out."""
        ...

    def say_amount(self, amount: Decimal, currency: str) -> str: ...

    def say_date(self, day: date, today: date) -> str: ...

    def say_time(self, wall: time) -> str: ...

    def say_datetime(self, moment: datetime, today: date) -> str:
        """A local datetime, with "today"/"tomorrow" where they apply."""
        ...

    def slot_phrases(self, kind: SlotKind) -> tuple[str, ...]:
        """Words a recogniser grammar needs so a slot of this kind can be heard at all."""
        ...


_PUNCTUATION_CATEGORIES = ("P", "S")


def strip_punctuation(text: str, keep: str = "") -> str:
    """Replace punctuation and symbols with spaces (characters in ``keep`` survive)."""
    return "".join(
        " " if unicodedata.category(ch)[0] in _PUNCTUATION_CATEGORIES and ch not in keep else ch
        for ch in text
    )


def compact(text: str, keep: str = "") -> str:
    """NFKC, lower case, no punctuation (but ``keep``), no spaces: how Chinese and Korean text is
    compared.

    Recognisers separate words with spaces and people type them inconsistently, so spacing
    carries no meaning here.
    """
    normalized = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", "", strip_punctuation(normalized, keep))


def find_substring(text: str, phrase: str) -> Iterator[tuple[int, int]]:
    if not phrase:
        return
    start = text.find(phrase)
    while start != -1:
        yield start, start + len(phrase)
        start = text.find(phrase, start + 1)


@dataclass(frozen=True, slots=True)
class Found:
    start: int
    end: int
    value: object


class SpanScanner:
    """Runs rules over a text in order; each rule sees the text with earlier matches blanked out.

    Blanking keeps a later, looser rule (a bare number) from re-reading what a stricter one (a
    date) already claimed.
    """

    def __init__(self, text: str, blank: str = "|") -> None:
        self.text = text
        self._blank = blank

    def scan(
        self, pattern: re.Pattern[str], convert: Callable[[re.Match[str]], object | None]
    ) -> list[Found]:
        found: list[Found] = []
        for match in pattern.finditer(self.text):
            value = convert(match)
            if value is None:
                continue
            found.append(Found(match.start(), match.end(), value))
        for item in found:
            self.text = (
                self.text[: item.start]
                + self._blank * (item.end - item.start)
                + self.text[item.end :]
            )
        return found


def earliest(found: list[Found]) -> object | None:
    return min(found, key=lambda item: item.start).value if found else None
