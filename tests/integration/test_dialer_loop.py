"""The dialer round on both databases: claim, gate, defer, concurrency, pacing, leases, dialing."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import time as clock_time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.dialer_rows import (
    RecordingCarrier,
    make_callback,
    make_campaign,
    make_contact,
    utc,
)
from voicebot.config import Settings
from voicebot.db.models import Call, CallBack, Campaign, ContactPhone, DoNotCall
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.dialer import queue
from voicebot.dialer.gate import load_campaigns, screen
from voicebot.dialer.lifecycle import StatusEvent, record_status_event
from voicebot.dialer.loop import Dialer

# 2026-03-10 04:00 UTC is 12:00 in Shanghai, 13:00 in Seoul, 00:00 in New York.
NOW = utc(2026, 3, 10, 4, 0)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    # These tests jump the clock by hours with calls left live; ending calls that lost their
    # final webhook is tested in test_dialer_housekeeping.
    return settings.model_copy(
        update={"carrier_calls_per_second": 10_000.0, "call_stale_after_seconds": 30 * 86400.0}
    )


def _dialer(
    settings: Settings,
    maker: async_sessionmaker[AsyncSession],
    carrier: RecordingCarrier,
    name: str = "d1",
) -> Dialer:
    return Dialer(settings.model_copy(update={"dialer_id": name}), maker, carrier)


async def _callbacks(maker: async_sessionmaker[AsyncSession]) -> dict[int, CallBack]:
    async with maker() as session:
        return {c.id: c for c in await session.scalars(select(CallBack))}


async def _calls(maker: async_sessionmaker[AsyncSession]) -> list[Call]:
    async with maker() as session:
        return list(await session.scalars(select(Call).order_by(Call.id)))


async def test_due_callbacks_of_running_campaigns_are_dialed(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        running = await make_campaign(session, caller_numbers=["+15005550006", "+15005550007"])
        paused = await make_campaign(session, status="paused")
        due = [
            await make_callback(
                session, running, await make_contact(session, persona="busy"), due_at=NOW
            )
            for _ in range(3)
        ]
        later = await make_callback(
            session, running, await make_contact(session), due_at=NOW + timedelta(minutes=1)
        )
        held = await make_callback(session, paused, await make_contact(session), due_at=NOW)
        await session.commit()
    carrier = RecordingCarrier()
    assert await _dialer(fast, sessionmaker, carrier).run_once(NOW) == 3

    callbacks = await _callbacks(sessionmaker)
    assert {i for i, c in callbacks.items() if c.status == "dialed"} == {c.id for c in due}
    assert (callbacks[later.id].status, callbacks[held.id].status) == ("pending", "pending")
    calls = await _calls(sessionmaker)
    assert [(c.status, c.carrier_sid) for c in calls] == [
        ("queued", f"CA{c.id:032d}") for c in calls
    ]
    assert {c.callback_id for c in calls} == {c.id for c in due}
    assert sorted(c.from_number or "" for c in calls) == [
        "+15005550006",
        "+15005550006",
        "+15005550007",
    ]
    request = carrier.dials[0]
    assert request.status_callback_url.endswith(
        f"/webhooks/twilio/status?call_id={request.call_id}"
    )
    assert request.answer_url.endswith(f"/webhooks/twilio/answer?call_id={request.call_id}")
    assert request.metadata["persona"] == "busy"
    async with sessionmaker() as session:
        camp = await session.get(Campaign, running.id)
    assert camp is not None and camp.live_calls == 3


async def test_gate_defers_to_the_local_window_and_never_drops(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    late = utc(2026, 3, 10, 14, 0)  # 22:00 in Shanghai, 23:00 in Seoul, 10:00 in New York
    async with sessionmaker() as session:
        camp = await make_campaign(
            session, window_start=clock_time(8, 0), window_end=clock_time(21, 0)
        )
        shanghai = await make_callback(
            session, camp, await make_contact(session, ("+8613800000001",)), due_at=late
        )
        seoul = await make_callback(
            session,
            camp,
            await make_contact(session, ("+821012345678",), time_zone="Asia/Seoul"),
            due_at=late,
        )
        new_york = await make_callback(
            session,
            camp,
            await make_contact(session, ("+12125551234",), time_zone="America/New_York"),
            due_at=late,
        )
        await session.commit()
    carrier = RecordingCarrier()
    dialer = _dialer(fast, sessionmaker, carrier)
    assert await dialer.run_once(late) == 1
    assert carrier.dialed_numbers() == ["+12125551234"]

    callbacks = await _callbacks(sessionmaker)
    assert (callbacks[shanghai.id].status, callbacks[shanghai.id].deferred_reason) == (
        "pending",
        "calling_window",
    )
    assert callbacks[shanghai.id].due_at == utc(2026, 3, 11, 0, 0)  # 08:00 in Shanghai
    assert callbacks[seoul.id].due_at == utc(2026, 3, 10, 23, 0)  # 08:00 in Seoul
    assert callbacks[new_york.id].status == "dialed"

    # Nothing is lost: each comes round at its time and is dialed then.
    assert await dialer.run_once(utc(2026, 3, 10, 23, 0)) == 1
    assert await dialer.run_once(utc(2026, 3, 11, 0, 0)) == 1
    assert len(await _callbacks(sessionmaker)) == 3
    assert {c.status for c in (await _callbacks(sessionmaker)).values()} == {"dialed"}


async def test_attempt_cap_counts_every_campaign_of_the_loan(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        first = await make_campaign(session, max_attempts_per_period=3)
        other = await make_campaign(session)
        contact = await make_contact(session, loan_id="LOAN-1")
        previous = await make_callback(session, other, contact, due_at=NOW, status="done")
        for days_ago in (6, 3, 1):
            session.add(
                Call(
                    callback_id=previous.id,
                    campaign_id=other.id,
                    contact_id=contact.id,
                    phone_id=contact.phones[0].id,
                    loan_key="LOAN-1",
                    attempt=1,
                    to_number=contact.phones[0].e164,
                    status="no-answer",
                    disposition="no_answer",
                    created_at=NOW - timedelta(days=days_ago),
                )
            )
        capped = await make_callback(session, first, contact, due_at=NOW)
        await session.commit()
    carrier = RecordingCarrier()
    assert await _dialer(fast, sessionmaker, carrier).run_once(NOW) == 0
    callback = (await _callbacks(sessionmaker))[capped.id]
    assert (callback.status, callback.deferred_reason) == ("pending", "attempt_cap")
    assert callback.due_at == NOW + timedelta(days=1)  # the 6-day-old attempt leaves the period


async def test_daily_conversation_cap_defers_to_the_next_local_day(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        contact = await make_contact(session)
        done = await make_callback(session, camp, contact, due_at=NOW, status="done")
        for hours_ago in (3, 2, 1):
            session.add(
                Call(
                    callback_id=done.id,
                    campaign_id=camp.id,
                    contact_id=contact.id,
                    loan_key=f"contact:{contact.id}",
                    attempt=1,
                    to_number=contact.phones[0].e164,
                    status="completed",
                    disposition="answered",
                    conversed=True,
                    created_at=NOW - timedelta(hours=hours_ago),
                    answered_at=NOW - timedelta(hours=hours_ago),
                )
            )
        capped = await make_callback(session, camp, contact, due_at=NOW)
        await session.commit()
    assert await _dialer(fast, sessionmaker, RecordingCarrier()).run_once(NOW) == 0
    callback = (await _callbacks(sessionmaker))[capped.id]
    assert callback.deferred_reason == "daily_conversation_cap"
    assert callback.due_at == utc(2026, 3, 10, 16, 0)  # midnight in Shanghai


async def test_opted_out_numbers_are_cancelled_or_switched(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    blocked = "+8613800000001"
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        alone = await make_callback(
            session, camp, await make_contact(session, (blocked,)), due_at=NOW
        )
        pair = await make_contact(session, ("+8613800000009", "+8613900000002"))
        switched = await make_callback(session, camp, pair, due_at=NOW)
        # On the list, though the contact rows were imported before the opt-out.
        session.add_all(
            [
                DoNotCall(e164=e, reason="asked", source="api", created_at=NOW)
                for e in (blocked, "+8613800000009")
            ]
        )
        await session.commit()
    carrier = RecordingCarrier()
    assert await _dialer(fast, sessionmaker, carrier).run_once(NOW) == 1
    assert carrier.dialed_numbers() == ["+8613900000002"]
    callbacks = await _callbacks(sessionmaker)
    assert (callbacks[alone.id].status, callbacks[alone.id].deferred_reason) == (
        "cancelled",
        "opted_out",
    )
    assert callbacks[switched.id].status == "dialed"


async def test_numbers_are_tried_in_order_for_every_campaign_of_a_contact(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The contact's numbers sort differently by position and by number: the first valid one by
    # position is dialed, for each of its call-backs in the batch, with its numbers read once.
    async with sessionmaker() as session:
        first, second = await make_campaign(session), await make_campaign(session)
        contact = await make_contact(session, ("+8613900000002", "+8613800000009", "+86137000003"))
        due = [
            await make_callback(session, camp, contact, due_at=NOW, phone_index=2)
            for camp in (first, second)
        ]
        session.add(DoNotCall(e164="+86137000003", reason="asked", source="api", created_at=NOW))
        numberless = await make_contact(session, ())
        bare = CallBack(
            campaign_id=first.id,
            contact_id=numberless.id,
            phone_id=None,
            due_at=NOW,
            attempt=1,
            status="pending",
            reason="initial",
        )
        session.add(bare)
        await session.commit()
    carrier = RecordingCarrier()
    assert await _dialer(fast, sessionmaker, carrier).run_once(NOW) == 2
    assert carrier.dialed_numbers() == ["+8613900000002", "+8613900000002"]
    callbacks = await _callbacks(sessionmaker)
    assert [callbacks[c.id].status for c in due] == ["dialed", "dialed"]
    assert (callbacks[bare.id].status, callbacks[bare.id].deferred_reason) == (
        "cancelled",
        "no_dialable_number",
    )
    calls = await _calls(sessionmaker)
    assert sorted(c.callback_id for c in calls) == sorted(c.id for c in due)
    assert {(c.status, c.to_number) for c in calls} == {("queued", "+8613900000002")}
    assert all(c.carrier_sid for c in calls)


async def test_statements_sent_to_asyncpg_commit_and_roll_back_with_the_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    if sessionmaker.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the dialer sends statements straight to asyncpg on PostgreSQL only")
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        await session.commit()
    for live_calls, end in ((5, "rollback"), (7, "commit")):
        async with sessionmaker() as session:
            driver = await queue.driver_connection(session)
            assert driver.is_in_transaction()
            await driver.execute(
                "UPDATE campaigns SET live_calls = $1 WHERE id = $2", live_calls, camp.id
            )
            await getattr(session, end)()
    async with sessionmaker() as session:
        assert await session.scalar(select(Campaign.live_calls).where(Campaign.id == camp.id)) == 7


async def test_callbacks_of_a_campaign_stopped_after_the_claim_go_back_unchanged(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        callback = await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    async with sessionmaker() as session:
        batch = await queue.claim(
            session, limit=10, now=NOW, dialer_id="d1", lease=timedelta(minutes=2)
        )
        await session.commit()
    async with sessionmaker() as session:
        await session.execute(update(Campaign).values(status="paused"))
        await session.commit()
    async with sessionmaker() as session:
        campaigns = await load_campaigns(session, {camp.id})
        screening = await screen(session, batch, campaigns, now=NOW)
        assert screening.not_running == [callback.id]
        assert await queue.release(session, screening.not_running, dialer_id="d1", now=NOW) == 1
        await session.commit()
    after = (await _callbacks(sessionmaker))[callback.id]
    assert (after.status, after.due_at, after.claimed_by, after.deferred_reason) == (
        "pending",
        NOW,
        None,
        None,
    )


async def test_campaign_concurrency_limits_live_calls(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session, concurrency_limit=2)
        for _ in range(5):
            await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    carrier = RecordingCarrier()
    dialer = _dialer(fast, sessionmaker, carrier)
    assert await dialer.run_once(NOW) == 2
    waiting = [c for c in (await _callbacks(sessionmaker)).values() if c.status == "pending"]
    assert len(waiting) == 3
    assert {(c.due_at, c.deferred_reason) for c in waiting} == {
        (NOW + timedelta(seconds=2), "concurrency")
    }
    # Still full a little later; one call ends, one slot opens.
    assert await dialer.run_once(NOW + timedelta(seconds=3)) == 0
    first = (await _calls(sessionmaker))[0]
    async with sessionmaker() as session:
        event = StatusEvent(first.carrier_sid or "", "completed", first.id, "human", 60, 4)
        await record_status_event(session, event, now=NOW + timedelta(seconds=4))
    assert await dialer.run_once(NOW + timedelta(seconds=6)) == 1
    async with sessionmaker() as session:
        live = await session.scalar(select(Campaign.live_calls).where(Campaign.id == camp.id))
    assert live == 2
    assert len(carrier.dials) == 3


async def test_pacing_is_shared_between_dialers(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        for _ in range(12):
            await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    paced = settings.model_copy(update={"carrier_calls_per_second": 8.0, "dialer_batch_size": 6})
    carrier = RecordingCarrier()
    started = time.monotonic()
    placed = await asyncio.gather(
        _dialer(paced, sessionmaker, carrier, "a").run_once(NOW),
        _dialer(paced, sessionmaker, carrier, "b").run_once(NOW),
    )
    elapsed = time.monotonic() - started
    assert sum(placed) == 12
    # A burst of 8 tokens, then 8 a second: 4 more take at least half a second.
    assert elapsed >= 0.45
    assert len({d.call_id for d in carrier.dials}) == 12


async def test_expired_lease_returns_to_the_queue_and_is_dialed_once(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        for _ in range(3):
            await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    lease = timedelta(seconds=fast.dialer_lease_seconds)
    async with sessionmaker() as session:
        stalled = await queue.claim(session, limit=10, now=NOW, dialer_id="stalled", lease=lease)
        await session.commit()
    carrier = RecordingCarrier()
    rescuer = _dialer(fast, sessionmaker, carrier, "rescuer")
    assert await rescuer.run_once(NOW + lease / 2) == 0  # still leased
    assert await rescuer.run_once(NOW + lease + timedelta(seconds=1)) == 3
    # The stalled dialer wakes up: it no longer holds anything and dials nothing.
    async with sessionmaker() as session:
        ids = [cb.id for cb in stalled]
        assert await queue.mark_dialed(session, ids, dialer_id="stalled", now=NOW) == set()
        await session.commit()
    assert sorted(d.metadata["callback_id"] for d in carrier.dials) == sorted(str(i) for i in ids)


async def test_calls_left_initiating_by_a_dead_dialer_fail_and_retry(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session, retry_delays={"failed": 60})
        contact = await make_contact(session)
        callback = await make_callback(session, camp, contact, due_at=NOW, status="dialed")
        session.add(
            Call(
                callback_id=callback.id,
                campaign_id=camp.id,
                contact_id=contact.id,
                phone_id=contact.phones[0].id,
                loan_key=f"contact:{contact.id}",
                attempt=1,
                to_number=contact.phones[0].e164,
                status="initiating",
                created_at=NOW,
            )
        )
        camp.live_calls = 1
        await session.commit()
    later = NOW + timedelta(seconds=fast.dialer_lease_seconds + 1)
    carrier = RecordingCarrier()
    assert await _dialer(fast, sessionmaker, carrier).run_once(later) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition) == ("failed", "failed")
    assert call.error_message is not None
    retry = [c for c in (await _callbacks(sessionmaker)).values() if c.id != callback.id]
    assert [(r.attempt, r.due_at) for r in retry] == [(2, later + timedelta(seconds=60))]
    assert await _dialer(fast, sessionmaker, carrier).run_once(later + timedelta(minutes=1)) == 1


async def test_carrier_refusal_is_recorded_and_the_next_number_tried(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    bad, good = "+8613800000001", "+8613900000002"
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        await make_callback(session, camp, await make_contact(session, (bad, good)), due_at=NOW)
        await session.commit()
    carrier = RecordingCarrier(refuse={bad: "21211"})
    dialer = _dialer(fast, sessionmaker, carrier)
    assert await dialer.run_once(NOW) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition, call.error_code) == ("failed", "invalid_number", "21211")
    assert call.error_message == "the number is not valid"
    assert call.carrier_sid is None
    async with sessionmaker() as session:
        statuses = list(
            await session.scalars(select(ContactPhone.status).order_by(ContactPhone.position))
        )
        live = await session.scalar(select(Campaign.live_calls))
    assert (statuses, live) == (["invalid", "valid"], 0)
    assert await dialer.run_once(NOW + timedelta(seconds=1)) == 1
    assert carrier.dialed_numbers() == [bad, good]


async def test_concurrent_dialers_never_dial_a_callback_twice(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        for _ in range(120):
            await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    small = fast.model_copy(update={"dialer_batch_size": 7})
    carrier = RecordingCarrier(delay=0.001)
    dialers = [_dialer(small, sessionmaker, carrier, f"d{i}") for i in range(4)]

    async def drain(dialer: Dialer) -> None:
        while await dialer.run_once(NOW):
            pass

    await asyncio.gather(*(drain(d) for d in dialers))
    dialed = [d.metadata["callback_id"] for d in carrier.dials]
    assert len(dialed) == 120 and len(set(dialed)) == 120
    async with sessionmaker() as session:
        per_callback = await session.scalar(select(func.count(func.distinct(Call.callback_id))))
    assert per_callback == 120


async def test_run_loops_until_stopped_and_survives_a_lost_database(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: object
) -> None:
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        await make_callback(session, camp, await make_contact(session), due_at=utc(2020, 1, 1))
        await session.commit()
    carrier = RecordingCarrier()
    stop = asyncio.Event()
    task = asyncio.create_task(_dialer(fast, sessionmaker, carrier).run(stop))
    await asyncio.wait_for(carrier.dialed.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 5)

    broken = make_engine("sqlite+aiosqlite:////nonexistent-dir/voicebot.db")
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(
            Dialer(fast, make_sessionmaker(broken), RecordingCarrier()).run(stop)
        )
        await asyncio.sleep(0.3)
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 5)
    finally:
        await broken.dispose()


async def test_run_survives_its_batch_statement_cancelled(
    fast: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A statement timeout, a deadlock or an operator's pg_cancel_backend stops a statement the
    dialer sends straight to asyncpg, which raises asyncpg's own error, not SQLAlchemy's: the
    round fails, is logged, and the next one dials."""
    if db_url.startswith("sqlite"):
        pytest.skip("the statements sent straight to asyncpg are PostgreSQL's")
    quick = fast.model_copy(update={"dialer_poll_seconds": 0.05})
    async with sessionmaker() as session:
        camp = await make_campaign(session)
        await make_callback(session, camp, await make_contact(session), due_at=utc(2020, 1, 1))
        await session.commit()
    carrier = RecordingCarrier()
    stop = asyncio.Event()
    task = asyncio.create_task(_dialer(quick, sessionmaker, carrier).run(stop))
    await asyncio.wait_for(carrier.dialed.wait(), 10)
    carrier.dialed.clear()
    # The batch statement reads the do-not-call list: held here, it waits until stopped.
    blocker = sessionmaker()
    await blocker.execute(text("LOCK TABLE do_not_call IN ACCESS EXCLUSIVE MODE"))
    async with sessionmaker() as session:
        contact = await make_contact(session, ("+8613800000002",))
        await make_callback(session, camp, contact, due_at=utc(2020, 1, 1))
        await session.commit()
    stopped: list[str] = []
    with caplog.at_level(logging.WARNING, logger="voicebot.dialer.loop"):
        async with sessionmaker() as session:
            for _ in range(100):
                waiting = await session.execute(
                    text(
                        "SELECT pg_cancel_backend(pid), query FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                stopped = [query for done, query in waiting if done]
                if stopped:
                    break
                await session.rollback()  # a fresh view of pg_stat_activity
                await asyncio.sleep(0.05)
        await blocker.rollback()
        await blocker.close()
        await asyncio.wait_for(carrier.dialed.wait(), 10)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    [statement] = stopped
    assert "FOR UPDATE SKIP LOCKED" in statement  # gate.lock_and_screen's, sent to asyncpg
    assert carrier.dialed_numbers() == ["+8613800000001", "+8613800000002"]
    [failed] = [r.getMessage() for r in caplog.records if "round failed" in r.getMessage()]
    assert failed.startswith("dialer round failed (QueryCanceledError: canceling statement")


@pytest.mark.parametrize("change", ["paused", "full"])
async def test_a_campaign_changed_while_pacing_gets_its_callbacks_back(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], change: str
) -> None:
    """Paused, or its slots taken by another dialer, while this one waited for tokens: what
    is not dialed goes back (unchanged when paused, after a back-off when full)."""
    async with sessionmaker() as session:
        camp = await make_campaign(session, concurrency_limit=5)
        for _ in range(3):
            await make_callback(session, camp, await make_contact(session), due_at=NOW)
        await session.commit()
    slow = settings.model_copy(update={"carrier_calls_per_second": 2.0})  # burst of 2
    carrier = RecordingCarrier()
    dialing = asyncio.create_task(_dialer(slow, sessionmaker, carrier).run_once(NOW))
    await asyncio.wait_for(carrier.dialed.wait(), 5)
    async with sessionmaker() as session:
        values = {"status": "paused"} if change == "paused" else {"live_calls": 5}
        await session.execute(update(Campaign).values(**values))
        await session.commit()
    assert await asyncio.wait_for(dialing, 10) == 2
    [left] = [c for c in (await _callbacks(sessionmaker)).values() if c.status != "dialed"]
    assert (left.status, left.claimed_by) == ("pending", None)
    if change == "paused":
        assert (left.due_at, left.deferred_reason) == (NOW, None)
    else:
        assert left.deferred_reason == "concurrency" and left.due_at > NOW
