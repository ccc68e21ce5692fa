"""American English (en-US): "three thousand five hundred", "$3,500", "next Friday", "the 15th"."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from voicebot.dialog import calendar
from voicebot.dialog.languages.base import (
    CENT,
    Reading,
    SlotKind,
    SpanScanner,
    TimeOfDay,
    earliest,
    strip_punctuation,
)

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"thousand": 1_000, "million": 1_000_000}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]  # fmt: skip
_MONTH_NAMES = {name: i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_NAMES.update({name[:3]: i + 1 for i, name in enumerate(_MONTHS)})
_MONTH_NAMES["sept"] = 9
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_CURRENCY_WORDS = {
    "USD": ("dollar", "dollars"), "CNY": ("yuan", "yuan"), "RMB": ("yuan", "yuan"),
    "KRW": ("won", "won"), "EUR": ("euro", "euros"), "GBP": ("pound", "pounds"),
}  # fmt: skip
_PERIOD_HOURS = {"morning": 10, "noon": 12, "afternoon": 15, "evening": 19, "tonight": 19,
                 "night": 20}  # fmt: skip

_MONTH = "(?P<month>" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + ")"
_ORD = "(?:st|nd|rd|th)"

_NAMED_DAY = re.compile(r"\b(?:the )?day after tomorrow\b|\btomorrow\b|\btoday\b|\btonight\b")
_IN_DAYS = re.compile(r"\b(?:in|after) (?P<n>\d+|a) (?P<u>days?|weeks?)\b")
_MONTH_END = re.compile(r"\bend of (?:the )?(?P<rel>this |next )?month\b|\bmonth end\b")
_MONTH_FIRST = re.compile(rf"\b{_MONTH}\.? (?:the )?(?P<d>\d{{1,2}}){_ORD}?\b")
_DAY_FIRST = re.compile(rf"\b(?:the )?(?P<d>\d{{1,2}}){_ORD}? of {_MONTH}\b")
_SLASHED = re.compile(r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})\b")
_ORDINAL_DAY = re.compile(rf"\b(?:the )?(?P<d>\d{{1,2}}){_ORD}(?: of (?P<rel>this|next) month)?\b")
_WEEKDAY = re.compile(
    r"\b(?:(?P<rel>next|this|coming) (?:week (?:on )?)?)?(?:on )?"
    r"(?P<w>monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?P<nw> next week)?\b"
)

_LATER = re.compile(
    r"\bin (?P<n>\d+|an|a|half an) (?P<u>hours?|minutes?|mins?)(?P<half> and a half)?\b"
    r"|\b(?P<n2>\d+) (?P<u2>hours?|minutes?|mins?) from now\b"
)
_CLOCK_MERIDIEM = re.compile(
    r"\b(?:at )?(?P<h>\d{1,2})(?::(?P<m>\d{2}))? ?(?P<ap>a\.?m\b\.?|p\.?m\b\.?|o ?clock\b)"
)
_CLOCK_AT = re.compile(r"\bat (?P<h>\d{1,2})(?::(?P<m>\d{2}))?\b(?! ?(?:dollars?|bucks))")
_CLOCK_COLON = re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})\b")
_PERIOD = re.compile(r"\b(morning|noon|afternoon|evening|tonight|night)\b")

_NUMBER = r"(?P<num>\d[\d,]*(?:\.\d+)?)(?P<k>k\b)?"
_DOLLAR = re.compile(rf"\$ ?{_NUMBER}")
_WITH_UNIT = re.compile(rf"\b{_NUMBER} ?(?P<unit>dollars?|bucks|usd|yuan|rmb|won|euros?)\b")
_BARE = re.compile(rf"\b{_NUMBER}(?![\d/:])")
_NOT_MONEY_AFTER = re.compile(
    rf"{_ORD}\b|%| ?(?:percent|days?|weeks?|months?|years?|hours?|minutes?|mins?|times)\b"
)
_NOT_MONEY_BEFORE = re.compile(r"\b(?:at|number|ending|ends|last|digits|in)\s*$")
_MIN_BARE_AMOUNT = Decimal(10)


class English:
    code = "en-US"

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("'", "")
        return " ".join(strip_punctuation(text).split())

    def find(self, normalized_text: str, normalized_phrase: str) -> Iterator[tuple[int, int]]:
        if not normalized_phrase:
            return
        padded, needle = f" {normalized_text} ", f" {normalized_phrase} "
        start = padded.find(needle)
        while start != -1:
            yield start, start + len(normalized_phrase)
            start = padded.find(needle, start + 1)

    # Understanding

    def read(self, text: str, now: datetime) -> Reading:
        prepared = words_to_digits(_prepare(text))
        scanner = SpanScanner(prepared, blank=" ")
        today = now.date()
        moment = earliest(scanner.scan(_LATER, lambda m: _later(m, now)))
        clock = earliest(scanner.scan(_CLOCK_MERIDIEM, _clock) + scanner.scan(_CLOCK_COLON, _clock))
        day = earliest(
            scanner.scan(_NAMED_DAY, lambda m: _named_day(m, today))
            + scanner.scan(_IN_DAYS, lambda m: _in_days(m, today))
            + scanner.scan(_MONTH_END, lambda m: _month_end(m, today))
            + scanner.scan(_MONTH_FIRST, lambda m: _month_day(m, today))
            + scanner.scan(_DAY_FIRST, lambda m: _month_day(m, today))
            + scanner.scan(_SLASHED, lambda m: _slashed(m, today))
            + scanner.scan(_ORDINAL_DAY, lambda m: _ordinal_day(m, today))
            + scanner.scan(_WEEKDAY, lambda m: _weekday(m, today))
        )
        amount = _amount(scanner)
        if clock is None:
            clock = earliest(scanner.scan(_CLOCK_AT, _clock))
        period = _PERIOD.search(prepared)
        return Reading(
            amount=amount,
            day=day if isinstance(day, date) else None,
            time_of_day=_with_period(clock, period[0] if period else None),
            moment=moment if isinstance(moment, datetime) else None,
        )

    # Speaking

    def say_number(self, number: int) -> str:
        return number_words(number)

    def say_digits(self, digits: str) -> str:
        names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        return " ".join(names[int(ch)] if ch.isdigit() else ch for ch in digits)

    def say_amount(self, amount: Decimal, currency: str) -> str:
        singular, plural = _CURRENCY_WORDS.get(currency.upper(), (currency.upper(),) * 2)
        whole = int(amount)
        cents = int((amount * 100).to_integral_value()) % 100
        spoken = f"{number_words(whole)} {singular if whole == 1 else plural}"
        if cents:
            spoken += f" and {number_words(cents)} {'cent' if cents == 1 else 'cents'}"
        return spoken

    def say_date(self, day: date, today: date) -> str:
        spoken = f"{_MONTHS[day.month - 1].capitalize()} {day.day}"
        return spoken if day.year == today.year else f"{spoken}, {day.year}"

    def say_time(self, wall: time) -> str:
        suffix = "AM" if wall.hour < 12 else "PM"
        hour = wall.hour % 12 or 12
        return f"{hour}:{wall.minute:02d} {suffix}" if wall.minute else f"{hour} {suffix}"

    def say_datetime(self, moment: datetime, today: date) -> str:
        offset = (moment.date() - today).days
        day = {0: "today", 1: "tomorrow"}.get(offset) or self.say_date(moment.date(), today)
        return f"{day} at {self.say_time(moment.time())}"

    def slot_phrases(self, kind: SlotKind) -> tuple[str, ...]:
        numbers = (*_UNITS, *_TENS, "hundred", "thousand", "a")
        if kind == "amount":
            return (*numbers, "dollars", "bucks")
        if kind == "date":
            return (*numbers, *_ORDINALS, *_WEEKDAYS, *_MONTHS, "today", "tomorrow",
                    "day after tomorrow", "next", "this", "the", "of", "end of the month",
                    "in", "days", "week")  # fmt: skip
        if kind in ("time", "datetime"):
            return (*numbers, *_WEEKDAYS, "today", "tomorrow", "tonight", "morning",
                    "afternoon", "evening", "at", "am", "pm", "oclock", "in", "an", "hour",
                    "hours", "minutes", "next", "the")  # fmt: skip
        return ()


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("'", "")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)
    text = re.sub(r"[.,](?!\d)", " ", text)  # keep 3,500 and 3.50; drop sentence punctuation
    return " ".join(strip_punctuation(text, keep="$.,:/").split())


def number_words(number: int) -> str:
    """3500 → "three thousand five hundred" (American style, no "and")."""
    if number < 0:
        return "minus " + number_words(-number)
    if number < 20:
        return [*_UNITS][number]
    if number < 100:
        tens, unit = divmod(number, 10)
        return [*_TENS][tens - 2] + (f" {[*_UNITS][unit]}" if unit else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{[*_UNITS][hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for scale_name, scale in (("billion", 10**9), ("million", 10**6), ("thousand", 10**3)):
        if number >= scale:
            head, rest = divmod(number, scale)
            return f"{number_words(head)} {scale_name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def words_to_digits(text: str) -> str:
    """Replace spelled-out numbers with digits: "three thousand five hundred" → "3500",
    "fifteenth" → "15th", "twenty-first" (already "twenty first") → "21st"."""
    tokens = text.split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        value, ordinal, consumed = _number_run(tokens, i)
        if consumed:
            out.append(f"{value}th" if ordinal else str(value))
            i += consumed
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def _number_run(tokens: list[str], start: int) -> tuple[int, bool, int]:
    """The number spelled from ``tokens[start]`` on: (value, is ordinal, tokens consumed)."""
    total = current = 0
    last = ""  # kind of the previous word: unit, teen, tens, hundred, scale
    i = start
    consumed = 0
    while i < len(tokens):
        word = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if word == "a" and following in ("hundred", "thousand") and last == "":
            current, last = 1, "unit"
        elif word == "and" and last in ("hundred", "scale") and _is_number_word(following):
            pass
        elif word in _UNITS or word.isdigit():
            value = int(word) if word.isdigit() else _UNITS[word]
            if last in ("unit", "teen") or (last == "tens" and value >= 10):
                break
            kind = "teen" if value >= 10 else "unit"
            current, last = current + value, kind
        elif word in _TENS:
            if last in ("unit", "teen", "tens"):
                break
            current, last = current + _TENS[word], "tens"
        elif word == "hundred" and last in ("unit", "teen"):
            current, last = current * 100, "hundred"
        elif word in _SCALES and last in ("unit", "teen", "tens", "hundred"):
            total, current, last = total + current * _SCALES[word], 0, "scale"
        elif word in _ORDINALS and (last == "tens" or (last == "" and _names_a_day(tokens, i))):
            current += _ORDINALS[word]
            return total + current, True, i - start + 1
        else:
            break
        i += 1
        if last:
            consumed = i - start
    if consumed == 1 and tokens[start].isdigit():
        return 0, False, 0  # a lone digit string stays as it is
    return total + current, False, consumed


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TENS or word in _ORDINALS


def _names_a_day(tokens: list[str], i: int) -> bool:
    """ "the second", "May second", "second of May" are days; "wait a second" is not."""
    before = tokens[i - 1] if i else ""
    after = tokens[i + 1] if i + 1 < len(tokens) else ""
    return before in ("the", "on") or before in _MONTH_NAMES or after == "of"


def _named_day(match: re.Match[str], today: date) -> date:
    word = match[0]
    if word.endswith("day after tomorrow"):
        return today + timedelta(days=2)
    return today + timedelta(days=1 if word == "tomorrow" else 0)


def _in_days(match: re.Match[str], today: date) -> date:
    count = 1 if match["n"] == "a" else int(match["n"])
    return today + timedelta(days=count * (7 if match["u"].startswith("week") else 1))


def _month_end(match: re.Match[str], today: date) -> date:
    return calendar.end_of_month(today, 1 if (match["rel"] or "").strip() == "next" else 0)


def _month_day(match: re.Match[str], today: date) -> date | None:
    return calendar.month_and_day(today, _MONTH_NAMES[match["month"]], int(match["d"]))


def _slashed(match: re.Match[str], today: date) -> date | None:
    return calendar.month_and_day(today, int(match["m"]), int(match["d"]))


def _ordinal_day(match: re.Match[str], today: date) -> date | None:
    months = {"this": 0, "next": 1}.get(match["rel"] or "")
    return calendar.day_of_month(today, int(match["d"]), months)


def _weekday(match: re.Match[str], today: date) -> date:
    weekday = _WEEKDAYS.index(match["w"])
    weeks: int | None = {"next": 1, "this": 0, "coming": None}.get(match["rel"] or "")
    if match["nw"]:
        weeks = 1
    return calendar.weekday_date(today, weekday, weeks)


def _later(match: re.Match[str], now: datetime) -> datetime:
    raw = match["n"] or match["n2"]
    unit = match["u"] or match["u2"]
    amount = {"a": 1.0, "an": 1.0, "half an": 0.5}.get(raw) or float(raw)
    if match["half"]:
        amount += 0.5
    minutes = amount * 60 if unit.startswith("hour") else amount
    return (now + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def _clock(match: re.Match[str]) -> TimeOfDay | None:
    hour = int(match["h"])
    minute = int(match["m"]) if match["m"] else 0
    if hour > 23 or minute > 59:
        return None
    marker = (match.groupdict().get("ap") or "").replace(".", "").replace(" ", "")
    if marker.startswith("p") and hour < 12:
        return TimeOfDay(hour + 12, minute)
    if marker.startswith("a"):
        return TimeOfDay(0 if hour == 12 else hour, minute)
    return TimeOfDay(hour, minute, meridiem_known=marker.startswith("p") or hour == 0 or hour > 12)


def _with_period(clock: object | None, period: str | None) -> TimeOfDay | None:
    if not isinstance(clock, TimeOfDay):
        return TimeOfDay(_PERIOD_HOURS[period]) if period else None
    if period is None or clock.meridiem_known:
        return clock
    if period in ("afternoon", "evening", "tonight", "night") and clock.hour < 12:
        return TimeOfDay(clock.hour + 12, clock.minute)
    return TimeOfDay(clock.hour, clock.minute)


def _to_decimal(match: re.Match[str]) -> Decimal | None:
    try:
        value = Decimal(match["num"].replace(",", ""))
    except InvalidOperation:
        return None
    return value * 1000 if match["k"] else value


def _amount(scanner: SpanScanner) -> Decimal | None:
    found = scanner.scan(_DOLLAR, _to_decimal) + scanner.scan(_WITH_UNIT, _to_decimal)
    if not found:
        text = scanner.text
        for match in _BARE.finditer(text):
            value = _to_decimal(match)
            if value is None or value < _MIN_BARE_AMOUNT:
                continue
            if _NOT_MONEY_AFTER.match(text, match.end()):
                continue
            if _NOT_MONEY_BEFORE.search(text[: match.start()]):
                continue
            return value.quantize(CENT)
        return None
    first = earliest(found)
    return first.quantize(CENT) if isinstance(first, Decimal) else None


LANGUAGE = English()
