"""Amounts in what borrowers say, per language."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from voicebot.dialog.languages import language_for

NOW = datetime(2024, 12, 11, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def amount(language: str, text: str) -> Decimal | None:
    return language_for(language).read(text, NOW).amount


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("三千五", "3500"),
        ("3500块", "3500"),
        ("两千五百元", "2500"),
        ("一万二", "12000"),
        ("三千五百块钱", "3500"),
        ("3.5万", "35000"),
        ("三点五万", "35000"),
        ("3千5", "3500"),
        ("1,500元", "1500"),
        ("我下周五还三千五", "3500"),
        ("十五号还两千", "2000"),
        ("先还五百", "500"),
        ("二百五十元", "250"),
        ("还1000，明天", "1000"),
        ("一万零五百元", "10500"),
    ],
)
def test_chinese_amounts(text: str, expected: str) -> None:
    assert amount("zh-CN", text) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    ["我一定还", "千万别打了", "万一还不上", "尾号1234", "15号", "下周五", "三点", "十分感谢",
     "第一次", "两个月", "今天天气不错"],
)  # fmt: skip
def test_chinese_numbers_that_are_not_money(text: str) -> None:
    assert amount("zh-CN", text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("three thousand five hundred", "3500"),
        ("$3,500", "3500"),
        ("$3,500.50", "3500.50"),
        ("3500 dollars", "3500"),
        ("I can pay $3,500 next Friday", "3500"),
        ("fifteen hundred bucks", "1500"),
        ("two thousand five hundred and fifty dollars", "2550"),
        ("twenty-five hundred", "2500"),
        ("a thousand dollars", "1000"),
        ("I can pay 500 on friday", "500"),
        ("3.5k", "3500"),
        ("one hundred twenty", "120"),
    ],
)
def test_english_amounts(text: str, expected: str) -> None:
    assert amount("en-US", text) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    ["the 15th", "at 3 pm", "in 3 days", "my number ends in 1234", "December 20", "12/20",
     "wait a second", "no one", "I'll pay on the twenty first"],
)  # fmt: skip
def test_english_numbers_that_are_not_money(text: str) -> None:
    assert amount("en-US", text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("삼십만 원", "300000"),
        ("삼십 만 원", "300000"),
        ("30만원", "300000"),
        ("300,000원", "300000"),
        ("삼천오백 원", "3500"),
        ("백이십오만 원", "1250000"),
        ("만 원", "10000"),
        ("3만5천원", "35000"),
        ("다음 주 금요일에 삼십만 원 낼게요", "300000"),
        ("이십오만", "250000"),
    ],
)
def test_korean_amounts(text: str, expected: str) -> None:
    assert amount("ko-KR", text) == Decimal(expected)


@pytest.mark.parametrize(
    "text", ["이번에는 못 내요", "만약에", "십오 일", "오후 세 시", "일이 있어서", "사과"]
)
def test_korean_numbers_that_are_not_money(text: str) -> None:
    assert amount("ko-KR", text) is None
