"""Twilio's webhooks through the real app, signed by twilio's RequestValidator, on both
databases, with the real twilio SDK (a captured HTTP client) for what the service asks of Twilio:
a realistic call, the same with duplicates, reordering and a missing event; answering machines
(human, hang up, leave the voicemail); recordings; forged, missing and replayed signatures on
every webhook; and pausing a campaign, which cancels its ringing calls at Twilio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from tests.integration.telephony_support import seed_dialed_call
from tests.integration.twilio_support import ACCOUNT_SID, API, AUTH_TOKEN, FakeTwilio
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Call, CallBack, Campaign, CarrierEvent, Contact, DoNotCall
from voicebot.domain.types import Role
from voicebot.telephony.signatures import SIGNATURE_HEADER
from voicebot.telephony.twilio import TwilioCarrier

PUBLIC = "https://bot.example.com"
SID = "CA" + "7e" * 16
TO = "+8613812345678"


@dataclass
class Twilio:
    """The app as Twilio reaches it through a proxy, and what the app asked of Twilio."""

    http: httpx.AsyncClient
    rest: FakeTwilio
    maker: async_sessionmaker[AsyncSession]
    admin_key: str

    async def post(
        self,
        hook: str,
        call_id: int | None,
        form: dict[str, str],
        *,
        signature: str | None = "compute",
        token: str = AUTH_TOKEN,
        sign_url: str | None = None,
    ) -> httpx.Response:
        path = f"/webhooks/twilio/{hook}" + ("" if call_id is None else f"?call_id={call_id}")
        headers = {}
        if signature == "compute":
            url = sign_url or PUBLIC + path
            headers[SIGNATURE_HEADER] = RequestValidator(token).compute_signature(url, form)
        elif signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return await self.http.post(path, data=form, headers=headers)

    async def call(self, call_id: int) -> Call:
        async with self.maker() as session:
            call = await session.get(Call, call_id)
            assert call is not None
            return call

    async def callbacks(self) -> list[tuple[str, int]]:
        async with self.maker() as session:
            rows = await session.scalars(select(CallBack).order_by(CallBack.id))
            return [(c.status, c.attempt) for c in rows]

    async def events(self) -> int:
        async with self.maker() as session:
            return len(list(await session.scalars(select(CarrierEvent.id))))


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[Twilio]:
    public = settings.model_copy(
        update={
            "carrier": "twilio",
            "public_base_url": PUBLIC,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr(AUTH_TOKEN),
        }
    )
    rest = FakeTwilio()
    app = create_app(public, carrier=TwilioCarrier(public, http_client=rest), run_dialer=False)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
        async with maker() as session:
            key = create_api_key(session, role=Role.ADMIN, name="ops")
            await session.commit()
        # Reached on a private address, as a proxy forwards it; signed for the public URL.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://10.0.0.5:8000"
            )
        )
        yield Twilio(http=http, rest=rest, maker=maker, admin_key=key)


def status(call_status: str, seq: int, **extra: str) -> dict[str, str]:
    """A status callback as Twilio posts it."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": SID,
        "CallStatus": call_status,
        "CallbackSource": "call-progress-events",
        "Called": TO,
        "Caller": "+15005550006",
        "Direction": "outbound-api",
        "From": "+15005550006",
        "SequenceNumber": str(seq),
        "Timestamp": f"Tue, 10 Mar 2026 04:00:0{seq} +0000",
        "To": TO,
        **extra,
    }


def amd(answered_by: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": SID,
        "AnsweredBy": answered_by,
        "MachineDetectionDuration": "3120",
    }


def recording(recording_status: str, rec_sid: str = "RE" + "5a" * 16) -> dict[str, str]:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": SID,
        "RecordingSid": rec_sid,
        "RecordingStatus": recording_status,
        "RecordingChannels": "1",
        "RecordingSource": "OutboundAPI",
        "RecordingStartTime": "Tue, 10 Mar 2026 04:00:07 +0000",
    }
    if recording_status == "completed":
        form["RecordingUrl"] = f"{API}/Recordings/{rec_sid}"
        form["RecordingDuration"] = "93"
    return form


async def _campaign_settings(maker: async_sessionmaker[AsyncSession], **values: object) -> None:
    async with maker() as session:
        await session.execute(update(Campaign).values(**values))
        await session.commit()


async def test_a_realistic_call_from_queued_to_completed(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    seen = []
    for seq, call_status in enumerate(["queued", "initiated", "ringing", "in-progress"]):
        response = await twilio.post("status", call_id, status(call_status, seq))
        assert response.status_code == 200, response.text
        seen.append((await twilio.call(call_id)).status)
    assert seen == ["queued", "initiated", "ringing", "in-progress"]
    final = status("completed", 4, CallDuration="95", Duration="2", AnsweredBy="human")
    assert (await twilio.post("status", call_id, final)).status_code == 200
    call = await twilio.call(call_id)
    assert (call.status, call.disposition, call.answered_by) == ("completed", "answered", "human")
    assert (call.duration_seconds, call.conversed, call.carrier_sid) == (95, True, SID)
    assert call.answered_at is not None and call.ended_at is not None
    assert await twilio.callbacks() == [("done", 1)]  # a conversation: no retry
    assert await twilio.events() == 5
    assert twilio.rest.sent == []  # nothing asked of Twilio


async def test_duplicates_reordering_and_a_missing_event_end_the_same(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    # "queued" never arrives; ringing before initiated; completed before in-progress; repeats.
    arrivals = [
        status("ringing", 2),
        status("initiated", 1),
        status("ringing", 2),
        status("completed", 4, CallDuration="40", AnsweredBy="human"),
        status("in-progress", 3),
        status("completed", 4, CallDuration="40", AnsweredBy="human"),
    ]
    for form in arrivals:
        assert (await twilio.post("status", call_id, form)).status_code == 200
    call = await twilio.call(call_id)
    assert (call.status, call.disposition, call.duration_seconds) == ("completed", "answered", 40)
    assert call.answered_at is not None
    assert await twilio.events() == 4  # each distinct event once
    assert await twilio.callbacks() == [("done", 1)]
    async with twilio.maker() as session:
        assert await session.scalar(select(Campaign.live_calls)) == 0  # lowered exactly once


async def test_amd_human_lets_the_conversation_go_on(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    await _campaign_settings(twilio.maker, machine_detection="DetectMessageEnd")
    await twilio.post("status", call_id, status("in-progress", 3))
    assert (await twilio.post("amd", call_id, amd("human"))).status_code == 200
    assert twilio.rest.sent == []
    assert (await twilio.call(call_id)).answered_by == "human"
    await twilio.post("status", call_id, status("completed", 4, CallDuration="61"))
    call = await twilio.call(call_id)
    assert (call.disposition, call.answered_by) == ("answered", "human")


async def test_a_machine_is_hung_up_on_and_retried_as_voicemail(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO, max_attempts=3)
    await _campaign_settings(twilio.maker, machine_detection="Enable", machine_action="hang_up")
    await twilio.post("status", call_id, status("in-progress", 3))
    for _ in range(2):  # the repeat asks nothing more of Twilio
        assert (await twilio.post("amd", call_id, amd("machine_start"))).status_code == 200
    [hang_up] = twilio.rest.sent
    assert (hang_up.method, hang_up.url) == ("POST", f"{API}/Calls/{SID}.json")
    assert hang_up.form() == {"Status": ["completed"]}
    # Twilio then reports the end; the AMD result decides the disposition.
    await twilio.post("status", call_id, status("completed", 4, CallDuration="4"))
    call = await twilio.call(call_id)
    assert (call.disposition, call.answered_by, call.conversed) == (
        "voicemail",
        "machine_start",
        False,
    )
    assert await twilio.callbacks() == [("done", 1), ("pending", 2)]


async def test_a_machine_gets_the_voicemail_message_which_never_mentions_the_debt(
    twilio: Twilio,
) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    await _campaign_settings(
        twilio.maker, machine_detection="DetectMessageEnd", machine_action="leave_message"
    )
    async with twilio.maker() as session:
        await session.execute(
            update(Contact).values(
                amount_due=Decimal("12345.67"), currency="CNY", due_date=date(2026, 3, 25)
            )
        )
        await session.commit()
    await twilio.post("status", call_id, status("in-progress", 3))
    assert (await twilio.post("amd", call_id, amd("machine_end_beep"))).status_code == 200
    [message] = twilio.rest.sent
    assert (message.method, message.url) == ("POST", f"{API}/Calls/{SID}.json")
    twiml = message.form()["Twiml"][0]
    assert twiml.startswith(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="zh-CN">'
    )
    assert twiml.endswith("</Say><Hangup /></Response>")
    assert "王伟" in twiml and "回电" in twiml  # the dialog's voicemail, for this borrower
    for secret in ("12345", "12,345", "一万", "贷款", "还款", "逾期", "3月25", "三月二十五"):
        assert secret not in twiml
    await twilio.post(
        "status", call_id, status("completed", 4, CallDuration="28", AnsweredBy="machine_end_beep")
    )
    call = await twilio.call(call_id)
    assert call.disposition == "voicemail"
    assert await twilio.callbacks() == [("done", 1), ("pending", 2)]


async def test_an_amd_result_after_the_end_still_makes_it_voicemail(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    await _campaign_settings(twilio.maker, machine_detection="Enable")
    await twilio.post("status", call_id, status("in-progress", 3))
    await twilio.post("status", call_id, status("completed", 4, CallDuration="30"))
    call = await twilio.call(call_id)
    assert (call.disposition, call.conversed) == ("answered", True)
    assert await twilio.callbacks() == [("done", 1)]

    assert (await twilio.post("amd", call_id, amd("machine_end_silence"))).status_code == 200
    call = await twilio.call(call_id)
    assert (call.disposition, call.conversed, call.answered_by) == (
        "voicemail",
        False,
        "machine_end_silence",
    )
    assert await twilio.callbacks() == [("done", 1), ("pending", 2)]
    assert twilio.rest.sent == []  # the call had ended: nothing to hang up


async def test_a_recording_is_stored_on_its_call(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    await _campaign_settings(twilio.maker, record_calls=True)
    await twilio.post("status", call_id, status("in-progress", 3))
    # A recording that never had audio is noted, and leaves the call without one.
    absent = recording("absent", "RE" + "00" * 16)
    assert (await twilio.post("recording", call_id, absent)).status_code == 200
    assert (await twilio.call(call_id)).recording_sid is None
    for _ in range(2):
        assert (await twilio.post("recording", call_id, recording("completed"))).status_code == 200
    call = await twilio.call(call_id)
    assert (call.recording_sid, call.recording_url, call.recording_duration_seconds) == (
        "RE" + "5a" * 16,
        f"{API}/Recordings/RE{'5a' * 16}",
        93,
    )
    assert await twilio.events() == 3  # in-progress, absent, completed (the repeat is not kept)


async def test_a_recording_callback_missing_a_field_is_a_400_naming_it(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    form = recording("completed")
    del form["RecordingSid"]
    response = await twilio.post("recording", call_id, form)
    assert response.status_code == 400
    assert response.json()["detail"]["field"] == "RecordingSid"
    bad = {**amd("human"), "AnsweredBy": "robot"}
    response = await twilio.post("amd", call_id, bad)
    assert response.status_code == 400
    assert response.json()["detail"]["field"] == "AnsweredBy"


FORMS = {
    "status": lambda: status("ringing", 2),
    "amd": lambda: amd("machine_start"),
    "recording": lambda: recording("completed"),
    "answer": lambda: status("in-progress", 3),
}


@pytest.mark.parametrize("hook", sorted(FORMS))
async def test_forged_missing_and_replayed_signatures_are_refused(
    hook: str, twilio: Twilio
) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    other_id = await seed_dialed_call(twilio.maker, e164="+8613812340000")
    await _campaign_settings(twilio.maker, machine_detection="Enable")
    form = FORMS[hook]()
    signed_for_call = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{PUBLIC}/webhooks/twilio/{hook}?call_id={call_id}", form
    )
    attempts = {
        "missing": await twilio.post(hook, call_id, form, signature=None),
        "forged": await twilio.post(hook, call_id, form, token="another-accounts-token"),
        "garbage": await twilio.post(hook, call_id, form, signature="bm90IGEgc2lnbmF0dXJl"),
        # A genuine signature replayed for another call, or with the body changed.
        "replayed on another call": await twilio.post(
            hook, other_id, form, signature=signed_for_call
        ),
        "replayed with another body": await twilio.post(
            hook, call_id, {**form, "CallSid": "CA" + "00" * 16}, signature=signed_for_call
        ),
        # Signed for the address the app sees behind the proxy, not the public one Twilio used.
        "private url": await twilio.post(
            hook,
            call_id,
            form,
            sign_url=f"http://10.0.0.5:8000/webhooks/twilio/{hook}?call_id={call_id}",
        ),
    }
    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 403)
    assert attempts["missing"].json()["detail"]["error"] == "invalid_signature"
    # Nothing was stored or asked of Twilio.
    assert await twilio.events() == 0
    assert twilio.rest.sent == []
    call = await twilio.call(call_id)
    assert (call.status, call.answered_by, call.recording_sid) == ("initiating", None, None)

    # The genuine request goes through, and an exact replay of it changes nothing more.
    first = await twilio.post(hook, call_id, form, signature=signed_for_call)
    assert first.status_code == 200, first.text
    events, sent = await twilio.events(), len(twilio.rest.sent)
    again = await twilio.post(hook, call_id, form, signature=signed_for_call)
    assert again.status_code == 200
    assert (await twilio.events(), len(twilio.rest.sent)) == (events, sent)


async def test_pausing_a_campaign_cancels_its_ringing_calls_at_twilio(twilio: Twilio) -> None:
    ringing_id = await seed_dialed_call(twilio.maker, e164=TO)
    talking_id = await seed_dialed_call(twilio.maker, e164="+8613812340000")
    async with twilio.maker() as session:
        campaign_ids = list(await session.scalars(select(Campaign.id).order_by(Campaign.id)))
        # Both calls in one campaign: the second seeded campaign's call moves to the first.
        await session.execute(update(Call).values(campaign_id=campaign_ids[0]))
        await session.execute(
            update(Call).where(Call.id == ringing_id).values(status="ringing", carrier_sid=SID)
        )
        await session.execute(
            update(Call)
            .where(Call.id == talking_id)
            .values(status="in-progress", carrier_sid="CA" + "99" * 16)
        )
        await session.commit()
    response = await twilio.http.post(
        f"/v1/campaigns/{campaign_ids[0]}/pause",
        headers={"Authorization": f"Bearer {twilio.admin_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"
    # Only the ringing call is cancelled, and with "canceled" (an answered call would go on).
    [cancel] = twilio.rest.sent
    assert (cancel.url, cancel.form()) == (f"{API}/Calls/{SID}.json", {"Status": ["canceled"]})
    # Twilio then reports it canceled; the retry rules apply as usual.
    await twilio.post("status", ringing_id, status("canceled", 3, CallDuration="0"))
    call = await twilio.call(ringing_id)
    assert (call.status, call.disposition) == ("canceled", "canceled")


async def test_a_resume_is_refused_while_the_carrier_alarm_is_open(twilio: Twilio) -> None:
    from datetime import UTC, datetime

    from voicebot.dialer.refusals import raise_alarm

    await seed_dialed_call(twilio.maker, e164=TO)
    async with twilio.maker() as session:
        [campaign_id] = list(await session.scalars(select(Campaign.id)))
        await raise_alarm(
            session, carrier="twilio", code="20003", message="Authenticate", now=datetime.now(UTC)
        )
        await session.commit()
        assert await session.scalar(select(Campaign.status)) == "paused"
    headers = {"Authorization": f"Bearer {twilio.admin_key}"}
    response = await twilio.http.post(f"/v1/campaigns/{campaign_id}/resume", headers=headers)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert (detail["error"], detail["carrier_error"]) == ("carrier_alarm", "20003")
    assert "clear the alarm" in detail["message"]
    shown = (await twilio.http.get("/v1/carrier", headers=headers)).json()
    assert (shown["carrier"], shown["dialing_allowed"]) == ("twilio", False)
    assert (shown["alarm"]["code"], shown["alarm"]["message"]) == ("20003", "Authenticate")
    cleared = await twilio.http.post("/v1/carrier/alarm/clear", headers=headers)
    assert cleared.status_code == 200
    assert (cleared.json()["dialing_allowed"], cleared.json()["alarm"]) == (True, None)
    response = await twilio.http.post(f"/v1/campaigns/{campaign_id}/resume", headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "running")


async def test_a_call_failed_as_unsubscribed_opts_the_number_out(twilio: Twilio) -> None:
    call_id = await seed_dialed_call(twilio.maker, e164=TO)
    failed = status(
        "failed", 2, CallDuration="0", ErrorCode="21610", ErrorMessage="Unsubscribed recipient"
    )
    assert (await twilio.post("status", call_id, failed)).status_code == 200
    call = await twilio.call(call_id)
    assert (call.disposition, call.error_code) == ("opted_out", "21610")
    async with twilio.maker() as session:
        listed = await session.get(DoNotCall, TO)
    assert listed is not None and listed.reason == "carrier_unsubscribed"
    assert await twilio.callbacks() == [("done", 1)]
