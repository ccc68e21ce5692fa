"""With asynchronous answering-machine detection the bot holds its first words until Twilio's
verdict arrives on the AMD webhook: a person then hears the greeting; a machine never hears the
bot (its long greeting cannot use up the dialog's reprompts), and the campaign's machine action
(here: hang up) ends the call. Real uvicorn, a raw Twilio-side websocket, signed webhooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    RecordingCarrier,
    TwilioSide,
    answer,
    call_settings,
    seed_call,
    serve,
    shared_speech,
)
from voicebot.app import create_app
from voicebot.db.models import Campaign
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature

pytestmark = pytest.mark.slow


@pytest.fixture
async def maker(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _post_amd(base: str, call_id: int, call_sid: str, answered_by: str) -> None:
    url = f"{base}/webhooks/twilio/amd?call_id={call_id}"
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "AnsweredBy": answered_by,
        "MachineDetectionDuration": "2400",
    }
    signature = TwilioSignature(AUTH_TOKEN).sign(url, form)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers={SIGNATURE_HEADER: signature})
    assert response.status_code == 200, response.text


async def _bot_audio(side: TwilioSide, within: float) -> bool:
    """Whether the bot sends any audio within ``within`` seconds."""
    try:
        while True:
            message = json.loads(await side.receive(wait=within))
            if message.get("event") == "media":
                return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("verdict", ["human", "machine_start"])
async def test_the_bot_waits_for_the_machine_detection_verdict(
    pg_url: str, maker: async_sessionmaker[AsyncSession], verdict: str
) -> None:
    call_sid = "CA" + ("4d" if verdict == "human" else "5e") * 16
    call_id = await seed_call(maker, e164="+821055500001", carrier_sid=call_sid)
    async with maker() as session:
        await session.execute(
            update(Campaign).values(machine_detection="Enable", machine_action="hang_up")
        )
        await session.commit()
    carrier = RecordingCarrier()

    def make(base: str) -> FastAPI:
        settings = call_settings(pg_url, public_base_url=base)
        return create_app(settings, carrier=carrier, speech=shared_speech())

    async with serve(make) as base:
        response, stream = await answer(base, call_id, call_sid)
        assert response.status_code == 200 and stream.url is not None
        async with TwilioSide.open(stream.url, call_sid) as side:
            await side.start(stream.parameters)
            # No verdict yet: the bot says nothing, however long the other end talks.
            assert not await _bot_audio(side, within=1.5)
            await _post_amd(base, call_id, call_sid, verdict)
            spoke = await _bot_audio(side, within=5.0)
            await side.ws.send(side.frames.stop())
    if verdict == "human":
        assert spoke and carrier.hung_up == []
    else:
        assert not spoke and carrier.hung_up == [call_sid]
