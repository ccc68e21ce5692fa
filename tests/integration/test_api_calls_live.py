"""A real Korean call (simulated carrier over uvicorn, eSpeak borrower, Vosk, the dialog) read
back through the results API: its timeline, transcript and promise; and the turn latency and
recognition real-time factor it produced in /metrics."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    KO_DIALOG,
    call_settings,
    seed_call,
    serve,
    shared_speech,
)
from voicebot.app import create_app
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Call
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.domain.types import Role
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated import SimulatedCarrier
from voicebot.telephony.simulated_voice import SimulatedVoice

NUMBER = "+821088880077"


def _count(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_live_call_reads_back_with_its_transcript_and_metrics(pg_url: str) -> None:
    engine = make_engine(pg_url)
    maker = make_sessionmaker(engine)
    try:
        call_id = await seed_call(maker, e164=NUMBER, persona="answers:promise")
        async with maker() as session:
            key = create_api_key(session, role=Role.ANALYST, name="analyst")
            await session.commit()
        latencies = _count("voicebot_turn_latency_seconds_count")
        factors = _count("voicebot_recognition_real_time_factor_count")
        carriers: list[SimulatedCarrier] = []
        apps: list[FastAPI] = []

        def make(base: str) -> FastAPI:
            settings = call_settings(pg_url, public_base_url=base)
            models, synthesizer = shared_speech()
            voice = SimulatedVoice(settings, synthesizer=synthesizer, time_scale=3.0)
            carriers.append(SimulatedCarrier(settings, voice=voice))
            apps.append(create_app(settings, carrier=carriers[0], speech=(models, synthesizer)))
            return apps[0]

        async with serve(make) as base:
            await apps[0].state.calls.warm_up([KO_DIALOG])
            try:
                await carriers[0].place_call(
                    DialRequest(
                        call_id=call_id,
                        to=NUMBER,
                        from_=None,
                        answer_url=f"{base}/webhooks/twilio/answer?call_id={call_id}",
                        status_callback_url=f"{base}/webhooks/twilio/status?call_id={call_id}",
                        metadata={"persona": "answers:promise"},
                    )
                )
                await _finished(maker, call_id)
            finally:
                await carriers[0].aclose()
            async with httpx.AsyncClient(base_url=base) as http:
                response = await http.get(
                    f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {key}"}
                )
    finally:
        await engine.dispose()
    assert response.status_code == 200, response.text
    call = response.json()
    assert call["to_number"] == "+8210****0077"
    assert call["disposition"] == "answered"
    statuses = [e["call_status"] for e in call["events"]]
    assert statuses[-1] == "completed" and "in-progress" in statuses
    speakers = {t["speaker"] for t in call["transcript"]}
    assert speakers == {"bot", "borrower"}
    assert [o["promise_status"] for o in call["outcomes"] if o["type"] == "promise"] == ["pending"]
    assert _count("voicebot_turn_latency_seconds_count") > latencies
    assert _count("voicebot_recognition_real_time_factor_count") > factors


async def _finished(maker: async_sessionmaker[AsyncSession], call_id: int) -> None:
    for _ in range(1200):
        async with maker() as session:
            call = await session.scalar(select(Call).where(Call.id == call_id))
        if call is not None and call.disposition is not None and call.end_state is not None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} still going")
