"""``/v1/calls`` and ``/v1/contacts/{id}/history`` through the real app, on both databases:
every filter, keyset pages, the call's timeline, and masking per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import CALLS, T0, Seeded, seed_results
from voicebot.api.result_schemas import CallOut, CallPage
from voicebot.config import Settings
from voicebot.domain.types import Role


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Api, Seeded]]:
    async with running_api(settings) as running:
        yield running, await seed_results(running.sessionmaker)


async def _ids(api: Api, params: dict[str, Any], role: Role = Role.ANALYST) -> list[int]:
    response = await api.http.get("/v1/calls", params=params, headers=api.auth(role))
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [c["id"] for c in response.json()["items"]]


def _expected(seeded: Seeded, keep: Any) -> list[int]:
    """Seeded call ids (newest first) whose CALLS row ``keep`` accepts."""
    return [seeded.calls[i] for i, row in reversed(list(enumerate(CALLS))) if keep(row)]


async def test_every_filter_selects_exactly_its_calls(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    winter, spring = seeded.campaigns
    assert await _ids(http, {}) == _expected(seeded, lambda r: True)
    assert await _ids(http, {"campaign_id": spring}) == _expected(seeded, lambda r: r[0] == 1)
    assert await _ids(http, {"contact_id": seeded.contacts[2]}) == _expected(
        seeded, lambda r: r[1] == 2
    )
    assert await _ids(http, {"disposition": ["busy", "hung_up"]}) == _expected(
        seeded, lambda r: r[4] in {"busy", "hung_up"}
    )
    assert await _ids(http, {"status": "in-progress"}) == [seeded.calls[7]]
    assert await _ids(http, {"outcome_type": "promise"}) == [
        seeded.calls[6],
        seeded.calls[3],
        seeded.calls[1],
    ]
    assert await _ids(http, {"outcome_type": "risk_flag", "campaign_id": winter}) == [
        seeded.calls[5]
    ]
    since, until = "2026-11-20T02:30:00Z", "2026-11-20T03:05:00+00:00"
    assert await _ids(http, {"since": since, "until": until}) == _expected(
        seeded, lambda r: 30 <= r[2] < 65
    )
    assert await _ids(http, {"campaign_id": winter, "disposition": "answered", "since": since}) == [
        seeded.calls[5],
        seeded.calls[3],
        seeded.calls[1],
    ]
    assert await _ids(http, {"campaign_id": 999_999}) == []


async def test_pages_follow_the_cursor_without_gaps_or_repeats(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await http.http.get("/v1/calls", params=params, headers=http.auth())).json()
        seen += [c["id"] for c in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(seeded.calls, reverse=True)


async def test_bad_query_parameters_are_named(api: tuple[Api, Seeded]) -> None:
    http, _ = api
    for params, field in (
        ({"cursor": "bm90LW91cnM"}, "cursor"),
        ({"cursor": "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, "cursor"),  # id:9999999999999999999
        ({"disposition": "vanished"}, "disposition"),
        ({"since": "2026-11-20T02:00:00"}, "since"),  # no time zone
        ({"limit": 0}, "limit"),
    ):
        response = await http.http.get("/v1/calls", params=params, headers=http.auth())
        assert response.status_code == 422, params
        detail = response.json()["detail"]
        if isinstance(detail, dict):
            assert detail["field"] == field
        else:
            assert field in detail[0]["loc"]


async def test_analysts_see_numbers_and_names_masked_admins_whole(
    api: tuple[Api, Seeded],
) -> None:
    http, seeded = api
    params = {"contact_id": seeded.contacts[0], "limit": 1}
    masked = await http.http.get("/v1/calls", params=params, headers=http.auth(Role.ANALYST))
    whole = await http.http.get("/v1/calls", params=params, headers=http.auth(Role.ADMIN))
    (m,) = masked.json()["items"]
    (w,) = whole.json()["items"]
    assert (m["to_number"], m["contact_name"], m["from_number"]) == (
        "+86138****5678",
        "张*",
        "+150****0006",
    )
    assert (w["to_number"], w["contact_name"]) == ("+8613812345678", "张三")
    unauthenticated = await http.http.get("/v1/calls")
    assert unauthenticated.status_code == 401


async def test_a_page_is_exactly_what_its_schema_documents(api: tuple[Api, Seeded]) -> None:
    """The list is written without response validation: its body must still be a CallPage,
    each item a CallOut with no field more or less, equal to the call as /v1/calls/{id} reads it."""
    http, _ = api
    response = await http.http.get("/v1/calls", params={"limit": 3}, headers=http.auth())
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    page = CallPage.model_validate(body)
    assert len(page.items) == 3 and page.next_cursor is not None
    for item in body["items"]:
        assert set(item) == set(CallOut.model_fields)
        one = await http.http.get(f"/v1/calls/{item['id']}", headers=http.auth())
        assert {k: one.json()[k] for k in item} == item


async def test_a_call_reads_with_its_timeline_transcript_outcomes_and_recording(
    api: tuple[Api, Seeded],
) -> None:
    http, seeded = api
    call_id = seeded.calls[1]
    response = await http.http.get(f"/v1/calls/{call_id}", headers=http.auth(Role.ANALYST))
    assert response.status_code == 200, response.text
    call = response.json()
    assert (call["status"], call["disposition"], call["duration_seconds"]) == (
        "completed",
        "answered",
        75,
    )
    assert call["recording_url"] == "https://api.twilio.com/rec/RE1"
    assert [(e["call_status"], e["sequence_number"]) for e in call["events"]] == [
        ("ringing", 0),
        ("completed", 1),
    ]
    assert call["events"][1]["duration_seconds"] == 75
    assert "+8613812345678" not in response.text  # the raw payload's To is not shown
    assert [(t["seq"], t["speaker"], t["text"]) for t in call["transcript"]] == [
        (0, "bot", "您好，请问是张*吗？"),  # the borrower's name, masked for an analyst
        (1, "borrower", "是我"),
    ]
    assert [(o["type"], o["promise_status"]) for o in call["outcomes"]] == [
        ("confirmation", None),
        ("promise", "pending"),
    ]
    # The shape `voicebot chat --json` prints: the type and its fields side by side.
    promise = call["outcomes"][1]
    assert (promise["amount"], promise["currency"], promise["date"]) == (
        "3500.00",
        "CNY",
        "2026-12-05",
    )
    assert "data" not in promise
    unanswered = (await http.http.get(f"/v1/calls/{seeded.calls[0]}", headers=http.auth())).json()
    assert (unanswered["recording_url"], unanswered["transcript"]) == (None, [])
    missing = await http.http.get("/v1/calls/987654", headers=http.auth())
    assert (missing.status_code, missing.json()["detail"]["error"]) == (404, "not_found")


async def test_a_contacts_history_holds_every_callback_call_and_outcome(
    api: tuple[Api, Seeded],
) -> None:
    http, seeded = api
    contact = seeded.contacts[0]
    response = await http.http.get(
        f"/v1/contacts/{contact}/history", headers=http.auth(Role.ANALYST)
    )
    assert response.status_code == 200, response.text
    history = response.json()
    assert (history["name"], history["external_id"], history["loan_id"]) == ("张*", "L-0", "LN-0")
    mine = [i for i, row in enumerate(CALLS) if row[1] == 0]
    assert [c["id"] for c in history["calls"]] == [seeded.calls[i] for i in mine]
    assert {c["campaign_id"] for c in history["calls"]} == set(seeded.campaigns)
    assert len(history["callbacks"]) == len(mine)
    assert [o["type"] for o in history["outcomes"]] == [
        "confirmation",
        "promise",
        "promise",
        "complaint",
    ]
    assert all(c["to_number"] == "+86138****5678" for c in history["calls"])
    admin = await http.http.get(f"/v1/contacts/{contact}/history", headers=http.auth())
    assert admin.json()["name"] == "张三"
    missing = await http.http.get("/v1/contacts/424242/history", headers=http.auth())
    assert missing.status_code == 404


def test_seed_times_are_what_the_filters_assume() -> None:
    assert T0.isoformat() == "2026-11-20T02:00:00+00:00"
