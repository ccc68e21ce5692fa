"""Every /v1 route demands an API key and checks its role, on both databases."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.integration.api_support import Api, running_api
from voicebot.api.auth import Principal, VerifiedKeys
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.apikeys import authenticate, create_api_key, key_prefix, revoke_api_key
from voicebot.db.models import ApiKey
from voicebot.domain.types import Role

# The least role each route needs. A new /v1 route fails the first test until it is listed.
ROUTE_ROLES = {
    ("POST", "/v1/campaigns"): Role.OPERATOR,
    ("GET", "/v1/campaigns"): Role.ANALYST,
    ("GET", "/v1/campaigns/{campaign_id}"): Role.ANALYST,
    ("PATCH", "/v1/campaigns/{campaign_id}"): Role.OPERATOR,
    ("POST", "/v1/campaigns/{campaign_id}/start"): Role.OPERATOR,
    ("POST", "/v1/campaigns/{campaign_id}/pause"): Role.OPERATOR,
    ("POST", "/v1/campaigns/{campaign_id}/resume"): Role.OPERATOR,
    ("POST", "/v1/campaigns/{campaign_id}/cancel"): Role.OPERATOR,
    ("GET", "/v1/campaigns/{campaign_id}/progress"): Role.ANALYST,
    ("POST", "/v1/campaigns/{campaign_id}/contacts"): Role.OPERATOR,
    ("GET", "/v1/contacts"): Role.ANALYST,
    ("GET", "/v1/contacts/{contact_id}"): Role.ANALYST,
    ("POST", "/v1/do-not-call"): Role.OPERATOR,
    ("GET", "/v1/do-not-call"): Role.ANALYST,
    ("GET", "/v1/audit"): Role.ADMIN,
    ("GET", "/v1/calls"): Role.ANALYST,
    ("GET", "/v1/calls/{call_id}"): Role.ANALYST,
    ("GET", "/v1/outcomes"): Role.ANALYST,
    ("GET", "/v1/contacts/{contact_id}/history"): Role.ANALYST,
    ("GET", "/v1/reports/campaigns/{campaign_id}"): Role.ANALYST,
    ("GET", "/v1/exports/calls.csv"): Role.ANALYST,
    ("GET", "/v1/exports/outcomes.csv"): Role.ANALYST,
    ("POST", "/v1/payments"): Role.OPERATOR,
    ("GET", "/v1/campaigns/{campaign_id}/promise-policy"): Role.ANALYST,
    ("PUT", "/v1/campaigns/{campaign_id}/promise-policy"): Role.OPERATOR,
    ("POST", "/v1/notifications/endpoints"): Role.ADMIN,
    ("GET", "/v1/notifications/endpoints"): Role.ADMIN,
    ("PATCH", "/v1/notifications/endpoints/{endpoint_id}"): Role.ADMIN,
    ("DELETE", "/v1/notifications/endpoints/{endpoint_id}"): Role.ADMIN,
    ("POST", "/v1/notifications/endpoints/{endpoint_id}/redeliver"): Role.ADMIN,
    ("GET", "/v1/notifications/deliveries"): Role.ANALYST,
    ("POST", "/v1/notifications/deliveries/{delivery_id}/redeliver"): Role.ADMIN,
    ("GET", "/v1/carrier"): Role.ANALYST,
    ("POST", "/v1/carrier/alarm/clear"): Role.ADMIN,
    ("GET", "/v1/api-keys"): Role.ADMIN,
    ("POST", "/v1/api-keys"): Role.ADMIN,
    ("PATCH", "/v1/api-keys/{prefix}"): Role.ADMIN,
    ("POST", "/v1/api-keys/{prefix}/revoke"): Role.ADMIN,
}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


def test_the_route_table_lists_every_v1_route() -> None:
    app = create_app(Settings(environment="test"), run_dialer=False)
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }
    assert routes == set(ROUTE_ROLES)


async def test_every_route_refuses_missing_unknown_revoked_and_weaker_keys(api: Api) -> None:
    async with api.sessionmaker() as session:
        revoked = create_api_key(session, role=Role.ADMIN, name="former-admin")
        await session.commit()
        prefix = key_prefix(revoked)
        assert prefix is not None
        assert await revoke_api_key(session, prefix, actor="test", now=datetime.now(UTC))
        await session.commit()
    admin = api.keys[Role.ADMIN]
    forged = admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB")
    refused_keys = {
        "garbage": {"Authorization": "Bearer hello"},
        "forged secret": {"Authorization": f"Bearer {forged}"},
        "unknown prefix": {"X-API-Key": "vb_0123456789ab_" + "x" * 43},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "wrong scheme": {"Authorization": f"Basic {admin}"},
    }
    for (method, path), needed in ROUTE_ROLES.items():
        url = path.format(
            campaign_id=1, contact_id=1, call_id=1, endpoint_id=1, delivery_id=1, prefix="0" * 12
        )
        response = await api.http.request(method, url)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]["error"] == "not_authenticated"
        for label, headers in refused_keys.items():
            response = await api.http.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, label)
            assert response.headers["www-authenticate"].startswith("Bearer")
        for role in Role:
            response = await api.http.request(method, url, headers=api.auth(role))
            if role.allows(needed):
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role)
                detail = response.json()["detail"]
                assert (detail["error"], detail["required_role"]) == ("forbidden", needed.value)


async def _the_x_api_key_header_works_like_the_bearer_token(api: Api) -> None:
    for headers in ({"X-API-Key": api.keys[Role.ANALYST]}, api.auth(Role.ANALYST)):
        response = await api.http.get("/v1/campaigns", headers=headers)
        assert response.status_code == 200, response.text


async def _keys_are_stored_only_as_a_hash(api: Api) -> None:
    async with api.sessionmaker() as session:
        stored = (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()
        for row in stored:
            key = api.keys[Role(row.role)]
            assert key.startswith(f"vb_{row.prefix}_")
            assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
            assert key.split("_", 2)[2] not in (row.key_hash, row.prefix, row.name)
            found = await authenticate(session, key)
            assert found is not None and found.id == row.id
        assert await authenticate(session, api.keys[Role.ADMIN] + "x") is None


async def test_refusals_are_logged_without_the_key(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    secret = api.keys[Role.ANALYST]
    with caplog.at_level(logging.WARNING, logger="voicebot.api.auth"):
        await api.http.get("/v1/audit", headers=api.auth(Role.ANALYST))
        await api.http.get("/v1/audit", headers={"Authorization": f"Bearer {secret}x"})
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "needs admin" in messages[0] and "unknown or revoked" in messages[1]
    assert all(secret not in m and secret.split("_", 2)[2] not in m for m in messages)


async def test_keys_work_in_either_header_and_are_stored_hashed(api: Api) -> None:
    """Both headers; only a hash stored."""
    await _the_x_api_key_header_works_like_the_bearer_token(api)
    await _keys_are_stored_only_as_a_hash(api)


async def _revoke(api: Api, key: str) -> None:
    async with api.sessionmaker() as session:
        prefix = key_prefix(key)
        assert prefix is not None
        assert await revoke_api_key(session, prefix, actor="test", now=datetime.now(UTC))
        await session.commit()


async def test_a_revoked_key_stops_working_once_its_verification_expires(
    settings: Settings,
) -> None:
    clock = [1000.0]
    async with running_api(settings.model_copy(update={"api_key_cache_seconds": 10})) as api:
        api.app.state.verified_keys = VerifiedKeys(10, clock=lambda: clock[0])
        headers = api.auth(Role.ANALYST)
        assert (await api.http.get("/v1/campaigns", headers=headers)).status_code == 200
        await _revoke(api, api.keys[Role.ANALYST])
        clock[0] += 9  # still remembered: within the documented delay
        assert (await api.http.get("/v1/campaigns", headers=headers)).status_code == 200
        clock[0] += 2
        response = await api.http.get("/v1/campaigns", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]["error"] == "invalid_api_key"


async def test_with_no_cache_a_revoked_key_is_refused_at_once(settings: Settings) -> None:
    async with running_api(settings.model_copy(update={"api_key_cache_seconds": 0})) as api:
        headers = api.auth(Role.OPERATOR)
        assert (await api.http.get("/v1/campaigns", headers=headers)).status_code == 200
        await _revoke(api, api.keys[Role.OPERATOR])
        assert (await api.http.get("/v1/campaigns", headers=headers)).status_code == 401


def test_verified_keys_forget_the_least_recently_used_first() -> None:
    verified = VerifiedKeys(60, size=2)
    principals = [Principal(key_id=n, name=f"k{n}", role=Role.ANALYST) for n in range(3)]
    verified.remember("a", principals[0])
    verified.remember("b", principals[1])
    assert verified.get("a") == principals[0]  # "b" is now the least recently used
    verified.remember("c", principals[2])
    assert verified.get("b") is None
    assert (verified.get("a"), verified.get("c")) == (principals[0], principals[2])
