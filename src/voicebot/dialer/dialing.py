"""Recording dials: the call rows written before the carrier is asked, and its call ids after.

On PostgreSQL each step is one statement for the whole chunk (arrays in, ``unnest`` inside),
sent straight to asyncpg (``queue.driver_connection``) in the session's transaction: these run
for every dial, and SQLAlchemy's statement and result handling cost more than they do. SQLite
runs the same steps as plain batched statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    case,
    insert,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Base, Call, CallBack
from voicebot.dialer.queue import driver_connection, is_postgres, mark_dialed
from voicebot.domain.types import CallBackStatus, CallStatus

_calls = Base.metadata.tables[Call.__tablename__]
_callbacks = Base.metadata.tables[CallBack.__tablename__]
_PENDING = CallBackStatus.PENDING.value
_CLAIMED = CallBackStatus.CLAIMED.value
_DIALED = CallBackStatus.DIALED.value
_INITIATING = CallStatus.INITIATING.value
_QUEUED = CallStatus.QUEUED.value


class NewCall(NamedTuple):
    callback_id: int
    campaign_id: int
    contact_id: int
    phone_id: int
    attempt: int
    loan_key: str
    to_number: str
    from_number: str | None


async def record_calls(
    session: AsyncSession,
    calls: Sequence[NewCall],
    *,
    dialer_id: str,
    now: datetime,
    locked: bool = False,
) -> dict[int, int]:
    """Mark the call-backs dialed and insert their calls (``initiating``), skipping call-backs
    this dialer no longer holds. Returns call-back id → call id. Part of the dial transaction;
    the caller commits. ``locked``: the call-backs are still ``pending``, locked by
    ``gate.lock_and_screen`` in this transaction (PostgreSQL only)."""
    if not calls:
        return {}
    if is_postgres(session):
        driver = await driver_connection(session)
        ids = [c.callback_id for c in calls]
        phones = [c.phone_id for c in calls]
        loan_keys = [c.loan_key for c in calls]
        to = [c.to_number for c in calls]
        callers = [c.from_number for c in calls]
        if locked:
            made = await driver.fetch(_RECORD_LOCKED, ids, phones, loan_keys, to, callers, now)
        else:
            made = await driver.fetch(
                _RECORD_CLAIMED, ids, phones, loan_keys, to, callers, now, dialer_id
            )
        return {callback_id: call_id for call_id, callback_id in made}
    held = await mark_dialed(session, [c.callback_id for c in calls], dialer_id=dialer_id, now=now)
    kept = [c for c in calls if c.callback_id in held]
    if not kept:
        return {}
    rows = await (await session.connection()).execute(
        insert(_calls).returning(_calls.c.id, _calls.c.callback_id),
        [
            {
                "callback_id": c.callback_id,
                "campaign_id": c.campaign_id,
                "contact_id": c.contact_id,
                "phone_id": c.phone_id,
                "loan_key": c.loan_key,
                "attempt": c.attempt,
                "to_number": c.to_number,
                "from_number": c.from_number,
                "status": CallStatus.INITIATING.value,
                "conversed": False,
                "created_at": now,
                "updated_at": now,
            }
            for c in kept
        ],
    )
    return {callback_id: call_id for call_id, callback_id in rows}


async def store_carrier_sids(session: AsyncSession, accepted: Sequence[tuple[int, str]]) -> None:
    """Attach the carrier's call ids to ``(call id, sid)``; the caller commits. An early webhook
    may have attached the sid already and moved the call past ``queued``: that stays."""
    if not accepted:
        return
    if is_postgres(session):
        driver = await driver_connection(session)
        await driver.execute(_SIDS, [i for i, _ in accepted], [sid for _, sid in accepted])
        return
    await (await session.connection()).execute(
        update(_calls)
        .where(
            _calls.c.id == bindparam("placed_id", type_=Integer),
            _calls.c.carrier_sid.is_(None),
        )
        .values(carrier_sid=bindparam("placed_sid", type_=String), status=_QUEUED_UNLESS_LATER),
        [{"placed_id": i, "placed_sid": sid} for i, sid in accepted],
    )


_QUEUED_UNLESS_LATER = case(
    (_calls.c.status == CallStatus.INITIATING.value, CallStatus.QUEUED.value),
    else_=_calls.c.status,
)


def _record(*, locked: bool) -> str:
    """``WITH marked AS (UPDATE callbacks … RETURNING) INSERT INTO calls SELECT … FROM marked
    JOIN unnest(…)``: one round trip, and only rows the UPDATE still found held get a call.
    $1 call-back ids, $2 phone ids, $3 loan keys, $4 numbers to dial, $5 caller numbers, $6 now,
    $7 (claimed rows) this dialer's id."""
    # Claimed rows must still be this dialer's; rows locked in this transaction stay pending
    # and nobody else can change them before it ends.
    held = f"status = '{_PENDING}'"
    if not locked:
        held = f"status = '{_CLAIMED}' AND claimed_by = $7"
    return f"""
WITH marked AS (
    UPDATE callbacks SET status = '{_DIALED}', lease_expires_at = NULL, updated_at = $6
    WHERE id = ANY($1::bigint[]) AND {held}
    RETURNING id, campaign_id, contact_id, attempt
)
INSERT INTO calls (callback_id, campaign_id, contact_id, phone_id, loan_key, attempt,
                   to_number, from_number, status, conversed, created_at, updated_at)
SELECT marked.id, marked.campaign_id, marked.contact_id, chunk.phone_id, chunk.loan_key,
       marked.attempt, chunk.to_number, chunk.from_number, '{_INITIATING}', false, $6, $6
FROM marked
JOIN unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])
     AS chunk (callback_id, phone_id, loan_key, to_number, from_number)
  ON chunk.callback_id = marked.id
RETURNING id, callback_id
"""


# An early webhook may have attached the sid and moved the call on: that stays.
_SIDS = f"""
UPDATE calls
SET carrier_sid = placed.sid,
    status = CASE WHEN calls.status = '{_INITIATING}' THEN '{_QUEUED}' ELSE calls.status END
FROM unnest($1::bigint[], $2::text[]) AS placed (id, sid)
WHERE calls.id = placed.id AND calls.carrier_sid IS NULL
"""
_RECORD_LOCKED = _record(locked=True)
_RECORD_CLAIMED = _record(locked=False)
