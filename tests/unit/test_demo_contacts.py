"""The demo's borrowers and dialog: valid numbers per market, loan fields, every persona, and
dialogs refused before anything starts."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from voicebot.demo import (
    KEYPAD_CYCLE,
    KOREAN_CYCLE,
    MARKETS,
    DemoError,
    check_speech,
    contacts_csv,
    demo_contacts,
    resolve_dialog,
)
from voicebot.domain.phones import parse_phone
from voicebot.speech.recognition import SpeechModels
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated import Persona, persona_for
from voicebot.telephony.simulated_voice import voice_persona_name
from voicebot.telephony.voice_personas import PERSONAS

TODAY = date(2026, 4, 14)
DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"


@pytest.mark.parametrize("language", sorted(MARKETS))
def test_every_number_is_a_valid_distinct_mobile_of_the_market(language: str) -> None:
    market = MARKETS[language]
    rows = demo_contacts(50, today=TODAY, language=language)
    numbers = [row["phone"] for row in rows] + [
        alt for row in rows for alt in row["alternate_phones"].split(";") if alt
    ]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        parsed = parse_phone(number)
        assert parsed.region == market.region and parsed.e164 == number
    assert all(row["time_zone"] == market.time_zone for row in rows)
    assert all(row["currency"] == market.currency for row in rows)


def test_korean_rows_show_every_talking_borrower_in_the_first_ten() -> None:
    rows = demo_contacts(10, today=TODAY)
    assert len({row["external_id"] for row in rows}) == 10
    assert all("\uac00" <= row["name"][0] <= "\ud7a3" for row in rows)  # Hangul
    talking = {voice_persona_name(row["persona"]) for row in rows} - {""}
    assert talking == set(PERSONAS["ko-KR"])
    for row in rows:
        due = date.fromisoformat(row["due_date"])
        assert due > TODAY and row["days_past_due"] == "0"  # an instalment coming up
        assert int(row["amount_due"]) >= 250_000


def test_every_persona_is_one_the_simulated_carrier_and_voice_know() -> None:
    for cycle, language in ((KOREAN_CYCLE, "ko-KR"), (KEYPAD_CYCLE, "zh-CN")):
        for persona in cycle:
            carrier_persona, _, voice = persona.partition(":")
            assert Persona(carrier_persona)
            assert not voice or voice in PERSONAS[language], persona
    rows = demo_contacts(len(KOREAN_CYCLE), today=TODAY)
    assert {row["persona"].partition(":")[0] for row in rows} == {p.value for p in Persona}


def test_the_same_seed_gives_the_same_list_and_the_csv_round_trips() -> None:
    assert demo_contacts(10, today=TODAY) == demo_contacts(10, today=TODAY)
    rows = demo_contacts(5, today=TODAY, language="zh-CN")
    parsed = list(csv.DictReader(io.StringIO(contacts_csv(rows).decode("utf-8"))))
    assert parsed == rows


def test_a_dialog_is_found_by_id_or_path() -> None:
    by_id = resolve_dialog("car_loan_followup.ko-KR", DIALOGS)
    by_path = resolve_dialog(str(DIALOGS / "car_loan_followup.en-US.yaml"), "/nonexistent")
    assert (by_id.id, by_id.language) == ("car_loan_followup.ko-KR", "ko-KR")
    assert (by_path.id, by_path.language, by_path.directory) == (
        "car_loan_followup.en-US",
        "en-US",
        DIALOGS,
    )


def test_an_unknown_dialog_names_the_ones_there_are() -> None:
    with pytest.raises(DemoError, match=r"no dialog 'nope'.*car_loan_followup\.ko-KR"):
        resolve_dialog("nope", DIALOGS)


def test_a_language_without_a_model_names_the_variable_to_set() -> None:
    dialog = resolve_dialog("car_loan_followup.en-US", DIALOGS)
    with pytest.raises(DemoError, match=r"en-US.*VOICEBOT_VOSK_MODEL_EN_US"):
        check_speech(dialog, SpeechModels(environ={}))


def test_contacts_carry_the_persona_the_carrier_reads() -> None:
    row = demo_contacts(1, today=TODAY)[0]
    request = DialRequest(
        call_id=1,
        to=row["phone"],
        from_=None,
        answer_url="http://x/a",
        status_callback_url="http://x/s",
        metadata={"persona": row["persona"]},
    )
    assert persona_for(request) is Persona.ANSWERS
    assert voice_persona_name(row["persona"]) == "promise"
