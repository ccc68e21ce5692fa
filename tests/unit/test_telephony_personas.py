"""The simulated carrier's call scripts: what each persona reports, in Twilio's order."""

from __future__ import annotations

from collections import Counter

import pytest

from voicebot.domain.types import CallStatus
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated import DEFAULT_MIX, Persona, persona_for, script


def _request(to: str = "+8613812345678", persona: str | None = None) -> DialRequest:
    return DialRequest(
        call_id=1,
        to=to,
        from_=None,
        answer_url="http://127.0.0.1/a",
        status_callback_url="http://127.0.0.1/s",
        metadata={"persona": persona} if persona is not None else {},
    )


def _statuses(persona: Persona) -> list[tuple[str, str | None, int | None]]:
    steps = script(persona, ring_seconds=1.0, talk_seconds=2.0, talk_duration=93)
    return [(s.status.value, s.answered_by, s.duration) for s in steps]


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        (
            Persona.ANSWERS,
            [
                ("initiated", None, None),
                ("ringing", None, None),
                ("in-progress", "human", None),
                ("completed", "human", 93),
            ],
        ),
        (
            Persona.HANGS_UP,
            [
                ("initiated", None, None),
                ("ringing", None, None),
                ("in-progress", "human", None),
                ("completed", "human", 2),
            ],
        ),
        (
            Persona.VOICEMAIL,
            [
                ("initiated", None, None),
                ("ringing", None, None),
                ("in-progress", "machine_end_beep", None),
                ("completed", "machine_end_beep", 18),
            ],
        ),
        (Persona.BUSY, [("initiated", None, None), ("ringing", None, None), ("busy", None, 0)]),
        (
            Persona.NO_ANSWER,
            [("initiated", None, None), ("ringing", None, None), ("no-answer", None, 0)],
        ),
        (Persona.FAILS, [("initiated", None, None), ("failed", None, 0)]),
    ],
)
def test_each_persona_reports_twilios_sequence(
    persona: Persona, expected: list[tuple[str, str | None, int | None]]
) -> None:
    assert _statuses(persona) == expected


@pytest.mark.parametrize("persona", list(Persona))
def test_every_script_ends_with_exactly_one_final_status(persona: Persona) -> None:
    steps = script(persona, ring_seconds=0.1, talk_seconds=0.1, talk_duration=60)
    finals = [s for s in steps if s.status.is_final]
    assert finals == [steps[-1]]
    ranks = [s.status.rank for s in steps]
    assert ranks == sorted(ranks)


def test_the_ring_delay_comes_before_the_outcome() -> None:
    steps = script(Persona.ANSWERS, ring_seconds=1.5, talk_seconds=4.0, talk_duration=60)
    waits = {s.status: s.wait for s in steps}
    assert waits[CallStatus.IN_PROGRESS] == 1.5
    assert waits[CallStatus.COMPLETED] == 4.0


@pytest.mark.parametrize(
    ("named", "persona"),
    [
        ("answers", Persona.ANSWERS),
        ("no_answer", Persona.NO_ANSWER),
        ("no-answer", Persona.NO_ANSWER),
        (" Hangs_Up ", Persona.HANGS_UP),
        ("voicemail", Persona.VOICEMAIL),
        ("busy", Persona.BUSY),
        ("fails", Persona.FAILS),
    ],
)
def test_a_named_persona_wins(named: str, persona: Persona) -> None:
    assert persona_for(_request(persona=named)) is persona


def test_without_a_persona_the_number_decides_and_always_the_same_way() -> None:
    first = persona_for(_request("+8613812345678"))
    assert all(persona_for(_request("+8613812345678", "")) is first for _ in range(5))


def test_an_unknown_persona_falls_back_to_the_mix() -> None:
    assert persona_for(_request(persona="dances")) is persona_for(_request())


def test_unlabelled_numbers_get_a_realistic_mix() -> None:
    numbers = [f"+86138{n:08d}" for n in range(0, 2000 * 7919, 7919)]
    counts = Counter(persona_for(_request(to)) for to in numbers)
    for persona, share in DEFAULT_MIX:
        assert abs(counts[persona] / len(numbers) * 100 - share) < 4, (persona, counts)
