"""POST /webhooks/twilio/status: what is refused before anything is stored — unsigned, forged,
signed for another URL, malformed, oversized. HTTP behaviour only, so SQLite suffices."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.telephony_support import seed_dialed_call
from tests.integration.webhook_support import (
    PUBLIC,
    TOKEN,
    count_rows,
    load_call,
    post_status,
    status_form,
    webhook_client,
)
from voicebot.config import Settings
from voicebot.db.models import CarrierEvent
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client(settings) as http:
        yield http


@pytest.mark.parametrize(
    ("signature", "token", "problem"),
    [
        (None, TOKEN, "missing"),
        ("compute", "forged-token", "invalid"),
        ("bm90LWEtc2ln", TOKEN, "invalid"),
    ],
)
async def test_an_unsigned_or_forged_callback_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    signature: str | None,
    token: str,
    problem: str,
) -> None:
    call_id = await seed_dialed_call(sessionmaker)
    response = await post_status(
        client,
        call_id,
        status_form("completed", 3, CallDuration="60"),
        signature=signature,
        token=token,
    )
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_signature"
    assert problem in detail["message"]
    assert await count_rows(sessionmaker, CarrierEvent) == 0
    call = await load_call(sessionmaker, call_id)
    assert (call.status, call.disposition, call.carrier_sid) == ("initiating", None, None)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "refused webhook" in logged
    assert TOKEN not in logged
    if signature not in (None, "compute"):
        assert signature not in logged


async def test_during_a_token_rotation_the_previous_token_still_signs(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Callbacks Twilio signed before its secondary token was promoted still arrive: with the
    old token set as the previous one they are accepted, and only while it is set."""
    call_id = await seed_dialed_call(sessionmaker)
    form = status_form("ringing", 1)
    async with webhook_client(settings) as before:
        refused = await post_status(before, call_id, form, token="old-token")
        assert refused.status_code == 403
    rotating = settings.model_copy(update={"twilio_previous_auth_token": SecretStr("old-token")})
    async with webhook_client(rotating) as during:
        assert (await post_status(during, call_id, form, token="other-token")).status_code == 403
        assert (await post_status(during, call_id, form, token="old-token")).status_code == 200
        answered = status_form("in-progress", 2)  # signed with the account's own token
        assert (await post_status(during, call_id, answered)).status_code == 200
    assert (await load_call(sessionmaker, call_id)).status == "in-progress"


async def test_a_signature_for_the_local_url_is_refused_behind_a_proxy(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The request reached http://10.0.0.5:8000, but Twilio was told (and signs) the public URL.
    call_id = await seed_dialed_call(sessionmaker)
    local = f"http://10.0.0.5:8000/webhooks/twilio/status?call_id={call_id}"
    response = await post_status(client, call_id, status_form("ringing", 1), sign_url=local)
    assert response.status_code == 403
    response = await post_status(client, call_id, status_form("ringing", 1))
    assert response.status_code == 200


async def test_a_path_prefix_stripped_by_the_proxy_belongs_to_the_public_url(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_dialed_call(sessionmaker)
    form = status_form("ringing", 1)
    public = f"{PUBLIC}/voicebot/webhooks/twilio/status?call_id={call_id}"
    signature = TwilioSignature(TOKEN).sign(public, form)
    async with webhook_client(
        settings, public_base_url=PUBLIC + "/voicebot", root_path="/voicebot"
    ) as http:
        response = await http.post(
            f"/voicebot/webhooks/twilio/status?call_id={call_id}",
            data=form,
            headers={SIGNATURE_HEADER: signature},
        )
    assert response.status_code == 200, response.text
    assert (await load_call(sessionmaker, call_id)).status == "ringing"


@pytest.mark.parametrize(
    ("call_id", "form", "field"),
    [
        (1, {k: v for k, v in status_form("ringing", 1).items() if k != "CallSid"}, "CallSid"),
        (
            1,
            {k: v for k, v in status_form("ringing", 1).items() if k != "CallStatus"},
            "CallStatus",
        ),
        (1, status_form("ringing-ish", 1), "CallStatus"),
        (1, status_form("completed", 3, CallDuration="long"), "CallDuration"),
        (1, status_form("ringing", 1) | {"SequenceNumber": "-1"}, "SequenceNumber"),
        ("seven", status_form("ringing", 1), "call_id"),
    ],
)
async def test_a_malformed_callback_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    call_id: int | str,
    form: dict[str, str],
    field: str,
) -> None:
    response = await post_status(client, call_id, form)
    assert response.status_code == 400
    assert response.json()["detail"]["field"] == field
    assert await count_rows(sessionmaker, CarrierEvent) == 0


async def test_an_oversized_body_is_refused_before_it_is_buffered(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    form = status_form("ringing", 1, Padding="x" * 70_000)
    response = await post_status(client, 1, form)
    assert response.status_code == 413
    assert await count_rows(sessionmaker, CarrierEvent) == 0


async def test_a_json_body_is_not_a_status_callback(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks/twilio/status?call_id=1", json=status_form("ringing", 1)
    )
    assert response.status_code == 415
    assert response.json()["detail"]["error"] == "unsupported_media_type"
