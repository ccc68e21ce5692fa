"""The dialer's housekeeping on both databases: campaigns complete when their work is done, and
calls whose final webhook never came are ended so their campaign's slot is not lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.dialer_rows import (
    RecordingCarrier,
    make_call,
    make_callback,
    make_campaign,
    make_contact,
    utc,
)
from voicebot.config import Settings
from voicebot.db.models import AuditEntry, Call, CallBack, Campaign
from voicebot.dialer.housekeeping import complete_finished_campaigns, end_stale_calls
from voicebot.dialer.lifecycle import StatusEvent, record_status_event
from voicebot.dialer.loop import Dialer

NOW = utc(2026, 3, 10, 4, 0)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"carrier_calls_per_second": 10_000.0})


async def _campaign(maker: async_sessionmaker[AsyncSession], campaign_id: int) -> Campaign:
    async with maker() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


async def test_a_campaign_completes_when_its_last_call_ends_and_not_before(
    fast: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(session, retry_delays={})
        contact = await make_contact(session)
        await make_callback(session, campaign, contact, due_at=NOW)
        empty = await make_campaign(session)  # no contacts yet: must stay running
        await session.commit()
    dialer = Dialer(fast.model_copy(update={"dialer_id": "d1"}), sessionmaker, RecordingCarrier())
    assert await dialer.run_once(NOW) == 1

    async with sessionmaker() as session:
        # Dialed, the call still live: not done yet.
        assert await complete_finished_campaigns(session, now=NOW, actor="test") == []
        call = (await session.scalars(select(Call))).one()
    async with sessionmaker() as session:
        for status in ("ringing", "in-progress", "completed"):
            event = StatusEvent(
                call_sid=f"CA{call.id:032d}",
                call_status=status,
                call_id=call.id,
                duration_seconds=95 if status == "completed" else None,
            )
            assert await record_status_event(session, event, now=NOW + timedelta(seconds=30))
    later = NOW + timedelta(minutes=5)
    # The next housekeeping round of any dialer completes it, once.
    other = Dialer(fast.model_copy(update={"dialer_id": "d2"}), sessionmaker, RecordingCarrier())
    assert await other.run_once(later) == 0
    done = await _campaign(sessionmaker, campaign.id)
    assert (done.status, done.finished_at) == ("completed", later)
    assert (await _campaign(sessionmaker, empty.id)).status == "running"
    async with sessionmaker() as session:
        assert await complete_finished_campaigns(session, now=later, actor="test") == []
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.target_id == str(campaign.id))
            )
        )
    assert [(e.actor, e.action) for e in entries] == [("dialer:d2", "campaign.complete")]


async def test_a_retry_due_later_keeps_the_campaign_running(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(session)
        contact = await make_contact(session)
        await make_callback(session, campaign, contact, due_at=NOW, status="done")
        await make_callback(session, campaign, contact, due_at=NOW + timedelta(days=2))
        await session.commit()
    async with sessionmaker() as session:
        assert await complete_finished_campaigns(session, now=NOW, actor="test") == []
    assert (await _campaign(sessionmaker, campaign.id)).status == "running"


async def test_a_call_whose_final_webhook_never_came_ends_and_frees_its_slot(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(session, retry_delays={"failed": 600})
        contact = await make_contact(session)
        lost = await make_call(
            session,
            await make_callback(session, campaign, contact, due_at=NOW),
            contact,
            created_at=NOW,
            status="in-progress",
            carrier_sid="CA" + "1" * 32,
        )
        other = await make_contact(session, ("+8613800000002",))
        recent = await make_call(
            session,
            await make_callback(session, campaign, other, due_at=NOW),
            other,
            created_at=NOW + timedelta(hours=4),
            status="ringing",
            carrier_sid="CA" + "2" * 32,
        )
        await session.commit()
    at = NOW + timedelta(hours=5)
    assert await end_stale_calls(sessionmaker, now=at, older_than=timedelta(hours=4)) == 1
    # Ending is idempotent: a second dialer finds nothing left.
    assert await end_stale_calls(sessionmaker, now=at, older_than=timedelta(hours=4)) == 0

    async with sessionmaker() as session:
        calls = {c.id: c for c in await session.scalars(select(Call))}
        retries = list(await session.scalars(select(CallBack).where(CallBack.status == "pending")))
    assert (calls[lost.id].status, calls[lost.id].disposition) == ("failed", "failed")
    assert "no final status from the carrier" in (calls[lost.id].error_message or "")
    assert calls[recent.id].status == "ringing"
    assert (await _campaign(sessionmaker, campaign.id)).live_calls == 1
    assert [(r.contact_id, r.attempt, r.due_at) for r in retries] == [
        (contact.id, 2, at + timedelta(seconds=600))
    ]
