"""``/v1/outcomes``: what conversations established, filtered by type and by their fields."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from sqlalchemy import Row

from voicebot.api.auth import Analyst, Principal
from voicebot.api.deps import ReadSessionDep
from voicebot.api.errors import documented
from voicebot.api.result_schemas import (
    OutcomeOut,
    OutcomePage,
    decode_cursor,
    encode_cursor,
    shown_data,
    shown_name,
)
from voicebot.db.models import Outcome
from voicebot.db.promises import PENDING, promise_statuses
from voicebot.db.results import OutcomeFilter, find_outcomes
from voicebot.domain.types import OutcomeType

router = APIRouter(prefix="/v1/outcomes", tags=["outcomes"], responses=documented(401, 403))


async def outcome_filter(
    type: Annotated[list[OutcomeType] | None, Query(description="Any of these types")] = None,
    campaign_id: int | None = None,
    contact_id: int | None = None,
    call_id: int | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Recorded at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Recorded before")] = None,
    due_from: Annotated[date | None, Query(description="Promises due on or after")] = None,
    due_to: Annotated[date | None, Query(description="Promises due on or before")] = None,
    category: Annotated[
        str | None, Query(max_length=64, description="Complaints of this category")
    ] = None,
    flag: Annotated[str | None, Query(max_length=64, description="Risk flags of this kind")] = None,
) -> OutcomeFilter:
    return OutcomeFilter(
        types=tuple(t.value for t in type or ()),
        campaign_id=campaign_id,
        contact_id=contact_id,
        call_id=call_id,
        since=since,
        until=until,
        due_from=due_from,
        due_to=due_to,
        category=category,
        flag=flag,
    )


def outcome_out(
    outcome: Outcome | Row[Any], contact_name: str | None, principal: Principal, status: str | None
) -> OutcomeOut:
    """A stored outcome as the API shows it (stored rows are trusted: not validated again)."""
    return OutcomeOut.model_construct(
        id=outcome.id,
        type=outcome.type,
        call_id=outcome.call_id,
        contact_id=outcome.contact_id,
        contact_name=shown_name(principal, contact_name),
        campaign_id=outcome.campaign_id,
        created_at=outcome.created_at,
        promise_status=(status or PENDING) if outcome.type == OutcomeType.PROMISE else None,
        **shown_data(principal, outcome.data, contact_name),
    )


@router.get("", response_model=OutcomePage, responses=documented(422))
async def list_outcomes(
    principal: Analyst,
    session: ReadSessionDep,
    where: Annotated[OutcomeFilter, Depends(outcome_filter)],
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the last page")
    ] = None,
) -> OutcomePage:
    """Outcomes newest first, e.g. ``?type=promise&due_from=2026-12-01&due_to=2026-12-07``,
    ``?type=complaint&category=harassment``, ``?type=risk_flag&since=2026-11-28T00:00:00Z``."""
    rows = await find_outcomes(session, where, limit=limit + 1, before_id=decode_cursor(cursor))
    page = rows[:limit]
    statuses = await promise_statuses(session, [o.id for o, _ in page])
    return OutcomePage(
        items=[outcome_out(o, name, principal, statuses.get(o.id)) for o, name in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )
