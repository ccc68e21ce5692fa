"""A call's transcript: who said what, how sure the recogniser was, and when."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    speaker: Literal["bot", "borrower"]
    text: str
    state: str | None  # the dialog state the turn belongs to
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None  # a bot turn ends when its prompt has played
    confidence: float | None = None  # borrower speech only
    dtmf: bool = False
    interrupted: bool = False  # a bot prompt cut short by barge-in
    prompt_id: int | None = None
    barge_in: bool | None = None  # whether a bot prompt could be interrupted
