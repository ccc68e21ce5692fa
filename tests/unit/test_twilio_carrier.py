"""The Twilio carrier through the real twilio SDK: the exact REST request for each campaign
setting, hang-up/cancel/message requests, and each Twilio error through the SDK's own
TwilioRestException path to the refusal kind the dialer acts on."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from aiohttp import ServerDisconnectedError, ServerTimeoutError
from pydantic import SecretStr, ValidationError

from tests.integration.twilio_support import (
    ACCOUNT_SID,
    API,
    AUTH_TOKEN,
    FakeTwilio,
    Sent,
    refuse,
)
from voicebot.config import Settings
from voicebot.dialer.call_options import pick_caller
from voicebot.domain.campaigns import MachineDetection
from voicebot.telephony.carrier import CallOptions, CarrierError, DialRequest, RefusalKind
from voicebot.telephony.twilio import TwilioCarrier

BASE = "https://bot.example.com"


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "carrier": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "public_base_url": BASE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]  # pydantic-settings keyword init


def _request(
    options: CallOptions, call_id: int = 42, from_: str | None = "+15005550006"
) -> DialRequest:
    return DialRequest(
        call_id=call_id,
        to="+8613812345678",
        from_=from_,
        answer_url=f"{BASE}/webhooks/twilio/answer?call_id={call_id}",
        status_callback_url=f"{BASE}/webhooks/twilio/status?call_id={call_id}",
        options=options,
        amd_callback_url=f"{BASE}/webhooks/twilio/amd?call_id={call_id}",
        recording_callback_url=f"{BASE}/webhooks/twilio/recording?call_id={call_id}",
    )


COMMON = {
    "To": ["+8613812345678"],
    "From": ["+15005550006"],
    "Url": [f"{BASE}/webhooks/twilio/answer?call_id=42"],
    "Method": ["POST"],
    "StatusCallback": [f"{BASE}/webhooks/twilio/status?call_id=42"],
    "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
    "StatusCallbackMethod": ["POST"],
}
AMD = {
    "AsyncAmd": ["true"],
    "AsyncAmdStatusCallback": [f"{BASE}/webhooks/twilio/amd?call_id=42"],
    "AsyncAmdStatusCallbackMethod": ["POST"],
}
RECORDING = {
    "RecordingStatusCallback": [f"{BASE}/webhooks/twilio/recording?call_id=42"],
    "RecordingStatusCallbackEvent": ["completed", "absent"],
    "RecordingStatusCallbackMethod": ["POST"],
}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            CallOptions(),
            {**COMMON, "Timeout": ["30"], "TimeLimit": ["1800"], "Record": ["false"]},
            id="defaults: no AMD, no recording",
        ),
        pytest.param(
            CallOptions(
                ring_timeout_seconds=25,
                time_limit_seconds=600,
                machine_detection=MachineDetection.ENABLE,
            ),
            {
                **COMMON,
                **AMD,
                "Timeout": ["25"],
                "TimeLimit": ["600"],
                "Record": ["false"],
                "MachineDetection": ["Enable"],
            },
            id="AMD Enable",
        ),
        pytest.param(
            CallOptions(machine_detection=MachineDetection.DETECT_MESSAGE_END, record=True),
            {
                **COMMON,
                **AMD,
                **RECORDING,
                "Timeout": ["30"],
                "TimeLimit": ["1800"],
                "Record": ["true"],
                "MachineDetection": ["DetectMessageEnd"],
            },
            id="AMD DetectMessageEnd and recording",
        ),
        pytest.param(
            CallOptions(record=True),
            {**COMMON, **RECORDING, "Timeout": ["30"], "TimeLimit": ["1800"], "Record": ["true"]},
            id="recording only",
        ),
    ],
)
async def test_the_exact_rest_request_for_each_campaign_setting(
    options: CallOptions, expected: dict[str, list[str]]
) -> None:
    http = FakeTwilio()
    carrier = TwilioCarrier(_settings(), http_client=http)
    sid = await carrier.place_call(_request(options))
    [sent] = http.sent
    assert sid == f"CA{1:032x}"
    assert (sent.method, sent.url) == ("POST", f"{API}/Calls.json")
    assert sent.auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert sent.form() == expected
    # On the wire, the event list is one field repeated, in Twilio's order.
    assert (
        "StatusCallbackEvent=initiated&StatusCallbackEvent=ringing&"
        "StatusCallbackEvent=answered&StatusCallbackEvent=completed"
    ) in sent.wire()
    await carrier.aclose()
    assert not http.closed  # a client handed in belongs to the caller


async def test_a_request_without_a_caller_number_uses_the_settings_pool_or_is_refused() -> None:
    http = FakeTwilio()
    carrier = TwilioCarrier(_settings(twilio_caller_numbers=["+15005550009"]), http_client=http)
    await carrier.place_call(_request(CallOptions(), from_=None))
    assert http.sent[0].form()["From"] == ["+15005550009"]

    bare = TwilioCarrier(_settings(), http_client=http)
    with pytest.raises(CarrierError) as refused:
        await bare.place_call(_request(CallOptions(), from_=None))
    assert refused.value.kind is RefusalKind.MISCONFIGURED
    assert len(http.sent) == 1  # Twilio was never asked


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (400, 21211, "Invalid 'To' Phone Number: +86138XXXX", RefusalKind.INVALID_NUMBER),
        (400, 21217, "Phone number does not appear to be valid", RefusalKind.INVALID_NUMBER),
        (400, 21610, "Attempt to send to unsubscribed recipient", RefusalKind.OPTED_OUT),
        (429, 20429, "Too Many Requests", RefusalKind.THROTTLED),
        (429, None, "Too Many Requests", RefusalKind.THROTTLED),
        (400, 10004, "Call concurrency limit exceeded", RefusalKind.THROTTLED),
        (401, 20003, "Authenticate", RefusalKind.AUTHENTICATION),
        (401, None, "Unauthorized", RefusalKind.AUTHENTICATION),
        (400, 21212, "Invalid 'From' Phone Number", RefusalKind.MISCONFIGURED),
        (400, 13227, "No international authorization", RefusalKind.OTHER),
        (500, 20500, "Internal Server Error", RefusalKind.OTHER),
    ],
)
async def test_each_twilio_error_maps_to_what_the_dialer_does_next(
    status: int, code: int | None, message: str, kind: RefusalKind
) -> None:
    http = FakeTwilio(reply=refuse(status, code, message))
    carrier = TwilioCarrier(_settings(), http_client=http)
    with pytest.raises(CarrierError) as refused:
        await carrier.place_call(_request(CallOptions()))
    error = refused.value
    assert error.kind is kind
    # Recorded verbatim: Twilio's code (the SDK puts the HTTP status there when Twilio gave
    # none) and its message, as the SDK's TwilioRestException words it.
    assert (error.code, str(error), error.http_status) == (
        str(code or status),
        f"Unable to create record: {message}",
        status,
    )
    assert error.retryable is (kind is RefusalKind.THROTTLED)


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        # Before the request left: nothing can have been created.
        (ConnectionRefusedError("connection refused"), RefusalKind.UNREACHABLE, "not be reached"),
        (socket.gaierror("Name or service not known"), RefusalKind.UNREACHABLE, "not be reached"),
        # After it left, with no answer read: Twilio may be dialing.
        (ServerTimeoutError("Timeout on reading data"), RefusalKind.UNCONFIRMED, "may have"),
        (ServerDisconnectedError(), RefusalKind.UNCONFIRMED, "may have placed"),
        (TimeoutError(), RefusalKind.UNCONFIRMED, "may have placed"),
    ],
)
async def test_twilio_out_of_reach_says_whether_the_call_may_exist(
    error: BaseException, kind: RefusalKind, says: str
) -> None:
    http = FakeTwilio(raise_error=error)
    carrier = TwilioCarrier(_settings(), http_client=http)
    with pytest.raises(CarrierError) as refused:
        await carrier.place_call(_request(CallOptions()))
    assert refused.value.kind is kind
    assert says in str(refused.value)
    assert refused.value.retryable is (kind is RefusalKind.UNREACHABLE)


async def test_hang_up_cancel_and_message_are_call_updates() -> None:
    http = FakeTwilio()
    carrier = TwilioCarrier(_settings(), http_client=http)
    sid = "CA" + "cd" * 16
    await carrier.hang_up(sid)
    await carrier.cancel(sid)
    await carrier.leave_message(sid, "您好，请回电。", "zh-CN")
    assert [(s.method, s.url) for s in http.sent] == [("POST", f"{API}/Calls/{sid}.json")] * 3
    assert http.sent[0].form() == {"Status": ["completed"]}
    assert http.sent[1].form() == {"Status": ["canceled"]}
    twiml = http.sent[2].form()["Twiml"][0]
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Say language="zh-CN">您好，请回电。</Say><Hangup /></Response>'
    )


async def test_updating_a_call_that_already_ended_is_not_an_error() -> None:
    http = FakeTwilio(reply=refuse(404, 20404, "The requested resource was not found"))
    carrier = TwilioCarrier(_settings(), http_client=http)
    await carrier.cancel("CA" + "ef" * 16)
    http.reply = refuse(401, 20003, "Authenticate")
    with pytest.raises(CarrierError) as refused:
        await carrier.hang_up("CA" + "ef" * 16)
    assert refused.value.kind is RefusalKind.AUTHENTICATION


def test_region_match_prefers_the_borrowers_area_then_rotates() -> None:
    pool = ["+14155550100", "+12125550100", "+12125550111", "+8613900000000"]
    # New York borrower: the two 212 numbers in turn; Shanghai mobile: the Chinese number.
    assert [pick_caller(pool, "+12125559876", turn, "region") for turn in range(3)] == [
        "+12125550100",
        "+12125550111",
        "+12125550100",
    ]
    assert pick_caller(pool, "+8613812345678", 0, "region") == "+8613900000000"
    # No number in the borrower's country: the pool in turn, as with rotate.
    assert pick_caller(pool, "+821012345678", 5, "region") == pool[1]
    assert [pick_caller(pool, "+12125559876", t, "rotate") for t in range(4)] == pool
    assert pick_caller([], "+12125559876", 0, "region") is None


def test_twilio_settings_need_real_credentials_and_never_show_the_token() -> None:
    with pytest.raises(ValidationError, match="VOICEBOT_TWILIO_AUTH_TOKEN"):
        Settings(carrier="twilio", twilio_account_sid=ACCOUNT_SID)
    with pytest.raises(ValidationError, match="twilio_account_sid"):
        Settings(twilio_account_sid="not-a-sid")
    with pytest.raises(ValidationError, match=r"is not an E\.164 number"):
        Settings(twilio_caller_numbers="+15005550006, 555-0100")
    settings = _settings()
    assert AUTH_TOKEN not in repr(settings) and AUTH_TOKEN not in str(settings.model_dump())
    production = {"environment": "production", "database_url": "postgresql://db/voicebot"}
    with pytest.raises(ValidationError, match="must be https://"):
        _settings(public_base_url="http://bot.example.com", **production)


def test_a_previous_auth_token_is_accepted_only_while_set_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _settings().twilio_auth_tokens == (AUTH_TOKEN,)
    monkeypatch.setenv("VOICEBOT_TWILIO_PREVIOUS_AUTH_TOKEN", "  ")  # unset by an empty value
    assert _settings().twilio_auth_tokens == (AUTH_TOKEN,)
    monkeypatch.setenv("VOICEBOT_TWILIO_PREVIOUS_AUTH_TOKEN", AUTH_TOKEN)  # no rotation at all
    assert _settings().twilio_auth_tokens == (AUTH_TOKEN,)
    monkeypatch.setenv("VOICEBOT_TWILIO_PREVIOUS_AUTH_TOKEN", "old-token-0123")
    rotating = _settings()
    assert rotating.twilio_auth_tokens == (AUTH_TOKEN, "old-token-0123")
    assert "old-token-0123" not in repr(rotating) + str(rotating.model_dump())


def test_sent_form_reads_lists_as_repeated_fields() -> None:
    sent = Sent("POST", "u", {"A": ["x", "y"], "B": 1}, None)
    assert sent.form() == {"A": ["x", "y"], "B": ["1"]}
    assert sent.wire() == "A=x&A=y&B=1"


async def test_requests_to_twilio_never_hold_the_event_loop() -> None:
    """Twenty dials, each answered after 0.2 s, overlap: the SDK's async path awaits Twilio (a
    synchronous client would take 4 s and stall the loop's other work meanwhile)."""

    class SlowTwilio(FakeTwilio):
        async def request(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.2)
            return await super().request(*args, **kwargs)

    http = SlowTwilio()
    carrier = TwilioCarrier(_settings(), http_client=http)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    sids = await asyncio.gather(
        *(carrier.place_call(_request(CallOptions(), call_id=n)) for n in range(20))
    )
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert len(set(sids)) == 20
    assert elapsed < 1.5
    assert ticks >= 10  # the loop kept running other work while Twilio "answered"
