"""What simulated Korean borrowers say, state by state, to the ko-KR car-loan dialog.

The canonical simulated utterances: personas speak these lines (eSpeak NG, over 8 kHz μ-law) and
``bench/intent_probe.py`` and ``bench/calls.py`` measure intent accuracy over them. Each line is
what a borrower would plausibly answer to that state's question, worded so the small Korean Vosk
model, listening with the dialog's grammar, hears it (short, few sibilants: see
:mod:`voicebot.dialog.phonetics`). Lines carry no punctuation: eSpeak NG pauses at a comma, and
the call's endpointer would cut the answer in two there.

How the set was chosen: candidate wordings for every intent were tried with three eSpeak voices
other than the borrower's own (``BORROWER_RATE_WPM``/``BORROWER_PITCH``); wordings recognised
reliably by those voices became the dialog's phrases and these lines. The borrower's voice was
kept out of that choice: the benchmark figure for it is a held-out measurement.

``intent`` is the intent the dialog should hear in ``state``; None means none: the line fills the
state's slot (a date, a time, free text). Amounts and dates are read from ``text`` by the
dialog's language pack at the time of the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class SimulatedUtterance:
    state: str
    text: str
    intent: str | None


def _lines(state: str, *pairs: tuple[str | None, str]) -> tuple[SimulatedUtterance, ...]:
    return tuple(SimulatedUtterance(state, text, intent) for intent, text in pairs)


# The global intents heard in every listening state, with two wordings each (alternating states).
_GLOBALS: Final = (
    (
        ("opt_out", "연락하지 마세요"),
        ("complaint", "민원 있어요"),
        ("call_later", "지금 바빠요"),
        ("who_is_this", "어디세요"),
        ("wrong_person", "아니요 저 아닌데요"),
        ("human", "담당자 연결해 주세요"),
    ),
    (
        ("opt_out", "연락하지 마세요"),
        ("complaint", "민원 넣고 싶어요"),
        ("call_later", "바빠요"),
        ("who_is_this", "어디시죠"),
        ("wrong_person", "제 번호 아닌데요"),
        ("human", "상담원 연결해 주세요"),
    ),
)

# Listening state → its own intents' lines, then the global intents it does not exclude.
_OWN: Final[dict[str, tuple[tuple[str | None, str], ...]]] = {
    "opening": (("yes", "네 맞아요"), ("yes", "네 본인입니다"), ("no", "아니요 틀려요")),
    "confirm_phone": (("yes", "네 맞아요"), ("no", "아니요 다른 번호예요")),
    "phone_changed": ((None, "일이삼사 오육칠팔"),),
    "ask_repayment": (
        ("yes", "네 낼 수 있어요"),
        ("full", "완납할게요"),
        ("promise", "월말에 낼게요"),
        ("promise", "다음 주 금요일에 낼게요"),
        ("no", "아니요 못 내요"),
        ("unsure", "모르겠어요"),
        ("hardship", "많이 힘들어요"),
        ("job_loss", "일을 잃었어요"),
        ("income_drop", "수입이 많이 줄었어요"),
        ("vehicle_sold", "차는 팔았어요"),
        ("dispute", "어제 냈어요"),
    ),
    "ask_reason": (
        ("hardship", "형편이 어려워요"),
        ("job_loss", "일자리를 잃었어요"),
        ("income_drop", "월급이 많이 줄었어요"),
        ("vehicle_sold", "차는 팔았어요"),
        ("dispute", "어제 냈어요"),
        ("promise", "모레 낼게요"),
        ("no", "아니요 없어요"),
    ),
    "ask_partial": (
        ("promise", "월말에 낼게요"),
        ("yes", "네 맞아요"),
        ("no", "아니요 못 내요"),
        ("unsure", "모르겠어요"),
        (None, "모레"),
    ),
    "ask_promise_date": (
        ("promise", "다음 주 금요일에 낼게요"),
        (None, "모레"),
        ("no", "아니요 못 내요"),
        ("unsure", "모르겠어요"),
        ("hardship", "많이 힘들어요"),
    ),
    "ask_promise_amount": (
        ("full", "완납할게요"),
        ("yes", "네 맞아요"),
        ("promise", "오십만 원 낼게요"),
        ("unsure", "모르겠어요"),
    ),
    "confirm_promise": (("yes", "네 맞아요"), ("no", "아니요 틀려요")),
    "complaint": ((None, "매일 전화해서 너무 자주 와요"), (None, "직원이 불친절했어요")),
    "callback": (
        (None, "모레 오후에 전화 주세요"),
        (None, "다음 주 월요일에 전화 주세요"),
        ("unsure", "모르겠어요"),
        ("no", "아니요 괜찮아요"),
    ),
}
_EXCLUDED_GLOBALS: Final = {
    "phone_changed": {"call_later"},
    "complaint": {"complaint"},
    "callback": {"call_later"},
}


def _table() -> tuple[SimulatedUtterance, ...]:
    lines: list[SimulatedUtterance] = []
    for index, (state, own) in enumerate(_OWN.items()):
        lines.extend(_lines(state, *own))
        excluded = _EXCLUDED_GLOBALS.get(state, set())
        shared = _GLOBALS[index % len(_GLOBALS)]
        lines.extend(_lines(state, *(pair for pair in shared if pair[0] not in excluded)))
    return tuple(lines)


SIMULATED_UTTERANCES_KO: Final = _table()


def utterances_for(state: str, intent: str | None = None) -> Sequence[SimulatedUtterance]:
    """The lines for a state (and an intent; None: every line of the state)."""
    return [
        line
        for line in SIMULATED_UTTERANCES_KO
        if line.state == state and (intent is None or line.intent == intent)
    ]
