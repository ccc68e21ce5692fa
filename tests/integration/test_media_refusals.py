"""A media stream must present its call's token on ``start``: a missing, forged, expired or
reused token, or audio before ``start``, closes the socket before any audio is processed, and the
refusal is recorded on the call it named."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
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
from voicebot.calls.tokens import issue_stream_token
from voicebot.db.models import Call
from voicebot.db.session import make_engine, make_sessionmaker

SID = "CA" + "3c" * 16
POLICY_VIOLATION = 1008


@pytest.fixture
async def maker(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def _app(database_url: str) -> Callable[[str], FastAPI]:
    def make(base: str) -> FastAPI:
        settings = call_settings(database_url, public_base_url=base)
        return create_app(settings, carrier=RecordingCarrier(), speech=shared_speech())

    return make


async def _stream_error(maker: async_sessionmaker[AsyncSession], call_id: int) -> str | None:
    async with maker() as session:
        call = await session.get(Call, call_id)
    assert call is not None
    return call.stream_error


TOKENS: dict[str, Callable[[int], str | None]] = {
    "token_missing": lambda call_id: None,
    "token_forged": lambda call_id: issue_stream_token(
        AUTH_TOKEN, call_id + 1, now=datetime.now(UTC), ttl=timedelta(seconds=30)
    ),
    "token_forged ": lambda call_id: issue_stream_token(  # another account's key
        "another-account-token", call_id, now=datetime.now(UTC), ttl=timedelta(seconds=30)
    ),
    "token_expired": lambda call_id: issue_stream_token(
        AUTH_TOKEN, call_id, now=datetime.now(UTC) - timedelta(minutes=5), ttl=timedelta(seconds=30)
    ),
    "token_malformed": lambda call_id: "not-a-token",
}


async def test_streams_without_their_calls_token_are_refused(
    pg_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    calls = {
        problem: await seed_call(maker, e164=f"+8210555500{n:02d}")
        for n, problem in enumerate(TOKENS, start=10)
    }
    async with serve(_app(pg_url)) as base:
        url = base.replace("http://", "ws://") + "/media/twilio"
        for problem, call_id in calls.items():
            parameters = {"call_id": str(call_id)}
            presented = TOKENS[problem](call_id)
            if presented is not None:
                parameters["token"] = presented
            async with TwilioSide.open(url, SID) as twilio:
                await twilio.start(parameters)
                await twilio.ws.send(twilio.frames.media(b"\xff" * 160))
                code, messages = await twilio.closed()
            # Closed before a single prompt frame went out.
            assert (code, messages) == (POLICY_VIOLATION, 0), problem
    for problem, call_id in calls.items():
        error = await _stream_error(maker, call_id)
        assert error is not None and error.startswith(problem.strip()), (problem, error)


async def test_a_second_stream_for_a_call_is_refused_and_the_first_goes_on(
    pg_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_call(maker, e164="+821055550002", carrier_sid=SID)
    async with serve(_app(pg_url)) as base:
        _, stream = await answer(base, call_id, SID)
        assert stream.url is not None
        async with TwilioSide.open(stream.url, SID) as first:
            await first.start(stream.parameters)
            assert json.loads(await first.receive())["event"] == "media"
            async with TwilioSide.open(stream.url, SID) as second:
                await second.start(stream.parameters)
                code, messages = await second.closed()
            assert (code, messages) == (POLICY_VIOLATION, 0)
            # The first stream still carries the call.
            for _ in range(20):
                assert json.loads(await first.receive())["event"] == "media"
            await first.ws.send(first.frames.stop())
            code, _ = await first.closed()
    assert code == 1000
    error = await _stream_error(maker, call_id)
    assert error is not None and error.startswith("stream_reused")


async def test_audio_before_start_is_refused(
    pg_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_call(maker, e164="+821055550003", carrier_sid=SID)
    async with serve(_app(pg_url)) as base:
        _, stream = await answer(base, call_id, SID)
        assert stream.url is not None
        async with TwilioSide.open(stream.url, SID) as twilio:
            await twilio.ws.send(twilio.frames.connected())
            await twilio.ws.send(twilio.frames.media(b"\xff" * 160))
            code, messages = await twilio.closed()
    assert (code, messages) == (1002, 0)
    # Nothing named the call yet: it keeps no stream and no error.
    async with maker() as session:
        call = await session.get(Call, call_id)
    assert call is not None and call.stream_sid is None and call.stream_error is None
