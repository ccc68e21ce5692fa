"""``/v1/calls``: what happened on each call, for analysts (numbers and names masked for them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime
from pydantic_core import to_json
from sqlalchemy import Row

from voicebot.api.auth import Analyst, Principal
from voicebot.api.deps import ReadSessionDep
from voicebot.api.errors import documented, not_found
from voicebot.api.outcomes import outcome_out
from voicebot.api.result_schemas import (
    CallDetailOut,
    CallOut,
    CallPage,
    CarrierEventOut,
    TurnOut,
    decode_cursor,
    encode_cursor,
    shown_name,
    shown_phone,
    shown_text,
)
from voicebot.db.models import Call, CarrierEvent, TranscriptTurn
from voicebot.db.promises import promise_statuses
from voicebot.db.results import CALL_ROW_COLUMNS, CallFilter, call_detail, find_calls
from voicebot.domain.types import CallStatus, Disposition, OutcomeType

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=documented(401, 403))

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the last page")]


async def call_filter(
    campaign_id: int | None = None,
    contact_id: int | None = None,
    disposition: Annotated[list[Disposition] | None, Query(description="Any of these")] = None,
    status: Annotated[list[CallStatus] | None, Query(description="Any of these")] = None,
    outcome_type: Annotated[
        OutcomeType | None, Query(description="Calls that established such an outcome")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Placed at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Placed before")] = None,
) -> CallFilter:
    return CallFilter(
        campaign_id=campaign_id,
        contact_id=contact_id,
        dispositions=tuple(d.value for d in disposition or ()),
        statuses=tuple(s.value for s in status or ()),
        outcome_type=None if outcome_type is None else outcome_type.value,
        since=since,
        until=until,
    )


# CallOut's fields as the calls table holds them (the contact's name comes from a join).
_CALL_FIELDS = tuple(name for name in CallOut.model_fields if name != "contact_name")
_ROW_POSITIONS = tuple((name, CALL_ROW_COLUMNS.index(name)) for name in _CALL_FIELDS)
_NAME_POSITION = CALL_ROW_COLUMNS.index("contact_name")
_MASKED = ("to_number", "from_number")


def call_out(call: Call, contact_name: str | None, principal: Principal) -> dict[str, Any]:
    """A stored call as the API shows it: a CallOut's fields, masked for the principal."""
    return _shown({name: getattr(call, name) for name in _CALL_FIELDS}, contact_name, principal)


def call_row_out(row: Row[Any], principal: Principal) -> dict[str, Any]:
    """:func:`call_out` for a row of :func:`find_calls`, read by position: a page has many rows,
    and reading a row's columns by name costs several times more."""
    values = {name: row[position] for name, position in _ROW_POSITIONS}
    return _shown(values, row[_NAME_POSITION], principal)


def _shown(
    values: dict[str, Any], contact_name: str | None, principal: Principal
) -> dict[str, Any]:
    # Plain dicts, validated and written by pydantic-core as the route returns them: building
    # CallOut objects one by one in Python costs more than the query.
    values["contact_name"] = shown_name(principal, contact_name)
    values["to_number"] = shown_phone(principal, values["to_number"]) or ""
    values["from_number"] = shown_phone(principal, values["from_number"])
    return values


@router.get("", response_model=CallPage, responses=documented(422))
async def list_calls(
    principal: Analyst,
    session: ReadSessionDep,
    where: Annotated[CallFilter, Depends(call_filter)],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Calls newest first, filtered; every filter given must hold."""
    rows = await find_calls(session, where, limit=limit + 1, before_id=decode_cursor(cursor))
    page = rows[:limit]
    body = {
        "items": [call_row_out(row, principal) for row in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    }
    # Written as it is: the items are CallOut's fields by construction (call_row_out), so
    # validating them again against CallPage would only spend time. CallPage documents it.
    return Response(to_json(body), media_type="application/json")


@router.get("/{call_id}", response_model=CallDetailOut, responses=documented(404))
async def read_call(call_id: int, principal: Analyst, session: ReadSessionDep) -> CallDetailOut:
    """A call with its carrier events, transcript, outcomes and recording."""
    detail = await call_detail(session, call_id)
    if detail is None:
        raise not_found("call", call_id)
    call = detail.call
    statuses = await promise_statuses(session, [o.id for o in detail.outcomes])
    return CallDetailOut(
        **call_out(call, detail.contact_name, principal),
        error_code=call.error_code,
        stream_error=call.stream_error,
        recording_url=call.recording_url,
        events=[_event_out(e) for e in detail.events],
        transcript=[_turn_out(t, detail.contact_name, principal) for t in detail.turns],
        outcomes=[
            outcome_out(o, detail.contact_name, principal, statuses.get(o.id))
            for o in detail.outcomes
        ],
    )


def _turn_out(turn: TranscriptTurn, name: str | None, principal: Principal) -> TurnOut:
    out = TurnOut.model_validate(turn, from_attributes=True)
    text = shown_text(principal, out.text, name)
    return out if text == out.text else out.model_copy(update={"text": text})


def _event_out(event: CarrierEvent) -> CarrierEventOut:
    payload = event.payload or {}

    def number(key: str) -> int | None:
        value = payload.get(key)
        return int(value) if isinstance(value, str) and value.isdigit() else None

    return CarrierEventOut(
        kind=event.kind,
        call_status=payload.get("CallStatus"),
        sequence_number=number("SequenceNumber"),
        answered_by=payload.get("AnsweredBy"),
        duration_seconds=number("CallDuration"),
        error_code=payload.get("ErrorCode") or None,
        received_at=event.received_at,
    )
