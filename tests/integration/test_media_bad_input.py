"""Bad input on a media stream ends that call cleanly, with the error recorded on the call, the
transcript so far kept and the call hung up; a call running beside it is untouched."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    RecordingCarrier,
    TwilioSide,
    answer,
    call_settings,
    seed_call,
    serve,
    shared_speech,
)
from voicebot.app import create_app
from voicebot.db.models import Call, TranscriptTurn
from voicebot.db.session import make_engine, make_sessionmaker


@pytest.fixture
async def maker(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def _media(twilio: TwilioSide, payload: str) -> str:
    return json.dumps(
        {"event": "media", "streamSid": twilio.frames.stream_sid, "media": {"payload": payload}}
    )


async def _send(twilio: TwilioSide, text: str) -> None:
    await twilio.ws.send(text)


async def _drop(twilio: TwilioSide) -> None:
    twilio.ws.transport.abort()  # the TCP connection just goes away: no stop, no close frame


BAD_INPUT: dict[str, tuple[str, Callable[[TwilioSide], Awaitable[None]]]] = {
    "invalid base64": ("bad_message", lambda t: _send(t, _media(t, "not*base64!"))),
    "unknown event": (
        "bad_message",
        lambda t: _send(t, json.dumps({"event": "dance", "streamSid": t.frames.stream_sid})),
    ),
    "not JSON": ("bad_message", lambda t: _send(t, "hello")),
    "oversized frame": (
        "bad_message",
        lambda t: _send(t, _media(t, base64.b64encode(b"\xff" * 20_000).decode())),
    ),
    "start again": ("out_of_order", lambda t: _send(t, t.frames.start({}))),
    "binary frame": ("bad_frame", lambda t: t.ws.send(b"\x00\x01")),
    "unknown mark": ("unknown_mark", lambda t: _send(t, t.frames.mark("p99.nowhere"))),
    "socket drop": ("stream_dropped", _drop),
}


async def test_bad_input_ends_only_its_own_call(
    pg_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    carrier = RecordingCarrier()
    sids = {name: f"CA{n:032x}" for n, name in enumerate([*BAD_INPUT, "bystander"], start=1)}
    call_ids = {
        name: await seed_call(maker, e164=f"+8210777700{n:02d}", carrier_sid=sid)
        for n, (name, sid) in enumerate(sids.items(), start=1)
    }

    def make(base: str) -> FastAPI:
        settings = call_settings(pg_url, public_base_url=base)
        return create_app(settings, carrier=carrier, speech=shared_speech())

    async def victim(base: str, name: str) -> int | None:
        _, stream = await answer(base, call_ids[name], sids[name])
        assert stream.url is not None
        async with TwilioSide.open(stream.url, sids[name]) as twilio:
            await twilio.start(stream.parameters)
            assert json.loads(await twilio.receive())["event"] == "media"
            await twilio.ws.send(twilio.frames.media(b"\xff" * 160))
            await BAD_INPUT[name][1](twilio)
            if name == "socket drop":
                return None
            code, _ = await twilio.closed()
            return code

    async with serve(make) as base:
        _, stream = await answer(base, call_ids["bystander"], sids["bystander"])
        assert stream.url is not None
        async with TwilioSide.open(stream.url, sids["bystander"]) as bystander:
            await bystander.start(stream.parameters)
            assert json.loads(await bystander.receive())["event"] == "media"
            codes = await asyncio.gather(*(victim(base, name) for name in BAD_INPUT))
            # Every other stream has failed; this one still talks: "yes" by keypad, and the
            # bot asks the next question (a mark naming the next state comes after its audio).
            await bystander.ws.send(bystander.frames.dtmf("1"))
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await bystander.receive())
                    if message["event"] == "mark" and "confirm_phone" in message["mark"]["name"]:
                        break
            await bystander.ws.send(bystander.frames.stop())
            code, _ = await bystander.closed()
        assert code == 1000
        closed = dict(zip(BAD_INPUT, codes, strict=True))
        del closed["socket drop"]
        assert set(closed.values()) <= {1002, 1003, 1007}, closed  # protocol, data, payload
        # Let the dropped stream's session notice and finish its records.
        for _ in range(200):
            if await _ended(maker, call_ids["socket drop"]):
                break
            await asyncio.sleep(0.05)

    async with maker() as session:
        calls = {name: await session.get(Call, call_id) for name, call_id in call_ids.items()}
        spoken = set(
            await session.scalars(
                select(TranscriptTurn.call_id).where(TranscriptTurn.speaker == "bot")
            )
        )
    for name, (error, _) in BAD_INPUT.items():
        call = calls[name]
        assert call is not None
        assert call.stream_error is not None and call.stream_error.startswith(error), (
            name,
            call.stream_error,
        )
        assert call.end_state == "stream_error", name
        assert call.id in spoken, name  # the transcript so far was kept
        assert sids[name] in carrier.hung_up, name
    bystander_call = calls["bystander"]
    assert bystander_call is not None
    assert bystander_call.stream_error is None
    assert bystander_call.end_state == "hung_up"
    assert bystander_call.conversed is True  # it confirmed identity by keypad
    assert sids["bystander"] not in carrier.hung_up


async def _ended(maker: async_sessionmaker[AsyncSession], call_id: int) -> bool:
    async with maker() as session:
        call = await session.get(Call, call_id)
    return call is not None and call.end_state is not None
