"""What the engine asks the call session to do, in order.

A session plays ``Say`` prompts in order (sending a mark per prompt and answering with
``PromptFinished`` when it comes back), keeps one recogniser open as the latest ``Listen`` says
(during prompts too, so the borrower can barge in), stores every ``RecordOutcome``, and carries out
``ScheduleCallBack``, ``OptOut``, ``Transfer`` and ``Hangup``. ``Hangup`` and ``Transfer`` come
after the prompts they close with: let those play out first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from voicebot.dialog.outcomes import Outcome


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Say(_Action):
    kind: Literal["say"] = "say"
    prompt_id: int
    text: str
    # The borrower may interrupt this prompt by speaking (the engine answers a partial
    # utterance with StopSpeaking).
    barge_in: bool


class StopSpeaking(_Action):
    """Barge-in: stop every prompt now and drop the queued ones (Twilio ``clear``)."""

    kind: Literal["stop_speaking"] = "stop_speaking"


class Listen(_Action):
    """Open (or re-arm) the recogniser for a listening state.

    ``phrases`` are the state's and the global intents' phrases and keywords; ``slot_phrases``
    the words needed to hear the amounts, dates or times the state asks for. A grammar-capable
    recogniser uses both (plus its unknown-word token); ``free_form`` means the state takes free
    text (a complaint), so a grammar would lose it. The no-input timer starts when the prompts
    before this action have finished playing.
    """

    kind: Literal["listen"] = "listen"
    state: str
    phrases: tuple[str, ...]
    slot_phrases: tuple[str, ...]
    free_form: bool
    dtmf: tuple[str, ...]
    no_input_seconds: float

    def grammar(self) -> list[str]:
        """Every phrase a grammar should accept, each once, in a stable order."""
        return list(dict.fromkeys((*self.phrases, *self.slot_phrases)))


class RecordOutcome(_Action):
    kind: Literal["record_outcome"] = "record_outcome"
    outcome: Outcome


class ScheduleCallBack(_Action):
    """The borrower asked to be called back at ``at`` (UTC)."""

    kind: Literal["schedule_callback"] = "schedule_callback"
    at: AwareDatetime


class OptOut(_Action):
    """Put the number on the do-not-call list."""

    kind: Literal["opt_out"] = "opt_out"
    reason: str


class Transfer(_Action):
    kind: Literal["transfer"] = "transfer"
    number: str


class Hangup(_Action):
    kind: Literal["hangup"] = "hangup"
    reason: str


Action = Say | StopSpeaking | Listen | RecordOutcome | ScheduleCallBack | OptOut | Transfer | Hangup
