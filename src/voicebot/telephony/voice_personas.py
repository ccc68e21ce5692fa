"""Scripted borrowers for the simulated carrier's voice: what each says in each dialog state.

A persona maps a dialog state (as the bot's marks name it) to what the borrower does on the
first, second, … visit to that state (the last entry repeats): speak a line, press a key, talk
over the prompt (barge-in), or hang up. A state with no entry gets silence, so the bot's
no-input handling runs.

The Korean lines are the dialog's canonical simulated utterances
(:mod:`voicebot.dialog.borrower_lines`, worded for the small Korean Vosk model hearing eSpeak
NG's Korean), with DTMF where a state offers it as the fallback for a second try. The persona's
name is the part of the contact's ``persona`` after the colon (``answers:promise``); a bare
``answers`` picks one from the number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from voicebot.dialog.borrower_lines import utterances_for


@dataclass(frozen=True, slots=True)
class Speak:
    text: str


@dataclass(frozen=True, slots=True)
class Press:
    digit: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Talk over the state's prompt, ``after_ms`` into its playback (barge-in)."""

    text: str
    after_ms: int


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


Line = Speak | Press | Interrupt | HangUp


@dataclass(frozen=True)
class VoicePersona:
    name: str
    language: str
    lines: Mapping[str, Sequence[Line]]
    # What the bot should have recorded by the end (outcome types, in order), for tests and the
    # benchmark's sanity checks.
    expects: tuple[str, ...] = ()
    description: str = ""

    def line(self, state: str, visit: int) -> Line | None:
        """What to do on the ``visit``-th (0-based) time the bot asks in ``state``."""
        options = self.lines.get(state)
        if not options:
            return None
        return options[min(visit, len(options) - 1)]


def _persona(
    name: str,
    language: str,
    description: str,
    expects: tuple[str, ...],
    **lines: Sequence[Line],
) -> VoicePersona:
    return VoicePersona(
        name=name,
        language=language,
        lines=MappingProxyType({state: tuple(entries) for state, entries in lines.items()}),
        expects=expects,
        description=description,
    )


_KO = "ko-KR"


def _said(state: str, intent: str | None, nth: int = 0) -> Speak:
    """The canonical simulated line for an intent (None: a slot answer) in a ko-KR state."""
    lines = [line for line in utterances_for(state, intent) if line.intent == intent]
    if len(lines) <= nth:
        raise LookupError(f"no simulated Korean line for {intent!r} in {state!r}")
    return Speak(lines[nth].text)


def _interrupt(state: str, intent: str, after_ms: int) -> Interrupt:
    return Interrupt(_said(state, intent).text, after_ms)


KOREAN: dict[str, VoicePersona] = {
    p.name: p
    for p in (
        _persona(
            "promise",
            _KO,
            "is going through a hard time, pays the amount due the day after tomorrow",
            ("confirmation", "confirmation", "risk_flag", "promise"),
            opening=[_said("opening", "yes"), Press("1")],
            confirm_phone=[_said("confirm_phone", "yes"), Press("1")],
            ask_repayment=[_said("ask_repayment", "hardship")],
            ask_partial=[_said("ask_partial", None)],
            ask_promise_date=[_said("ask_promise_date", None)],
            ask_promise_amount=[_said("ask_promise_amount", "full"), Press("1")],
            confirm_promise=[_said("confirm_promise", "yes"), Press("1")],
        ),
        _persona(
            "hardship",
            _KO,
            "cannot pay by the due date (sold the car), pays the amount due at the month's end",
            ("confirmation", "confirmation", "risk_flag", "promise"),
            opening=[_said("opening", "yes", 1), Press("1")],
            confirm_phone=[_said("confirm_phone", "yes"), Press("1")],
            ask_repayment=[_said("ask_repayment", "no"), Press("2")],
            ask_reason=[_said("ask_reason", "vehicle_sold")],
            ask_partial=[_said("ask_partial", "promise")],
            ask_promise_date=[_said("ask_promise_date", None)],
            ask_promise_amount=[_said("ask_promise_amount", "yes"), Press("1")],
            confirm_promise=[_said("confirm_promise", "yes"), Press("1")],
        ),
        _persona(
            "dtmf",
            _KO,
            "answers every question with the keypad and promises the amount due",
            ("confirmation", "confirmation", "promise"),
            opening=[Press("1")],
            confirm_phone=[Press("1")],
            ask_repayment=[Press("1")],
            confirm_promise=[Press("1")],
        ),
        _persona(
            "barge_in",
            _KO,
            "says yes over the instalment reminder, then confirms the promise",
            ("confirmation", "confirmation", "promise"),
            opening=[_said("opening", "yes"), Press("1")],
            confirm_phone=[_said("confirm_phone", "yes"), Press("1")],
            reminder=[_interrupt("ask_repayment", "yes", 1500)],
            ask_repayment=[_said("ask_repayment", "yes"), Press("1")],
            confirm_promise=[_said("confirm_promise", "yes"), Press("1")],
        ),
        _persona(
            "complaint",
            _KO,
            "complains about being called every day, then hangs up",
            ("confirmation", "complaint"),
            opening=[_said("opening", "yes"), Press("1")],
            confirm_phone=[_said("confirm_phone", "complaint"), HangUp()],
            ask_repayment=[_said("ask_repayment", "complaint"), HangUp()],
            complaint=[_said("complaint", None)],
        ),
        _persona(
            "opt_out",
            _KO,
            "asks never to be called again (the keypad's 9 if not understood)",
            ("confirmation", "opt_out"),
            opening=[_said("opening", "yes"), Press("1")],
            confirm_phone=[_said("confirm_phone", "opt_out"), Press("9")],
        ),
        _persona(
            "callback",
            _KO,
            "is busy: call back the day after tomorrow in the afternoon",
            ("confirmation", "callback_request"),
            opening=[_said("opening", "yes"), Press("1")],
            confirm_phone=[_said("confirm_phone", "call_later"), HangUp()],
            callback=[_said("callback", None), Press("2")],
        ),
        _persona(
            "wrong_party",
            _KO,
            "is not the borrower",
            ("wrong_party",),
            opening=[_said("opening", "wrong_person"), Press("2")],
        ),
    )
}

# Without a recogniser for these languages here, their personas answer by keypad.
_KEYPAD_ONLY = {
    "dtmf": _persona(
        "dtmf",
        "",
        "answers every question with the keypad and promises the full amount",
        ("confirmation", "confirmation", "promise"),
        opening=[Press("1")],
        confirm_phone=[Press("1")],
        ask_repayment=[Press("1")],
        confirm_promise=[Press("1")],
    ),
    "opt_out": _persona(
        "opt_out",
        "",
        "presses 9 to be called no more",
        ("confirmation", "opt_out"),
        opening=[Press("1")],
        confirm_phone=[Press("9")],
    ),
    "wrong_party": _persona(
        "wrong_party", "", "is not the borrower", ("wrong_party",), opening=[Press("2")]
    ),
}

PERSONAS: Mapping[str, Mapping[str, VoicePersona]] = MappingProxyType(
    {
        _KO: MappingProxyType(KOREAN),
        "zh-CN": MappingProxyType(_KEYPAD_ONLY),
        "en-US": MappingProxyType(_KEYPAD_ONLY),
    }
)

# An unnamed persona is chosen from this mix by the number (stable per number).
DEFAULT_MIX: Sequence[str] = (
    *("promise", "dtmf", "hardship", "barge_in"),
    *("complaint", "opt_out", "callback", "wrong_party"),
)


@dataclass(frozen=True, slots=True)
class PersonaChoice:
    persona: VoicePersona | None
    problem: str = field(default="")


def choose_persona(language: str, named: str, number: str) -> PersonaChoice:
    """The persona ``named`` for a language; an empty name picks one from the mix by number."""
    personas = PERSONAS.get(language)
    if not personas:
        return PersonaChoice(None, f"no scripted borrowers speak {language!r}")
    if named:
        persona = personas.get(named)
        if persona is None:
            return PersonaChoice(None, f"no scripted borrower {named!r} for {language}")
        return PersonaChoice(persona)
    mix = [name for name in DEFAULT_MIX if name in personas]
    bucket = int.from_bytes(hashlib.sha256(number.encode()).digest()[:4], "big")
    return PersonaChoice(personas[mix[bucket % len(mix)]])
