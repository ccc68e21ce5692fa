"""Helpers for the media-stream and call tests: uvicorn with websockets, seeded Korean calls,
the Korean model loaded once per test process, and a raw Twilio-side client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect

from tests.integration import telephony_support
from voicebot.config import Settings
from voicebot.db.models import Call, CallBack, Campaign, Contact, ContactPhone
from voicebot.speech.recognition import SpeechModels
from voicebot.speech.synthesis import Synthesizer
from voicebot.telephony.media import InboundFrames
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature
from voicebot.telephony.simulated_voice import StreamInstructions, read_twiml

AUTH_TOKEN = "calls-test-token"
ACCOUNT_SID = "AC" + "0" * 32
KO_DIALOG = "car_loan_followup.ko-KR"
AMOUNT_DUE = Decimal("300000.00")
DUE_DATE = date(2030, 1, 15)

_speech: tuple[SpeechModels, Synthesizer] | None = None


def shared_speech() -> tuple[SpeechModels, Synthesizer]:
    """Speech models and a synthesiser shared by every test of this process: the Korean model
    loads once, when the first call needs it, and rendered prompts stay cached."""
    global _speech
    if _speech is None:
        _speech = (SpeechModels(), Synthesizer())
    return _speech


def call_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "dialer_enabled": False,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_account_sid": ACCOUNT_SID,
        "simulated_ring_seconds": 0.02,
    }
    values.update(overrides)
    return Settings(**values)


class RecordingCarrier:
    """Dials nothing; remembers what it was asked to hang up."""

    def __init__(self) -> None:
        self.hung_up: list[str] = []

    async def place_call(self, request: Any) -> str:
        raise AssertionError("these tests place no calls")

    async def hang_up(self, carrier_sid: str) -> None:
        self.hung_up.append(carrier_sid)

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def serve(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """uvicorn (with websockets) on a free loopback port; yields the base URL."""
    # The sans-I/O implementation: uvicorn's "websockets" one is the deprecated legacy API.
    async with telephony_support.serve(make_app, ws="websockets-sansio") as base:
        yield base


async def seed_call(
    sessionmaker: Any,
    *,
    e164: str,
    persona: str = "answers",
    dialog_id: str = KO_DIALOG,
    carrier_sid: str | None = None,
    extra_pending: bool = False,
) -> int:
    """A running ko-KR campaign with one borrower whose call-back was dialed; the call's id.

    ``extra_pending`` adds a later pending call-back for the borrower (an opt-out cancels it).
    """
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        campaign = Campaign(
            name=f"calls {e164}",
            dialog_id=dialog_id,
            status="running",
            live_calls=1,
            started_at=now,
        )
        contact = Contact(
            external_id=f"calls-{e164}",
            name="김민수",
            time_zone="Asia/Seoul",
            loan_id=f"L-{e164}",
            amount_due=AMOUNT_DUE,
            currency="KRW",
            due_date=DUE_DATE,
            fields={"persona": persona},
        )
        contact.phones.append(ContactPhone(position=0, e164=e164))
        session.add_all([campaign, contact])
        await session.flush()
        callback = CallBack(
            campaign_id=campaign.id,
            contact_id=contact.id,
            phone_id=contact.phones[0].id,
            due_at=now,
            status="dialed",
        )
        session.add(callback)
        if extra_pending:
            session.add(
                CallBack(
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    phone_id=contact.phones[0].id,
                    due_at=now,
                    status="pending",
                    reason="retry",
                )
            )
        await session.flush()
        call = Call(
            callback_id=callback.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            phone_id=contact.phones[0].id,
            loan_key=f"L-{e164}",
            attempt=1,
            to_number=e164,
            carrier_sid=carrier_sid,
            status="in-progress" if carrier_sid else "initiating",
            created_at=now,
        )
        session.add(call)
        await session.commit()
        return call.id


async def answer(
    base: str, call_id: int, call_sid: str
) -> tuple[httpx.Response, StreamInstructions]:
    """POST the answer webhook as Twilio does (signed); the response and its stream."""
    url = f"{base}/webhooks/twilio/answer?call_id={call_id}"
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "CallStatus": "in-progress"}
    signature = TwilioSignature(AUTH_TOKEN).sign(url, form)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers={SIGNATURE_HEADER: signature})
    instructions = read_twiml(response.text) if response.status_code == 200 else None
    return response, instructions or StreamInstructions(None, {})


class TwilioSide:
    """A raw media-stream client speaking Twilio's side, message by message."""

    def __init__(self, ws: ClientConnection, call_sid: str) -> None:
        self.ws = ws
        self.frames = InboundFrames("MZ" + call_sid[2:], call_sid, ACCOUNT_SID)
        self.received: list[str] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, call_sid: str) -> AsyncIterator[TwilioSide]:
        async with connect(url, compression=None, proxy=None, ping_interval=None) as ws:
            yield cls(ws, call_sid)

    async def start(self, parameters: dict[str, str]) -> None:
        await self.ws.send(self.frames.connected())
        await self.ws.send(self.frames.start(parameters))

    async def receive(self, wait: float = 10.0) -> str:
        message = await asyncio.wait_for(self.ws.recv(), wait)
        text = message if isinstance(message, str) else message.decode()
        self.received.append(text)
        return text

    async def closed(self, wait: float = 10.0) -> tuple[int | None, int]:
        """Read until the server closes: (close code, messages received meanwhile)."""
        count = 0
        with contextlib.suppress(Exception):
            async with asyncio.timeout(wait):
                async for _ in self.ws:
                    count += 1
        return self.ws.close_code, count
