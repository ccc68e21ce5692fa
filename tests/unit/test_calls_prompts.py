"""Prompts cut into sentences, the fixed sentences of a dialog, and mark names."""

from __future__ import annotations

from pathlib import Path

from voicebot.calls.playback import mark_name
from voicebot.calls.prompts import sentences, static_sentences
from voicebot.calls.services import call_grammar
from voicebot.dialog import load_dialog

DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"


def test_sentences_split_at_sentence_ends_only() -> None:
    assert sentences("확인하겠습니다. 1월 15일에 삼십만 원을 내시는 것이 맞나요?") == [
        "확인하겠습니다.",
        "1월 15일에 삼십만 원을 내시는 것이 맞나요?",
    ]
    assert sentences("您好。请问您是张三本人吗？好的") == ["您好。", "请问您是张三本人吗？", "好的"]
    assert sentences("It is 3.5 dollars. Yes! ") == ["It is 3.5 dollars.", "Yes!"]
    assert sentences("  ") == []


def test_fixed_sentences_include_those_of_prompts_with_slots() -> None:
    dialog = load_dialog(DIALOGS / "car_loan_followup.ko-KR.yaml")
    fixed = static_sentences(dialog)
    assert "이 통화는 녹음됩니다." in fixed  # the recording notice, a constant
    assert "확인하겠습니다." in fixed  # opens the promise confirmation, which names slots
    assert len(fixed) == len(set(fixed))
    # Nothing that depends on the borrower: no placeholders, no loan fields.
    assert not any("{" in sentence or "삼십만" in sentence for sentence in fixed)


def test_the_call_grammar_covers_every_listening_state() -> None:
    dialog = load_dialog(DIALOGS / "car_loan_followup.ko-KR.yaml")
    grammar = call_grammar(dialog)
    assert len(grammar) == len(set(grammar))
    for listen in dialog.listens.values():
        assert set(listen.grammar()) <= set(grammar), listen.state


def test_marks_carry_the_prompt_and_its_state() -> None:
    assert mark_name(12, "confirm_phone") == "p12.confirm_phone"
    assert mark_name(3, None) == "p3."
