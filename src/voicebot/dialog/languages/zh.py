"""Mandarin Chinese (zh-CN): 三千五, 一万二, 3500块, 下周五, 月底, 15号, 下午三点半.

Chinese numerals are converted with cn2an; everything around them (units, what a number is
counting, relative dates) is read here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import cn2an

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

_DIGIT = "0-9零〇一二两三四五六七八九"
_NUM = f"[{_DIGIT}十百千万亿]"
_SMALL_NUM = f"[{_DIGIT}十]"  # days, hours, minutes: never 百/千/万
_MONTH_REL = "(?P<rel>下下个?月|下个?月|这个?月|本月)"

_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_WEEKDAYS.update({str(i + 1): i for i in range(7)})
_WEEK_REL = {None: None, "": None, "这": 0, "这个": 0, "本": 0, "下": 1, "下个": 1, "下下": 2}

_PERIOD_HOURS = {
    "凌晨": 5, "早上": 9, "早晨": 9, "明早": 9, "上午": 10, "中午": 12, "下午": 15,
    "傍晚": 18, "晚上": 19, "今晚": 19, "明晚": 19, "夜里": 21,
}  # fmt: skip
_AFTERNOON_PERIODS = {"下午", "傍晚", "晚上", "今晚", "明晚", "夜里"}

_CURRENCY_UNITS = {"CNY": "元", "RMB": "元", "USD": "美元", "KRW": "韩元", "EUR": "欧元",
                   "HKD": "港元"}  # fmt: skip


def to_number(text: str) -> Decimal | None:
    """A Chinese or Arabic numeral (三千五, 一万二, 3.5万, 三点五万, 3,500) as a number."""
    text = text.replace(",", "")
    if not text:
        return None
    if "点" in text:
        # cn2an rejects 三点五万; read the decimal part digit by digit, then apply the unit.
        head, _, tail = text.partition("点")
        unit = Decimal(1)
        if tail and tail[-1] in "万千百":
            unit = {"万": Decimal(10_000), "千": Decimal(1_000), "百": Decimal(100)}[tail[-1]]
            tail = tail[:-1]
        whole = to_number(head)
        digits = "".join(str(to_number(ch) or 0) for ch in tail) if tail else "0"
        if whole is None or not digits.isdigit():
            return None
        return (whole + Decimal(f"0.{digits}")) * unit
    try:
        value = cn2an.cn2an(text, "smart")
    except (ValueError, KeyError, IndexError):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _small(text: str) -> int | None:
    value = to_number(text)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


def _relative_months(rel: str | None) -> int:
    if not rel:
        return 0
    if rel.startswith("下下"):
        return 2
    return 1 if rel.startswith("下") else 0


# Dates, strictest first: each later rule sees the earlier matches blanked out.
_EXPLICIT = re.compile(f"(?P<m>{_SMALL_NUM}{{1,3}})月(?P<d>{_SMALL_NUM}{{1,3}})[号日]?")
_MONTH_DAY = re.compile(f"{_MONTH_REL}(?P<d>{_SMALL_NUM}{{1,3}})[号日]")
_MONTH_END = re.compile(f"{_MONTH_REL}?(?:月底|月末|底)")
_MONTH_START = re.compile(f"{_MONTH_REL}初")
_IN_DAYS = re.compile(
    f"(?:过)?(?P<n>{_SMALL_NUM}{{1,3}}|两)(?P<u>天|个?星期|个?礼拜|周)(?:后|以后|之后)?"
)
_DAY = re.compile(f"(?<![{_DIGIT}十])(?P<d>{_SMALL_NUM}{{1,3}})[号日](?!本)")
_WEEKDAY = re.compile(
    "(?P<rel>下下|下个|下|这个|这|本)?(?:周|星期|礼拜)(?P<w>[一二三四五六日天末1-7])"
)
_NAMED_DAY = re.compile("大后天|后天|明天|明日|明早|明晚|今天|今日|今晚")
_NAMED_OFFSETS = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明早": 1, "明晚": 1,
                  "后天": 2, "大后天": 3}  # fmt: skip

# Times of day and instants relative to now.
_NOT_AFTER_TIME = f"(?![{_DIGIT}十百千万亿块元])"
_CLOCK = re.compile(
    f"(?P<h>{_SMALL_NUM}{{1,3}})(?:点钟|点|:)"
    f"(?:(?P<half>半)|(?P<q1>一刻)|(?P<q3>三刻)|(?P<min>{_SMALL_NUM}{{1,3}})分?)?{_NOT_AFTER_TIME}"
)
_PERIOD = re.compile("|".join(sorted(_PERIOD_HOURS, key=len, reverse=True)))
_LATER = re.compile(
    f"(?P<n>{_SMALL_NUM}{{1,3}}|半|两)(?P<half>个半)?个?(?P<u>小时|钟头|分钟)(?:后|以后|之后)"
)

_AMOUNT = re.compile(f"(?P<num>{_NUM}[{_DIGIT}十百千万亿,.点]*)(?P<unit>块钱|块|元|圆|人民币|rmb)?")
_NOT_MONEY_AFTER = re.compile("[号日月年天周个岁次期点分秒倍%]|小时|星期|礼拜")
_NOT_MONEY_BEFORE = ("周", "星期", "礼拜", "尾号", "号码", "第", "手机")
_MIN_BARE_AMOUNT = Decimal(10)


class Chinese:
    code = "zh-CN"

    def normalize(self, text: str) -> str:
        return compact(text)

    def find(self, normalized_text: str, normalized_phrase: str) -> Iterator[tuple[int, int]]:
        return find_substring(normalized_text, normalized_phrase)

    # Understanding

    def read(self, text: str, now: datetime) -> Reading:
        original = compact(text, keep=":.,")
        scanner = SpanScanner(original)
        today = now.date()
        moment = earliest(scanner.scan(_LATER, lambda m: _later(m, now)))
        day = earliest(
            scanner.scan(_EXPLICIT, lambda m: _explicit(m, today))
            + scanner.scan(_MONTH_DAY, lambda m: _month_day(m, today))
            + scanner.scan(_MONTH_END, lambda m: _month_end(m, today))
            + scanner.scan(_MONTH_START, lambda m: _month_start(m, today))
            + scanner.scan(_IN_DAYS, lambda m: _in_days(m, today))
            + scanner.scan(_DAY, lambda m: _day(m, today))
            + scanner.scan(_WEEKDAY, lambda m: _weekday(m, today))
            + scanner.scan(_NAMED_DAY, lambda m: today + timedelta(days=_NAMED_OFFSETS[m[0]]))
        )
        clock = earliest(scanner.scan(_CLOCK, _clock))
        period_match = _PERIOD.search(original)
        time_of_day = _with_period(clock, period_match[0] if period_match else None)
        amount = _amount(scanner)
        return Reading(
            amount=amount,
            day=day if isinstance(day, date) else None,
            time_of_day=time_of_day,
            moment=moment if isinstance(moment, datetime) else None,
        )

    # Speaking

    def say_number(self, number: int) -> str:
        return _liang(cn2an.an2cn(number, "low"))

    def say_digits(self, digits: str) -> str:
        return "".join("零一二三四五六七八九"[int(ch)] if ch.isdigit() else ch for ch in digits)

    def say_amount(self, amount: Decimal, currency: str) -> str:
        unit = _CURRENCY_UNITS.get(currency.upper(), currency.upper())
        cents = int((amount * 100).to_integral_value()) % 100
        whole = int(amount)
        spoken = f"{self.say_number(whole)}{unit}"
        if cents:
            jiao, fen = divmod(cents, 10)
            if jiao:
                spoken += f"{self.say_number(jiao)}角"
            elif fen:
                spoken += "零"
            if fen:
                spoken += f"{self.say_number(fen)}分"
        return spoken

    def say_date(self, day: date, today: date) -> str:
        spoken = f"{cn2an.an2cn(day.month)}月{cn2an.an2cn(day.day)}日"
        if day.year != today.year:
            spoken = f"{self.say_digits(str(day.year)).replace('零', '〇')}年{spoken}"
        return spoken

    def say_time(self, wall: time) -> str:
        hour = wall.hour
        if hour < 6:
            period = "凌晨"
        elif hour < 9:
            period = "早上"
        elif hour < 12:
            period = "上午"
        elif hour == 12:
            period = "中午"
        elif hour < 18:
            period = "下午"
        else:
            period = "晚上"
        twelve = hour if hour <= 12 else hour - 12
        spoken = f"{period}{'两' if twelve == 2 else self.say_number(twelve)}点"
        if wall.minute == 30:
            spoken += "半"
        elif wall.minute:
            prefix = "零" if wall.minute < 10 else ""
            spoken += f"{prefix}{cn2an.an2cn(wall.minute)}分"
        return spoken

    def say_datetime(self, moment: datetime, today: date) -> str:
        offset = (moment.date() - today).days
        day = {0: "今天", 1: "明天", 2: "后天"}.get(offset) or self.say_date(moment.date(), today)
        return day + self.say_time(moment.time())

    def slot_phrases(self, kind: SlotKind) -> tuple[str, ...]:
        numbers = tuple("一二两三四五六七八九十百千万")
        if kind == "amount":
            return (*numbers, "元", "块", "块钱")
        if kind == "date":
            return (*numbers, "今天", "明天", "后天", "下周", "周", "星期", "月底", "号", "月",
                    "天后")  # fmt: skip
        if kind in ("time", "datetime"):
            return (*numbers, "今天", "明天", "后天", "上午", "下午", "晚上", "点", "半",
                    "小时", "分钟", "以后", "号", "周", "下周")  # fmt: skip
        return ()


def _liang(numerals: str) -> str:
    """二千 → 两千: how the number is said aloud before 百/千/万 (but not in 十二万)."""
    return re.sub("(?<!十)二(?=[百千万亿])", "两", numerals)


def _later(match: re.Match[str], now: datetime) -> datetime | None:
    raw = match["n"]
    amount = Decimal("0.5") if raw == "半" else to_number(raw)
    if amount is None:
        return None
    if match["half"]:
        amount += Decimal("0.5")
    minutes = amount * 60 if match["u"] in ("小时", "钟头") else amount
    return (now + timedelta(minutes=float(minutes))).replace(second=0, microsecond=0)


def _explicit(match: re.Match[str], today: date) -> date | None:
    month, day = _small(match["m"]), _small(match["d"])
    if month is None or day is None:
        return None
    return calendar.month_and_day(today, month, day)


def _month_day(match: re.Match[str], today: date) -> date | None:
    day = _small(match["d"])
    if day is None:
        return None
    return calendar.day_of_month(today, day, _relative_months(match["rel"]))


def _month_end(match: re.Match[str], today: date) -> date | None:
    if match[0] == "底":  # 到底, 心底: not a date on its own
        return None
    return calendar.end_of_month(today, _relative_months(match["rel"]))


def _month_start(match: re.Match[str], today: date) -> date | None:
    months = _relative_months(match["rel"])
    return calendar.add_months(today.replace(day=1), months)


def _in_days(match: re.Match[str], today: date) -> date | None:
    has_marker = match[0].startswith("过") or match[0][-1] in "后"
    if not has_marker:
        return None
    count = 2 if match["n"] == "两" else _small(match["n"])
    if count is None:
        return None
    unit = 1 if match["u"] == "天" else 7
    return today + timedelta(days=count * unit)


def _day(match: re.Match[str], today: date) -> date | None:
    day = _small(match["d"])
    return None if day is None else calendar.day_of_month(today, day)


def _weekday(match: re.Match[str], today: date) -> date | None:
    weekday = _WEEKDAYS[match["w"]]
    return calendar.weekday_date(today, weekday, _WEEK_REL[match["rel"]])


def _clock(match: re.Match[str]) -> TimeOfDay | None:
    hour = _small(match["h"])
    if hour is None or hour > 24:
        return None
    minute = 0
    if match["half"]:
        minute = 30
    elif match["q1"]:
        minute = 15
    elif match["q3"]:
        minute = 45
    elif match["min"]:
        parsed = _small(match["min"])
        if parsed is None or parsed >= 60:
            return None
        minute = parsed
    return TimeOfDay(hour % 24, minute, meridiem_known=hour == 0 or hour > 12)


def _with_period(clock: object | None, period: str | None) -> TimeOfDay | None:
    if not isinstance(clock, TimeOfDay):
        return TimeOfDay(_PERIOD_HOURS[period]) if period else None
    if period is None or clock.meridiem_known:
        return clock
    hour = clock.hour
    if (period in _AFTERNOON_PERIODS and hour < 12) or (period == "中午" and hour < 3):
        hour += 12
    return TimeOfDay(hour % 24, clock.minute)


def _amount(scanner: SpanScanner) -> Decimal | None:
    text = scanner.text
    with_unit: list[Decimal] = []
    bare: list[Decimal] = []
    for match in _AMOUNT.finditer(text):
        number = match["num"].rstrip(",.点")
        value = to_number(number)
        if value is None or value <= 0:
            continue
        if match["unit"]:
            with_unit.append(value)
            continue
        before = text[: match.start()]
        if _NOT_MONEY_AFTER.match(text, match.end()) or before.endswith(_NOT_MONEY_BEFORE):
            continue
        # A bare numeral that starts with 千/万 is an idiom (千万别, 万一), not money.
        if number[0] in "百千万亿" or value < _MIN_BARE_AMOUNT:
            continue
        bare.append(value)
    found = with_unit or bare
    return found[0].quantize(CENT) if found else None


LANGUAGE = Chinese()
