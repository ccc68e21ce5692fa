"""The carrier's calls-per-second limit, shared by every dialer process through the database.

A token bucket lives in one ``pacing_buckets`` row: each dialer takes tokens in a short
transaction that locks the row, and waits for more outside any transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db.models import PacingBucket

CARRIER_BUCKET = "carrier"


@dataclass(frozen=True, slots=True)
class Grant:
    tokens: int
    # When fewer tokens than asked were granted: seconds until the next one is due.
    retry_after: float


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float

    def refill(self, tokens: float, since: datetime, now: datetime) -> float:
        elapsed = max(0.0, (now - since).total_seconds())  # clocks of other hosts may run ahead
        return min(self.burst, tokens + elapsed * self.rate)

    def take(self, tokens: float, wanted: int) -> tuple[int, float, float]:
        """(granted, tokens left, seconds until the next whole token when short)."""
        granted = min(wanted, math.floor(tokens))
        left = tokens - granted
        wait = 0.0 if granted == wanted else max(0.0, (1.0 - left) / self.rate)
        return granted, left, wait


class CallPacer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        calls_per_second: float,
        *,
        name: str = CARRIER_BUCKET,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # One second's worth may be saved up, so a 1 CPS account never bursts past Twilio's queue.
        self.bucket = TokenBucket(rate=calls_per_second, burst=max(1.0, calls_per_second))
        self._sessionmaker = sessionmaker
        self._name = name
        self._clock = clock

    async def take(self, wanted: int) -> Grant:
        """Take up to ``wanted`` tokens now (never waits)."""
        if wanted <= 0:
            return Grant(0, 0.0)
        async with self._sessionmaker() as session:
            now = self._clock()
            row = await self._lock(session, now)
            available = self.bucket.refill(row.tokens, row.updated_at, now)
            granted, left, wait = self.bucket.take(available, wanted)
            await self._store(session, left, max(now, row.updated_at))
            await session.commit()
        return Grant(granted, wait)

    async def give_back(self, tokens: int) -> None:
        """Return tokens taken for dials that did not happen."""
        if tokens <= 0:
            return
        async with self._sessionmaker() as session:
            now = self._clock()
            row = await self._lock(session, now)
            available = self.bucket.refill(row.tokens, row.updated_at, now)
            refunded = min(self.bucket.burst, available + tokens)
            await self._store(session, refunded, max(now, row.updated_at))
            await session.commit()

    async def _lock(self, session: AsyncSession, now: datetime) -> PacingBucket:
        query = (
            select(PacingBucket)
            .where(PacingBucket.name == self._name)
            .execution_options(populate_existing=True)
        )
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            query = query.with_for_update()
            row = (await session.scalars(query)).one_or_none()
            if row is not None:
                return row
        # On SQLite this insert is also the transaction's first write, so it takes the write lock
        # before the row is read.
        insert = postgresql.insert if postgres else sqlite.insert
        await session.execute(
            insert(PacingBucket)
            .values(name=self._name, tokens=self.bucket.burst, updated_at=now)
            .on_conflict_do_nothing(index_elements=[PacingBucket.name])
        )
        return (await session.scalars(query)).one()

    async def _store(self, session: AsyncSession, tokens: float, at: datetime) -> None:
        await session.execute(
            update(PacingBucket)
            .where(PacingBucket.name == self._name)
            .values(tokens=tokens, updated_at=at)
            .execution_options(synchronize_session=False)
        )
