"""Dates and times relative to the call, in the borrower's time zone, per language."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.dialog import calendar
from voicebot.dialog.languages import language_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 11 December 2024, 10:00 local.
NOW = datetime(2024, 12, 11, 10, 0, tzinfo=SHANGHAI)


def day(language: str, text: str, now: datetime = NOW) -> date | None:
    return language_for(language).read(text, now).day


def moment(language: str, text: str, now: datetime = NOW) -> datetime | None:
    return language_for(language).read(text, now).datetime_at(now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天", "2024-12-11"),
        ("明天", "2024-12-12"),
        ("后天", "2024-12-13"),
        ("大后天", "2024-12-14"),
        ("周五", "2024-12-13"),
        ("这周五", "2024-12-13"),
        ("下周五", "2024-12-20"),
        ("下个星期一", "2024-12-16"),
        ("下下周一", "2024-12-23"),
        ("礼拜天", "2024-12-15"),
        ("月底", "2024-12-31"),
        ("下个月底", "2025-01-31"),
        ("15号", "2024-12-15"),
        ("十五号", "2024-12-15"),
        ("5号", "2025-01-05"),
        ("下个月五号", "2025-01-05"),
        ("12月20日", "2024-12-20"),
        ("十二月二十号", "2024-12-20"),
        ("1月5日", "2025-01-05"),
        ("两天后", "2024-12-13"),
        ("过三天", "2024-12-14"),
        ("一个星期后", "2024-12-18"),
        ("我下周五还三千五", "2024-12-20"),
        ("下个月初", "2025-01-01"),
    ],
)
def test_chinese_dates(text: str, expected: str) -> None:
    assert day("zh-CN", text) == date.fromisoformat(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", "2024-12-11"),
        ("tomorrow", "2024-12-12"),
        ("the day after tomorrow", "2024-12-13"),
        ("Friday", "2024-12-13"),
        ("this Friday", "2024-12-13"),
        ("next Friday", "2024-12-20"),
        ("friday next week", "2024-12-20"),
        ("on monday", "2024-12-16"),
        ("the 15th", "2024-12-15"),
        ("on the fifteenth", "2024-12-15"),
        ("the 5th", "2025-01-05"),
        ("the 5th of next month", "2025-01-05"),
        ("December 20th", "2024-12-20"),
        ("Dec. 20", "2024-12-20"),
        ("the 20th of December", "2024-12-20"),
        ("January 5", "2025-01-05"),
        ("12/20", "2024-12-20"),
        ("end of the month", "2024-12-31"),
        ("end of next month", "2025-01-31"),
        ("in three days", "2024-12-14"),
        ("in 2 weeks", "2024-12-25"),
        ("I'll pay by the twenty first", "2024-12-21"),
    ],
)
def test_english_dates(text: str, expected: str) -> None:
    assert day("en-US", text) == date.fromisoformat(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("오늘", "2024-12-11"),
        ("내일", "2024-12-12"),
        ("모레", "2024-12-13"),
        ("금요일", "2024-12-13"),
        ("이번 주 금요일", "2024-12-13"),
        ("다음 주 금요일", "2024-12-20"),
        ("다음주 월요일", "2024-12-16"),
        ("15일", "2024-12-15"),
        ("십오 일", "2024-12-15"),
        ("십오일에 낼게요", "2024-12-15"),
        ("삼십일일", "2024-12-31"),
        ("5일", "2025-01-05"),
        ("다음 달 5일", "2025-01-05"),
        ("12월 20일", "2024-12-20"),
        ("십이월 이십일", "2024-12-20"),
        ("1월 5일", "2025-01-05"),
        ("월말", "2024-12-31"),
        ("이번 달 말", "2024-12-31"),
        ("다음 달 말", "2025-01-31"),
        ("삼 일 후", "2024-12-14"),
        ("일주일 후", "2024-12-18"),
        ("다음 주 금요일에 삼십만 원 낼게요", "2024-12-20"),
    ],
)
def test_korean_dates(text: str, expected: str) -> None:
    assert day("ko-KR", text) == date.fromisoformat(expected)


@pytest.mark.parametrize(
    ("language", "text"),
    [("zh-CN", "不知道"), ("zh-CN", "到底怎么回事"), ("zh-CN", "三千五"),
     ("en-US", "wait a second"), ("en-US", "I'm not sure"), ("en-US", "three thousand"),
     ("ko-KR", "네"), ("ko-KR", "일이 많아요"), ("ko-KR", "삼십만 원")],
)  # fmt: skip
def test_words_that_are_no_date(language: str, text: str) -> None:
    assert day(language, text) is None


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("zh-CN", "明天下午三点", "2024-12-12T15:00"),
        ("zh-CN", "下午三点半", "2024-12-11T15:30"),
        ("zh-CN", "晚上八点", "2024-12-11T20:00"),
        ("zh-CN", "今晚八点", "2024-12-11T20:00"),
        ("zh-CN", "三点", "2024-12-11T15:00"),  # three o'clock alone is the afternoon
        ("zh-CN", "早上九点", "2024-12-12T09:00"),  # already past today
        ("zh-CN", "一个小时后", "2024-12-11T11:00"),
        ("zh-CN", "半小时以后", "2024-12-11T10:30"),
        ("zh-CN", "15:30", "2024-12-11T15:30"),
        ("zh-CN", "明天", "2024-12-12T10:00"),
        ("zh-CN", "下周一上午", "2024-12-16T10:00"),
        ("en-US", "tomorrow at 3 pm", "2024-12-12T15:00"),
        ("en-US", "at 4:30", "2024-12-11T16:30"),
        ("en-US", "tonight at 8", "2024-12-11T20:00"),
        ("en-US", "this evening", "2024-12-11T19:00"),
        ("en-US", "in an hour", "2024-12-11T11:00"),
        ("en-US", "in 30 minutes", "2024-12-11T10:30"),
        ("en-US", "next Friday at 9 am", "2024-12-20T09:00"),
        ("en-US", "monday afternoon", "2024-12-16T15:00"),
        ("ko-KR", "내일 오후 세 시", "2024-12-12T15:00"),
        ("ko-KR", "오후 3시 30분", "2024-12-11T15:30"),
        ("ko-KR", "저녁 여덟 시", "2024-12-11T20:00"),
        ("ko-KR", "한 시간 후", "2024-12-11T11:00"),
        ("ko-KR", "삼십 분 뒤", "2024-12-11T10:30"),
        ("ko-KR", "다음 주 월요일 오전 열 시", "2024-12-16T10:00"),
        ("ko-KR", "오늘 저녁", "2024-12-11T19:00"),
    ],
)
def test_call_back_times(language: str, text: str, expected: str) -> None:
    assert moment(language, text) == datetime.fromisoformat(expected).replace(tzinfo=SHANGHAI)


def test_today_without_a_time_means_in_two_hours() -> None:
    assert moment("zh-CN", "今天") == datetime(2024, 12, 11, 12, 0, tzinfo=SHANGHAI)


def test_relative_dates_follow_the_borrowers_calendar_not_utc() -> None:
    # 23:30 on Friday 13 December in Shanghai is still Friday 15:30 UTC; "tomorrow" is Saturday.
    late = datetime(2024, 12, 13, 23, 30, tzinfo=SHANGHAI)
    assert day("zh-CN", "明天", late) == date(2024, 12, 14)
    assert day("zh-CN", "下周五", late) == date(2024, 12, 20)


def test_calendar_edges() -> None:
    assert calendar.day_of_month(date(2025, 1, 31), 30) == date(2025, 2, 28)
    assert calendar.day_of_month(date(2024, 4, 10), 31) == date(2024, 4, 30)
    assert calendar.day_of_month(date(2024, 4, 10), 32) is None
    assert calendar.end_of_month(date(2024, 2, 29)) == date(2024, 2, 29)
    assert calendar.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert calendar.month_and_day(date(2024, 12, 11), 2, 30) == date(2025, 2, 28)
    friday = date(2024, 12, 13)
    assert calendar.weekday_date(friday, 4, None) == friday
    assert calendar.weekday_date(friday, 4, 1) == date(2024, 12, 20)
    assert calendar.weekday_date(friday, 0, 0) == date(2024, 12, 16)  # this Monday has passed


def test_a_dst_gap_reads_the_later_wall_clock() -> None:
    new_york = ZoneInfo("America/New_York")
    moment_ = calendar.at_local(date(2025, 3, 9), time(2, 30), new_york)
    assert moment_.utcoffset() is not None
    assert moment_.astimezone(ZoneInfo("UTC")).hour == 7
