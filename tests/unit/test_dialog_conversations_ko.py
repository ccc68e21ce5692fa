"""Conversations with the ko-KR dialog, worded as the Korean recogniser writes them (its words
separated by spaces: 삼십 만 원)."""

from __future__ import annotations

import pytest

from tests.unit.dialog_conversation import Conversation


def call(*lines: str) -> Conversation:
    return Conversation.shipped("ko-KR").talk(*lines)


def test_a_promise_with_amount_and_date() -> None:
    conversation = call("네", "네", "다음 주 금요일 삼십 만 원 낼게요", "네")
    assert conversation.outcomes[-1] == {"type": "promise", "amount": "300000.00",
                                         "currency": "KRW", "date": "2024-12-20"}  # fmt: skip
    assert "삼십만 원" in " ".join(conversation.bot_lines)
    assert "12월 15일" in " ".join(conversation.bot_lines)


def test_a_promise_volunteered_before_it_is_asked() -> None:
    conversation = call("네 맞아", "네 십오 일 에 낼게요")
    assert conversation.listening == "ask_promise_amount"
    conversation.talk("전액", "네")
    assert conversation.outcomes[-1]["date"] == "2024-12-15"
    assert conversation.outcomes[-1]["amount"] == "300000.00"


@pytest.mark.parametrize("answer", ["아니요", "저 아닌데", "아내", "지금 안 계세요"])
def test_someone_else_answering_hears_nothing_about_the_loan(answer: str) -> None:
    conversation = call(answer)
    assert conversation.outcomes == [{"type": "wrong_party"}]
    for line in conversation.bot_lines:
        assert not any(word in line for word in ("대출", "삼십만", "12월", "상환", "납부")), line


def test_an_opt_out_midway() -> None:
    conversation = call("네", "전화 하지 마세요")
    assert conversation.outcome_types == ["confirmation", "opt_out"]
    assert conversation.hangup == "opted_out"


def test_a_complaint_then_the_question_again() -> None:
    conversation = call("네", "불만 있어요", "매일 전화 해서 너무 자주 와요")
    assert conversation.outcomes[-1]["type"] == "complaint"
    assert conversation.outcomes[-1]["category"] == "harassment"
    assert conversation.listening == "confirm_phone"


def test_hardship_and_a_call_back() -> None:
    conversation = call("네", "네", "실직 했어요", "나중에 전화 주세요", "내일 오후 세 시")
    assert conversation.outcome_types[-2:] == ["risk_flag", "callback_request"]
    assert conversation.outcomes[-1]["at"] == "2024-12-12T06:00:00Z"  # 15:00 in Seoul


def test_dtmf() -> None:
    conversation = Conversation.shipped("ko-KR")
    conversation.press("1")
    conversation.press("1")
    assert conversation.outcome_types == ["confirmation", "confirmation"]
    conversation.press("9")
    assert conversation.node == "opted_out"
