"""The simulated carrier over real HTTP: what it posts, how it signs, retries and hangs up."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.integration.telephony_support import free_port, serve
from voicebot.config import Settings
from voicebot.telephony.carrier import CarrierError, DialRequest
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature
from voicebot.telephony.simulated import SimulatedCarrier

TOKEN = "test-token-for-simulated-carrier"


@dataclass
class Received:
    url: str
    fields: dict[str, str]
    signature: str | None


@dataclass
class Receiver:
    """A stand-in for the service: records every callback; can fail the first few."""

    fail_first: int = 0
    events: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def app(self) -> Starlette:
        async def status(request: Request) -> PlainTextResponse:
            if self.fail_first > 0:
                self.fail_first -= 1
                return PlainTextResponse("try later", status_code=503)
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            async with self.arrived:
                self.events.append(
                    Received(str(request.url), fields, request.headers.get(SIGNATURE_HEADER))
                )
                self.arrived.notify_all()
            return PlainTextResponse("<Response/>", media_type="text/xml")

        return Starlette(routes=[Route("/webhooks/twilio/status", status, methods=["POST"])])

    async def wait_final(self, sid: str) -> list[Received]:
        finals = {"completed", "busy", "no-answer", "failed", "canceled"}

        def done() -> bool:
            return any(
                e.fields.get("CallSid") == sid and e.fields.get("CallStatus") in finals
                for e in self.events
            )

        async with asyncio.timeout(5), self.arrived:
            await self.arrived.wait_for(done)
        return [e for e in self.events if e.fields["CallSid"] == sid]

    async def wait_count(self, count: int) -> None:
        async with asyncio.timeout(5), self.arrived:
            await self.arrived.wait_for(lambda: len(self.events) >= count)


class Watch(logging.Handler):
    """Sets an event when a log message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.text in record.getMessage():
            self.seen.set()


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": "sqlite+aiosqlite:///unused.db",
        "twilio_auth_token": TOKEN,
        "simulated_ring_seconds": 0.05,
        "simulated_talk_seconds": 0.1,
        **overrides,
    }
    return Settings.model_validate(values)


def _request(base: str, persona: str, call_id: int = 41, **metadata: str) -> DialRequest:
    return DialRequest(
        call_id=call_id,
        to="+8613812345678",
        from_="+861058000000",
        answer_url=f"{base}/webhooks/twilio/answer?call_id={call_id}",
        status_callback_url=f"{base}/webhooks/twilio/status?call_id={call_id}",
        metadata={"persona": persona, **metadata},
    )


@pytest.fixture
async def receiver() -> Receiver:
    return Receiver()


async def test_an_answered_call_posts_signed_twilio_callbacks_in_order(receiver: Receiver) -> None:
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings())
        try:
            sid = await carrier.place_call(_request(base, "answers"))
            events = await receiver.wait_final(sid)
        finally:
            await carrier.aclose()

    assert sid.startswith("CA") and len(sid) == 34 and int(sid[2:], 16) >= 0
    assert [e.fields["CallStatus"] for e in events] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [e.fields["SequenceNumber"] for e in events] == ["0", "1", "2", "3"]
    verifier = TwilioSignature(TOKEN)
    for event in events:
        assert event.url == f"{base}/webhooks/twilio/status?call_id=41"
        assert verifier.verify(event.url, event.fields, event.signature)
        assert event.fields["AccountSid"].startswith("AC")
        assert event.fields["To"] == "+8613812345678"
        assert event.fields["From"] == "+861058000000"
        assert event.fields["Direction"] == "outbound-api"
        assert event.fields["ApiVersion"] == "2010-04-01"
        assert event.fields["Timestamp"].endswith("+0000")
    completed = events[-1].fields
    assert completed["AnsweredBy"] == "human"
    assert 45 <= int(completed["CallDuration"]) <= 240
    assert "CallDuration" not in events[0].fields


@pytest.mark.parametrize(
    ("persona", "final", "answered_by", "duration"),
    [
        ("hangs_up", "completed", "human", "2"),
        ("voicemail", "completed", "machine_end_beep", "18"),
        ("busy", "busy", None, "0"),
        ("no_answer", "no-answer", None, "0"),
        ("fails", "failed", None, "0"),
    ],
)
async def test_each_persona_ends_as_twilio_would_report_it(
    receiver: Receiver, persona: str, final: str, answered_by: str | None, duration: str
) -> None:
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings())
        try:
            sid = await carrier.place_call(_request(base, persona))
            events = await receiver.wait_final(sid)
        finally:
            await carrier.aclose()
    last = events[-1].fields
    assert last["CallStatus"] == final
    assert last.get("AnsweredBy") == answered_by
    assert last["CallDuration"] == duration


async def test_a_5xx_is_retried_until_it_is_delivered(receiver: Receiver) -> None:
    receiver.fail_first = 2
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings())
        try:
            sid = await carrier.place_call(_request(base, "busy"))
            events = await receiver.wait_final(sid)
        finally:
            await carrier.aclose()
    assert [e.fields["CallStatus"] for e in events] == ["initiated", "ringing", "busy"]


async def test_an_unreachable_service_is_retried_then_given_up_and_logged() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    watch = Watch("undelivered")
    logger = logging.getLogger("voicebot.telephony.simulated")
    logger.addHandler(watch)
    carrier = SimulatedCarrier(_settings(simulated_ring_seconds=0))
    try:
        await carrier.place_call(_request(base, "fails"))
        async with asyncio.timeout(10):
            await watch.seen.wait()
    finally:
        await carrier.aclose()
        logger.removeHandler(watch)
    messages = " ".join(watch.messages)
    assert "after 4 tries" in messages
    assert "+8613812345678" not in messages
    assert "+86138****5678" in messages


async def test_hanging_up_a_ringing_call_cancels_it(receiver: Receiver) -> None:
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings(simulated_ring_seconds=5))
        try:
            sid = await carrier.place_call(_request(base, "answers"))
            await receiver.wait_count(2)
            await carrier.hang_up(sid)
            events = await receiver.wait_final(sid)
        finally:
            await carrier.aclose()
    assert [e.fields["CallStatus"] for e in events] == ["initiated", "ringing", "canceled"]
    assert events[-1].fields["SequenceNumber"] == "2"


async def test_hanging_up_an_answered_call_completes_it(receiver: Receiver) -> None:
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings(simulated_talk_seconds=30))
        try:
            sid = await carrier.place_call(_request(base, "answers"))
            await receiver.wait_count(3)
            await carrier.hang_up(sid)
            await carrier.hang_up(sid)  # a second hang-up changes nothing
            events = await receiver.wait_final(sid)
            await asyncio.sleep(0.1)
        finally:
            await carrier.aclose()
    assert [e.fields["CallStatus"] for e in events] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert events[-1].fields["AnsweredBy"] == "human"
    assert int(events[-1].fields["CallDuration"]) >= 1


async def test_aclose_stops_calls_in_flight(receiver: Receiver) -> None:
    async with serve(lambda _: receiver.app()) as base:
        carrier = SimulatedCarrier(_settings(simulated_ring_seconds=30))
        await carrier.place_call(_request(base, "answers"))
        await receiver.wait_count(2)
        await carrier.aclose()
        await asyncio.sleep(0.1)
    assert [e.fields["CallStatus"] for e in receiver.events] == ["initiated", "ringing"]
    with pytest.raises(CarrierError):
        await carrier.place_call(_request(base, "answers"))


async def test_a_number_that_is_not_e164_is_refused_like_twilio_does() -> None:
    carrier = SimulatedCarrier(_settings())
    try:
        request = _request("http://127.0.0.1:9", "answers")
        bad = DialRequest(
            call_id=1,
            to="13812345678",
            from_=None,
            answer_url=request.answer_url,
            status_callback_url=request.status_callback_url,
        )
        with pytest.raises(CarrierError) as caught:
            await carrier.place_call(bad)
        assert caught.value.code == "21211"
    finally:
        await carrier.aclose()


async def test_every_dial_is_appended_to_the_dial_log(tmp_path: Path, receiver: Receiver) -> None:
    log_path = tmp_path / "dials.jsonl"
    async with serve(lambda _: receiver.app()) as base:
        first = SimulatedCarrier(_settings(simulated_dial_log=str(log_path)))
        second = SimulatedCarrier(_settings(simulated_dial_log=str(log_path)))
        try:
            sids = await asyncio.gather(
                *(
                    carrier.place_call(_request(base, "busy", call_id=n, callback_id=str(100 + n)))
                    for n, carrier in enumerate([first, second, first, second])
                )
            )
            for sid in sids:
                await receiver.wait_final(sid)
        finally:
            await first.aclose()
            await second.aclose()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert sorted(line["sid"] for line in lines) == sorted(sids)
    assert sorted((line["call_id"], line["callback_id"]) for line in lines) == [
        (0, 100),
        (1, 101),
        (2, 102),
        (3, 103),
    ]
    assert {line["to"] for line in lines} == {"+8613812345678"}
