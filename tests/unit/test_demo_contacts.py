"""The demo's borrowers: valid numbers, Chinese names, loan fields and every persona."""

from __future__ import annotations

import csv
import io
from datetime import date

from voicebot.demo import PERSONA_CYCLE, contacts_csv, demo_contacts
from voicebot.domain.phones import parse_phone
from voicebot.telephony.simulated import Persona

TODAY = date(2026, 4, 14)


def test_every_number_is_a_valid_distinct_chinese_mobile() -> None:
    rows = demo_contacts(50, today=TODAY)
    numbers = [row["phone"] for row in rows] + [
        alt for row in rows for alt in row["alternate_phones"].split(";") if alt
    ]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        parsed = parse_phone(number)
        assert parsed.region == "CN" and parsed.e164 == number
        assert number[3] == "1"  # a mobile, not a landline


def test_rows_carry_names_loans_and_a_persona_mix() -> None:
    rows = demo_contacts(20, today=TODAY)
    assert len({row["external_id"] for row in rows}) == 20
    assert all("\u4e00" <= row["name"][0] <= "\u9fff" for row in rows)
    assert all(row["time_zone"] == "Asia/Shanghai" and row["currency"] == "CNY" for row in rows)
    assert {row["persona"] for row in rows} == {p.value for p in Persona}
    for row in rows:
        overdue = (TODAY - date.fromisoformat(row["due_date"])).days
        assert int(row["days_past_due"]) == max(0, overdue)
        assert float(row["amount_due"]) >= 1500
    assert any(row["alternate_phones"] for row in rows)


def test_the_same_seed_gives_the_same_list() -> None:
    assert demo_contacts(10, today=TODAY) == demo_contacts(10, today=TODAY)
    assert len(PERSONA_CYCLE) == 10


def test_the_csv_round_trips_in_utf8() -> None:
    rows = demo_contacts(5, today=TODAY)
    parsed = list(csv.DictReader(io.StringIO(contacts_csv(rows).decode("utf-8"))))
    assert parsed == rows
