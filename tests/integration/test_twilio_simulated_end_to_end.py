"""Answering machines and recordings end to end over real HTTP (uvicorn): the simulated carrier
posts Twilio's signed status, asynchronous-AMD and recording callbacks; the service hangs up on
the machine through the carrier and stores the recording on the call."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.telephony_support import seed_dialed_call, serve
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import Call, Campaign, CarrierEvent
from voicebot.domain.campaigns import MachineDetection
from voicebot.telephony.carrier import CallOptions, DialRequest
from voicebot.telephony.simulated import SimulatedCarrier


async def _wait(maker: async_sessionmaker[AsyncSession], call_ids: list[int]) -> list[Call]:
    """Until every call has its disposition and its recording (both calls are answered)."""
    for _ in range(200):
        async with maker() as session:
            calls = list(await session.scalars(select(Call).where(Call.id.in_(call_ids))))
        done = all(c.disposition is not None for c in calls)
        if done and all(c.recording_sid is not None for c in calls):
            return calls
        await asyncio.sleep(0.05)
    raise AssertionError(f"calls still live: {[(c.id, c.status) for c in calls]}")


async def test_a_machine_is_hung_up_on_and_a_person_is_recorded(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    numbers = {"answers": "+8613800000101", "voicemail": "+8613800000102"}
    call_ids = {
        persona: await seed_dialed_call(sessionmaker, persona=persona, e164=e164)
        for persona, e164 in numbers.items()
    }
    async with sessionmaker() as session:
        await session.execute(
            update(Campaign).values(
                machine_detection="Enable", machine_action="hang_up", record_calls=True
            )
        )
        await session.commit()
    service = settings.model_copy(
        update={
            "twilio_auth_token": SecretStr("e2e-amd-token"),
            "simulated_ring_seconds": 0.05,
            # Long enough that the machine is hung up on before its message would end.
            "simulated_talk_seconds": 1.5,
        }
    )
    carrier = SimulatedCarrier(service)

    def make_app(base: str) -> FastAPI:
        public = service.model_copy(update={"public_base_url": base})
        return create_app(public, carrier=carrier, run_dialer=False)

    options = CallOptions(machine_detection=MachineDetection.ENABLE, record=True)
    try:
        async with serve(make_app) as base:
            for persona, call_id in call_ids.items():
                hooks = f"{base}/webhooks/twilio"
                await carrier.place_call(
                    DialRequest(
                        call_id=call_id,
                        to=numbers[persona],
                        from_=None,
                        answer_url=f"{hooks}/answer?call_id={call_id}",
                        status_callback_url=f"{hooks}/status?call_id={call_id}",
                        metadata={"persona": persona},
                        options=options,
                        amd_callback_url=f"{hooks}/amd?call_id={call_id}",
                        recording_callback_url=f"{hooks}/recording?call_id={call_id}",
                    )
                )
            calls = {c.id: c for c in await _wait(sessionmaker, list(call_ids.values()))}
    finally:
        await carrier.aclose()

    machine = calls[call_ids["voicemail"]]
    assert (machine.status, machine.disposition, machine.answered_by) == (
        "completed",
        "voicemail",
        "machine_end_beep",
    )
    # Hung up by the service at once (the greeting and message would have lasted 18 s); like
    # Twilio, the carrier recorded what it heard from the answer on.
    assert machine.duration_seconds == 1
    assert machine.recording_duration_seconds == 1

    person = calls[call_ids["answers"]]
    assert (person.disposition, person.answered_by) == ("answered", "human")
    assert person.recording_sid is not None and person.recording_sid.startswith("RE")
    assert person.recording_url == (
        f"https://api.twilio.com/2010-04-01/Accounts/{service.twilio_account_sid}/Recordings/"
        f"{person.recording_sid}"
    )
    assert person.recording_duration_seconds == person.duration_seconds
    async with sessionmaker() as session:
        kinds = sorted(
            (event.call_id == machine.id, event.kind)
            for event in await session.scalars(
                select(CarrierEvent).where(CarrierEvent.kind != "status")
            )
        )
    assert kinds == [(False, "amd"), (False, "recording"), (True, "amd"), (True, "recording")]
