"""Response bodies of the results API: calls, outcomes, a contact's history, reports.

Phone numbers and borrower names are masked for the analyst role (``+86138****5678``, ``张*``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from voicebot.api.auth import Principal
from voicebot.api.errors import api_error
from voicebot.domain.privacy import mask_data, mask_name, mask_phone, mask_text

_CALL_EXAMPLE: dict[str, Any] = {
    "id": 1201,
    "campaign_id": 3,
    "contact_id": 88,
    "contact_name": "张*",
    "callback_id": 905,
    "attempt": 1,
    "to_number": "+86138****5678",
    "from_number": "+15005550006",
    "status": "completed",
    "disposition": "answered",
    "answered_by": "human",
    "duration_seconds": 74,
    "conversed": True,
    "end_state": "completed",
    "created_at": "2026-11-28T02:00:00Z",
    "answered_at": "2026-11-28T02:00:09Z",
    "ended_at": "2026-11-28T02:01:23Z",
}

_OUTCOME_EXAMPLE: dict[str, Any] = {
    "id": 77,
    "type": "promise",
    "call_id": 1201,
    "contact_id": 88,
    "contact_name": "张*",
    "campaign_id": 3,
    "created_at": "2026-11-28T02:01:02Z",
    "promise_status": "pending",
    "amount": "3500.00",
    "currency": "CNY",
    "date": "2026-12-05",
}


def shown_phone(principal: Principal, e164: str | None) -> str | None:
    if e164 is None:
        return None
    return e164 if principal.sees_phone_numbers else mask_phone(e164)


def shown_name(principal: Principal, name: str | None) -> str | None:
    if name is None:
        return None
    return name if principal.sees_phone_numbers else mask_name(name)


def shown_text(principal: Principal, text: str, name: str | None) -> str:
    """Free text (a transcript turn) with the borrower's name and numbers masked for analysts."""
    return text if principal.sees_phone_numbers else mask_text(text, name)


def shown_data(
    principal: Principal, data: Mapping[str, Any] | None, name: str | None
) -> dict[str, Any]:
    """An outcome's fields, their free text masked for analysts."""
    if principal.sees_phone_numbers:
        return dict(data or {})
    return mask_data(data or {}, name)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a page starts below; 422 naming the ``cursor`` parameter when it is not ours."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind == "id" and value.isdigit() and int(value) < 2**63:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise api_error(
        422,
        "invalid_cursor",
        "cursor is not one this API returned: pass next_cursor from the previous page",
        field="cursor",
    )


class CallOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CALL_EXAMPLE]})

    id: int
    campaign_id: int
    contact_id: int
    contact_name: str | None = Field(description="Masked for the analyst role")
    callback_id: int
    attempt: int
    to_number: str = Field(description="E.164; masked for the analyst role")
    from_number: str | None = Field(description="E.164; masked for the analyst role")
    status: str
    disposition: str | None
    answered_by: str | None
    duration_seconds: int | None
    conversed: bool
    end_state: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")


class CarrierEventOut(BaseModel):
    """One status callback from the carrier (its raw form, which holds the numbers, is not
    shown)."""

    kind: str
    call_status: str | None
    sequence_number: int | None
    answered_by: str | None
    duration_seconds: int | None
    error_code: str | None
    received_at: datetime


class TurnOut(BaseModel):
    seq: int
    speaker: str = Field(description="bot | borrower")
    text: str
    state: str | None
    confidence: float | None
    dtmf: bool
    interrupted: bool
    started_at: datetime
    ended_at: datetime | None


class OutcomeOut(BaseModel):
    """An outcome in the shape ``voicebot chat --json`` prints it: its ``type`` and its fields
    side by side (a promise's ``amount``, ``currency``, ``date``; a complaint's ``category``,
    ``text``; …), with where and when it was recorded."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_OUTCOME_EXAMPLE]})

    id: int
    type: str
    call_id: int | None
    contact_id: int
    contact_name: str | None = Field(description="Masked for the analyst role")
    campaign_id: int | None
    created_at: datetime
    promise_status: str | None = Field(
        default=None,
        description="Promises only: pending, kept, partly_kept or broken, from payments",
    )


class OutcomePage(BaseModel):
    items: list[OutcomeOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")


class CallDetailOut(CallOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CALL_EXAMPLE,
                    "error_code": None,
                    "stream_error": None,
                    "recording_url": None,
                    "events": [
                        {
                            "kind": "status",
                            "call_status": "ringing",
                            "sequence_number": 0,
                            "answered_by": None,
                            "duration_seconds": None,
                            "error_code": None,
                            "received_at": "2026-11-28T02:00:03Z",
                        }
                    ],
                    "transcript": [
                        {
                            "seq": 0,
                            "speaker": "bot",
                            "text": "您好，请问是张先生吗？",
                            "state": "greet",
                            "confidence": None,
                            "dtmf": False,
                            "interrupted": False,
                            "started_at": "2026-11-28T02:00:10Z",
                            "ended_at": "2026-11-28T02:00:13Z",
                        }
                    ],
                    "outcomes": [_OUTCOME_EXAMPLE],
                }
            ]
        }
    )

    error_code: str | None
    stream_error: str | None
    recording_url: str | None = Field(description="The call's recording, when it has one")
    events: list[CarrierEventOut] = Field(description="Carrier status events in arrival order")
    transcript: list[TurnOut]
    outcomes: list[OutcomeOut]


class HistoryCallBackOut(BaseModel):
    id: int
    campaign_id: int
    status: str
    reason: str
    attempt: int
    due_at: datetime
    deferred_reason: str | None
    created_at: datetime


class ContactHistoryOut(BaseModel):
    contact_id: int
    external_id: str
    name: str = Field(description="Masked for the analyst role")
    loan_id: str | None
    callbacks: list[HistoryCallBackOut] = Field(description="Oldest first")
    calls: list[CallOut] = Field(description="Oldest first")
    outcomes: list[OutcomeOut] = Field(description="Oldest first")


class ReportMetrics(BaseModel):
    attempts: int = Field(description="Calls placed")
    contacts_attempted: int = Field(description="Distinct borrowers called")
    contacts_reached: int = Field(description="Borrowers a person answered for (answered/hung up)")
    right_party_contacts: int = Field(description="Borrowers who confirmed who they are")
    contacts_promised: int
    contacts_complained: int
    contacts_opted_out: int
    contact_rate: float | None = Field(description="contacts_reached / contacts_attempted")
    right_party_contact_rate: float | None = Field(
        description="right_party_contacts / contacts_attempted"
    )
    promise_rate: float | None = Field(description="contacts_promised / right_party_contacts")
    promised_amount: dict[str, str] = Field(description="Sum of promised amounts per currency")
    complaint_rate: float | None = Field(description="contacts_complained / contacts_reached")
    opt_out_rate: float | None = Field(description="contacts_opted_out / contacts_reached")
    attempts_per_contact: float | None = Field(description="attempts / contacts_attempted")
    average_call_seconds: float | None = Field(description="Mean length of answered calls")


class DayReport(ReportMetrics):
    day: date = Field(description="UTC day the calls were placed")


class CampaignReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": 3,
                    "since": None,
                    "until": None,
                    "totals": {
                        "attempts": 1200,
                        "contacts_attempted": 500,
                        "contacts_reached": 350,
                        "right_party_contacts": 300,
                        "contacts_promised": 120,
                        "contacts_complained": 6,
                        "contacts_opted_out": 4,
                        "contact_rate": 0.7,
                        "right_party_contact_rate": 0.6,
                        "promise_rate": 0.4,
                        "promised_amount": {"CNY": "420000.00"},
                        "complaint_rate": 0.0171,
                        "opt_out_rate": 0.0114,
                        "attempts_per_contact": 2.4,
                        "average_call_seconds": 71.5,
                    },
                    "days": None,
                }
            ]
        }
    )

    campaign_id: int
    since: datetime | None
    until: datetime | None
    totals: ReportMetrics
    days: list[DayReport] | None = Field(description="Only with group_by=day; oldest first")
