"""``/v1/outcomes`` through the real app, on both databases: by type and by fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import Seeded, seed_results
from voicebot.config import Settings
from voicebot.domain.types import Role


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Api, Seeded]]:
    async with running_api(settings) as running:
        yield running, await seed_results(running.sessionmaker)


async def _ids(api: Api, **params: Any) -> list[int]:
    response = await api.http.get("/v1/outcomes", params=params, headers=api.auth(Role.ANALYST))
    assert response.status_code == 200, response.text
    return [o["id"] for o in response.json()["items"]]


async def test_outcomes_by_type_and_by_their_fields(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    promises, complaints = seeded.outcomes["promise"], seeded.outcomes["complaint"]
    assert await _ids(http, type="promise") == promises[::-1]
    assert sorted(await _ids(http, type=["complaint", "risk_flag"])) == sorted(
        complaints + seeded.outcomes["risk_flag"]
    )
    # Promises due in the first week of December: only the 2026-12-05 one.
    assert await _ids(http, type="promise", due_from="2026-12-01", due_to="2026-12-07") == [
        promises[0]
    ]
    assert await _ids(http, type="promise", due_to="2026-12-05") == [promises[1], promises[0]]
    assert await _ids(http, type="complaint", category="harassment") == [complaints[0]]
    assert await _ids(http, type="risk_flag", flag="hardship") == seeded.outcomes["risk_flag"]
    assert (
        await _ids(http, type="risk_flag", since="2026-11-21T00:00:00Z")
        == (seeded.outcomes["risk_flag"])
    )
    assert await _ids(http, type="risk_flag", since="2026-11-22T00:00:00Z") == []
    assert await _ids(http, type="promise", campaign_id=seeded.campaigns[1]) == [promises[2]]
    assert await _ids(http, contact_id=seeded.contacts[1]) == [promises[1], complaints[0]]
    # Only the spring call at 02:30 had outcomes recorded before 02:59.
    assert await _ids(http, until="2026-11-20T02:59:00Z") == [complaints[1], promises[2]]


async def test_outcome_pages_and_masking(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    first = (await http.http.get("/v1/outcomes?limit=5", headers=http.auth(Role.ANALYST))).json()
    second = (
        await http.http.get(
            "/v1/outcomes",
            params={"limit": 5, "cursor": first["next_cursor"]},
            headers=http.auth(Role.ANALYST),
        )
    ).json()
    ids = [o["id"] for o in first["items"] + second["items"]]
    assert ids == sorted((i for v in seeded.outcomes.values() for i in v), reverse=True)
    assert second["next_cursor"] is None
    names = {o["contact_name"] for o in first["items"] + second["items"]}
    assert names == {"张*", "李*", "王**"}
    admin = (await http.http.get("/v1/outcomes", headers=http.auth(Role.ADMIN))).json()
    assert {o["contact_name"] for o in admin["items"]} == {"张三", "李四", "王小明"}
    bad = await http.http.get("/v1/outcomes?type=promise&due_from=soon", headers=http.auth())
    assert bad.status_code == 422
    assert "due_from" in bad.json()["detail"][0]["loc"]
