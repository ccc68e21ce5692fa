"""``/v1/do-not-call``: the opt-out list. A number on it is never dialed again, anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from voicebot.api.auth import Analyst, Operator, Principal
from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error, documented
from voicebot.api.schemas import DoNotCallIn, DoNotCallOut, DoNotCallPage
from voicebot.db import audit
from voicebot.db.contacts import get_do_not_call, list_do_not_call
from voicebot.db.models import DoNotCall
from voicebot.dialer.optout import opt_out
from voicebot.domain.contacts import check_region
from voicebot.domain.phones import InvalidPhoneNumber, mask_phone, parse_phone

router = APIRouter(prefix="/v1/do-not-call", tags=["do-not-call"], responses=documented(401, 403))

SOURCE = "api"


@router.post("", status_code=201, response_model=DoNotCallOut, responses=documented(422))
async def add_number(body: DoNotCallIn, principal: Operator, session: SessionDep) -> DoNotCallOut:
    """Opt a number out: it is marked opted out on every contact, and pending call-backs with no
    other dialable number are cancelled. Adding a listed number again keeps the first entry."""
    try:
        region = None if body.default_region is None else check_region(body.default_region)
        e164 = parse_phone(body.phone, region).e164
    except (InvalidPhoneNumber, ValueError) as exc:
        raise api_error(422, "invalid_phone", str(exc)) from None
    now = datetime.now(UTC)
    await opt_out(session, e164, reason=body.reason, source=SOURCE, now=now)
    audit.record(
        session,
        actor=principal.actor,
        action="do_not_call.add",
        target_type="phone",
        target_id=mask_phone(e164),
        details={"reason": body.reason},
        now=now,
    )
    await session.commit()
    entry = await get_do_not_call(session, e164)
    assert entry is not None  # just written in this session
    return _entry_out(entry, principal)


@router.get("", response_model=DoNotCallPage)
async def list_numbers(
    principal: Analyst,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DoNotCallPage:
    """Newest first. Analysts see the numbers masked."""
    items, total = await list_do_not_call(session, limit=limit, offset=offset)
    return DoNotCallPage(
        items=[_entry_out(e, principal) for e in items], total=total, limit=limit, offset=offset
    )


def _entry_out(entry: DoNotCall, principal: Principal) -> DoNotCallOut:
    return DoNotCallOut(
        phone=entry.e164 if principal.sees_phone_numbers else mask_phone(entry.e164),
        reason=entry.reason,
        source=entry.source,
        created_at=entry.created_at,
    )
