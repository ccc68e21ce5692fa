"""NUL characters, which PostgreSQL text cannot hold, and numbers JSON cannot hold get a clear
4xx instead of a 500, and nothing is stored (found by fuzzing the OpenAPI document); a refused
value is never echoed back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.api_support import Api, count, running_api
from voicebot.config import Settings
from voicebot.db.models import Campaign
from voicebot.domain.types import Role


@pytest.fixture
async def api(pg_url: str) -> AsyncIterator[Api]:
    settings = Settings(environment="test", database_url=pg_url, dialer_enabled=False)
    async with running_api(settings) as running:
        yield running


@pytest.fixture
async def any_api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


async def test_a_nul_in_a_query_parameter_is_refused_by_name(api: Api) -> None:
    response = await api.http.get(
        "/v1/campaigns", params={"status": "running\x00"}, headers=api.auth()
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert (detail["error"], detail["field"]) == ("nul_character", "status")
    assert "NUL" in detail["message"]


async def test_a_nul_in_a_body_field_is_refused_and_nothing_is_stored(api: Api) -> None:
    response = await api.http.post(
        "/v1/campaigns",
        json={"name": "winter\x00", "dialog_id": "car_loan_followup.zh-CN"},
        headers=api.auth(),
    )
    assert response.status_code == 422, response.text
    assert "NUL character" in response.json()["detail"]["message"]
    assert await count(api.sessionmaker, Campaign) == 0
    # The service goes on: the same request without the NUL works.
    await api.create_campaign("winter")
    assert await count(api.sessionmaker, Campaign) == 1


async def test_an_id_too_large_for_the_database_is_a_422_not_a_500(any_api: Api) -> None:
    response = await any_api.http.get(f"/v1/campaigns/{2**70}", headers=any_api.auth())
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["error"] == "number_out_of_range"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/campaigns"),
        ("PATCH", "/v1/api-keys/0123456789ab"),
        ("POST", "/v1/do-not-call"),
    ],
)
async def test_a_json_body_that_is_not_utf8_is_a_422_naming_the_byte(
    any_api: Api, method: str, path: str
) -> None:
    # Found by fuzzing: FastAPI answers such a body with an undocumented 400.
    response = await any_api.http.request(
        method,
        path,
        content=b'{"name": "\xff\xfe"}',
        headers={**any_api.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert (detail["error"], detail["field"]) == ("invalid_body", "body")
    assert "byte 10" in detail["message"]
    assert await count(any_api.sessionmaker, Campaign) == 0
    # Other HTTP errors are answered as before.
    missing = await any_api.http.get("/v1/campaigns/999", headers=any_api.auth())
    assert (missing.status_code, missing.json()["detail"]["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/campaigns", '{"name": "w", "dialog_id": "d", "max_attempts": 1e400}'),
        ("POST", "/v1/campaigns", '{"name": "w", "dialog_id": "d", "max_attempts": NaN}'),
        ("POST", "/v1/api-keys", '{"name": "k", "role": Infinity}'),
    ],
)
async def test_a_number_json_cannot_hold_is_a_422_naming_the_field(
    any_api: Api, method: str, path: str, body: str
) -> None:
    # FastAPI's own 422 echoed the value back, and failed itself (as a 500) to write it.
    response = await any_api.http.request(
        method,
        path,
        content=body.encode(),
        headers={**any_api.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][0] == "body" and error["loc"][-1] in ("max_attempts", "role")
    assert "input" not in error
    assert await count(any_api.sessionmaker, Campaign) == 0


async def test_a_refused_value_is_not_echoed_back(any_api: Api) -> None:
    """A secret in the wrong shape (too short) or a whole API key where its prefix belongs is
    named by where it is, never shown."""
    short = await any_api.http.post(
        "/v1/notifications/endpoints",
        json={"url": "https://risk.example.com/hook", "secret": "short-secret"},
        headers=any_api.auth(),
    )
    key = any_api.keys[Role.ANALYST]
    pasted = await any_api.http.post(f"/v1/api-keys/{key}/revoke", headers=any_api.auth())
    for response, field in ((short, "secret"), (pasted, "prefix")):
        assert response.status_code == 422, response.text
        assert [e["loc"][-1] for e in response.json()["detail"]] == [field]
    assert "short-secret" not in short.text
    assert key not in pasted.text and key.split("_")[2] not in pasted.text
