"""``/v1/api-keys``: admins make, list, re-role and revoke keys, each change audited and applied
at once by the process that made it; on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.integration.api_support import Api, running_api
from voicebot.config import Settings
from voicebot.db.apikeys import key_prefix
from voicebot.db.models import ApiKey, AuditEntry
from voicebot.domain.types import Role


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    # Keys stay verified for a minute: a change must not wait for that in this process.
    async with running_api(settings.model_copy(update={"api_key_cache_seconds": 60})) as running:
        yield running


def _prefix(key: str) -> str:
    prefix = key_prefix(key)
    assert prefix is not None
    return prefix


async def _key_audit(api: Api) -> list[dict[str, Any]]:
    response = await api.http.get(
        "/v1/audit", params={"target_type": "api_key"}, headers=api.auth()
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_admin_makes_re_roles_and_revokes_a_key_and_each_change_is_audited(
    api: Api,
) -> None:
    response = await api.http.post(
        "/v1/api-keys", json={"name": " risk team ", "role": "analyst"}, headers=api.auth()
    )
    assert response.status_code == 201, response.text
    made = response.json()
    secret, prefix = made["key"], made["prefix"]
    assert secret.startswith(f"vb_{prefix}_")
    assert (made["name"], made["role"], made["revoked_at"]) == ("risk team", "analyst", None)
    theirs = {"Authorization": f"Bearer {secret}"}
    assert (await api.http.get("/v1/calls", headers=theirs)).status_code == 200
    assert (await api.http.get("/v1/campaigns", headers=theirs)).status_code == 200
    campaign = {"name": "spring", "dialog_id": "car_loan_followup.zh-CN"}
    assert (await api.http.post("/v1/campaigns", json=campaign, headers=theirs)).status_code == 403

    listed = await api.http.get("/v1/api-keys", headers=api.auth())
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert (items[0]["prefix"], len(items)) == (prefix, len(api.keys) + 1)  # newest first
    for key in [secret, *api.keys.values()]:
        assert key.split("_", 2)[2] not in listed.text  # no secret, ever

    # A new role applies at once here, although the key was verified a moment ago.
    response = await api.http.patch(
        f"/v1/api-keys/{prefix}", json={"role": "operator"}, headers=api.auth()
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "operator"
    assert (await api.http.post("/v1/campaigns", json=campaign, headers=theirs)).status_code == 201

    response = await api.http.post(f"/v1/api-keys/{prefix}/revoke", headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None
    refused = await api.http.get("/v1/calls", headers=theirs)
    assert (refused.status_code, refused.json()["detail"]["error"]) == (401, "invalid_api_key")

    live = (await api.http.get("/v1/api-keys", headers=api.auth())).json()["items"]
    assert prefix not in {k["prefix"] for k in live}
    every = await api.http.get("/v1/api-keys?include_revoked=true", headers=api.auth())
    assert {k["prefix"]: k["role"] for k in every.json()["items"]}[prefix] == "operator"

    entries = await _key_audit(api)
    assert [(e["action"], e["target_id"], e["details"]) for e in entries] == [
        ("apikey.revoke", prefix, {"name": "risk team", "role": "operator"}),
        ("apikey.role", prefix, {"from": "analyst", "to": "operator"}),
        ("apikey.create", prefix, {"name": "risk team", "role": "analyst"}),
    ]
    async with api.sessionmaker() as session:
        admin = await session.scalar(
            select(ApiKey).where(ApiKey.prefix == _prefix(api.keys[Role.ADMIN]))
        )
    assert admin is not None
    assert {e["actor"] for e in entries} == {f"apikey:{admin.id}:{admin.name}"}


async def test_the_last_live_admin_key_can_be_neither_revoked_nor_demoted(api: Api) -> None:
    first = _prefix(api.keys[Role.ADMIN])
    for method, path, body in (
        ("PATCH", f"/v1/api-keys/{first}", {"role": "operator"}),
        ("POST", f"/v1/api-keys/{first}/revoke", None),
    ):
        response = await api.http.request(method, path, json=body, headers=api.auth())
        assert response.status_code == 409, response.text
        assert response.json()["detail"]["error"] == "last_admin"
    assert (await api.http.get("/v1/api-keys", headers=api.auth())).status_code == 200

    response = await api.http.post(
        "/v1/api-keys", json={"name": "second admin", "role": "admin"}, headers=api.auth()
    )
    second = response.json()
    revoked = await api.http.post(f"/v1/api-keys/{first}/revoke", headers=api.auth())
    assert revoked.status_code == 200, revoked.text
    theirs = {"Authorization": f"Bearer {second['key']}"}
    response = await api.http.patch(
        f"/v1/api-keys/{second['prefix']}", json={"role": "analyst"}, headers=theirs
    )
    assert response.status_code == 409
    # Giving an admin key the role it has is no change, and allowed.
    response = await api.http.patch(
        f"/v1/api-keys/{second['prefix']}", json={"role": "admin"}, headers=theirs
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "named"),
    [
        ("PATCH", "/v1/api-keys/XYZ", {"role": "analyst"}, 422, "prefix"),
        ("POST", "/v1/api-keys/0123456789ABCDEF/revoke", None, 422, "prefix"),
        ("POST", "/v1/api-keys/0123456789ab/revoke", None, 404, "0123456789ab"),
        ("PATCH", "/v1/api-keys/0123456789ab", {"role": "analyst"}, 404, "0123456789ab"),
        ("PATCH", "/v1/api-keys/0123456789ab", {"role": "root"}, 422, "role"),
        ("POST", "/v1/api-keys", {"name": "x", "role": "root"}, 422, "role"),
        ("POST", "/v1/api-keys", {"name": "  ", "role": "analyst"}, 422, "name"),
        ("POST", "/v1/api-keys", {"name": "ops\nteam", "role": "analyst"}, 422, "name"),
        ("POST", "/v1/api-keys", {"name": "x", "role": "analyst", "key": "mine"}, 422, "key"),
    ],
)
async def test_bad_requests_name_the_problem_and_change_nothing(
    api: Api, method: str, path: str, body: dict[str, str] | None, status: int, named: str
) -> None:
    async with api.sessionmaker() as session:
        keys_before = (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()
        before = [(k.prefix, k.role, k.revoked_at) for k in keys_before]
    response = await api.http.request(method, path, json=body, headers=api.auth())
    assert response.status_code == status, response.text
    assert named in response.text
    async with api.sessionmaker() as session:
        keys_after = (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()
        assert [(k.prefix, k.role, k.revoked_at) for k in keys_after] == before
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_two_admins_revoking_each_other_at_once_leave_one_admin(
    api: Api, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no row locks: its single writer is the embedded default's")
    response = await api.http.post(
        "/v1/api-keys", json={"name": "second admin", "role": "admin"}, headers=api.auth()
    )
    second = response.json()
    first = _prefix(api.keys[Role.ADMIN])
    answers = await asyncio.gather(
        api.http.post(f"/v1/api-keys/{second['prefix']}/revoke", headers=api.auth()),
        api.http.post(
            f"/v1/api-keys/{first}/revoke",
            headers={"Authorization": f"Bearer {second['key']}"},
        ),
    )
    # The loser is refused by the rule (409), or, when the winner committed before the loser's
    # key was even checked, as a key that is revoked (401): either way one admin is left.
    assert sorted(a.status_code for a in answers) in ([200, 409], [200, 401])
    async with api.sessionmaker() as session:
        admins = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        )
    assert admins == 1
