"""CSV exports through the real app, on both databases: read back and compared with the JSON
API row by row; masked per role; audited."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import Seeded, seed_results
from voicebot.api import exports
from voicebot.config import Settings
from voicebot.domain.types import Role


@pytest.fixture
async def api(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, Seeded]]:
    monkeypatch.setattr(exports, "BATCH", 3)  # several batches from a few rows
    async with running_api(settings) as running:
        yield running, await seed_results(running.sessionmaker)


async def _csv(api: Api, path: str, role: Role, **params: Any) -> list[dict[str, str]]:
    response = await api.http.get(path, params=params, headers=api.auth(role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


async def _json(api: Api, path: str, role: Role, **params: Any) -> list[dict[str, Any]]:
    response = await api.http.get(path, params={"limit": 500, **params}, headers=api.auth(role))
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return str(value)


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN])
async def test_calls_csv_holds_what_the_list_shows(api: tuple[Api, Seeded], role: Role) -> None:
    http, seeded = api
    for params in ({}, {"campaign_id": seeded.campaigns[0], "disposition": "answered"}):
        rows = await _csv(http, "/v1/exports/calls.csv", role, **params)
        listed = await _json(http, "/v1/calls", role, **params)
        assert len(rows) == len(listed) > 0
        for row, item in zip(rows, listed, strict=True):
            assert list(row) == list(exports.CALL_COLUMNS)
            assert row == {k: _cell(item.get(k)) for k in exports.CALL_COLUMNS if k in item} | {
                "recording_url": row["recording_url"]
            }
    everything = await _csv(http, "/v1/exports/calls.csv", role)
    names = {r["contact_name"] for r in everything}
    numbers = {r["to_number"] for r in everything}
    if role is Role.ANALYST:
        assert names == {"张*", "李*", "王**"}
        assert "+86138****5678" in numbers and all("****" in n for n in numbers)
    else:
        assert names == {"张三", "李四", "王小明"}
        assert "+8613812345678" in numbers
    assert len(everything) == len(seeded.calls)


_OUTCOME_METADATA = {
    "id",
    "type",
    "call_id",
    "contact_id",
    "contact_name",
    "campaign_id",
    "created_at",
    "promise_status",
}


async def test_outcomes_csv_holds_every_matching_outcome(api: tuple[Api, Seeded]) -> None:
    http, _ = api
    rows = await _csv(http, "/v1/exports/outcomes.csv", Role.ANALYST)
    listed = await _json(http, "/v1/outcomes", Role.ANALYST)
    assert [int(r["id"]) for r in rows] == [o["id"] for o in listed]
    for row, item in zip(rows, listed, strict=True):
        fields = {k: v for k, v in item.items() if k not in _OUTCOME_METADATA}
        assert json.loads(row["data"]) == fields
        assert (row["type"], row["contact_name"], row["promise_status"]) == (
            item["type"],
            item["contact_name"],
            _cell(item["promise_status"]),
        )
        assert row["created_at"] == _cell(item["created_at"])
    complaints = await _csv(
        http, "/v1/exports/outcomes.csv", Role.ANALYST, type="complaint", category="harassment"
    )
    assert [(r["category"], r["text"]) for r in complaints] == [("harassment", "别再打了")]
    promises = await _csv(
        http, "/v1/exports/outcomes.csv", Role.ADMIN, type="promise", due_from="2026-12-01"
    )
    assert sorted((r["amount"], r["currency"], r["date"]) for r in promises) == [
        ("100.00", "CNY", "2026-12-20"),
        ("3500.00", "CNY", "2026-12-05"),
    ]


async def test_every_export_is_audited(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    await _csv(http, "/v1/exports/calls.csv", Role.ANALYST, campaign_id=seeded.campaigns[1])
    await _csv(http, "/v1/exports/outcomes.csv", Role.ADMIN, type="risk_flag")
    entries = (await http.http.get("/v1/audit?target_type=export", headers=http.auth())).json()
    assert [(e["action"], e["details"]["filters"]) for e in entries["items"]] == [
        ("exports.outcomes", {"types": ["risk_flag"]}),
        ("exports.calls", {"campaign_id": seeded.campaigns[1]}),
    ]
    assert entries["items"][1]["actor"].endswith("analyst-key")


async def test_a_refused_query_is_an_error_not_a_cut_download(api: tuple[Api, Seeded]) -> None:
    http, _ = api
    response = await http.http.get(
        "/v1/exports/calls.csv", params={"contact_id": 2**70}, headers=http.auth()
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
