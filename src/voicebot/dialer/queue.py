"""The ``callbacks`` table as the dialer's work queue: claims, leases, and giving work back.

Any number of dialer processes share the queue. On PostgreSQL a claim takes due rows with
``FOR UPDATE SKIP LOCKED``, so concurrent claims never return the same row; on SQLite the same
statement runs under the database's single writer lock. A claim is a lease: a dialer that dies
leaves rows ``claimed`` until the lease expires and any dialer's reaper puts them back.

Every change a dialer makes to a claimed row is conditional on still holding it
(``status = 'claimed' AND claimed_by = me``), so a dialer whose lease ran out cannot touch a row
another dialer has claimed since.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import ColumnElement, Update, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from voicebot.db.models import Base, CallBack, Campaign
from voicebot.db.types import UTCDateTime
from voicebot.domain.types import CallBackStatus, CampaignStatus

_T = TypeVar("_T")
_table = Base.metadata.tables[CallBack.__tablename__]
_PENDING = CallBackStatus.PENDING.value
_CLAIMED = CallBackStatus.CLAIMED.value


class ClaimedCallBack(NamedTuple):
    id: int
    campaign_id: int
    contact_id: int
    phone_id: int | None
    attempt: int


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# What a statement sent straight to asyncpg raises when the server cancels, refuses or loses it
# (a statement or lock timeout, pg_cancel_backend, a deadlock, a dropped connection): SQLAlchemy
# wraps only the errors of the statements it sends itself.
DriverError: type[Exception] = asyncpg.PostgresError


class DriverConnection(Protocol):
    """What the dialer uses of an asyncpg connection (asyncpg ships no type information)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def execute(self, query: str, *args: Any) -> str: ...

    def is_in_transaction(self) -> bool: ...


async def driver_connection(session: AsyncSession) -> DriverConnection:
    """The asyncpg connection under ``session``, inside the session's transaction (PostgreSQL):
    statements sent on it commit or roll back with the session. For the dialer's hot path,
    where SQLAlchemy's per-row result handling costs more than the statements themselves.

    SQLAlchemy's asyncpg adapter begins its transaction with its first statement, so one is sent
    if none was; a connection still outside a transaction then is refused, never used in
    autocommit."""
    connection = await session.connection()
    if connection.dialect.driver != "asyncpg":
        raise TypeError(f"not an asyncpg connection: {connection.dialect.driver}")
    driver = cast(DriverConnection, (await connection.get_raw_connection()).driver_connection)
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")
        if not driver.is_in_transaction():
            raise RuntimeError("the session's transaction did not begin on its connection")
    return driver


def in_list(
    column: ColumnElement[_T] | QueryableAttribute[_T], values: Iterable[_T], *, postgres: bool
) -> ColumnElement[bool]:
    """``column IN values``: one array parameter on PostgreSQL, so the statement text (and
    asyncpg's prepared statement) is the same whatever the batch size."""
    if isinstance(column, QueryableAttribute):
        column = column.expression
    if postgres:
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def claim_statement(
    *, postgres: bool, limit: int, now: datetime, dialer_id: str, lease: timedelta
) -> Update:
    """The claim: due pending call-backs of running campaigns, oldest first, walked through the
    partial index ``ix_callbacks_claim``."""
    due = (
        select(_table.c.id)
        .where(
            _table.c.status == _PENDING,
            _table.c.due_at <= now,
            _table.c.campaign_id.in_(
                select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING.value)
            ),
        )
        .order_by(_table.c.due_at)
        .limit(limit)
    )
    if postgres:
        # ``= ANY(ARRAY(…))`` runs the locking subquery once, then fetches the rows by primary
        # key; a plain ``IN (…)`` lets the planner pick a hash join over the whole table.
        due = due.with_for_update(skip_locked=True, of=_table)
        picked = _table.c.id == any_(func.array(due.scalar_subquery()))
    else:
        picked = _table.c.id.in_(due.scalar_subquery())
    return (
        update(_table)
        .where(picked)
        .values(
            status=_CLAIMED,
            claimed_by=dialer_id,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .returning(
            _table.c.id,
            _table.c.campaign_id,
            _table.c.contact_id,
            _table.c.phone_id,
            _table.c.attempt,
        )
    )


async def hold(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    dialer_id: str,
    now: datetime,
    lease: timedelta,
) -> set[int]:
    """Turn rows locked in this transaction (``gate.lock_and_screen``) into claims this dialer
    holds past the commit."""
    if not ids:
        return set()
    result = await (await session.connection()).execute(
        update(_table)
        .where(
            in_list(_table.c.id, ids, postgres=is_postgres(session)), _table.c.status == _PENDING
        )
        .values(status=_CLAIMED, claimed_by=dialer_id, lease_expires_at=now + lease, updated_at=now)
        .returning(_table.c.id)
    )
    return set(result.scalars())


async def claim(
    session: AsyncSession, *, limit: int, now: datetime, dialer_id: str, lease: timedelta
) -> list[ClaimedCallBack]:
    """Claim up to ``limit`` due call-backs. The caller commits (it may read first, in the same
    transaction, what it needs to know about them)."""
    statement = claim_statement(
        postgres=is_postgres(session), limit=limit, now=now, dialer_id=dialer_id, lease=lease
    )
    rows = (await (await session.connection()).execute(statement)).all()
    return [ClaimedCallBack._make(row) for row in rows]


def _held(ids: Sequence[int], dialer_id: str, *, postgres: bool) -> list[ColumnElement[bool]]:
    return [
        in_list(_table.c.id, ids, postgres=postgres),
        _table.c.status == _CLAIMED,
        _table.c.claimed_by == dialer_id,
    ]


async def release(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    dialer_id: str,
    now: datetime,
    due_at: datetime | None = None,
    reason: str | None = None,
) -> int:
    """Back to pending: unchanged when ``due_at`` is None, else due then with ``reason``."""
    if not ids:
        return 0
    values: dict[str, Any] = {
        "status": _PENDING,
        "claimed_by": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if due_at is not None:
        values |= {"due_at": due_at, "deferred_reason": reason}
    result = await (await session.connection()).execute(
        update(_table)
        .where(*_held(ids, dialer_id, postgres=is_postgres(session)))
        .values(**values)
        .returning(_table.c.id)
    )
    return len(result.all())


async def defer(
    session: AsyncSession,
    deferrals: Sequence[tuple[int, datetime, str]],
    *,
    dialer_id: str,
    now: datetime,
) -> None:
    """Back to pending, each due at its own time with its reason: ``(id, due_at, reason)``."""
    if not deferrals:
        return
    statement = (
        update(_table)
        .where(
            _table.c.id == bindparam("deferred_id"),
            _table.c.status == _CLAIMED,
            _table.c.claimed_by == dialer_id,
        )
        .values(
            status=_PENDING,
            claimed_by=None,
            lease_expires_at=None,
            due_at=bindparam("deferred_until", type_=UTCDateTime),
            deferred_reason=bindparam("deferred_reason"),
            updated_at=now,
        )
    )
    await (await session.connection()).execute(
        statement,
        [
            {"deferred_id": i, "deferred_until": until, "deferred_reason": reason}
            for i, until, reason in deferrals
        ],
    )


async def cancel(
    session: AsyncSession, ids: Sequence[int], *, dialer_id: str, now: datetime, reason: str
) -> None:
    if not ids:
        return
    await (await session.connection()).execute(
        update(_table)
        .where(*_held(ids, dialer_id, postgres=is_postgres(session)))
        .values(
            status=CallBackStatus.CANCELLED.value,
            claimed_by=None,
            lease_expires_at=None,
            deferred_reason=reason,
            updated_at=now,
        )
    )


async def mark_dialed(
    session: AsyncSession, ids: Sequence[int], *, dialer_id: str, now: datetime
) -> set[int]:
    """The ids still held by this dialer, now ``dialed``. Part of the dial transaction."""
    result = await (await session.connection()).execute(
        update(_table)
        .where(*_held(ids, dialer_id, postgres=is_postgres(session)))
        .values(status=CallBackStatus.DIALED.value, lease_expires_at=None, updated_at=now)
        .returning(_table.c.id)
    )
    return set(result.scalars())


async def extend(
    session: AsyncSession, ids: Sequence[int], *, dialer_id: str, now: datetime, lease: timedelta
) -> set[int]:
    """Renew the lease on rows still held; returns them. Commits."""
    if not ids:
        return set()
    result = await (await session.connection()).execute(
        update(_table)
        .where(*_held(ids, dialer_id, postgres=is_postgres(session)))
        .values(lease_expires_at=now + lease, updated_at=now)
        .returning(_table.c.id)
    )
    held = set(result.scalars())
    await session.commit()
    return held


async def reap_expired(session: AsyncSession, *, now: datetime) -> int:
    """Return call-backs whose lease ran out (their dialer died or stalled) to the queue;
    commits. Walks the partial index ``ix_callbacks_lease``."""
    result = await (await session.connection()).execute(
        update(_table)
        .where(_table.c.status == _CLAIMED, _table.c.lease_expires_at < now)
        .values(status=_PENDING, claimed_by=None, lease_expires_at=None, updated_at=now)
        .returning(_table.c.id)
    )
    reaped = len(result.all())
    await session.commit()
    return reaped
