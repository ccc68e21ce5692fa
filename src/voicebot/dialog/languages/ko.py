"""Korean (ko-KR): 삼십만 원, 30만원, 다음 주 금요일, 15일 / 십오 일, 오후 세 시.

Text is compared without spaces: the recogniser splits numbers into words (삼십 만 원) and people
space them as they like.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from voicebot.dialog import calendar
from voicebot.dialog.languages.base import (
    CENT,
    Reading,
    SlotKind,
    SpanScanner,
    TimeOfDay,
    compact,
    earliest,
    find_substring,
)

_SINO_DIGITS = {"영": 0, "공": 0, "일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7,
                "팔": 8, "구": 9}  # fmt: skip
_SMALL_UNITS = {"십": 10, "백": 100, "천": 1_000}
_BIG_UNITS = {"만": 10_000, "억": 100_000_000}
_NATIVE_HOURS = {"한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8,
                 "아홉": 9, "열": 10, "열한": 11, "열두": 12}  # fmt: skip
_NATIVE_COUNTS = {**_NATIVE_HOURS, "하나": 1, "둘": 2, "셋": 3, "넷": 4}
_WEEKDAYS = {"월": 0, "화": 1, "수": 2, "목": 3, "금": 4, "토": 5, "일": 6}
_WEEK_REL = {None: None, "이번": 0, "다음": 1, "담": 1, "다다음": 2}
_MONTH_REL = {None: None, "이번달": 0, "다음달": 1, "담달": 1}
_PERIOD_HOURS = {"새벽": 5, "아침": 9, "오전": 10, "점심": 12, "낮": 13, "오후": 15, "저녁": 19,
                 "밤": 20}  # fmt: skip
_AFTERNOON_PERIODS = {"오후", "저녁", "밤"}
_CURRENCY_UNITS = {"KRW": "원", "USD": "달러", "CNY": "위안", "RMB": "위안", "EUR": "유로"}

_SINO = "[0-9,영공일이삼사오육칠팔구십백천만억]"
_DAY_NUM = "[0-9일이삼사오육칠팔구십]"
_NATIVE = "|".join(sorted(_NATIVE_HOURS, key=len, reverse=True))

_NAMED_DAY = re.compile("오늘|내일|모레|글피")
_NAMED_OFFSETS = {"오늘": 0, "내일": 1, "모레": 2, "글피": 3}
_WEEKDAY = re.compile("(?:(?P<rel>다다음|다음|담|이번)주?)?(?P<w>[월화수목금토일])요일")
_EXPLICIT = re.compile(
    f"(?P<rel>이번달|다음달|담달)?(?P<m>{_DAY_NUM}{{1,3}}|유|시)월(?P<d>{_DAY_NUM}{{1,4}})일"
)
_MONTH_DAY = re.compile(f"(?P<rel>이번달|다음달|담달)(?P<d>{_DAY_NUM}{{1,4}})일")
_MONTH_END = re.compile("(?P<rel>이번달|다음달|담달)말(?:일)?|월말|말일")
_IN_DAYS = re.compile(
    f"(?P<n>{_DAY_NUM}{{1,3}}|{'|'.join(_NATIVE_COUNTS)})(?P<u>일|주일|주)(?:후|뒤|있다가)"
)
_DAY = re.compile(f"(?<![0-9일이삼사오육칠팔구십])(?P<d>{_DAY_NUM}{{1,4}})일")

_LATER = re.compile(
    f"(?P<n>{_NATIVE}|{_SINO}+|반)(?P<u>시간|분)(?P<half>반)?(?:후|뒤|있다가|이따가)"
)
_CLOCK = re.compile(
    f"(?P<h>{_NATIVE}|[0-9]{{1,2}}|{_DAY_NUM}{{1,3}})시(?!간)"
    f"(?:(?P<half>반)|(?P<min>{_SINO}{{1,3}})분)?"
)
_CLOCK_COLON = re.compile("(?P<h>[0-9]{1,2}):(?P<min>[0-9]{2})")
_PERIOD = re.compile("|".join(_PERIOD_HOURS))

_AMOUNT = re.compile(f"(?P<num>{_SINO}+)(?P<unit>원|달러|위안)?")
_NOT_MONEY_AFTER = re.compile("[일월시분주년번개명살회층%]|시간|개월")


def to_number(text: str) -> int | None:
    """A Sino-Korean or Arabic numeral, units included: 삼십만 → 300000, 3만5천 → 35000."""
    text = text.replace(",", "")
    if not text:
        return None
    total = section = 0
    current: int | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            if current is not None:
                return None
            current = int(text[i:j])
            i = j
            continue
        if ch in _SINO_DIGITS:
            if current is not None:
                return None  # 일이: two digits with no unit between is not a number
            current = _SINO_DIGITS[ch]
        elif ch in _SMALL_UNITS:
            section += (1 if current is None else current) * _SMALL_UNITS[ch]
            current = None
        elif ch in _BIG_UNITS:
            part = section + (current or 0)
            total += (part or 1) * _BIG_UNITS[ch]
            section, current = 0, None
        else:
            return None
        i += 1
    return total + section + (current or 0)


def sino_korean(number: int) -> str:
    """300000 → 삼십만, 3500 → 삼천오백, 10000 → 만: no leading 일 before 십/백/천/만."""
    if number == 0:
        return "영"
    digits = "영일이삼사오육칠팔구"
    words: list[str] = []
    for unit_name, unit in (("조", 10**12), ("억", 10**8), ("만", 10**4), ("", 1)):
        group, number = divmod(number, unit)
        if not group:
            continue
        spoken = ""
        for small_name, small in (("천", 1000), ("백", 100), ("십", 10), ("", 1)):
            digit, group = divmod(group, small)
            if digit:
                spoken += ("" if digit == 1 and small_name else digits[digit]) + small_name
        if spoken == "일" and unit_name == "만":
            spoken = ""
        words.append(spoken + unit_name)
    return "".join(words)


class Korean:
    code = "ko-KR"

    def normalize(self, text: str) -> str:
        return compact(text)

    def find(self, normalized_text: str, normalized_phrase: str) -> Iterator[tuple[int, int]]:
        return find_substring(normalized_text, normalized_phrase)

    # Understanding

    def read(self, text: str, now: datetime) -> Reading:
        original = compact(text, keep=":,")
        scanner = SpanScanner(original)
        today = now.date()
        moment = earliest(scanner.scan(_LATER, lambda m: _later(m, now)))
        clock = earliest(scanner.scan(_CLOCK_COLON, _clock) + scanner.scan(_CLOCK, _clock))
        day = earliest(
            scanner.scan(_NAMED_DAY, lambda m: today + timedelta(days=_NAMED_OFFSETS[m[0]]))
            + scanner.scan(_WEEKDAY, lambda m: _weekday(m, today))
            + scanner.scan(_EXPLICIT, lambda m: _explicit(m, today))
            + scanner.scan(_MONTH_DAY, lambda m: _month_day(m, today))
            + scanner.scan(_MONTH_END, lambda m: _month_end(m, today))
            + scanner.scan(_IN_DAYS, lambda m: _in_days(m, today))
            + scanner.scan(_DAY, lambda m: _day(m, today))
        )
        period = _PERIOD.search(original)
        return Reading(
            amount=_amount(scanner),
            day=day if isinstance(day, date) else None,
            time_of_day=_with_period(clock, period[0] if period else None),
            moment=moment if isinstance(moment, datetime) else None,
        )

    # Speaking

    def say_number(self, number: int) -> str:
        return sino_korean(number)

    def say_digits(self, digits: str) -> str:
        names = "공일이삼사오육칠팔구"
        return " ".join(names[int(ch)] if ch.isdigit() else ch for ch in digits)

    def say_amount(self, amount: Decimal, currency: str) -> str:
        unit = _CURRENCY_UNITS.get(currency.upper(), currency.upper())
        spoken = f"{sino_korean(int(amount))} {unit}"
        cents = int((amount * 100).to_integral_value()) % 100
        if cents:
            spoken += f" {sino_korean(cents)} 센트"
        return spoken

    def say_date(self, day: date, today: date) -> str:
        spoken = f"{day.month}월 {day.day}일"
        return spoken if day.year == today.year else f"{day.year}년 {spoken}"

    def say_time(self, wall: time) -> str:
        period = "오전" if wall.hour < 12 else "오후"
        hour = wall.hour % 12 or 12
        native = {v: k for k, v in _NATIVE_HOURS.items()}[hour]
        spoken = f"{period} {native} 시"
        if wall.minute == 30:
            spoken += " 반"
        elif wall.minute:
            spoken += f" {sino_korean(wall.minute)} 분"
        return spoken

    def say_datetime(self, moment: datetime, today: date) -> str:
        offset = (moment.date() - today).days
        day = {0: "오늘", 1: "내일", 2: "모레"}.get(offset) or self.say_date(moment.date(), today)
        return f"{day} {self.say_time(moment.time())}"

    def slot_phrases(self, kind: SlotKind) -> tuple[str, ...]:
        numbers = ("일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "십", "백", "천", "만")
        if kind == "amount":
            return (*numbers, "원")
        if kind == "date":
            return (*numbers, "오늘", "내일", "모레", "다음", "이번", "주", "월요일",
                    "화요일", "수요일", "목요일", "금요일", "토요일", "일요일", "월", "월말",
                    "말일")  # fmt: skip
        if kind in ("time", "datetime"):
            # 열한 is heard as 열 한: the model has no word 열한.
            hours = ("한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열", "열두")
            return (*numbers, *hours, "오늘", "내일", "모레", "오전", "오후", "저녁", "시", "반",
                    "분", "시간", "후", "다음", "주")  # fmt: skip
        return ()


def _count(raw: str) -> int | None:
    return _NATIVE_COUNTS.get(raw) if raw in _NATIVE_COUNTS else to_number(raw)


def _weekday(match: re.Match[str], today: date) -> date:
    return calendar.weekday_date(today, _WEEKDAYS[match["w"]], _WEEK_REL[match["rel"]])


def _explicit(match: re.Match[str], today: date) -> date | None:
    month = {"유": 6, "시": 10}.get(match["m"]) or to_number(match["m"])
    day = to_number(match["d"])
    if month is None or day is None:
        return None
    if match["rel"]:
        return calendar.day_of_month(today, day, _MONTH_REL[match["rel"]])
    return calendar.month_and_day(today, month, day)


def _month_day(match: re.Match[str], today: date) -> date | None:
    day = to_number(match["d"])
    return None if day is None else calendar.day_of_month(today, day, _MONTH_REL[match["rel"]])


def _month_end(match: re.Match[str], today: date) -> date:
    return calendar.end_of_month(today, _MONTH_REL.get(match["rel"]) or 0)


def _in_days(match: re.Match[str], today: date) -> date | None:
    count = _count(match["n"])
    if count is None:
        return None
    return today + timedelta(days=count * (1 if match["u"] == "일" else 7))


def _day(match: re.Match[str], today: date) -> date | None:
    day = to_number(match["d"])
    return None if day is None else calendar.day_of_month(today, day)


def _later(match: re.Match[str], now: datetime) -> datetime | None:
    raw = match["n"]
    amount = 0.5 if raw == "반" else _count(raw)
    if amount is None:
        return None
    if match["half"]:
        amount += 0.5
    minutes = amount * 60 if match["u"] == "시간" else amount
    return (now + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def _clock(match: re.Match[str]) -> TimeOfDay | None:
    hour = _count(match["h"])
    if hour is None or hour > 24:
        return None
    minute = 30 if match.groupdict().get("half") else 0
    if match["min"]:
        parsed = to_number(match["min"])
        if parsed is None or parsed > 59:
            return None
        minute = parsed
    return TimeOfDay(hour % 24, minute, meridiem_known=hour == 0 or hour > 12)


def _with_period(clock: object | None, period: str | None) -> TimeOfDay | None:
    if not isinstance(clock, TimeOfDay):
        return TimeOfDay(_PERIOD_HOURS[period]) if period else None
    if period is None or clock.meridiem_known:
        return clock
    if period in _AFTERNOON_PERIODS and clock.hour < 12:
        return TimeOfDay(clock.hour + 12, clock.minute)
    return TimeOfDay(clock.hour, clock.minute)


def _amount(scanner: SpanScanner) -> Decimal | None:
    text = scanner.text
    bare: list[int] = []
    for match in _AMOUNT.finditer(text):
        value = to_number(match["num"].strip(","))
        if value is None or value <= 0:
            continue
        if match["unit"]:
            return Decimal(value).quantize(CENT)
        if _NOT_MONEY_AFTER.match(text, match.end()):
            continue
        # Without 원, only a number with a magnitude (삼십만, 3천) is money: 이, 사, 오 are words.
        number = match["num"]
        has_digit = any(ch.isdigit() or ch in _SINO_DIGITS for ch in number)
        if has_digit and any(ch in "백천만억" for ch in number) and number[0] not in "백천만억":
            bare.append(value)
    return Decimal(bare[0]).quantize(CENT) if bare else None


LANGUAGE = Korean()
