"""The engine's mechanics: barge-in, timing, limits, voicemail, replay, and what it asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.unit.dialog_conversation import CONTACTS, Conversation, shipped
from voicebot.dialog import (
    EVENT,
    CallStarted,
    DialogRuntimeError,
    Hangup,
    Listen,
    MaxDurationReached,
    PromptFinished,
    RecordOutcome,
    Say,
    StopSpeaking,
    Utterance,
    context_for,
    load_dialog_text,
    new_call,
    replay,
    step,
)
from voicebot.dialog.compiled import compile_dialog
from voicebot.dialog.script import DialogScript
from voicebot.dialog.validation import validate

START = datetime(2024, 12, 11, 2, 0, tzinfo=UTC)

MINIMAL = """
id: minimal
version: 1
language: en-US
voice: gmw/en-us
max_call_seconds: 60
currency: USD
start: hello
recording_notice: This call is recorded.
voicemail: Please call us back.
fields:
  name: text
  amount_due: {type: amount, private: true}
slots:
  when: date
defaults:
  no_input: {goto: bye}
  no_match: {goto: bye}
intents:
  "yes": {phrases: ["yes"], dtmf: "1"}
  "no": {phrases: ["no"]}
states:
  hello:
    say: ["Hi {name}. {recording_notice}", "Is that you?"]
    listen:
      "yes": {goto: loan}
      "no": {goto: bye}
  loan:
    say: You owe {amount_due}.
    next: bye
  bye:
    say: Bye.
    do: [hangup]
"""


def test_a_call_starts_with_prompts_and_a_listen() -> None:
    conversation = Conversation.shipped("zh-CN", autoplay=False)
    kinds = [type(action) for action in conversation.actions]
    assert kinds == [Say, Say, Listen]
    listen = conversation.actions[-1]
    assert isinstance(listen, Listen)
    assert listen.state == "opening"
    assert {"是", "不是", "别再打", "投诉", "你是谁"} <= set(listen.phrases)
    assert listen.dtmf == ("0", "1", "2", "9")
    assert listen.free_form is False
    assert listen.no_input_seconds == 6
    assert "[unk]" not in listen.grammar()


def test_listening_for_a_date_asks_the_recogniser_for_date_words() -> None:
    dialog = shipped("ko-KR")
    listen = dialog.listens["ask_promise_date"]
    assert {"금요일", "다음", "주", "내일", "월말"} <= set(listen.slot_phrases)
    assert listen.free_form is False
    assert dialog.listens["complaint"].free_form is True
    assert dialog.listens["opening"].slot_phrases == ()
    grammar = listen.grammar()
    assert len(grammar) == len(set(grammar))


def test_static_prompts_are_those_that_name_only_constants() -> None:
    prompts = shipped("zh-CN").static_prompts()
    assert "请问您能在还款日前按时还款吗？" in prompts
    assert not any("{" in prompt for prompt in prompts)
    assert not any("张三" in prompt for prompt in prompts)
    assert "+864008001234" not in prompts


def finish_playing(conversation: Conversation) -> None:
    for prompt_id in conversation.state.playing:
        conversation.send(PromptFinished(at=conversation.tick(1), prompt_id=prompt_id))


def test_the_opening_may_not_be_interrupted_but_later_prompts_may() -> None:
    conversation = Conversation.shipped("zh-CN", autoplay=False)
    assert conversation.partial("是") == []  # the recording notice plays on
    conversation.say("是的")  # answered while the opening was still playing
    assert StopSpeaking() not in conversation.last
    for prompt_id in (1, 2):  # the opening finishes; the next question is playing
        conversation.send(PromptFinished(at=conversation.tick(1), prompt_id=prompt_id))
    assert conversation.state.playing  # the next question is playing
    actions = conversation.partial("是")
    assert actions == [StopSpeaking()]
    assert conversation.state.playing == ()
    interrupted = [t for t in conversation.state.turns if t.interrupted]
    assert [t.state for t in interrupted] == ["confirm_phone"]
    assert interrupted[0].ended_at == conversation.clock
    # The final result arrives after the barge-in: no second StopSpeaking.
    actions = conversation.say("对，我下周五还三千五")
    assert StopSpeaking() not in actions
    assert conversation.listening == "confirm_promise"


def test_a_final_utterance_over_a_prompt_stops_it_too() -> None:
    conversation = Conversation.shipped("en-US", autoplay=False)
    finish_playing(conversation)
    conversation.say("yes")
    actions = conversation.say("yeah")
    assert actions[0] == StopSpeaking()
    assert conversation.outcome_types == ["confirmation", "confirmation"]


def test_a_partial_of_nothing_does_not_barge_in() -> None:
    conversation = Conversation.shipped("en-US", autoplay=False)
    finish_playing(conversation)
    conversation.say("yes")
    assert conversation.partial("  ") == []


def test_prompt_finished_closes_the_bot_turn() -> None:
    conversation = Conversation.shipped("en-US", autoplay=False)
    first = conversation.actions[0]
    assert isinstance(first, Say)
    finished = conversation.tick(3)
    assert conversation.send(PromptFinished(at=finished, prompt_id=first.prompt_id)) == []
    turn = conversation.state.turns[0]
    assert (turn.speaker, turn.started_at, turn.ended_at) == ("bot", START.replace(hour=16),
                                                             finished)  # fmt: skip
    # An unknown or repeated mark changes nothing.
    state = conversation.state
    conversation.send(PromptFinished(at=finished, prompt_id=first.prompt_id))
    assert conversation.state.turns == state.turns


def test_the_transcript_keeps_speaker_text_confidence_and_timing() -> None:
    conversation = Conversation.shipped("zh-CN")
    spoken_at = conversation.tick(2)
    conversation.send(Utterance(at=spoken_at, text="是我", confidence=0.82,
                                started_at=spoken_at - timedelta(seconds=1)))  # fmt: skip
    conversation.press("1")
    turns = [t for t in conversation.state.turns if t.speaker == "borrower"]
    assert [(t.text, t.confidence, t.dtmf, t.state) for t in turns] == [
        ("是我", 0.82, False, "opening"),
        ("#1", None, True, "confirm_phone"),
    ]
    assert turns[0].started_at == spoken_at - timedelta(seconds=1)
    assert turns[0].ended_at == spoken_at
    bot = [t for t in conversation.state.turns if t.speaker == "bot"]
    assert bot[0].text.startswith("您好") and bot[0].confidence is None


def test_the_call_is_closed_when_it_runs_too_long() -> None:
    conversation = Conversation.shipped("zh-CN")
    conversation.tick(400)
    conversation.say("是的")
    assert conversation.node == "time_up"
    assert conversation.hangup == "max_duration"
    assert conversation.outcomes == []  # the late answer was not taken…
    assert conversation.state.turns[-2].text == "是的"  # …but it is in the transcript


def test_the_max_duration_timer_event_closes_the_call() -> None:
    conversation = Conversation.shipped("en-US").talk("yes")
    conversation.send(MaxDurationReached(at=conversation.tick()))
    assert conversation.node == "time_up"
    assert conversation.state.ended


def test_an_answering_machine_gets_the_voicemail_and_nothing_about_the_loan() -> None:
    for language in ("zh-CN", "en-US", "ko-KR"):
        conversation = Conversation.shipped(language, answered_by="machine")
        lines = conversation.bot_lines
        assert len(lines) == 1
        assert CONTACTS[language]["name"] in lines[0]
        assert not any(word in lines[0] for word in ("3500", "三千五百", "three thousand",
                                                     "삼십만", "贷", "loan", "대출"))  # fmt: skip
        assert conversation.hangup == "voicemail"
        assert conversation.outcomes == []


def test_events_before_the_call_starts_are_ignored() -> None:
    dialog = shipped("en-US")
    state = new_call(dialog, context_for(dialog.script, CONTACTS["en-US"]))
    state, actions = step(state, Utterance(at=START, text="yes"))
    assert actions == ()
    assert state.phase == "waiting"
    state, actions = step(state, CallStarted(at=START))
    assert actions
    state, again = step(state, CallStarted(at=START))
    assert again == ()


def test_replaying_the_event_log_gives_the_same_actions_and_state() -> None:
    conversation = Conversation.shipped("zh-CN", autoplay=False)
    conversation.talk("是的", "对，我月底先还两千")
    conversation.partial("对")
    conversation.talk("嗯")
    conversation.send(PromptFinished(at=conversation.tick(), prompt_id=1))
    state, actions = replay(conversation.state.dialog, conversation.state.context,
                            conversation.state.events)  # fmt: skip
    assert actions == conversation.actions
    assert state.outcomes == conversation.state.outcomes
    assert state.turns == conversation.state.turns
    assert state.slots == conversation.state.slots


def test_the_event_log_survives_json() -> None:
    conversation = Conversation.shipped("en-US").talk("yes", "yes")
    conversation.press("9")
    events = [EVENT.validate_json(EVENT.dump_json(event)) for event in conversation.state.events]
    _, actions = replay(conversation.state.dialog, conversation.state.context, events)
    assert actions == conversation.actions
    assert [type(a) for a in actions if isinstance(a, RecordOutcome | Hangup)] == [
        RecordOutcome, RecordOutcome, RecordOutcome, Hangup]  # fmt: skip


def test_a_private_field_is_never_rendered_before_identity_is_confirmed() -> None:
    # The validator refuses this script (it names the loan before any identity check), so build
    # it around the loader to see the engine's own guard.
    script = DialogScript.model_validate(yaml.safe_load(MINIMAL))
    assert any("identity" in problem.message for problem in validate(script))
    dialog = compile_dialog(script, "<unchecked>")
    context = context_for(dialog.script, {"name": "Ann", "amount_due": 10})
    state, _ = step(new_call(dialog, context), CallStarted(at=START))
    with pytest.raises(DialogRuntimeError, match="identity"):
        step(state, Utterance(at=START, text="yes"))


def test_no_match_and_no_input_limits_come_from_the_defaults() -> None:
    dialog = load_dialog_text(MINIMAL.replace("{amount_due}", "money"))
    context = context_for(dialog.script, {"name": "Ann", "amount_due": 10})
    state, _ = step(new_call(dialog, context), CallStarted(at=START))
    for _ in range(2):
        state, actions = step(state, Utterance(at=START, text="banana"))
        assert [a.text for a in actions if isinstance(a, Say)] == ["Hi Ann. This call is recorded.",
                                                                   "Is that you?"]  # fmt: skip
    state, actions = step(state, Utterance(at=START, text="banana"))
    assert state.node == "bye" and state.ended
    assert actions[-1] == Hangup(reason="completed")
