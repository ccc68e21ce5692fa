"""Serialising writers that read before they write.

PostgreSQL locks rows (``SELECT … FOR UPDATE``) or named advisory locks. SQLite starts a
transaction only at the first write, so what was read before it may be stale by then; there the
lock is the database's single write lock, taken before anything is read (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def begin_writing(session: AsyncSession) -> None:
    """On SQLite, take the write lock now (waiting for other writers up to the busy timeout),
    unless this transaction already holds it. A no-op on PostgreSQL."""
    if is_postgres(session):
        return
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    if raw is not None and not raw.in_transaction:
        await session.execute(text("BEGIN IMMEDIATE"))


async def hold(session: AsyncSession, key: int) -> None:
    """Wait for, then hold until the transaction ends, the lock named ``key``: a PostgreSQL
    advisory lock, or SQLite's write lock."""
    if is_postgres(session):
        await session.execute(select(func.pg_advisory_xact_lock(key)))
    else:
        await begin_writing(session)
