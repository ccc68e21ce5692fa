"""``voicebot twilio check``: the credentials and caller numbers through the real twilio SDK
(a captured HTTP client), and a plain answer when Twilio cannot be reached."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientConnectionError
from pydantic import SecretStr

from tests.integration.twilio_support import ACCOUNT_SID, API, AUTH_TOKEN, FakeTwilio, Sent
from voicebot.cli_twilio import EXIT_OK, EXIT_PROBLEM, EXIT_UNREACHABLE, check_twilio
from voicebot.config import Settings

OWNED, VERIFIED, STRANGER = "+15005550006", "+15005550007", "+15005550008"


def _settings() -> Settings:
    return Settings(
        carrier="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr(AUTH_TOKEN),
        public_base_url="https://bot.example.com",
    )


def _page(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "meta": {"key": key, "next_page_url": None, "page_size": 1}}


def _account(status: str = "active") -> Any:
    def reply(sent: Sent) -> tuple[int, dict[str, Any]]:
        number = sent.params.get("PhoneNumber")
        if sent.url == f"{API}.json":
            return 200, {"sid": ACCOUNT_SID, "status": status, "friendly_name": "Collections"}
        if sent.url == f"{API}/IncomingPhoneNumbers.json":
            items = [{"phone_number": OWNED, "capabilities": {"voice": True}}]
            return 200, _page("incoming_phone_numbers", items if number == OWNED else [])
        if sent.url == f"{API}/OutgoingCallerIds.json":
            items = [{"phone_number": VERIFIED}]
            return 200, _page("outgoing_caller_ids", items if number == VERIFIED else [])
        raise AssertionError(f"unexpected request {sent.url}")

    return reply


async def test_credentials_and_each_caller_number_are_verified() -> None:
    http = FakeTwilio(reply=_account())
    report = await check_twilio(_settings(), [OWNED, VERIFIED, STRANGER], http_client=http)
    assert report.lines == [
        "ok       public URL https://bot.example.com: Twilio's webhooks and media stream (wss://) "
        "go there",
        f"ok       credentials: account {ACCOUNT_SID} (Collections) is active",
        f"ok       caller number {OWNED}: a number of this account",
        f"ok       caller number {VERIFIED}: a verified caller id of this account",
        f"PROBLEM  caller number {STRANGER}: neither a number nor a verified caller id of this "
        "account; Twilio will refuse calls from it (21210/21212)",
    ]
    assert report.exit_code == EXIT_PROBLEM
    assert all(
        sent.method == "GET" and sent.auth == (ACCOUNT_SID, AUTH_TOKEN) for sent in http.sent
    )
    assert {sent.params.get("PhoneNumber") for sent in http.sent} == {
        None,
        OWNED,
        VERIFIED,
        STRANGER,
    }
    clean = await check_twilio(_settings(), [OWNED], http_client=FakeTwilio(reply=_account()))
    assert clean.exit_code == EXIT_OK


async def test_refused_credentials_and_a_suspended_account_are_problems() -> None:
    refused = FakeTwilio(
        reply=lambda sent: (401, {"code": 20003, "message": "Authenticate", "status": 401})
    )
    report = await check_twilio(_settings(), [OWNED], http_client=refused)
    assert report.exit_code == EXIT_PROBLEM
    assert report.lines[1].startswith(f"PROBLEM  credentials: Twilio refused account {ACCOUNT_SID}")
    assert AUTH_TOKEN not in "\n".join(report.lines)
    assert len(refused.sent) == 1  # the numbers are not asked about with bad credentials

    suspended = await check_twilio(
        _settings(), [OWNED], http_client=FakeTwilio(reply=_account("suspended"))
    )
    assert suspended.lines[1] == f"PROBLEM  account {ACCOUNT_SID} is suspended, not active"


async def test_an_unreachable_twilio_is_said_plainly() -> None:
    http = FakeTwilio(raise_error=ClientConnectionError("Cannot connect to host api.twilio.com"))
    report = await check_twilio(_settings(), [OWNED], http_client=http)
    assert report.exit_code == EXIT_UNREACHABLE
    [_, line] = report.lines
    assert line.startswith("UNREACHABLE  cannot reach Twilio's API (api.twilio.com)")
    assert "Nothing was checked" in line


async def test_a_plain_http_public_url_is_a_problem() -> None:
    settings = _settings().model_copy(update={"public_base_url": "http://127.0.0.1:8000"})
    report = await check_twilio(settings, [OWNED], http_client=FakeTwilio(reply=_account()))
    assert report.lines[0].startswith("PROBLEM  public URL http://127.0.0.1:8000: Twilio needs")
    assert report.exit_code == EXIT_PROBLEM
