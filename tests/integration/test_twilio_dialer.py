"""The dialer placing calls through the real twilio SDK (a captured HTTP client), on both
databases: the request each campaign's settings produce, and the dialer's next step for each
error Twilio answers with."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ServerDisconnectedError, ServerTimeoutError
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.dialer_rows import make_callback, make_campaign, make_contact, utc
from tests.integration.twilio_support import (
    ACCOUNT_SID,
    API,
    AUTH_TOKEN,
    FakeTwilio,
    Sent,
    call_json,
    error_json,
)
from voicebot.config import Settings
from voicebot.db.models import (
    AuditEntry,
    Call,
    CallBack,
    Campaign,
    CarrierAlarm,
    ContactPhone,
    DoNotCall,
)
from voicebot.dialer.lifecycle import StatusEvent, record_status_event
from voicebot.dialer.loop import Dialer
from voicebot.dialer.refusals import clear_alarm, open_alarm
from voicebot.telephony.twilio import TwilioCarrier

NOW = utc(2026, 3, 10, 4, 0)  # 12:00 in Shanghai
BASE = "https://bot.example.com"
BAD, GOOD = "+8613800000001", "+8613900000002"


@pytest.fixture
def twilio_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "carrier": "twilio",
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr(AUTH_TOKEN),
            "public_base_url": BASE,
            "carrier_calls_per_second": 10_000.0,
            "carrier_throttle_backoff_seconds": 30.0,
            "call_stale_after_seconds": 30 * 86400.0,
        }
    )


def _dialer(
    settings: Settings, maker: async_sessionmaker[AsyncSession], http: FakeTwilio
) -> Dialer:
    return Dialer(settings, maker, TwilioCarrier(settings, http_client=http))


def _soon_after(expected: datetime, actual: datetime) -> bool:
    """The dialer's clock runs on from the round's ``now``: within a few seconds of it."""
    return timedelta(0) <= actual - expected < timedelta(seconds=5)


async def _one_due_callback(maker: async_sessionmaker[AsyncSession], **campaign: Any) -> None:
    """A running campaign with one borrower (one number, GOOD) due at NOW."""
    async with maker() as session:
        running = await make_campaign(session, **campaign)
        await make_callback(session, running, await make_contact(session, (GOOD,)), due_at=NOW)
        await session.commit()


async def _calls(maker: async_sessionmaker[AsyncSession]) -> list[Call]:
    async with maker() as session:
        return list(await session.scalars(select(Call).order_by(Call.id)))


async def _callbacks(maker: async_sessionmaker[AsyncSession]) -> list[CallBack]:
    async with maker() as session:
        return list(await session.scalars(select(CallBack).order_by(CallBack.id)))


async def test_campaign_settings_reach_twilio_and_callers_rotate(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(
            session,
            caller_numbers=["+15005550006", "+15005550007"],
            machine_detection="DetectMessageEnd",
            machine_action="leave_message",
            record_calls=True,
            ring_timeout_seconds=20,
            time_limit_seconds=900,
        )
        for n in range(3):
            contact = await make_contact(session, (f"+86138000000{n:02d}",))
            await make_callback(session, campaign, contact, due_at=NOW)
        await session.commit()
    http = FakeTwilio()
    assert await _dialer(twilio_settings, sessionmaker, http).run_once(NOW) == 3

    calls = await _calls(sessionmaker)
    by_to = {call.to_number: call for call in calls}
    assert sorted(s.form()["From"][0] for s in http.sent) == [
        "+15005550006",
        "+15005550006",
        "+15005550007",
    ]
    for sent in http.sent:
        form = sent.form()
        call = by_to[form["To"][0]]
        assert (sent.method, sent.url) == ("POST", f"{API}/Calls.json")
        assert form == {
            "To": [call.to_number],
            "From": [call.from_number],
            "Url": [f"{BASE}/webhooks/twilio/answer?call_id={call.id}"],
            "Method": ["POST"],
            "StatusCallback": [f"{BASE}/webhooks/twilio/status?call_id={call.id}"],
            "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
            "StatusCallbackMethod": ["POST"],
            "Timeout": ["20"],
            "TimeLimit": ["900"],
            "MachineDetection": ["DetectMessageEnd"],
            "AsyncAmd": ["true"],
            "AsyncAmdStatusCallback": [f"{BASE}/webhooks/twilio/amd?call_id={call.id}"],
            "AsyncAmdStatusCallbackMethod": ["POST"],
            "Record": ["true"],
            "RecordingStatusCallback": [f"{BASE}/webhooks/twilio/recording?call_id={call.id}"],
            "RecordingStatusCallbackEvent": ["completed", "absent"],
            "RecordingStatusCallbackMethod": ["POST"],
        }
    # The sid Twilio answered with is the call's.
    assert sorted(c.carrier_sid or "" for c in calls) == sorted(f"CA{n:032x}" for n in range(1, 4))


def _refusing(numbers: dict[str, tuple[int, int | None, str]]):  # type: ignore[no-untyped-def]
    """Twilio refusing calls to some numbers (status, code, message) and accepting the rest."""

    def reply(sent: Sent) -> tuple[int, dict[str, object]]:
        to = sent.form().get("To", [""])[0]
        if to in numbers:
            status, code, message = numbers[to]
            return status, error_json(status, code, message)
        return 201, call_json("CA" + to.strip("+").rjust(32, "0"))

    return reply


@pytest.mark.parametrize("code", [21211, 21217])
async def test_an_invalid_number_is_never_retried_and_the_alternate_is_dialed(
    code: int, twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(session)
        await make_callback(session, campaign, await make_contact(session, (BAD, GOOD)), due_at=NOW)
        await session.commit()
    http = FakeTwilio(reply=_refusing({BAD: (400, code, "Invalid 'To' Phone Number")}))
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition, call.error_code) == (
        "failed",
        "invalid_number",
        str(code),
    )
    assert call.error_message == "Unable to create record: Invalid 'To' Phone Number"
    async with sessionmaker() as session:
        phones = list(await session.scalars(select(ContactPhone).order_by(ContactPhone.position)))
        live = await session.scalar(select(Campaign.live_calls))
    assert [p.status for p in phones] == ["invalid", "valid"]
    assert live == 0
    # The next attempt is due at once, on the alternate number.
    [done, retry] = await _callbacks(sessionmaker)
    assert (done.status, retry.status, retry.attempt) == ("done", "pending", 2)
    assert retry.phone_id == phones[1].id
    assert _soon_after(NOW, retry.due_at)

    assert await dialer.run_once(NOW + timedelta(seconds=1)) == 1
    assert [s.form()["To"] for s in http.sent] == [[BAD], [GOOD]]
    # Later rounds never dial the invalid number again.
    assert await dialer.run_once(NOW + timedelta(days=1)) == 0
    assert len(http.sent) == 2


async def test_a_number_unsubscribed_at_twilio_is_opted_out_everywhere(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        first, second = await make_campaign(session), await make_campaign(session)
        contact = await make_contact(session, (BAD,))
        await make_callback(session, first, contact, due_at=NOW)
        await make_callback(session, second, contact, due_at=NOW + timedelta(hours=1))
        await session.commit()
    http = FakeTwilio(
        reply=_refusing({BAD: (400, 21610, "Attempt to send to unsubscribed recipient")})
    )
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    [call] = await _calls(sessionmaker)
    assert (call.disposition, call.error_code) == ("opted_out", "21610")
    async with sessionmaker() as session:
        listed = await session.get(DoNotCall, BAD)
        phone = await session.scalar(select(ContactPhone))
    assert listed is not None and (listed.reason, listed.source) == (
        "carrier_unsubscribed",
        "twilio:21610",
    )
    assert phone is not None and phone.status == "opted_out"
    # No retry, and the other campaign's call-back is cancelled: the number is never dialed again.
    assert [(c.status, c.attempt) for c in await _callbacks(sessionmaker)] == [
        ("done", 1),
        ("cancelled", 1),
    ]
    assert await dialer.run_once(NOW + timedelta(hours=2)) == 0
    assert len(http.sent) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(429, 20429), (429, None), (400, 10004)], ids=["20429", "429", "10004"]
)
async def test_a_throttled_call_backs_off_and_is_requeued_without_losing_the_callback(
    status: int,
    code: int | None,
    twilio_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        campaign = await make_campaign(session)
        contact = await make_contact(session, (GOOD,))
        await make_callback(session, campaign, contact, due_at=NOW, attempt=2)
        await session.commit()
    http = FakeTwilio(reply=_refusing({GOOD: (status, code, "Too Many Requests")}))
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    # Never placed: no call row (nothing counts against the borrower), the same call-back
    # pending again with its attempt, due after the back-off.
    assert await _calls(sessionmaker) == []
    [callback] = await _callbacks(sessionmaker)
    assert (callback.status, callback.attempt) == ("pending", 2)
    assert _soon_after(NOW + timedelta(seconds=30), callback.due_at)
    assert callback.deferred_reason == f"carrier_throttled:{code or status}"
    async with sessionmaker() as session:
        assert await session.scalar(select(Campaign.live_calls)) == 0

    assert await dialer.run_once(NOW + timedelta(seconds=10)) == 0  # still backing off
    http.reply = None  # Twilio accepts again
    assert await dialer.run_once(NOW + timedelta(seconds=31)) == 1
    [call] = await _calls(sessionmaker)
    assert (call.attempt, call.callback_id, call.carrier_sid) == (
        2,
        callback.id,
        f"CA{2:032x}",  # the second request Twilio saw
    )
    assert len(http.sent) == 2


async def test_an_authentication_error_stops_dialing_and_raises_an_alarm(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        first, second = await make_campaign(session), await make_campaign(session)
        draft = await make_campaign(session, status="draft")
        for n, campaign in enumerate((first, second)):
            contact = await make_contact(session, (f"+8613700000{n:03d}",))
            await make_callback(session, campaign, contact, due_at=NOW)
        await session.commit()
    http = FakeTwilio(reply=lambda sent: (401, error_json(401, 20003, "Authenticate")))
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    assert len(http.sent) == 2
    # Neither call was placed; both call-backs wait, unchanged but for the reason.
    assert await _calls(sessionmaker) == []
    assert {(c.status, c.attempt, c.deferred_reason) for c in await _callbacks(sessionmaker)} == {
        ("pending", 1, "carrier_authentication:20003")
    }
    async with sessionmaker() as session:
        statuses = dict((await session.execute(select(Campaign.id, Campaign.status))).all())
        alarm = await open_alarm(session)
        alarms = list(await session.scalars(select(CarrierAlarm)))
        audit = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert statuses == {first.id: "paused", second.id: "paused", draft.id: "draft"}
    assert len(alarms) == 1  # two refusals, one alarm
    assert alarm is not None and (alarm.carrier, alarm.code) == ("twilio", "20003")
    assert alarm.message == "Unable to create record: Authenticate"
    assert [(a.actor, a.action, a.target_id) for a in audit] == [
        ("carrier-alarm", "campaign.pause", str(first.id)),
        ("carrier-alarm", "campaign.pause", str(second.id)),
    ]
    # Dialing has stopped: nothing more reaches Twilio.
    assert await dialer.run_once(NOW + timedelta(minutes=5)) == 0
    assert len(http.sent) == 2
    async with sessionmaker() as session:
        assert await clear_alarm(session, by="ops", now=NOW) == 1
        await session.commit()
        assert await open_alarm(session) is None


async def test_an_unknown_error_is_recorded_verbatim_and_the_retry_rules_apply(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _one_due_callback(sessionmaker, retry_delays={"failed": 600})
    message = "Dialing +86 is not enabled: enable the geo permission"
    http = FakeTwilio(reply=_refusing({GOOD: (400, 21215, message)}))
    assert await _dialer(twilio_settings, sessionmaker, http).run_once(NOW) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition, call.error_code) == ("failed", "failed", "21215")
    assert call.error_message == f"Unable to create record: {message}"
    [done, retry] = await _callbacks(sessionmaker)
    assert (done.status, retry.status, retry.attempt) == ("done", "pending", 2)
    assert _soon_after(NOW + timedelta(seconds=600), retry.due_at)


async def test_twilio_out_of_reach_backs_off_without_counting_an_attempt(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """No connection: the request never left, so nothing was dialed and nothing counts."""
    await _one_due_callback(sessionmaker)
    http = FakeTwilio(raise_error=ConnectionRefusedError("connection refused"))
    assert await _dialer(twilio_settings, sessionmaker, http).run_once(NOW) == 0
    assert await _calls(sessionmaker) == []
    [callback] = await _callbacks(sessionmaker)
    assert (callback.status, callback.attempt) == ("pending", 1)
    assert callback.deferred_reason == "carrier_unreachable"
    assert _soon_after(NOW + timedelta(seconds=30), callback.due_at)


async def test_a_dial_twilio_did_not_answer_waits_for_its_callbacks(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A timeout after the request was sent: Twilio may be dialing. Failed and retried at once,
    the borrower would have been rung twice; the call waits for Twilio's callbacks instead."""
    await _one_due_callback(sessionmaker, retry_delays={"failed": 600})
    http = FakeTwilio(raise_error=ServerTimeoutError("Timeout on reading data from socket"))
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.carrier_sid, call.disposition) == ("initiating", None, None)
    [callback] = await _callbacks(sessionmaker)
    assert callback.status == "dialed"  # no retry while Twilio may be ringing the borrower
    async with sessionmaker() as session:
        assert await session.scalar(select(Campaign.live_calls)) == 1

    # Twilio had placed it: its callbacks name the call and carry it to its end.
    sid = "CA" + "7e" * 16
    for seq, (status, extra) in enumerate(
        [("ringing", {}), ("in-progress", {}), ("completed", {"duration_seconds": 42})]
    ):
        async with sessionmaker() as session:
            event = StatusEvent(
                call_sid=sid,
                call_status=status,
                call_id=call.id,
                sequence_number=seq,
                payload={"CallSid": sid, "CallStatus": status},
                **extra,  # type: ignore[arg-type]
            )
            await record_status_event(session, event, now=NOW + timedelta(seconds=5 + seq))
    # A lease later the reaper finds nothing to end, and nothing is dialed again.
    assert await dialer.run_once(NOW + timedelta(minutes=10)) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition, call.carrier_sid) == ("completed", "answered", sid)
    assert [c.status for c in await _callbacks(sessionmaker)] == ["done"]
    assert len(http.sent) == 1


async def test_a_dial_never_confirmed_fails_a_lease_later_and_is_retried_once(
    twilio_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _one_due_callback(sessionmaker, retry_delays={"failed": 600})
    http = FakeTwilio(raise_error=ServerDisconnectedError())
    dialer = _dialer(twilio_settings, sessionmaker, http)
    assert await dialer.run_once(NOW) == 0
    assert await dialer.run_once(NOW + timedelta(seconds=60)) == 0  # within the lease: waits
    assert [c.status for c in await _calls(sessionmaker)] == ["initiating"]
    assert await dialer.run_once(NOW + timedelta(minutes=3)) == 0
    [call] = await _calls(sessionmaker)
    assert (call.status, call.disposition) == ("failed", "failed")
    assert "no word from the carrier" in (call.error_message or "")
    [done, retry] = await _callbacks(sessionmaker)
    assert (done.status, retry.status, retry.attempt) == ("done", "pending", 2)
    async with sessionmaker() as session:
        assert await session.scalar(select(Campaign.live_calls)) == 0
