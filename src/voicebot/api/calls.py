"""``/v1/calls``: what happened on each call, for analysts (numbers and names masked for them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from sqlalchemy import Row

from voicebot.api.auth import Analyst, Principal
from voicebot.api.deps import SessionDep
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
)
from voicebot.db.models import Call, CarrierEvent
from voicebot.db.promises import promise_statuses
from voicebot.db.results import CallFilter, call_detail, find_calls
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


def call_out(call: Call | Row[Any], contact_name: str | None, principal: Principal) -> CallOut:
    """A stored call as the API shows it (stored rows are trusted: not validated again)."""
    return CallOut.model_construct(
        id=call.id,
        campaign_id=call.campaign_id,
        contact_id=call.contact_id,
        contact_name=shown_name(principal, contact_name),
        callback_id=call.callback_id,
        attempt=call.attempt,
        to_number=shown_phone(principal, call.to_number) or "",
        from_number=shown_phone(principal, call.from_number),
        status=call.status,
        disposition=call.disposition,
        answered_by=call.answered_by,
        duration_seconds=call.duration_seconds,
        conversed=call.conversed,
        end_state=call.end_state,
        created_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
    )


@router.get("", response_model=CallPage, responses=documented(422))
async def list_calls(
    principal: Analyst,
    session: SessionDep,
    where: Annotated[CallFilter, Depends(call_filter)],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CallPage:
    """Calls newest first, filtered; every filter given must hold."""
    rows = await find_calls(session, where, limit=limit + 1, before_id=decode_cursor(cursor))
    page = rows[:limit]
    return CallPage(
        items=[call_out(call, name, principal) for call, name in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )


@router.get("/{call_id}", response_model=CallDetailOut, responses=documented(404))
async def read_call(call_id: int, principal: Analyst, session: SessionDep) -> CallDetailOut:
    """A call with its carrier events, transcript, outcomes and recording."""
    detail = await call_detail(session, call_id)
    if detail is None:
        raise not_found("call", call_id)
    call = detail.call
    statuses = await promise_statuses(session, [o.id for o in detail.outcomes])
    return CallDetailOut(
        **call_out(call, detail.contact_name, principal).model_dump(),
        error_code=call.error_code,
        stream_error=call.stream_error,
        recording_url=call.recording_url,
        events=[_event_out(e) for e in detail.events],
        transcript=[TurnOut.model_validate(t, from_attributes=True) for t in detail.turns],
        outcomes=[
            outcome_out(o, detail.contact_name, principal, statuses.get(o.id))
            for o in detail.outcomes
        ],
    )


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
