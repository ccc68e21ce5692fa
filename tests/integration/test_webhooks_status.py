"""POST /webhooks/twilio/status through the real app: what an accepted event changes, on both
databases — idempotency, ordering, and events for calls this service does not know."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.telephony_support import seed_dialed_call
from tests.integration.webhook_support import (
    SID,
    count_rows,
    load_call,
    post_status,
    status_form,
    webhook_client,
)
from voicebot.config import Settings
from voicebot.db.models import CallBack, CarrierEvent


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client(settings) as http:
        yield http


async def test_a_signed_sequence_moves_the_call_to_its_disposition(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_dialed_call(sessionmaker, persona="busy")
    for seq, status in enumerate(["initiated", "ringing"]):
        response = await post_status(client, call_id, status_form(status, seq))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        assert "<Response/>" in response.text
    assert (await load_call(sessionmaker, call_id)).status == "ringing"

    response = await post_status(client, call_id, status_form("busy", 2, CallDuration="0"))
    assert response.status_code == 200
    call = await load_call(sessionmaker, call_id)
    assert (call.status, call.disposition, call.carrier_sid) == ("busy", "busy", SID)
    async with sessionmaker() as session:
        callbacks = (await session.scalars(select(CallBack).order_by(CallBack.id))).all()
    assert [(c.status, c.attempt) for c in callbacks] == [("done", 1), ("pending", 2)]
    assert await count_rows(sessionmaker, CarrierEvent) == 3


async def test_a_repeated_event_changes_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_dialed_call(sessionmaker, persona="no_answer")
    final = status_form("no-answer", 2, CallDuration="0")
    first = await post_status(client, call_id, final)
    again = await post_status(client, call_id, final)
    assert (first.status_code, again.status_code) == (200, 200)
    assert await count_rows(sessionmaker, CarrierEvent) == 1
    async with sessionmaker() as session:
        statuses = sorted((await session.scalars(select(CallBack.status))).all())
    assert statuses == ["done", "pending"]  # one retry, not two
    assert (await load_call(sessionmaker, call_id)).disposition == "no_answer"


async def test_events_out_of_order_never_move_a_call_backwards(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_dialed_call(sessionmaker)
    await post_status(client, call_id, status_form("in-progress", 2, AnsweredBy="human"))
    response = await post_status(client, call_id, status_form("ringing", 1))
    assert response.status_code == 200
    assert (await load_call(sessionmaker, call_id)).status == "in-progress"

    await post_status(
        client, call_id, status_form("completed", 3, AnsweredBy="human", CallDuration="95")
    )
    await post_status(client, call_id, status_form("initiated", 0))
    call = await load_call(sessionmaker, call_id)
    assert (call.status, call.disposition, call.duration_seconds) == ("completed", "answered", 95)
    assert call.conversed
    assert await count_rows(sessionmaker, CarrierEvent) == 4


async def test_an_event_for_an_unknown_call_is_kept_and_acknowledged(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await post_status(client, 999_999, status_form("completed", 3, CallDuration="12"))
    assert response.status_code == 200
    async with sessionmaker() as session:
        event = (await session.scalars(select(CarrierEvent))).one()
    assert (event.call_sid, event.call_id) == (SID, None)
    assert event.payload["CallStatus"] == "completed"
