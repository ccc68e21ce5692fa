"""Helpers for the status-webhook tests: the app behind ASGI, signed Twilio forms."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import Call
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature

TOKEN = "webhook-test-token"
PUBLIC = "https://bot.example.com"
SID = "CA" + "ab" * 16


class NoCarrier:
    """The webhook never dials; a carrier that refuses to proves it."""

    async def place_call(self, request: Any) -> str:
        raise AssertionError("the webhook must not dial")

    async def hang_up(self, carrier_sid: str) -> None:
        raise AssertionError("the webhook must not hang up")

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def webhook_client(
    settings: Settings, *, public_base_url: str = PUBLIC, root_path: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (no dialer) as Twilio knows it (at ``public_base_url``, with TOKEN), reached
    on a private address the way a proxy forwards it."""
    public = settings.model_copy(
        update={"public_base_url": public_base_url, "twilio_auth_token": SecretStr(TOKEN)}
    )
    app = create_app(public, carrier=NoCarrier(), run_dialer=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, root_path=root_path),
            base_url="http://10.0.0.5:8000",
        ) as http,
    ):
        yield http


def status_form(status: str, seq: int, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": SID,
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": "+15005550006",
        "To": "+8613812345678",
        "SequenceNumber": str(seq),
        "Timestamp": "Tue, 14 Apr 2026 02:00:00 +0000",
        **extra,
    }


async def post_status(
    client: httpx.AsyncClient,
    call_id: int | str | None,
    form: dict[str, str],
    *,
    sign_url: str | None = None,
    token: str = TOKEN,
    signature: str | None = "compute",
) -> httpx.Response:
    query = "" if call_id is None else f"?call_id={call_id}"
    path = f"/webhooks/twilio/status{query}"
    headers = {}
    if signature == "compute":
        headers[SIGNATURE_HEADER] = TwilioSignature(token).sign(sign_url or PUBLIC + path, form)
    elif signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await client.post(path, data=form, headers=headers)


async def load_call(sessionmaker: async_sessionmaker[AsyncSession], call_id: int) -> Call:
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call


async def count_rows(sessionmaker: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
