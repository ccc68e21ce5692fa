"""Recording dials: the call rows written before the carrier is asked, and its call ids after.

On PostgreSQL each step is one statement for the whole chunk (arrays in, ``unnest`` inside);
SQLite runs the same steps as plain batched statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    any_,
    bindparam,
    case,
    false,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from voicebot.db.models import Base, Call, CallBack
from voicebot.db.types import UTCDateTime
from voicebot.dialer.queue import is_postgres, mark_dialed
from voicebot.domain.types import CallBackStatus, CallStatus

_calls = Base.metadata.tables[Call.__tablename__]
_callbacks = Base.metadata.tables[CallBack.__tablename__]


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
    ``queue.lock_due`` in this transaction (PostgreSQL only)."""
    if not calls:
        return {}
    if is_postgres(session):
        rows = await (await session.connection()).execute(
            _RECORD_LOCKED_POSTGRES if locked else _RECORD_POSTGRES,
            {
                "callback_ids": [c.callback_id for c in calls],
                "phone_ids": [c.phone_id for c in calls],
                "loan_keys": [c.loan_key for c in calls],
                "to_numbers": [c.to_number for c in calls],
                "from_numbers": [c.from_number for c in calls],
                "dialer_id": dialer_id,
                "now": now,
            },
        )
        return {callback_id: call_id for call_id, callback_id in rows}
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
        await (await session.connection()).execute(
            _SIDS_POSTGRES,
            {"call_ids": [i for i, _ in accepted], "sids": [sid for _, sid in accepted]},
        )
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


def _record_postgres(*, locked: bool) -> Executable:
    """``WITH marked AS (UPDATE callbacks … RETURNING) INSERT INTO calls SELECT … FROM marked
    JOIN unnest(…)``: one round trip, and only rows the UPDATE still found held get a call."""
    callback_ids = bindparam("callback_ids", type_=ARRAY(BigInteger))
    now = bindparam("now", type_=UTCDateTime)
    # Claimed rows must still be this dialer's; rows locked in this transaction stay pending
    # and nobody else can change them before it ends.
    held = (
        [_callbacks.c.status == CallBackStatus.PENDING.value]
        if locked
        else [
            _callbacks.c.status == CallBackStatus.CLAIMED.value,
            _callbacks.c.claimed_by == bindparam("dialer_id", type_=String),
        ]
    )
    marked = (
        update(_callbacks)
        .where(_callbacks.c.id == any_(callback_ids), *held)
        .values(status=CallBackStatus.DIALED.value, lease_expires_at=None, updated_at=now)
        .returning(
            _callbacks.c.id, _callbacks.c.campaign_id, _callbacks.c.contact_id, _callbacks.c.attempt
        )
        .cte("marked")
    )
    chunk = (
        func.unnest(
            callback_ids,
            bindparam("phone_ids", type_=ARRAY(BigInteger)),
            bindparam("loan_keys", type_=ARRAY(String)),
            bindparam("to_numbers", type_=ARRAY(String)),
            bindparam("from_numbers", type_=ARRAY(String)),
        )
        .table_valued("callback_id", "phone_id", "loan_key", "to_number", "from_number")
        .render_derived(name="chunk")
    )
    rows = select(
        marked.c.id,
        marked.c.campaign_id,
        marked.c.contact_id,
        chunk.c.phone_id,
        chunk.c.loan_key,
        marked.c.attempt,
        chunk.c.to_number,
        chunk.c.from_number,
        literal(CallStatus.INITIATING.value),
        false(),
        now,
        now,
    ).select_from(marked.join(chunk, chunk.c.callback_id == marked.c.id))
    columns = [
        "callback_id",
        "campaign_id",
        "contact_id",
        "phone_id",
        "loan_key",
        "attempt",
        "to_number",
        "from_number",
        "status",
        "conversed",
        "created_at",
        "updated_at",
    ]
    return insert(_calls).from_select(columns, rows).returning(_calls.c.id, _calls.c.callback_id)


def _sids_postgres() -> Executable:
    placed = (
        func.unnest(
            bindparam("call_ids", type_=ARRAY(BigInteger)),
            bindparam("sids", type_=ARRAY(String)),
        )
        .table_valued("id", "sid")
        .render_derived(name="placed")
    )
    return (
        update(_calls)
        .where(_calls.c.id == placed.c.id, _calls.c.carrier_sid.is_(None))
        .values(carrier_sid=placed.c.sid, status=_QUEUED_UNLESS_LATER)
    )


_RECORD_POSTGRES = _record_postgres(locked=False)
_RECORD_LOCKED_POSTGRES = _record_postgres(locked=True)
_SIDS_POSTGRES = _sids_postgres()
