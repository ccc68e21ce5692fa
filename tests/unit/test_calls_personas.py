"""The scripted borrowers of the simulated voice, played through the dialog engine in text: each
reaches the outcomes it is meant to, so a voice run that does not has misheard something."""

from __future__ import annotations

import pytest

from tests.unit.dialog_conversation import Conversation
from voicebot.dialog.borrower_lines import utterances_for
from voicebot.telephony.simulated_voice import read_twiml, voice_persona_name
from voicebot.telephony.voice_personas import (
    DEFAULT_MIX,
    KOREAN,
    PERSONAS,
    HangUp,
    Interrupt,
    Press,
    Speak,
    VoicePersona,
    choose_persona,
)


def _play(persona: VoicePersona) -> Conversation:
    conversation = Conversation.shipped(persona.language)
    visits: dict[str, int] = {}
    for _ in range(30):
        node = conversation.state.node
        if conversation.state.ended or node is None:
            break
        line = persona.line(node, visits.get(node, 0))
        visits[node] = visits.get(node, 0) + 1
        if line is None or isinstance(line, HangUp):
            break
        if isinstance(line, Press):
            conversation.press(line.digit)
        elif isinstance(line, Speak | Interrupt):
            conversation.talk(line.text)
    return conversation


@pytest.mark.parametrize("name", sorted(KOREAN))
def test_each_korean_borrower_reaches_its_outcomes(name: str) -> None:
    persona = KOREAN[name]
    conversation = _play(persona)
    assert tuple(conversation.outcome_types) == persona.expects


@pytest.mark.parametrize("language", ["zh-CN", "en-US"])
def test_keypad_borrowers_work_in_every_shipped_language(language: str) -> None:
    for persona in PERSONAS[language].values():
        played = _play(VoicePersona(persona.name, language, persona.lines, persona.expects))
        assert tuple(played.outcome_types) == persona.expects, (language, persona.name)


def test_a_persona_is_named_after_the_colon_or_picked_from_the_mix() -> None:
    assert voice_persona_name("answers:Barge-In") == "barge_in"
    assert voice_persona_name("answers") == ""
    assert choose_persona("ko-KR", "promise", "+821000000000").persona is KOREAN["promise"]
    picked = [choose_persona("ko-KR", "", f"+8210{n:08d}").persona for n in range(200)]
    assert {p.name for p in picked if p} == set(DEFAULT_MIX)
    same = choose_persona("ko-KR", "", "+821012345678").persona
    assert choose_persona("ko-KR", "", "+821012345678").persona is same
    assert "no scripted borrower 'nobody'" in choose_persona("ko-KR", "nobody", "+82").problem
    assert choose_persona("fr-FR", "", "+33").persona is None


def test_a_later_visit_falls_back_and_the_last_line_repeats() -> None:
    persona = KOREAN["promise"]
    first = persona.line("opening", 0)
    assert isinstance(first, Speak)
    assert first.text in {line.text for line in utterances_for("opening", "yes")}
    assert persona.line("opening", 1) == Press("1")
    assert persona.line("opening", 5) == Press("1")
    assert persona.line("nowhere", 0) is None


def test_the_answer_twiml_is_read_as_twilio_reads_it() -> None:
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://bot.example.com/media/twilio">'
        '<Parameter name="call_id" value="42" /><Parameter name="token" value="1.ab" />'
        "</Stream></Connect></Response>"
    )
    stream = read_twiml(twiml)
    assert stream.url == "wss://bot.example.com/media/twilio"
    assert stream.parameters == {"call_id": "42", "token": "1.ab"}
    hangup = read_twiml('<?xml version="1.0"?><Response><Hangup /></Response>')
    assert hangup.url is None and hangup.parameters == {}
