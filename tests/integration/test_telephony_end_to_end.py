"""The simulated carrier calling the real service over real HTTP: each persona's disposition."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.telephony_support import seed_dialed_call, serve
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import Call, CallBack, CarrierEvent
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated import SimulatedCarrier

EXPECTED = {
    "answers": ("completed", "answered", "human"),
    "hangs_up": ("completed", "hung_up", "human"),
    "voicemail": ("completed", "voicemail", "machine_end_beep"),
    "busy": ("busy", "busy", None),
    "no_answer": ("no-answer", "no_answer", None),
    "fails": ("failed", "failed", None),
}


async def _wait_all_final(
    sessionmaker: async_sessionmaker[AsyncSession], call_ids: list[int]
) -> list[Call]:
    for _ in range(200):
        async with sessionmaker() as session:
            calls = list(await session.scalars(select(Call).where(Call.id.in_(call_ids))))
        if all(call.disposition is not None for call in calls):
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"calls still live: {[(c.id, c.status) for c in calls]}")


async def test_every_persona_ends_in_its_disposition_through_real_http(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    numbers = {persona: f"+86138000000{n:02d}" for n, persona in enumerate(EXPECTED)}
    call_ids = {
        persona: await seed_dialed_call(sessionmaker, persona=persona, e164=numbers[persona])
        for persona in EXPECTED
    }
    service_settings = settings.model_copy(
        update={
            "twilio_auth_token": SecretStr("e2e-token"),
            "simulated_ring_seconds": 0.05,
            "simulated_talk_seconds": 0.1,
        }
    )

    def make_app(base: str) -> FastAPI:
        public = service_settings.model_copy(update={"public_base_url": base})
        return create_app(public, run_dialer=False)

    async with serve(make_app) as base:
        carrier = SimulatedCarrier(service_settings)
        try:
            sids = {}
            for persona, call_id in call_ids.items():
                sids[persona] = await carrier.place_call(
                    DialRequest(
                        call_id=call_id,
                        to=numbers[persona],
                        from_=None,
                        answer_url=f"{base}/webhooks/twilio/answer?call_id={call_id}",
                        status_callback_url=f"{base}/webhooks/twilio/status?call_id={call_id}",
                        metadata={"persona": persona},
                    )
                )
            calls = await _wait_all_final(sessionmaker, list(call_ids.values()))
        finally:
            await carrier.aclose()

    by_id = {call.id: call for call in calls}
    for persona, (status, disposition, answered_by) in EXPECTED.items():
        call = by_id[call_ids[persona]]
        assert (call.status, call.disposition, call.answered_by) == (
            status,
            disposition,
            answered_by,
        ), persona
        assert call.carrier_sid == sids[persona]
        assert call.conversed is (persona == "answers")
        assert call.ended_at is not None

    async with sessionmaker() as session:
        retries = {
            cb.contact_id: cb.attempt
            for cb in await session.scalars(select(CallBack).where(CallBack.status == "pending"))
        }
        events = list(await session.scalars(select(CarrierEvent)))
    retried = {p for p in EXPECTED if by_id[call_ids[p]].contact_id in retries}
    assert retried == {"hangs_up", "voicemail", "busy", "no_answer", "fails"}
    assert set(retries.values()) == {2}
    # Picked up: 4 callbacks each; busy and no answer: 3; failed: 2. Each stored once, matched.
    assert len(events) == 3 * 4 + 2 * 3 + 2
    assert all(event.call_id is not None for event in events)
