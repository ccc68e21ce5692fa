"""Reading contacts, the do-not-call list and the audit log through the real app, on both
databases; phone numbers masked for analysts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from tests.integration.api_support import Api, running_api
from voicebot.config import Settings
from voicebot.db.models import CallBack, ContactPhone, DoNotCall
from voicebot.domain.types import Role

CONTACTS = [
    {
        "external_id": "L-1",
        "name": "张三",
        "phone": "13812345678",
        "alternate_phones": ["13912345678"],
        "amount_due": "99.90",
        "due_date": "2026-07-01",
        "persona": "answers",
    },
    {
        "external_id": "L-2",
        "name": "李四",
        "phone": "13800000002",
        "amount_due": "10",
        "due_date": "2026-07-02",
    },
]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        campaign = await running.create_campaign()
        response = await running.import_json(campaign["id"], CONTACTS)
        assert response.status_code == 200, response.text
        yield running


async def _a_contact_reads_back_with_numbers_and_callbacks(api: Api) -> None:
    listed = await api.http.get("/v1/contacts?external_id=L-1", headers=api.auth(Role.OPERATOR))
    (item,) = listed.json()["items"]
    assert item["callbacks"] is None
    response = await api.http.get(f"/v1/contacts/{item['id']}", headers=api.auth(Role.OPERATOR))
    assert response.status_code == 200
    contact = response.json()
    assert (contact["external_id"], contact["name"], contact["amount_due"]) == (
        "L-1",
        "张三",
        "99.90",
    )
    assert contact["fields"] == {"persona": "answers"}
    assert [(p["number"], p["position"], p["status"]) for p in contact["phones"]] == [
        ("+8613812345678", 0, "valid"),
        ("+8613912345678", 1, "valid"),
    ]
    (callback,) = contact["callbacks"]
    assert (callback["status"], callback["reason"], callback["attempt"]) == (
        "pending",
        "initial",
        1,
    )
    missing = await api.http.get("/v1/contacts/9999", headers=api.auth())
    assert (missing.status_code, missing.json()["detail"]["error"]) == (404, "not_found")


async def _analysts_see_numbers_masked(api: Api) -> None:
    response = await api.http.get("/v1/contacts", headers=api.auth(Role.ANALYST))
    numbers = [p["number"] for c in response.json()["items"] for p in c["phones"]]
    assert numbers == ["+86138****5678", "+86139****5678", "+86138****0002"]


async def _contacts_list_by_campaign_and_pages(api: Api) -> None:
    other = await api.create_campaign("other")
    headers = api.auth(Role.ANALYST)
    response = await api.http.get(f"/v1/contacts?campaign_id={other['id']}", headers=headers)
    assert response.json()["items"] == []
    response = await api.http.get("/v1/contacts?limit=1&offset=1", headers=headers)
    assert [c["external_id"] for c in response.json()["items"]] == ["L-2"]


async def _opting_a_number_out_marks_it_and_cancels_what_cannot_be_dialed(api: Api) -> None:
    for phone in ("+86 138 0000 0002", "13812345678"):
        response = await api.http.post(
            "/v1/do-not-call",
            json={"phone": phone, "reason": "borrower asked", "default_region": "CN"},
            headers=api.auth(Role.OPERATOR),
        )
        assert response.status_code == 201, response.text
    assert response.json()["phone"] == "+8613812345678"
    assert response.json()["source"] == "api"
    async with api.sessionmaker() as session:
        phones = dict((await session.execute(select(ContactPhone.e164, ContactPhone.status))).all())
        callbacks = (await session.scalars(select(CallBack.status).order_by(CallBack.id))).all()
        listed = (await session.scalars(select(DoNotCall.e164))).all()
    assert phones == {
        "+8613812345678": "opted_out",
        "+8613912345678": "valid",
        "+8613800000002": "opted_out",
    }
    # L-1 still has a dialable alternate; L-2 has none left.
    assert list(callbacks) == ["pending", "cancelled"]
    assert sorted(listed) == ["+8613800000002", "+8613812345678"]

    page = (await api.http.get("/v1/do-not-call", headers=api.auth(Role.ANALYST))).json()
    assert page["total"] == 2
    assert {e["phone"] for e in page["items"]} == {"+86138****0002", "+86138****5678"}
    page = (await api.http.get("/v1/do-not-call?limit=1", headers=api.auth())).json()
    assert len(page["items"]) == 1 and page["items"][0]["phone"].startswith("+86138")
    assert "*" not in page["items"][0]["phone"]


async def _a_bad_number_is_not_listed(api: Api) -> None:
    for body in (
        {"phone": "12345", "reason": "x"},
        {"phone": "13812345678", "reason": "x"},  # national, without a region
        {"phone": "13812345678", "reason": "x", "default_region": "Atlantis"},
    ):
        response = await api.http.post("/v1/do-not-call", json=body, headers=api.auth())
        assert response.status_code == 422, body
        assert response.json()["detail"]["error"] == "invalid_phone"
    response = await api.http.post("/v1/do-not-call", json={"phone": "1"}, headers=api.auth())
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]
    page = (await api.http.get("/v1/do-not-call", headers=api.auth())).json()
    assert page["total"] == 0


async def test_the_audit_log_filters_and_masks_numbers(api: Api) -> None:
    await api.http.post(
        "/v1/do-not-call", json={"phone": "+8613800000002", "reason": "asked"}, headers=api.auth()
    )
    response = await api.http.get("/v1/audit", headers=api.auth())
    actions = [e["action"] for e in response.json()["items"]]
    assert actions == ["do_not_call.add", "contacts.import", "campaign.create"]
    response = await api.http.get("/v1/audit?action=contacts.import", headers=api.auth())
    (entry,) = response.json()["items"]
    assert entry["details"]["created"] == 2
    assert entry["actor"].endswith(":operator-key")
    response = await api.http.get("/v1/audit?target_type=phone", headers=api.auth())
    (entry,) = response.json()["items"]
    assert entry["target_id"] == "+86138****0002"
    assert "8613800000002" not in response.text


async def test_contacts_read_back_masked_for_analysts(api: Api) -> None:
    """Reading contacts by id, external id and campaign."""
    await _a_contact_reads_back_with_numbers_and_callbacks(api)
    await _analysts_see_numbers_masked(api)
    await _contacts_list_by_campaign_and_pages(api)


async def test_the_do_not_call_list(api: Api) -> None:
    """Adding numbers (and refusing bad ones), listing them."""
    await _a_bad_number_is_not_listed(api)
    await _opting_a_number_out_marks_it_and_cancels_what_cannot_be_dialed(api)
