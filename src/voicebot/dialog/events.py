"""What happens to a call, as the engine hears it. Every event carries the instant it happened.

Events are data: a call's event log (``CallState.events``) replays to the same actions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from voicebot.dialog.script import Digit


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: AwareDatetime


class CallStarted(_Event):
    """The call was answered; ``machine`` (answering-machine detection) leaves the voicemail."""

    kind: Literal["call_started"] = "call_started"
    answered_by: Literal["human", "machine"] = "human"


class PromptFinished(_Event):
    """The prompt of a ``Say`` action has been played out in full (a Twilio mark came back)."""

    kind: Literal["prompt_finished"] = "prompt_finished"
    prompt_id: int


class Utterance(_Event):
    """What the borrower said. Partial results only drive barge-in; ``at`` is the end of speech."""

    kind: Literal["utterance"] = "utterance"
    text: str
    confidence: Annotated[float, Field(ge=0, le=1)] = 1.0
    partial: bool = False
    started_at: AwareDatetime | None = None


class DtmfPressed(_Event):
    kind: Literal["dtmf"] = "dtmf"
    digit: Digit


class NoInput(_Event):
    """Nothing was said for the ``Listen`` action's ``no_input_seconds`` after the prompts ended."""

    kind: Literal["no_input"] = "no_input"


class HungUp(_Event):
    """The borrower (or the network) ended the call."""

    kind: Literal["hung_up"] = "hung_up"


class MaxDurationReached(_Event):
    """The call has lasted the script's ``max_call_seconds`` (a timer the session runs)."""

    kind: Literal["max_duration"] = "max_duration"


Event = Annotated[
    CallStarted | PromptFinished | Utterance | DtmfPressed | NoInput | HungUp | MaxDurationReached,
    Field(discriminator="kind"),
]

EVENT: TypeAdapter[Event] = TypeAdapter(Event)
