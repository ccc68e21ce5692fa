"""/v1/campaigns through the real app on both databases: validation, edits, the life cycle,
cancellation of the queue, progress, and the audit trail."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.integration.api_support import Api, running_api, seed_campaign_with_callbacks
from voicebot.config import Settings
from voicebot.db.apikeys import authenticate
from voicebot.db.models import AuditEntry, Call, CallBack, Campaign
from voicebot.domain.types import Role


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


async def _a_campaign_is_created_as_a_draft_with_the_model_defaults(api: Api) -> None:
    created = await api.create_campaign(
        "spring", retry_delays={"busy": 600}, caller_numbers=["+1 415 555 0100"]
    )
    assert created["status"] == "draft"
    assert created["calling_window"] == {
        "start": "08:00",
        "end": "21:00",
        "weekdays": [0, 1, 2, 3, 4, 5, 6],
    }
    assert (created["max_attempts"], created["max_attempts_per_period"]) == (5, 7)
    assert (created["max_conversations_per_day"], created["quiet_period_hours"]) == (3, 0)
    assert created["retry_delays"] == {"busy": 600}
    assert created["caller_numbers"] == ["+14155550100"]
    response = await api.http.get(f"/v1/campaigns/{created['id']}", headers=api.auth(Role.ANALYST))
    assert response.json() == created


INVALID_SETTINGS: list[tuple[dict[str, Any], list[Any]]] = [
    ({"retry_delays": {"ringing": 60}}, ["body"]),
    ({"retry_delays": {"answered": 60}}, ["body"]),
    ({"retry_delays": {"busy": -5}}, ["body", "retry_delays", "busy"]),
    ({"caller_numbers": ["0101234567"]}, ["body", "caller_numbers", 0]),
    ({"dialog_id": "../../etc/passwd"}, ["body", "dialog_id"]),
    ({"calling_window": {"weekdays": [7]}}, ["body", "calling_window", "weekdays", 0]),
    ({"calling_window": {"weekdays": []}}, ["body", "calling_window", "weekdays"]),
    ({"calling_window": {"start": "8 o'clock"}}, ["body", "calling_window", "start"]),
    ({"calling_window": {"start": "08:00:30"}}, ["body", "calling_window", "start"]),
    ({"max_attempts": 0}, ["body", "max_attempts"]),
    ({"max_conversations_per_day": 0}, ["body", "max_conversations_per_day"]),
    ({"concurrency_limit": 0}, ["body", "concurrency_limit"]),
    ({"name": "   "}, ["body", "name"]),
    ({"colour": "blue"}, ["body", "colour"]),
]


async def test_invalid_settings_are_refused_in_fastapis_format(api: Api) -> None:
    for changes, location in INVALID_SETTINGS:
        body = {"name": "spring", "dialog_id": "car_loan_followup.zh-CN", **changes}
        response = await api.http.post("/v1/campaigns", json=body, headers=api.auth())
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        assert isinstance(errors, list)
        assert [e["loc"] for e in errors] == [location], changes
    listed = await api.http.get("/v1/campaigns", headers=api.auth())
    assert listed.json()["total"] == 0


async def _names_are_unique(api: Api) -> None:
    await api.create_campaign("winter")
    response = await api.http.post(
        "/v1/campaigns", json={"name": "winter", "dialog_id": "d"}, headers=api.auth()
    )
    assert response.status_code == 409
    assert response.json()["detail"]["error"] == "name_taken"


async def test_the_list_is_newest_first_and_pages(api: Api) -> None:
    for name in ("a", "b", "c"):
        await api.create_campaign(name)
    headers = api.auth(Role.ANALYST)
    page = (await api.http.get("/v1/campaigns?limit=2", headers=headers)).json()
    assert [c["name"] for c in page["items"]] == ["c", "b"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    page = (await api.http.get("/v1/campaigns?limit=2&offset=2", headers=headers)).json()
    assert [c["name"] for c in page["items"]] == ["a"]
    first = page["items"][0]["id"]
    await api.http.post(f"/v1/campaigns/{first}/start", headers=api.auth())
    page = (await api.http.get("/v1/campaigns?status=running", headers=headers)).json()
    assert [c["name"] for c in page["items"]] == ["a"]
    response = await api.http.get("/v1/campaigns?status=sleeping", headers=headers)
    assert response.status_code == 422


async def _a_draft_is_edited_field_by_field_and_checked_as_a_whole(api: Api) -> None:
    campaign = await api.create_campaign("spring", calling_window={"start": "09:00"})
    url = f"/v1/campaigns/{campaign['id']}"
    response = await api.http.patch(
        url, json={"calling_window": {"end": "20:30"}, "max_attempts": 3}, headers=api.auth()
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["calling_window"]["start"] == "09:00"  # kept: only "end" was sent
    assert edited["calling_window"]["end"] == "20:30"
    assert edited["max_attempts"] == 3
    assert edited["updated_at"] > campaign["updated_at"]

    response = await api.http.patch(url, json={"retry_delays": {"zzz": 1}}, headers=api.auth())
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    response = await api.http.patch(url, json={"max_attempts": None}, headers=api.auth())
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "max_attempts"]
    await api.create_campaign("autumn")
    response = await api.http.patch(url, json={"name": "autumn"}, headers=api.auth())
    assert response.status_code == 409
    unchanged = (await api.http.get(url, headers=api.auth())).json()
    assert unchanged == edited


async def _only_a_draft_can_be_edited(api: Api) -> None:
    campaign = await api.create_campaign("summer")
    await api.http.post(f"/v1/campaigns/{campaign['id']}/start", headers=api.auth())
    response = await api.http.patch(
        f"/v1/campaigns/{campaign['id']}", json={"max_attempts": 2}, headers=api.auth()
    )
    assert response.status_code == 409
    assert response.json()["detail"] == {
        "error": "campaign_not_draft",
        "message": "the campaign is running; only a draft can be changed",
        "status": "running",
    }


async def test_the_life_cycle_and_its_refusals(api: Api) -> None:
    campaign = await api.create_campaign()
    url = f"/v1/campaigns/{campaign['id']}"

    async def act(action: str) -> tuple[int, dict[str, Any]]:
        response = await api.http.post(f"{url}/{action}", headers=api.auth(Role.OPERATOR))
        return response.status_code, response.json()

    code, body = await act("resume")
    assert code == 409
    assert body["detail"]["error"] == "invalid_transition"
    assert body["detail"]["status"] == "draft"
    assert "start it instead" in body["detail"]["message"]

    code, body = await act("start")
    assert (code, body["status"]) == (200, "running")
    assert body["started_at"] is not None
    started_at = body["started_at"]
    code, body = await act("start")
    assert (code, body["detail"]["status"]) == (409, "running")
    assert "already running" in body["detail"]["message"]

    assert (await act("pause"))[1]["status"] == "paused"
    assert (await act("pause"))[0] == 409
    code, body = await act("start")
    assert code == 409 and "resume it instead" in body["detail"]["message"]
    code, body = await act("resume")
    assert (body["status"], body["started_at"]) == ("running", started_at)

    code, body = await act("cancel")
    assert (code, body["status"]) == (200, "cancelled")
    assert body["finished_at"] is not None
    for action in ("start", "pause", "resume", "cancel"):
        code, body = await act(action)
        assert (code, body["detail"]["status"]) == (409, "cancelled"), action

    response = await api.http.post("/v1/campaigns/9999/start", headers=api.auth())
    assert response.status_code == 404
    assert response.json()["detail"]["error"] == "not_found"

    async with api.sessionmaker() as session:
        entries = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target_id == str(campaign["id"]))
                .order_by(AuditEntry.id)
            )
        ).all()
    operator = f"apikey:{await _key_id(api, Role.OPERATOR)}:operator-key"
    assert [(e.action, e.details.get("from"), e.details.get("to")) for e in entries] == [
        ("campaign.create", None, None),
        ("campaign.start", "draft", "running"),
        ("campaign.pause", "running", "paused"),
        ("campaign.resume", "paused", "running"),
        ("campaign.cancel", "running", "cancelled"),
    ]
    assert {e.actor for e in entries[1:]} == {operator}


async def _key_id(api: Api, role: Role) -> int:
    async with api.sessionmaker() as session:
        key = await authenticate(session, api.keys[role])
    assert key is not None
    return key.id


async def test_cancel_stops_the_queue_but_lets_dialed_calls_finish(api: Api) -> None:
    statuses = ["pending", "claimed", "dialed", "done", "pending"]
    campaign_id, callback_ids = await seed_campaign_with_callbacks(api.sessionmaker, statuses)
    _, other_callbacks = await seed_campaign_with_callbacks(
        api.sessionmaker, ["pending"], name="other"
    )
    response = await api.http.post(f"/v1/campaigns/{campaign_id}/cancel", headers=api.auth())
    assert response.status_code == 200, response.text
    async with api.sessionmaker() as session:
        after = dict(
            (
                await session.execute(select(CallBack.id, CallBack.status).order_by(CallBack.id))
            ).all()
        )
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "campaign.cancel")
        )
    assert [after[i] for i in callback_ids] == [
        "cancelled",
        "cancelled",
        "dialed",
        "done",
        "cancelled",
    ]
    assert after[other_callbacks[0]] == "pending"
    assert audit is not None and audit.details["callbacks_cancelled"] == 3


async def test_progress_counts_callbacks_calls_and_live_calls(api: Api) -> None:
    statuses = ["pending", "pending", "dialed", "done", "done"]
    campaign_id, callback_ids = await seed_campaign_with_callbacks(api.sessionmaker, statuses)
    now = datetime.now(UTC)
    async with api.sessionmaker() as session:
        callback = await session.get(CallBack, callback_ids[2])
        assert callback is not None
        for status, disposition in [
            ("ringing", None),
            ("completed", "answered"),
            ("no-answer", "no_answer"),
            ("no-answer", "no_answer"),
        ]:
            session.add(
                Call(
                    callback_id=callback.id,
                    campaign_id=campaign_id,
                    contact_id=callback.contact_id,
                    loan_key="contact:1",
                    attempt=1,
                    to_number="+8613700000001",
                    status=status,
                    disposition=disposition,
                    created_at=now,
                )
            )
        await session.commit()
    response = await api.http.get(
        f"/v1/campaigns/{campaign_id}/progress", headers=api.auth(Role.ANALYST)
    )
    assert response.status_code == 200, response.text
    progress = response.json()
    assert progress["campaign_id"] == campaign_id
    assert progress["status"] == "running"
    assert progress["contacts"] == 1
    assert progress["callbacks"] == {
        "pending": 2,
        "claimed": 0,
        "dialed": 1,
        "done": 2,
        "cancelled": 0,
    }
    assert progress["calls"]["answered"] == 1
    assert progress["calls"]["no_answer"] == 2
    assert progress["calls"]["busy"] == 0
    assert progress["live_calls"] == 1
    missing = await api.http.get("/v1/campaigns/9999/progress", headers=api.auth())
    assert missing.status_code == 404


async def test_creating_campaigns(api: Api) -> None:
    """Defaults, unique names."""
    await _a_campaign_is_created_as_a_draft_with_the_model_defaults(api)
    await _names_are_unique(api)


async def test_editing_campaigns(api: Api) -> None:
    """Field by field while draft; never after."""
    await _a_draft_is_edited_field_by_field_and_checked_as_a_whole(api)
    await _only_a_draft_can_be_edited(api)


async def test_cancel_waits_for_a_call_ending_instead_of_deadlocking_with_it(
    pg_url: str,
) -> None:
    """A call's end locks its contact's open call-back (a borrower-requested time moves it)
    and then the campaign row (live calls); cancelling takes them in the same order."""
    settings = Settings(environment="test", database_url=pg_url, dialer_enabled=False)
    async with running_api(settings) as api:
        campaign_id, [pending] = await seed_campaign_with_callbacks(api.sessionmaker, ["pending"])
        async with api.sessionmaker() as ending:
            await ending.execute(
                update(CallBack).where(CallBack.id == pending).values(reason="borrower_request")
            )
            cancel = asyncio.create_task(
                api.http.post(f"/v1/campaigns/{campaign_id}/cancel", headers=api.auth())
            )
            await asyncio.sleep(0.5)  # the cancel is now waiting for the call-back's lock
            assert not cancel.done()
            await ending.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(live_calls=Campaign.live_calls + 0)
            )
            await ending.commit()
        response = await asyncio.wait_for(cancel, timeout=10)
        assert response.status_code == 200, response.text
        async with api.sessionmaker() as session:
            callback = await session.get(CallBack, pending)
            assert callback is not None
            assert (callback.status, callback.reason) == ("cancelled", "borrower_request")


async def test_a_campaign_must_name_a_dialog_the_calls_can_run(
    settings: Settings, tmp_path: Path
) -> None:
    """Checked when a campaign is made, edited, started and resumed: found only when a borrower
    answered, an unknown or broken dialog dialed people to silence."""
    shipped = Path(settings.dialogs_dir) / "car_loan_followup.zh-CN.yaml"
    shutil.copy(shipped, tmp_path / "good.zh-CN.yaml")
    (tmp_path / "broken.zh-CN.yaml").write_text("id: broken\nstates: [", encoding="utf-8")
    own = settings.model_copy(update={"dialogs_dir": str(tmp_path)})
    async with running_api(own) as api:
        headers = api.auth(Role.OPERATOR)
        for dialog_id, error in (
            ("car_loan_followup.xx-XX", "unknown_dialog"),
            ("broken.zh-CN", "invalid_dialog"),
        ):
            refused = await api.http.post(
                "/v1/campaigns", json={"name": "w", "dialog_id": dialog_id}, headers=headers
            )
            assert refused.status_code == 422, refused.text
            detail = refused.json()["detail"]
            assert (detail["error"], detail["field"]) == (error, "dialog_id")
            assert dialog_id in detail["message"]
            if error == "unknown_dialog":  # it names the dialogs there are
                assert "good.zh-CN" in detail["message"]
        listed = await api.http.get("/v1/campaigns", headers=headers)
        assert listed.json()["total"] == 0

        created = await api.create_campaign("spring", dialog_id="good.zh-CN")
        path = f"/v1/campaigns/{created['id']}"
        edit = await api.http.patch(path, json={"dialog_id": "gone.zh-CN"}, headers=headers)
        assert (edit.status_code, edit.json()["detail"]["error"]) == (422, "unknown_dialog")
        assert (await api.http.get(path, headers=headers)).json() == created

        # The file goes away after the campaign was made: it does not start.
        (tmp_path / "good.zh-CN.yaml").unlink()
        start = await api.http.post(f"{path}/start", headers=headers)
        assert (start.status_code, start.json()["detail"]["error"]) == (409, "unknown_dialog")
        assert (await api.http.get(path, headers=headers)).json()["status"] == "draft"
        shutil.copy(shipped, tmp_path / "good.zh-CN.yaml")
        assert (await api.http.post(f"{path}/start", headers=headers)).status_code == 200
