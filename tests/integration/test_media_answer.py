"""The answer webhook: signed like every Twilio webhook, answering TwiML that connects the call to
its media stream with a token bound to the call."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    ACCOUNT_SID,
    RecordingCarrier,
    answer,
    call_settings,
    seed_call,
    serve,
    shared_speech,
)
from voicebot.app import create_app
from voicebot.calls.tokens import check_stream_token
from voicebot.db.models import Call
from voicebot.dialer.lifecycle import fail_call
from voicebot.dialog import check_dialog
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature

SID = "CA" + "1f" * 16
DIALOGS = Path(__file__).resolve().parents[2] / "dialogs"


def _app(db_url: str, **overrides: Any) -> Callable[[str], FastAPI]:
    def make(base: str) -> FastAPI:
        settings = call_settings(db_url, public_base_url=base, **overrides)
        return create_app(settings, carrier=RecordingCarrier(), speech=shared_speech())

    return make


async def test_a_signed_answer_connects_the_call_to_its_stream(
    db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_call(sessionmaker, e164="+821012340001", carrier_sid=SID)
    async with serve(_app(db_url)) as base:
        response, stream = await answer(base, call_id, SID)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.text)
    assert root.tag == "Response" and [child.tag for child in root] == ["Connect"]
    assert stream.url == base.replace("http://", "ws://") + "/media/twilio"
    assert stream.parameters["call_id"] == str(call_id)
    assert stream.parameters["language"] == "ko-KR"
    # The token is this call's, and no other's.
    token = stream.parameters["token"]
    check_stream_token(("calls-test-token",), call_id, token, now=datetime.now(UTC))


async def test_unsigned_or_unknown_answers_are_refused(
    db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    call_id = await seed_call(sessionmaker, e164="+821012340002", carrier_sid=SID)
    async with serve(_app(db_url)) as base:
        async with httpx.AsyncClient() as client:
            unsigned = await client.post(
                f"{base}/webhooks/twilio/answer?call_id={call_id}",
                data={"AccountSid": ACCOUNT_SID, "CallSid": SID},
            )
        _, unknown = await answer(base, call_id + 100, SID)
        other_sid, _ = await answer(base, call_id, "CA" + "2e" * 16)
        no_id = await _post_signed(base, "/webhooks/twilio/answer", SID)
    assert unsigned.status_code == 403
    assert unknown.url is None  # <Hangup/>
    assert "<Hangup" in other_sid.text and "Stream" not in other_sid.text
    assert no_id.status_code == 400


async def test_a_dialog_that_cannot_load_hangs_up_and_is_recorded(
    db_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    call_id = await seed_call(
        sessionmaker, e164="+821012340003", carrier_sid=SID, dialog_id="missing.ko-KR"
    )
    async with serve(_app(db_url, dialogs_dir=str(tmp_path))) as base:
        response, stream = await answer(base, call_id, SID)
    assert response.status_code == 200 and stream.url is None
    assert "<Hangup" in response.text
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
    assert call is not None and call.stream_error is not None
    assert call.stream_error.startswith("dialog_unavailable: no dialog 'missing.ko-KR'")


async def test_a_bad_dialog_is_refused_at_load_with_the_dialog_check_message(
    db_url: str, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    shipped = DIALOGS / "car_loan_followup.ko-KR.yaml"
    broken = tmp_path / "broken.ko-KR.yaml"
    text = shipped.read_text(encoding="utf-8").replace("goto: no_response", "goto: nowhere", 1)
    broken.write_text(text, encoding="utf-8")
    checked = check_dialog(broken)
    assert checked  # what `voicebot dialog check` prints, one line per problem
    call_id = await seed_call(
        sessionmaker, e164="+821012340004", carrier_sid=SID, dialog_id="broken.ko-KR"
    )
    async with serve(_app(db_url, dialogs_dir=str(tmp_path))) as base:
        response, stream = await answer(base, call_id, SID)
    assert response.status_code == 200 and stream.url is None
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
    assert call is not None
    assert call.stream_error == "dialog_unavailable: " + "\n".join(str(e) for e in checked)


async def _post_signed(base: str, path: str, call_sid: str) -> httpx.Response:
    url = base + path
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid}
    signature = TwilioSignature("calls-test-token").sign(url, form)
    async with httpx.AsyncClient() as client:
        return await client.post(url, data=form, headers={SIGNATURE_HEADER: signature})


async def test_an_answer_for_a_call_that_has_ended_here_hangs_up(
    db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Say a dial the carrier never confirmed was written off and retried: when the first call
    is answered after all, it is not talked to (that would be a second call on record as one)."""
    call_id = await seed_call(sessionmaker, e164="+821012340005", carrier_sid=None)
    async with sessionmaker() as session:
        await fail_call(
            session, call_id, error_code=None, error_message="no word", now=datetime.now(UTC)
        )
    async with serve(_app(db_url)) as base:
        response, stream = await answer(base, call_id, SID)
    assert response.status_code == 200 and stream.url is None
    assert "<Hangup" in response.text
