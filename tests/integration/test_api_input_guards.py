"""NUL characters, which PostgreSQL text cannot hold, get a clear 4xx instead of a 500, and
nothing is stored (found by fuzzing the OpenAPI document)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.api_support import Api, count, running_api
from voicebot.config import Settings
from voicebot.db.models import Campaign


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
