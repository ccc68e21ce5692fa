"""What a call established, in the shape stored, served by the API and printed by ``chat --json``.

Each outcome has a ``type`` (``voicebot.domain.types.OutcomeType``) and its own fields; amounts are
decimal strings ("3500.00"), dates ISO dates, instants ISO datetimes in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from voicebot.dialog.script import RiskFlagKind
from voicebot.domain.types import OutcomeType


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def data(self) -> dict[str, Any]:
        """The fields besides ``type``, JSON-ready (what ``outcomes.data`` stores)."""
        return self.model_dump(mode="json", exclude={"type"})


class Confirmation(_Outcome):
    type: Literal[OutcomeType.CONFIRMATION] = OutcomeType.CONFIRMATION
    fields: tuple[str, ...]  # what the borrower confirmed: identity, phone, address, …


class PromiseToPay(_Outcome):
    type: Literal[OutcomeType.PROMISE] = OutcomeType.PROMISE
    amount: Annotated[Decimal, Field(gt=0, decimal_places=2)]
    currency: str
    date: date


class Complaint(_Outcome):
    type: Literal[OutcomeType.COMPLAINT] = OutcomeType.COMPLAINT
    category: str
    text: str


class CallBackRequest(_Outcome):
    type: Literal[OutcomeType.CALLBACK_REQUEST] = OutcomeType.CALLBACK_REQUEST
    at: AwareDatetime

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class OptOutRequest(_Outcome):
    type: Literal[OutcomeType.OPT_OUT] = OutcomeType.OPT_OUT


class WrongParty(_Outcome):
    type: Literal[OutcomeType.WRONG_PARTY] = OutcomeType.WRONG_PARTY


class Dispute(_Outcome):
    type: Literal[OutcomeType.DISPUTE] = OutcomeType.DISPUTE
    text: str


class RiskFlag(_Outcome):
    type: Literal[OutcomeType.RISK_FLAG] = OutcomeType.RISK_FLAG
    flag: RiskFlagKind
    text: str


Outcome = Annotated[
    Confirmation
    | PromiseToPay
    | Complaint
    | CallBackRequest
    | OptOutRequest
    | WrongParty
    | Dispute
    | RiskFlag,
    Field(discriminator="type"),
]

OUTCOME: TypeAdapter[Outcome] = TypeAdapter(Outcome)


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """``{"type": …, **fields}``: the one shape used everywhere outside the engine."""
    return outcome.model_dump(mode="json")


def outcome_from(type_: str, data: dict[str, Any]) -> Outcome:
    """Rebuild an outcome from a stored row (``type`` column + ``data`` JSON)."""
    return OUTCOME.validate_python({"type": type_, **data})
