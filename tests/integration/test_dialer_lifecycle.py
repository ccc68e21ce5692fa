"""Call lifecycle: status events (repeated, out of order, concurrent) and what follows a call."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from tests.integration.dialer_rows import (
    make_call,
    make_callback,
    make_campaign,
    make_contact,
    utc,
)
from voicebot.db.models import (
    Call,
    CallBack,
    Campaign,
    CarrierEvent,
    Contact,
    ContactPhone,
    DoNotCall,
)
from voicebot.dialer.lifecycle import StatusEvent, fail_call, record_status_event, schedule_callback
from voicebot.dialer.optout import opt_out

NOW = utc(2026, 3, 10, 4, 0)
SID = "CA" + "1" * 32


async def _live_call(
    maker: async_sessionmaker[AsyncSession],
    *,
    phones: tuple[str, ...] = ("+8613800000001",),
    attempt: int = 1,
    sid: str | None = SID,
    **campaign: object,
) -> tuple[int, int, int]:
    """A campaign, a contact, a dialed call-back and its live call: (campaign, callback, call)."""
    async with maker() as session:
        camp = await make_campaign(session, **campaign)
        contact = await make_contact(session, phones)
        callback = await make_callback(session, camp, contact, due_at=NOW, attempt=attempt)
        call = await make_call(session, callback, contact, created_at=NOW, carrier_sid=sid)
        await session.commit()
        return camp.id, callback.id, call.id


def _event(
    call_id: int | None, status: str, seq: int | None = None, **extra: object
) -> StatusEvent:
    payload = {"CallSid": SID, "CallStatus": status}
    payload.update({k: str(v) for k, v in extra.items() if k[0].isupper()})
    return StatusEvent(
        call_sid=SID,
        call_status=status,
        call_id=call_id,
        sequence_number=seq,
        answered_by=extra.get("answered_by"),  # type: ignore[arg-type]
        duration_seconds=extra.get("duration"),  # type: ignore[arg-type]
        payload=payload,
    )


async def _send(maker: async_sessionmaker[AsyncSession], event: StatusEvent, at: int = 0) -> bool:
    async with maker() as session:
        return await record_status_event(session, event, now=NOW + timedelta(seconds=at))


async def _callbacks(maker: async_sessionmaker[AsyncSession]) -> list[CallBack]:
    async with maker() as session:
        return list(await session.scalars(select(CallBack).order_by(CallBack.id)))


async def test_answered_call_runs_its_course_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, callback_id, call_id = await _live_call(sessionmaker, sid=None)
    assert await _send(sessionmaker, _event(call_id, "initiated", 0))
    assert await _send(sessionmaker, _event(call_id, "ringing", 1), at=1)
    assert await _send(sessionmaker, _event(call_id, "in-progress", 2, answered_by="human"), at=5)
    done = _event(call_id, "completed", 3, answered_by="human", duration=60)
    assert await _send(sessionmaker, done, at=65)
    assert not await _send(sessionmaker, done, at=66)

    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        camp = await session.get(Campaign, camp_id)
        events = await session.scalar(select(func.count()).select_from(CarrierEvent))
    assert call is not None and camp is not None
    assert call.carrier_sid == SID  # attached from the first event
    assert (call.status, call.disposition, call.conversed) == ("completed", "answered", True)
    assert call.answered_at == NOW + timedelta(seconds=5)
    assert call.ended_at == NOW + timedelta(seconds=65)
    assert call.duration_seconds == 60 and call.answered_by == "human"
    assert camp.live_calls == 0
    assert events == 4
    callbacks = await _callbacks(sessionmaker)
    assert [(c.id, c.status) for c in callbacks] == [(callback_id, "done")]


async def test_late_and_repeated_events_never_move_a_call_back(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, _, call_id = await _live_call(sessionmaker)
    assert await _send(sessionmaker, _event(call_id, "no-answer", 4, duration=0), at=30)
    assert await _send(sessionmaker, _event(call_id, "ringing", 2), at=31)
    # A second final event with another sequence number is stored but applies nothing.
    assert await _send(sessionmaker, _event(call_id, "no-answer", 5, duration=0), at=32)
    assert await _send(sessionmaker, _event(call_id, "completed", 6, duration=40), at=33)

    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        camp = await session.get(Campaign, camp_id)
    assert call is not None and camp is not None
    assert (call.status, call.disposition, call.conversed) == ("no-answer", "no_answer", False)
    assert camp.live_calls == 0
    callbacks = await _callbacks(sessionmaker)
    assert [c.status for c in callbacks] == ["done", "pending"]
    retry = callbacks[1]
    assert (retry.attempt, retry.reason) == (2, "retry")
    assert retry.due_at == NOW + timedelta(seconds=30) + timedelta(hours=2)


async def test_concurrent_final_events_apply_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, _, call_id = await _live_call(sessionmaker)
    busy = [_event(call_id, "busy", seq) for seq in (3, 3, 4, 4, 5)]
    stored = await asyncio.gather(*(_send(sessionmaker, e, at=10) for e in busy))
    assert sorted(stored) == [False, False, True, True, True]
    async with sessionmaker() as session:
        camp = await session.get(Campaign, camp_id)
    assert camp is not None and camp.live_calls == 0
    assert [c.status for c in await _callbacks(sessionmaker)] == ["done", "pending"]


async def test_event_found_by_sid_without_call_id_and_unknown_calls_are_kept(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, _, call_id = await _live_call(sessionmaker)
    assert await _send(sessionmaker, _event(None, "busy", 1, duration=0))
    stray = StatusEvent(call_sid="CA" + "9" * 32, call_status="completed", call_id=999_999)
    assert await _send(sessionmaker, stray)
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        kept = await session.scalar(
            select(CarrierEvent.call_id).where(CarrierEvent.call_sid == stray.call_sid)
        )
    assert call is not None and call.disposition == "busy"
    assert kept is None


async def test_an_event_naming_another_calls_row_is_matched_by_its_sid(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A call_id whose row carries another sid must not move that call (one statement tries
    the id first): the event goes to the call its CallSid names."""
    _, _, other_id = await _live_call(sessionmaker, sid="CA" + "2" * 32)
    _, _, call_id = await _live_call(sessionmaker)
    assert await _send(sessionmaker, _event(other_id, "in-progress", 1, answered_by="human"))
    async with sessionmaker() as session:
        other = await session.get(Call, other_id)
        call = await session.get(Call, call_id)
        stored = await session.scalar(select(CarrierEvent.call_id))
    assert other is not None and call is not None
    assert (other.status, other.answered_by, other.answered_at) == ("queued", None, None)
    assert (call.status, call.answered_by, call.answered_at) == ("in-progress", "human", NOW)
    assert stored == call_id


async def test_a_late_event_still_fills_in_who_answered_and_the_duration(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, _, call_id = await _live_call(sessionmaker)
    assert await _send(sessionmaker, _event(call_id, "in-progress", 2), at=5)
    assert await _send(sessionmaker, _event(call_id, "ringing", 1, answered_by="human"), at=6)
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
    assert call is not None
    assert (call.status, call.answered_by, call.answered_at) == (
        "in-progress",
        "human",
        NOW + timedelta(seconds=5),
    )


async def test_short_human_call_is_hung_up_and_machine_is_voicemail(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, _, hung = await _live_call(sessionmaker, sid="CA" + "2" * 32)
    _, _, machine = await _live_call(sessionmaker, sid="CA" + "3" * 32)
    async with sessionmaker() as session:
        await record_status_event(
            session,
            StatusEvent("CA" + "2" * 32, "completed", hung, "human", 2, 3),
            now=NOW,
        )
    async with sessionmaker() as session:
        await record_status_event(
            session,
            StatusEvent("CA" + "3" * 32, "completed", machine, "machine_end_beep", 18, 3),
            now=NOW,
        )
    async with sessionmaker() as session:
        calls = {c.id: c for c in await session.scalars(select(Call))}
        phones = list(await session.scalars(select(ContactPhone).order_by(ContactPhone.id)))
    assert (calls[hung].disposition, calls[hung].conversed) == ("hung_up", False)
    assert calls[hung].answered_at == NOW - timedelta(seconds=2)
    assert (calls[machine].disposition, calls[machine].conversed) == ("voicemail", False)
    retries = [c for c in await _callbacks(sessionmaker) if c.status == "pending"]
    assert sorted((r.due_at - NOW) for r in retries) == [timedelta(hours=2), timedelta(hours=4)]
    assert [p.consecutive_failures for p in phones] == [0, 0]


async def test_numbers_switch_after_repeated_failures(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Two busy signals on the primary: the third attempt goes to the alternate number."""
    phones = ("+8613800000001", "+8613900000002")
    _, _, call_id = await _live_call(sessionmaker, phones=phones, switch_number_after=2)
    await _send(sessionmaker, _event(call_id, "busy", 1))
    retry = (await _callbacks(sessionmaker))[-1]
    async with sessionmaker() as session:
        contact_phones = list(await session.scalars(select(ContactPhone).order_by(ContactPhone.id)))
        assert retry.phone_id == contact_phones[0].id  # one failure: stay on the primary
        callback = await session.get(CallBack, retry.id)
        contact = await session.get(
            Contact, retry.contact_id, options=[selectinload(Contact.phones)]
        )
        assert callback is not None and contact is not None
        second = await make_call(session, callback, contact, created_at=NOW, carrier_sid="CA2")
        await session.commit()
    await _send(sessionmaker, StatusEvent("CA2", "busy", second.id))
    third = (await _callbacks(sessionmaker))[-1]
    assert (third.attempt, third.phone_id) == (3, contact_phones[1].id)
    async with sessionmaker() as session:
        failures = [
            p.consecutive_failures
            for p in await session.scalars(select(ContactPhone).order_by(ContactPhone.id))
        ]
    assert failures == [2, 0]


async def test_invalid_number_is_never_dialed_again(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    phones = ("+8613800000001", "+8613900000002")
    _, _, call_id = await _live_call(sessionmaker, phones=phones)
    await _send(sessionmaker, _event(call_id, "failed", 1, ErrorCode="21211"))
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        contact_phones = list(await session.scalars(select(ContactPhone).order_by(ContactPhone.id)))
    assert call is not None
    assert (call.disposition, call.error_code) == ("invalid_number", "21211")
    assert [p.status for p in contact_phones] == ["invalid", "valid"]
    assert (await _callbacks(sessionmaker))[-1].phone_id == contact_phones[1].id

    # With no other number, the chain ends.
    _, _, lone = await _live_call(sessionmaker, phones=("+8613700000003",), sid="CA4")
    before = len(await _callbacks(sessionmaker))
    await _send(sessionmaker, StatusEvent("CA4", "failed", lone, payload={"ErrorCode": "21211"}))
    assert len(await _callbacks(sessionmaker)) == before


async def test_max_attempts_end_the_chain(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    _, _, call_id = await _live_call(sessionmaker, attempt=3, max_attempts=3)
    await _send(sessionmaker, _event(call_id, "no-answer", 1))
    assert [c.status for c in await _callbacks(sessionmaker)] == ["done"]


async def test_carrier_refusal_fails_the_call_through_the_same_path(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, _, call_id = await _live_call(sessionmaker, sid=None, retry_delays={"failed": 600})
    async with sessionmaker() as session:
        assert await fail_call(
            session, call_id, error_code="30001", error_message="Queue overflow", now=NOW
        )
    async with sessionmaker() as session:
        assert not await fail_call(session, call_id, error_code="x", error_message="y", now=NOW)
        call = await session.get(Call, call_id)
        camp = await session.get(Campaign, camp_id)
    assert call is not None and camp is not None
    assert (call.status, call.disposition) == ("failed", "failed")
    assert (call.error_code, call.error_message) == ("30001", "Queue overflow")
    assert camp.live_calls == 0
    retry = (await _callbacks(sessionmaker))[-1]
    assert retry.due_at == NOW + timedelta(seconds=600)


async def test_borrower_requested_time_replaces_the_retry(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, _, call_id = await _live_call(sessionmaker, attempt=4, max_attempts=5)
    asked = NOW + timedelta(days=1, hours=3)
    async with sessionmaker() as session:
        new_id = await schedule_callback(session, call_id=call_id, at=asked, now=NOW)
        await session.commit()
    # The borrower hangs up quickly after asking: HUNG_UP would retry, but the request stands.
    await _send(sessionmaker, _event(call_id, "completed", 9, answered_by="human", duration=3))
    callbacks = await _callbacks(sessionmaker)
    assert [(c.status, c.reason) for c in callbacks] == [
        ("done", "initial"),
        ("pending", "borrower_request"),
    ]
    assert (callbacks[1].id, callbacks[1].due_at, callbacks[1].attempt) == (new_id, asked, 1)


async def test_requested_time_moves_an_existing_retry(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    _, _, call_id = await _live_call(sessionmaker)
    await _send(sessionmaker, _event(call_id, "completed", 9, answered_by="human", duration=2))
    asked = NOW + timedelta(hours=30)
    async with sessionmaker() as session:
        await schedule_callback(session, call_id=call_id, at=asked, now=NOW + timedelta(minutes=1))
        await session.commit()
    pending = [c for c in await _callbacks(sessionmaker) if c.status == "pending"]
    assert [(c.due_at, c.reason) for c in pending] == [(asked, "borrower_request")]


async def test_opt_out_reaches_every_campaign_and_spares_other_numbers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    shared = "+8613800000001"
    async with sessionmaker() as session:
        first = await make_campaign(session)
        second = await make_campaign(session)
        only = await make_contact(session, (shared,))
        also = await make_contact(session, (shared,))
        with_alternate = await make_contact(session, (shared, "+8613900000002"))
        bystander = await make_contact(session, ("+8613700000003",))
        ids = [
            (await make_callback(session, camp, who, due_at=NOW)).id
            for camp, who in [
                (first, only),
                (second, also),
                (second, with_alternate),
                (first, bystander),
            ]
        ]
        await session.commit()
    async with sessionmaker() as session:
        await opt_out(session, shared, reason="borrower asked", source="call", now=NOW)
        await session.commit()
    async with sessionmaker() as session:
        await opt_out(session, shared, reason="again", source="api", now=NOW)
        await session.commit()
    statuses = {c.id: c.status for c in await _callbacks(sessionmaker)}
    assert [statuses[i] for i in ids] == ["cancelled", "cancelled", "pending", "pending"]
    async with sessionmaker() as session:
        listed = list(await session.scalars(select(DoNotCall)))
        marked = list(
            await session.scalars(select(ContactPhone.status).where(ContactPhone.e164 == shared))
        )
    assert [(d.e164, d.reason) for d in listed] == [(shared, "borrower asked")]
    assert marked == ["opted_out"] * 3


async def test_retry_skips_a_number_opted_out_during_the_call(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    phones = ("+8613800000001", "+8613900000002")
    _, _, call_id = await _live_call(sessionmaker, phones=phones)
    async with sessionmaker() as session:
        await opt_out(session, phones[0], reason="asked", source="call", now=NOW)
        await session.commit()
    await _send(sessionmaker, _event(call_id, "completed", 5, answered_by="human", duration=1))
    retry = (await _callbacks(sessionmaker))[-1]
    async with sessionmaker() as session:
        target = await session.get(ContactPhone, retry.phone_id)
    assert retry.status == "pending" and target is not None and target.e164 == phones[1]
