"""The attempt cap per loan when the loan is in several campaigns, each with a call-back due at
once: within one batch, across dialers, and while a call-back waits for pacing tokens."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.dialer_rows import (
    RecordingCarrier,
    make_callback,
    make_campaign,
    make_contact,
    utc,
)
from voicebot.config import Settings
from voicebot.db.models import CallBack, PacingBucket
from voicebot.dialer.loop import Dialer

NOW = utc(2026, 3, 10, 4, 0)
PERIOD = timedelta(days=7)  # the campaigns' default attempt period


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"carrier_calls_per_second": 10_000.0, "call_stale_after_seconds": 30 * 86400.0}
    )


def _dialer(
    settings: Settings,
    maker: async_sessionmaker[AsyncSession],
    name: str,
    carrier: RecordingCarrier | None = None,
) -> Dialer:
    settings = settings.model_copy(update={"dialer_id": name})
    return Dialer(settings, maker, carrier or RecordingCarrier())


async def _one_loan_in_two_campaigns(
    maker: async_sessionmaker[AsyncSession], loan_id: str
) -> list[int]:
    """Two running campaigns allowing one attempt per loan a week, each with a call-back due
    now for one borrower's loan; returns the call-backs' ids."""
    async with maker() as session:
        contact = await make_contact(session, loan_id=loan_id)
        ids = []
        for _ in range(2):
            campaign = await make_campaign(session, max_attempts_per_period=1)
            ids.append((await make_callback(session, campaign, contact, due_at=NOW)).id)
        await session.commit()
    return ids


async def _states(
    maker: async_sessionmaker[AsyncSession], ids: list[int]
) -> list[tuple[str, str | None]]:
    async with maker() as session:
        rows = await session.execute(
            select(CallBack.status, CallBack.deferred_reason)
            .where(CallBack.id.in_(ids))
            .order_by(CallBack.id)
        )
        return [(status, reason) for status, reason in rows]


def _dialed_once(states: list[tuple[str, str | None]]) -> bool:
    return sorted(states) == [("dialed", None), ("pending", "attempt_cap")]


async def test_one_batch_dials_a_loan_in_two_campaigns_once(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _one_loan_in_two_campaigns(sessionmaker, "LOAN-1")
    assert await _dialer(fast, sessionmaker, "d1").run_once(NOW) == 1
    assert _dialed_once(await _states(sessionmaker, ids))
    async with sessionmaker() as session:
        deferred = await session.scalar(
            select(CallBack.due_at).where(CallBack.id.in_(ids), CallBack.status == "pending")
        )
    assert deferred == NOW + PERIOD


async def test_two_dialers_dial_a_loan_in_two_campaigns_once(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Each dialer holds one of the loan's call-backs; both decide at the same time."""
    ids = await _one_loan_in_two_campaigns(sessionmaker, "LOAN-2")
    one = fast.model_copy(update={"dialer_batch_size": 1})
    placed = await asyncio.gather(
        _dialer(one, sessionmaker, "d1").run_once(NOW),
        _dialer(one, sessionmaker, "d2").run_once(NOW),
    )
    assert sorted(placed) == [0, 1]
    assert _dialed_once(await _states(sessionmaker, ids))


async def test_a_dialer_deciding_on_a_loan_waits_for_the_one_recording_its_call(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession], db_url: str
) -> None:
    """PostgreSQL: the first dialer has decided and waits (for the pacing row, held here) before
    it records its call; the second, holding the loan's other call-back, must not decide until
    the first has committed."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's rounds hold its single write lock: they cannot overlap")
    ids = await _one_loan_in_two_campaigns(sessionmaker, "LOAN-4")
    one = fast.model_copy(update={"dialer_batch_size": 1})
    async with sessionmaker() as session:
        session.add(PacingBucket(name="carrier", tokens=10_000.0, updated_at=NOW))
        await session.commit()
    pacing = sessionmaker()
    await pacing.execute(select(PacingBucket).with_for_update())
    first = asyncio.create_task(_dialer(one, sessionmaker, "d1").run_once(NOW))
    await _until_waiting_for_locks(sessionmaker, 1)
    second = asyncio.create_task(_dialer(one, sessionmaker, "d2").run_once(NOW))
    await _until_waiting_for_locks(sessionmaker, 2)  # for the loan, or (unguarded) the pacing
    await pacing.rollback()
    await pacing.close()
    assert await asyncio.wait_for(asyncio.gather(first, second), 10) == [1, 0]
    assert _dialed_once(await _states(sessionmaker, ids))


async def _until_waiting_for_locks(maker: async_sessionmaker[AsyncSession], backends: int) -> None:
    async with maker() as session:
        for _ in range(100):
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
            if waiting == backends:
                return
            await session.rollback()  # a fresh snapshot of the statistics
            await asyncio.sleep(0.05)
    raise AssertionError(f"{backends} dialers never waited for a lock")


async def test_a_callback_waiting_for_pacing_counts_against_its_loan(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """One call a second: the first dialer dials another borrower and holds the loan's first
    call-back for the next token. The second dialer, meanwhile, must count that one."""
    async with sessionmaker() as session:
        other = await make_campaign(session)
        first = await make_callback(
            session, other, await make_contact(session), due_at=NOW - timedelta(minutes=1)
        )
        await session.commit()
    ids = await _one_loan_in_two_campaigns(sessionmaker, "LOAN-3")
    slow = settings.model_copy(
        update={"carrier_calls_per_second": 1.0, "call_stale_after_seconds": 30 * 86400.0}
    )
    carrier = RecordingCarrier()
    pacing = _dialer(slow.model_copy(update={"dialer_batch_size": 2}), sessionmaker, "d1", carrier)
    waiting = asyncio.create_task(pacing.run_once(NOW))
    await asyncio.wait_for(carrier.dialed.wait(), 5)  # the other borrower; the loan's waits
    assert [d.metadata["callback_id"] for d in carrier.dials] == [str(first.id)]
    assert await _dialer(slow, sessionmaker, "d2").run_once(NOW) == 0
    assert await asyncio.wait_for(waiting, 10) == 2
    assert _dialed_once(await _states(sessionmaker, ids))
