"""Whole conversations with the shipped zh-CN and en-US dialogs, through the text path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.dialog_conversation import Conversation, shipped
from voicebot.dialog import OptOut, ScheduleCallBack, Transfer

LANGUAGES = ["zh-CN", "en-US"]

# What a borrower says, per language. Each entry is one turn.
SAYS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "yes": "是的",
        "yes_again": "对",
        "no": "不是",
        "cannot": "不能",
        "promise": "我下周五还三千五",
        "identity_and_promise": "是我，我下周五还三千五",
        "phone_and_promise": "对，我月底先还两千",
        "third_party": "我是他老婆",
        "not_home": "他不在",
        "who": "你是哪位",
        "who_and_yes": "是啊，你哪位",
        "job_loss": "我失业了",
        "income_drop": "最近收入减少了",
        "vehicle_sold": "车已经卖了",
        "hardship": "我现在没钱",
        "dispute": "我已经还了",
        "unsure": "不知道",
        "opt_out": "以后别再打了",
        "complaint": "我要投诉",
        "complaint_detail": "你们天天打电话骚扰我",
        "complaint_now": "我要投诉你们乱收费",
        "later_with_time": "明天下午三点再打给我",
        "later": "现在不方便",
        "evening": "晚上八点",
        "human": "转人工",
        "correction": "不对，是下周五",
        "amount_only": "两千",
        "month_end": "月底",
        "free_reason": "家里出了点状况",
        "next_month_5th": "下个月五号",
        "full": "全部还",
        "new_phone": "13912345678",
    },
    "en-US": {
        "yes": "yes",
        "yes_again": "yeah",
        "no": "no",
        "cannot": "no I can't",
        "promise": "I can pay $3,500 next Friday",
        "identity_and_promise": "yes, I will pay three thousand five hundred dollars next Friday",
        "phone_and_promise": "yeah, I will pay two thousand by the end of the month",
        "third_party": "this is his wife",
        "not_home": "he's not home",
        "who": "who is this?",
        "who_and_yes": "yes, who is this?",
        "job_loss": "I lost my job",
        "income_drop": "I'm earning less these days",
        "vehicle_sold": "I sold the car",
        "hardship": "I have no money right now",
        "dispute": "I already paid that",
        "unsure": "I don't know",
        "opt_out": "please stop calling me",
        "complaint": "I want to file a complaint",
        "complaint_detail": "you call me every day, it's harassment",
        "complaint_now": "I want to complain about your late fees",
        "later_with_time": "call me back tomorrow at 3 pm",
        "later": "I'm busy",
        "evening": "tonight at 8",
        "human": "let me talk to a real person",
        "correction": "no, next Friday",
        "amount_only": "two thousand",
        "month_end": "the end of the month",
        "free_reason": "my kid needed braces",
        "next_month_5th": "the 5th of next month",
        "full": "the full amount",
        "new_phone": "555 123 4567",
    },
}

# The loan, as the bot must never say it to anyone but the borrower.
LOAN_WORDS = {
    "zh-CN": ["三千五百", "十二月十五", "贷", "还款", "欠"],
    "en-US": ["three thousand", "December 15", "loan", "payment", "owe"],
}

# How to reach each listening state from the start of a call (keys into SAYS).
ROUTES: dict[str, list[str]] = {
    "opening": [],
    "confirm_phone": ["yes"],
    "phone_changed": ["yes", "no"],
    "ask_repayment": ["yes", "yes"],
    "ask_reason": ["yes", "yes", "cannot"],
    "ask_partial": ["yes", "yes", "job_loss"],
    "ask_promise_date": ["yes", "yes", "unsure"],
    "ask_promise_amount": ["yes", "yes", "month_end"],
    "confirm_promise": ["yes", "yes", "yes"],
    "complaint": ["complaint"],
    "callback": ["later"],
}


def call(language: str, *keys: str, **options: Any) -> Conversation:
    conversation = Conversation.shipped(language, **options)
    return conversation.talk(*(SAYS[language][key] for key in keys))


def reach(language: str, state: str) -> Conversation:
    conversation = call(language, *ROUTES[state])
    assert conversation.listening == state
    return conversation


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_routes_reach_every_listening_state(language: str) -> None:
    listening = {name for name, s in shipped(language).script.states.items() if s.listens}
    assert listening == set(ROUTES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_bot_identifies_itself_and_gives_the_recording_notice_first(language: str) -> None:
    conversation = Conversation.shipped(language)
    script = shipped(language).script
    first = conversation.bot_lines[0]
    assert script.constants["company"] in first
    assert script.recording_notice in first
    assert conversation.listening == "opening"
    assert not any(word in line for line in conversation.bot_lines for word in LOAN_WORDS[language])


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_promise_to_pay_in_full_by_the_due_date(language: str) -> None:
    conversation = call(language, "yes", "yes_again", "yes", "yes")
    assert conversation.outcomes == [
        {"type": "confirmation", "fields": ["identity"]},
        {"type": "confirmation", "fields": ["phone"]},
        {"type": "promise", "amount": "3500.00", "currency": conversation.state.context.currency,
         "date": "2024-12-15"},
    ]  # fmt: skip
    assert conversation.node == "promise_thanks"
    assert conversation.hangup == "completed"
    reminder = next(line for line in conversation.bot_lines if "15" in line or "十五" in line)
    assert (
        ("三千五百元" in reminder)
        if language == "zh-CN"
        else ("three thousand five hundred dollars" in reminder)
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_promise_with_its_own_amount_and_date(language: str) -> None:
    conversation = call(language, "yes", "yes", "promise", "yes")
    promise = conversation.outcomes[-1]
    assert promise["type"] == "promise"
    assert (promise["amount"], promise["date"]) == ("3500.00", "2024-12-20")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_promise_volunteered_with_the_identity_check_is_not_asked_again(language: str) -> None:
    conversation = call(language, "identity_and_promise", "yes")
    assert conversation.listening == "confirm_promise"
    # The reminder is still given, but the repayment question is skipped.
    assert shipped(language).script.states["ask_repayment"].say[0] not in conversation.bot_lines
    conversation.talk(SAYS[language]["yes"])
    assert conversation.outcomes[-1] == {
        "type": "promise", "amount": "3500.00",
        "currency": conversation.state.context.currency, "date": "2024-12-20",
    }  # fmt: skip


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_promise_volunteered_while_confirming_the_phone(language: str) -> None:
    conversation = call(language, "yes", "phone_and_promise", "yes")
    assert conversation.outcome_types == ["confirmation", "confirmation", "promise"]
    assert conversation.outcomes[-1]["amount"] == "2000.00"
    assert conversation.outcomes[-1]["date"] == "2024-12-31"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("answer", ["third_party", "not_home", "no"])
def test_a_third_party_hears_nothing_about_the_loan(language: str, answer: str) -> None:
    conversation = call(language, answer)
    assert conversation.outcomes == [{"type": "wrong_party"}]
    assert conversation.node == "wrong_party"
    assert conversation.state.ended
    for line in conversation.bot_lines:
        assert not any(word in line for word in LOAN_WORDS[language]), line


@pytest.mark.parametrize("language", LANGUAGES)
def test_who_is_this_is_answered_without_the_loan_and_the_question_repeated(
    language: str,
) -> None:
    conversation = call(language, "who")
    assert conversation.listening == "opening"
    assert shipped(language).script.constants["bot_name"] in conversation.last_lines[0]
    assert not any(word in " ".join(conversation.last_lines) for word in LOAN_WORDS[language])
    conversation.talk(SAYS[language]["yes"])
    assert conversation.outcomes == [{"type": "confirmation", "fields": ["identity"]}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_question_wins_over_a_yes_in_the_same_breath(language: str) -> None:
    conversation = call(language, "who_and_yes")
    assert conversation.outcomes == []
    assert conversation.listening == "opening"


@pytest.mark.parametrize("language", LANGUAGES)
def test_silence_is_reprompted_then_the_call_closes(language: str) -> None:
    conversation = Conversation.shipped(language)
    conversation.silence()
    assert conversation.listening == "opening"
    assert len(conversation.last_lines) == 2  # apology + the question again
    conversation.silence()
    assert conversation.listening == "opening"
    conversation.silence()
    assert conversation.node == "no_response"
    assert conversation.hangup == "no_response"
    assert conversation.outcomes == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_one_silence_then_an_answer_carries_on(language: str) -> None:
    conversation = Conversation.shipped(language)
    conversation.silence()
    conversation.talk(SAYS[language]["yes"])
    assert conversation.listening == "confirm_phone"


@pytest.mark.parametrize("language", LANGUAGES)
def test_nonsense_is_reprompted_then_the_call_closes(language: str) -> None:
    nonsense = {
        "zh-CN": ["香蕉苹果", "紫色大象", "火星上有水"],
        "en-US": ["purple elephant", "banana bread recipe", "the weather is lovely"],
    }
    conversation = Conversation.shipped(language).talk(*nonsense[language][:2])
    assert conversation.listening == "opening"
    conversation.talk(nonsense[language][2])
    assert conversation.node == "not_understood"
    assert conversation.outcomes == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_low_confidence_yes_is_not_taken_as_yes(language: str) -> None:
    conversation = Conversation.shipped(language)
    conversation.say(SAYS[language]["yes"], confidence=0.1)
    assert conversation.outcomes == []
    assert conversation.listening == "opening"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("reason", "flag"),
    [("job_loss", "job_loss"), ("income_drop", "income_drop"),
     ("vehicle_sold", "vehicle_sold"), ("hardship", "hardship")],
)  # fmt: skip
def test_hardship_is_flagged_then_a_partial_payment_is_asked_for(
    language: str, reason: str, flag: str
) -> None:
    conversation = call(language, "yes", "yes", reason)
    assert conversation.outcomes[-1] == {"type": "risk_flag", "flag": flag,
                                         "text": SAYS[language][reason]}  # fmt: skip
    assert conversation.listening == "ask_partial"
    conversation.talk(SAYS[language]["no"])
    assert conversation.node == "no_promise"
    assert conversation.hangup == "completed"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_partial_promise_after_hardship(language: str) -> None:
    conversation = call(language, "yes", "yes", "job_loss", "month_end", "amount_only", "yes")
    assert conversation.outcome_types[-2:] == ["risk_flag", "promise"]
    assert conversation.outcomes[-1]["amount"] == "2000.00"
    assert conversation.outcomes[-1]["date"] == "2024-12-31"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_dispute_is_recorded_verbatim(language: str) -> None:
    conversation = call(language, "yes", "yes", "dispute")
    assert conversation.outcomes[-1] == {"type": "dispute", "text": SAYS[language]["dispute"]}
    assert conversation.node == "dispute_noted"
    assert conversation.state.ended


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_unexplained_refusal_asks_why_and_keeps_the_answer(language: str) -> None:
    conversation = call(language, "yes", "yes", "cannot", "free_reason")
    assert conversation.outcomes[-1] == {"type": "risk_flag", "flag": "other",
                                         "text": SAYS[language]["free_reason"]}  # fmt: skip
    conversation.talk(SAYS[language]["next_month_5th"], SAYS[language]["full"])
    assert conversation.listening == "confirm_promise"
    conversation.talk(SAYS[language]["yes"])
    assert conversation.outcomes[-1]["date"] == "2025-01-05"
    assert conversation.outcomes[-1]["amount"] == "3500.00"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_corrected_promise_is_confirmed_again(language: str) -> None:
    conversation = call(language, "yes", "yes", "yes", "correction")
    assert conversation.listening == "ask_promise_amount"
    conversation.talk(SAYS[language]["amount_only"])
    assert conversation.listening == "confirm_promise"
    conversation.talk(SAYS[language]["yes"])
    assert conversation.outcomes[-1]["date"] == "2024-12-20"
    assert conversation.outcomes[-1]["amount"] == "2000.00"
    assert conversation.outcome_types.count("promise") == 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_changed_phone_number_is_noted(language: str) -> None:
    conversation = call(language, "yes", "no", "new_phone")
    assert conversation.outcomes[-1] == {"type": "risk_flag", "flag": "other",
                                         "text": SAYS[language]["new_phone"]}  # fmt: skip
    assert conversation.listening == "ask_repayment"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("state", sorted(ROUTES))
def test_an_opt_out_is_honoured_in_every_listening_state(language: str, state: str) -> None:
    conversation = reach(language, state)
    before = len(conversation.outcomes)
    actions = conversation.say(SAYS[language]["opt_out"])
    assert conversation.outcomes[before:] == [{"type": "opt_out"}]
    assert [a for a in actions if isinstance(a, OptOut)]
    assert conversation.node == "opted_out"
    assert conversation.hangup == "opted_out"
    assert conversation.state.ended


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("state", sorted(set(ROUTES) - {"complaint"}))
def test_a_complaint_is_taken_in_every_listening_state_then_the_call_resumes(
    language: str, state: str
) -> None:
    conversation = reach(language, state)
    conversation.talk(SAYS[language]["complaint"])
    assert conversation.listening == "complaint"
    conversation.talk(SAYS[language]["complaint_detail"])
    complaint = conversation.outcomes[-1]
    assert complaint["type"] == "complaint"
    assert complaint["category"] == "harassment"
    assert SAYS[language]["complaint_detail"] in complaint["text"]
    assert SAYS[language]["complaint"] in complaint["text"]
    assert conversation.listening == state  # back to the interrupted question


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_complaint_said_in_one_breath_keeps_its_category(language: str) -> None:
    conversation = call(language, "yes", "complaint_now")
    conversation.silence()
    conversation.silence()
    complaint = conversation.outcomes[-1]
    assert complaint == {"type": "complaint", "category": "fees",
                         "text": SAYS[language]["complaint_now"]}  # fmt: skip
    assert conversation.listening == "confirm_phone"


@pytest.mark.parametrize("language", LANGUAGES)
def test_call_me_back_at_a_time_schedules_that_call_back(language: str) -> None:
    conversation = call(language, "yes", "yes", "later_with_time")
    # 15:00 local tomorrow: 07:00Z in Shanghai, 21:00Z in Chicago.
    expected = {"zh-CN": "2024-12-12T07:00:00Z", "en-US": "2024-12-12T21:00:00Z"}[language]
    assert conversation.outcomes[-1] == {"type": "callback_request", "at": expected}
    callbacks = [a for a in conversation.actions if isinstance(a, ScheduleCallBack)]
    assert [c.at.isoformat().replace("+00:00", "Z") for c in callbacks] == [expected]
    assert conversation.node == "callback_confirmed"
    assert conversation.hangup == "callback_requested"


@pytest.mark.parametrize("language", LANGUAGES)
def test_call_me_later_asks_when(language: str) -> None:
    conversation = call(language, "later")
    assert conversation.listening == "callback"
    conversation.talk(SAYS[language]["evening"])
    expected = {"zh-CN": "2024-12-11T12:00:00Z", "en-US": "2024-12-12T02:00:00Z"}[language]
    assert conversation.outcomes == [{"type": "callback_request", "at": expected}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_call_me_later_without_a_time_calls_back_in_two_hours(language: str) -> None:
    conversation = call(language, "later", "unsure")
    callbacks = [a for a in conversation.actions if isinstance(a, ScheduleCallBack)]
    assert len(callbacks) == 1
    assert (callbacks[0].at - conversation.clock).total_seconds() == pytest.approx(7200, abs=1)
    at = callbacks[0].at.isoformat().replace("+00:00", "Z")
    assert conversation.outcomes == [{"type": "callback_request", "at": at}]
    assert conversation.node == "callback_default"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_request_for_a_person_transfers_the_call(language: str) -> None:
    conversation = call(language, "yes", "human")
    transfers = [a for a in conversation.actions if isinstance(a, Transfer)]
    assert [t.number for t in transfers] == [shipped(language).script.constants["human_number"]]
    assert conversation.state.end_reason == "transferred"


@pytest.mark.parametrize("language", LANGUAGES)
def test_dtmf_answers_the_questions(language: str) -> None:
    conversation = Conversation.shipped(language)
    conversation.press("5")  # means nothing here: reprompt
    assert conversation.listening == "opening"
    conversation.press("1")
    assert conversation.outcomes == [{"type": "confirmation", "fields": ["identity"]}]
    conversation.press("2")
    assert conversation.listening == "phone_changed"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("digit", "end"), [("2", "wrong_party"), ("9", "opted_out"),
                                            ("0", "transfer")])  # fmt: skip
def test_dtmf_alternatives_at_the_first_question(language: str, digit: str, end: str) -> None:
    conversation = Conversation.shipped(language)
    conversation.press(digit)
    assert conversation.node == end
    assert conversation.state.ended


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_borrower_hanging_up_ends_the_dialog_quietly(language: str) -> None:
    conversation = call(language, "yes")
    assert conversation.hang_up() == []
    assert conversation.state.end_reason == "hung_up"
    assert conversation.say(SAYS[language]["yes"]) == []
    assert conversation.outcome_types == ["confirmation"]
