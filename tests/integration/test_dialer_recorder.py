"""Status events recorded in batches: the outcome of one transaction each, on both databases."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.integration.dialer_rows import (
    make_call,
    make_callback,
    make_campaign,
    make_contact,
    utc,
)
from voicebot.db.models import Call, CallBack, Campaign, CarrierEvent, ContactPhone
from voicebot.dialer.lifecycle import StatusBatch, StatusEvent, apply_status_events
from voicebot.dialer.recorder import StatusRecorder

NOW = utc(2026, 3, 10, 4, 0)


def _sid(n: int) -> str:
    return "CA" + str(n).rjust(32, "0")


async def _live_calls(maker: async_sessionmaker[AsyncSession], n: int) -> tuple[int, list[int]]:
    """One campaign with ``n`` live calls, each with a borrower of its own: (campaign, calls)."""
    async with maker() as session:
        camp = await make_campaign(session)
        calls = []
        for i in range(n):
            contact = await make_contact(session, (f"+86138{i:08d}",))
            callback = await make_callback(session, camp, contact, due_at=NOW)
            call = await make_call(session, callback, contact, created_at=NOW, carrier_sid=_sid(i))
            calls.append(call.id)
        await session.commit()
        return camp.id, calls


def _event(call_id: int | None, sid: str, status: str, seq: int, **payload: str) -> StatusEvent:
    return StatusEvent(
        call_sid=sid,
        call_status=status,
        call_id=call_id,
        sequence_number=seq,
        duration_seconds=int(payload.get("CallDuration", "0")) or None,
        answered_by="human" if status == "in-progress" else None,
        payload={"CallSid": sid, "CallStatus": status, **payload},
    )


async def test_events_from_many_callers_at_once_end_each_call_once(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    camp_id, calls = await _live_calls(sessionmaker, 40)
    recorder = StatusRecorder(sessionmaker, max_batch=16)

    async def caller(i: int, call_id: int) -> list[bool]:
        sid = _sid(i)
        answered = _event(call_id, sid, "in-progress", 1)
        done = _event(call_id, sid, "completed", 2, CallDuration="42")
        now = NOW + timedelta(seconds=i)
        # The callback, then Twilio's retry of it: the repeat is acknowledged, changing nothing.
        return [
            await recorder.record(answered, now=now),
            await recorder.record(done, now=now + timedelta(seconds=42)),
            await recorder.record(done, now=now + timedelta(seconds=43)),
        ]

    try:
        results = await asyncio.gather(*(caller(i, c) for i, c in enumerate(calls)))
    finally:
        await recorder.aclose()

    assert results == [[True, True, False]] * len(calls)
    assert "failed" not in caplog.text  # recorded in batches, not one by one after a failure
    async with sessionmaker() as session:
        ended = (
            await session.execute(
                select(Call.status, Call.disposition, Call.duration_seconds, func.count()).group_by(
                    Call.status, Call.disposition, Call.duration_seconds
                )
            )
        ).all()
        camp = await session.get(Campaign, camp_id)
        events = await session.scalar(select(func.count()).select_from(CarrierEvent))
        callbacks = await session.scalars(select(CallBack.status))
        first = await session.get(Call, calls[0])
    assert ended == [("completed", "answered", 42, 40)]
    assert camp is not None and camp.live_calls == 0  # one decrement per call, none twice
    assert events == 80
    assert set(callbacks) == {"done"}
    assert first is not None and first.answered_at == NOW


async def test_one_event_the_database_refuses_costs_only_itself(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL in JSON; PostgreSQL's jsonb refuses it")
    camp_id, calls = await _live_calls(sessionmaker, 6)
    recorder = StatusRecorder(sessionmaker, concurrency=1)
    events = [_event(c, _sid(i), "busy", 1) for i, c in enumerate(calls)]
    # jsonb cannot hold U+0000: this event fails inside the batch it shares with the others.
    events[3] = _event(calls[3], _sid(3), "busy", 1, Note="a\x00b")
    try:
        results = await asyncio.gather(
            *(recorder.record(e, now=NOW) for e in events), return_exceptions=True
        )
    finally:
        await recorder.aclose()

    assert "a batch of 6 status events failed (DBAPIError)" in caplog.text
    assert [r for i, r in enumerate(results) if i != 3] == [True] * 5
    assert isinstance(results[3], Exception)
    async with sessionmaker() as session:
        statuses = dict((await session.execute(select(Call.id, Call.disposition))).all())
        camp = await session.get(Campaign, camp_id)
        stored = await session.scalar(select(func.count()).select_from(CarrierEvent))
    assert [statuses[c] for c in calls] == ["busy", "busy", "busy", None, "busy", "busy"]
    assert camp is not None and camp.live_calls == 1  # the refused event's call is still live
    assert stored == 5


async def test_a_call_named_with_another_calls_sid_is_found_by_its_sid(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, calls = await _live_calls(sessionmaker, 2)
    recorder = StatusRecorder(sessionmaker)
    try:
        # The URL names call 0, the CallSid is call 1's: the sid wins, as Twilio's is the truth.
        assert await recorder.record(_event(calls[0], _sid(1), "no-answer", 1), now=NOW)
        # A sid no call has: stored as history, changing no call.
        assert await recorder.record(_event(None, _sid(99), "busy", 1), now=NOW)
    finally:
        await recorder.aclose()
    async with sessionmaker() as session:
        statuses = dict((await session.execute(select(Call.id, Call.status))).all())
        owners = (await session.execute(select(CarrierEvent.call_sid, CarrierEvent.call_id))).all()
    assert statuses == {calls[0]: "queued", calls[1]: "no-answer"}
    assert sorted(owners) == [(_sid(1), calls[1]), (_sid(99), None)]


async def test_one_batch_applies_each_calls_events_in_order(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Events stored and moved a batch at once: several for one call, a repeat inside the batch,
    a status that comes late, and a sid no call has, all in one transaction."""
    camp_id, calls = await _live_calls(sessionmaker, 3)
    a, b, c = calls
    batch = [
        (_event(a, _sid(0), "ringing", 1), NOW),
        (_event(a, _sid(0), "in-progress", 2), NOW + timedelta(seconds=5)),
        (_event(a, _sid(0), "completed", 3, CallDuration="42"), NOW + timedelta(seconds=47)),
        (_event(b, _sid(1), "in-progress", 1), NOW),
        (_event(b, _sid(1), "in-progress", 1), NOW),  # Twilio's retry, in the same batch
        (_event(b, _sid(1), "ringing", 2), NOW),  # late: b never moves back
        (_event(c, _sid(2), "busy", 1), NOW),
        (_event(None, _sid(99), "completed", 1), NOW),
    ]
    recorder = StatusRecorder(sessionmaker, concurrency=1)
    try:
        # A first event holds the only transaction while the batch queues up behind it.
        first = asyncio.create_task(recorder.record(_event(c, _sid(2), "ringing", 0), now=NOW))
        results = await asyncio.gather(*(recorder.record(e, now=now) for e, now in batch))
        assert await first
    finally:
        await recorder.aclose()

    assert results == [True, True, True, True, False, True, True, True]
    assert "failed" not in caplog.text
    async with sessionmaker() as session:
        rows = {
            row.id: row for row in await session.scalars(select(Call).where(Call.id.in_(calls)))
        }
        camp = await session.get(Campaign, camp_id)
        stored = await session.scalar(select(func.count()).select_from(CarrierEvent))
    assert (rows[a].status, rows[a].disposition, rows[a].duration_seconds) == (
        "completed",
        "answered",
        42,
    )
    assert rows[a].answered_at == NOW + timedelta(seconds=5)
    assert (rows[b].status, rows[b].answered_by, rows[b].disposition) == (
        "in-progress",
        "human",
        None,
    )
    assert (rows[c].status, rows[c].disposition) == ("busy", "busy")
    assert camp is not None and camp.live_calls == 1  # b is still live
    assert stored == 8


async def test_two_processes_given_the_same_events_end_each_call_once(
    sessionmaker: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """Twilio's retry of a callback may reach the other worker while the first still records
    it: each event is stored by one of them, and each call ends once."""
    camp_id, calls = await _live_calls(sessionmaker, 30)
    first, second = StatusRecorder(sessionmaker), StatusRecorder(sessionmaker)

    async def both(event: StatusEvent, now: datetime) -> list[bool]:
        return list(
            await asyncio.gather(first.record(event, now=now), second.record(event, now=now))
        )

    async def caller(i: int, call_id: int) -> list[list[bool]]:
        sid = _sid(i)
        return [
            await both(_event(call_id, sid, "in-progress", 1), NOW),
            await both(_event(call_id, sid, "completed", 2, CallDuration="42"), NOW),
        ]

    try:
        results = await asyncio.gather(*(caller(i, c) for i, c in enumerate(calls)))
    finally:
        await first.aclose()
        await second.aclose()

    assert all(sorted(pair) == [False, True] for result in results for pair in result)
    assert "failed" not in caplog.text  # the two waited on each other's rows, never deadlocked
    async with sessionmaker() as session:
        ended = (
            await session.execute(select(Call.disposition, func.count()).group_by(Call.disposition))
        ).all()
        camp = await session.get(Campaign, camp_id)
        events = await session.scalar(select(func.count()).select_from(CarrierEvent))
    assert ended == [("answered", 30)]
    assert camp is not None and camp.live_calls == 0
    assert events == 60


async def _two_calls_to_one_number(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
    """Two live calls to one borrower's only number, which has failed once already."""
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        contact = await make_contact(session, ("+8613800000001",))
        calls = []
        for i in range(2):
            callback = await make_callback(session, camp, contact, due_at=NOW)
            call = await make_call(session, callback, contact, created_at=NOW, carrier_sid=_sid(i))
            calls.append(call.id)
        await session.execute(update(ContactPhone).values(consecutive_failures=1))
        await session.commit()
    return calls


async def test_calls_to_one_number_ended_in_one_batch_each_count_against_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Each call reads its number's state with its row; ending two in one batch counts both
    failures from the state before either, not the same failure twice over."""
    calls = await _two_calls_to_one_number(sessionmaker)
    recorder = StatusRecorder(sessionmaker, concurrency=1)
    try:
        await asyncio.gather(
            recorder.record(_event(calls[0], _sid(0), "busy", 1), now=NOW),
            recorder.record(_event(calls[1], _sid(1), "no-answer", 1), now=NOW),
        )
    finally:
        await recorder.aclose()
    async with sessionmaker() as session:
        failures = await session.scalar(select(ContactPhone.consecutive_failures))
    assert failures == 3


@pytest.mark.parametrize(
    ("first", "second", "failures"),
    [
        ("busy", "no-answer", 3),  # both failures count: 1 + 1 + 1
        ("completed", "busy", 1),  # answered first resets the count; the busy call counts after
    ],
)
async def test_calls_to_one_number_ended_in_two_transactions_each_count_against_it(
    sessionmaker: async_sessionmaker[AsyncSession],
    db_url: str,
    first: str,
    second: str,
    failures: int,
) -> None:
    """As above, but the two calls end in overlapping transactions (two API processes'
    recorders, or a recorder and a refused dial): each read the number's state before the
    other wrote it, and neither may overwrite the other's count."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer cannot overlap two transactions that write")
    calls = await _two_calls_to_one_number(sessionmaker)
    ending = [
        _event(calls[0], _sid(0), first, 1, CallDuration="60"),
        _event(calls[1], _sid(1), second, 1),
    ]
    sessions = [sessionmaker(), sessionmaker()]
    batches = [StatusBatch(), StatusBatch()]
    try:
        for session, batch, event_ in zip(sessions, batches, ending, strict=True):
            await apply_status_events(session, [(event_, NOW)], batch=batch)
        for session, batch in zip(sessions, batches, strict=True):
            await batch.close(session)
            await session.commit()
    finally:
        for session in sessions:
            await session.close()
    async with sessionmaker() as session:
        assert await session.scalar(select(ContactPhone.consecutive_failures)) == failures
        assert await session.scalar(select(Campaign.live_calls)) == 0


async def test_a_started_campaigns_rules_are_read_once_and_its_status_when_needed(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """Only a draft's rules may change: the recorder reads a started campaign's once. Whether
    it still runs is read again by a batch that would schedule a retry."""
    camp_id, calls = await _live_calls(sessionmaker, 4)
    reads: list[str] = []

    def count_campaign_reads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM campaigns" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count_campaign_reads)
    recorder = StatusRecorder(sessionmaker, concurrency=1)
    try:
        for i in range(2):  # answered: no retry to schedule
            await recorder.record(_event(calls[i], _sid(i), "in-progress", 1), now=NOW)
            await recorder.record(
                _event(calls[i], _sid(i), "completed", 2, CallDuration="30"), now=NOW
            )
        assert len(reads) == 1
        async with sessionmaker() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == camp_id).values(status="cancelled")
            )
            await session.commit()
        await recorder.record(_event(calls[2], _sid(2), "busy", 1), now=NOW)
    finally:
        await recorder.aclose()
        event.remove(engine.sync_engine, "before_cursor_execute", count_campaign_reads)
    assert len(reads) == 2
    async with sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).select_from(CallBack).where(CallBack.status == "pending")
        )
        ended = dict((await session.execute(select(Call.id, Call.disposition))).all())
    assert pending == 0  # the campaign was cancelled: the busy call is not retried
    assert [ended[c] for c in calls] == ["answered", "answered", "busy", None]
