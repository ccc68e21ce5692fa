"""Values spoken the way a person would say them, and contacts turned into call contexts."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from tests.unit.dialog_conversation import shipped
from voicebot.dialog import ContactDataError, context_for, field_problems
from voicebot.dialog.languages import language_for

TODAY = date(2024, 12, 11)


@pytest.mark.parametrize(
    ("language", "amount", "currency", "spoken"),
    [
        ("zh-CN", "3500", "CNY", "三千五百元"),
        ("zh-CN", "2500", "CNY", "两千五百元"),
        ("zh-CN", "12000", "CNY", "一万两千元"),
        ("zh-CN", "120000", "CNY", "十二万元"),
        ("zh-CN", "2500.50", "CNY", "两千五百元五角"),
        ("zh-CN", "100.05", "CNY", "一百元零五分"),
        ("zh-CN", "300", "USD", "三百美元"),
        ("en-US", "3500", "USD", "three thousand five hundred dollars"),
        ("en-US", "1", "USD", "one dollar"),
        (
            "en-US",
            "1250.75",
            "USD",
            "one thousand two hundred fifty dollars and seventy five cents",
        ),
        ("en-US", "2000000", "USD", "two million dollars"),
        ("en-US", "500", "CNY", "five hundred yuan"),
        ("ko-KR", "300000", "KRW", "삼십만 원"),
        ("ko-KR", "3500", "KRW", "삼천오백 원"),
        ("ko-KR", "10000", "KRW", "만 원"),
        ("ko-KR", "1250000", "KRW", "백이십오만 원"),
        ("ko-KR", "100000000", "KRW", "일억 원"),
    ],
)
def test_amounts(language: str, amount: str, currency: str, spoken: str) -> None:
    assert language_for(language).say_amount(Decimal(amount), currency) == spoken


@pytest.mark.parametrize(
    ("language", "day", "spoken"),
    [
        ("zh-CN", "2024-12-15", "十二月十五日"),
        ("zh-CN", "2025-01-05", "二〇二五年一月五日"),
        ("en-US", "2024-12-15", "December 15"),
        ("en-US", "2025-01-05", "January 5, 2025"),
        ("ko-KR", "2024-12-15", "12월 15일"),
        ("ko-KR", "2025-01-05", "2025년 1월 5일"),
    ],
)
def test_dates(language: str, day: str, spoken: str) -> None:
    assert language_for(language).say_date(date.fromisoformat(day), TODAY) == spoken


@pytest.mark.parametrize(
    ("language", "wall", "spoken"),
    [
        ("zh-CN", "15:00", "下午三点"),
        ("zh-CN", "15:30", "下午三点半"),
        ("zh-CN", "14:00", "下午两点"),
        ("zh-CN", "09:05", "上午九点零五分"),
        ("zh-CN", "12:00", "中午十二点"),
        ("zh-CN", "20:15", "晚上八点十五分"),
        ("en-US", "15:00", "3 PM"),
        ("en-US", "09:30", "9:30 AM"),
        ("en-US", "00:00", "12 AM"),
        ("ko-KR", "15:00", "오후 세 시"),
        ("ko-KR", "15:30", "오후 세 시 반"),
        ("ko-KR", "10:15", "오전 열 시 십오 분"),
    ],
)
def test_times(language: str, wall: str, spoken: str) -> None:
    assert language_for(language).say_time(time.fromisoformat(wall)) == spoken


@pytest.mark.parametrize(
    ("language", "moment", "spoken"),
    [
        ("zh-CN", "2024-12-12T15:00", "明天下午三点"),
        ("zh-CN", "2024-12-11T20:00", "今天晚上八点"),
        ("zh-CN", "2024-12-20T10:00", "十二月二十日上午十点"),
        ("en-US", "2024-12-12T15:00", "tomorrow at 3 PM"),
        ("en-US", "2024-12-20T10:00", "December 20 at 10 AM"),
        ("ko-KR", "2024-12-12T15:00", "내일 오후 세 시"),
        ("ko-KR", "2024-12-13T15:00", "모레 오후 세 시"),
    ],
)
def test_datetimes(language: str, moment: str, spoken: str) -> None:
    assert language_for(language).say_datetime(datetime.fromisoformat(moment), TODAY) == spoken


@pytest.mark.parametrize(
    ("language", "spoken"),
    [("zh-CN", "一二三四"), ("en-US", "one two three four"), ("ko-KR", "일 이 삼 사")],
)
def test_digits(language: str, spoken: str) -> None:
    assert language_for(language).say_digits("1234") == spoken


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        language_for("fr-FR")


def test_a_contact_becomes_typed_fields_with_defaults() -> None:
    script = shipped("zh-CN").script
    context = context_for(script, {"name": "张三", "amount_due": 3500.5,
                                   "fields": {"due_date": "2024-12-15"}})  # fmt: skip
    assert context.fields == {"name": "张三", "amount_due": Decimal("3500.50"),
                              "due_date": date(2024, 12, 15)}  # fmt: skip
    assert (context.time_zone, context.currency) == ("Asia/Shanghai", "CNY")


def test_a_contact_missing_fields_or_with_bad_values_is_refused() -> None:
    script = shipped("en-US").script
    with pytest.raises(ContactDataError) as raised:
        context_for(script, {"amount_due": "lots", "due_date": "someday",
                             "time_zone": "Mars/Base", "currency": "dollars"})  # fmt: skip
    message = str(raised.value)
    for fragment in ("missing field 'name'", "'amount_due'", "'due_date'", "Mars/Base", "currency"):
        assert fragment in message


def test_field_problems_are_context_fors_field_by_field() -> None:
    """What an import checks is what a call will refuse, one field at a time."""
    script = shipped("en-US").script
    contact = {"amount_due": "lots", "fields": {"due_date": "2026-07-01"}}
    problems = field_problems(script, contact)
    assert [(p.name, p.missing) for p in problems] == [("name", True), ("amount_due", False)]
    assert problems[1].reason == "not an amount: 'lots'"
    with pytest.raises(ContactDataError) as raised:
        context_for(script, contact)
    assert str(raised.value) == "; ".join(str(p) for p in problems)
