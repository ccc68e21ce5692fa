"""``/v1/reports/campaigns/{id}`` through the real app, on both databases: every measure checked
against the seeded calls by hand."""

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


async def _report(api: Api, campaign_id: int, **params: Any) -> dict[str, Any]:
    response = await api.http.get(
        f"/v1/reports/campaigns/{campaign_id}", params=params, headers=api.auth(Role.ANALYST)
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _counts(m: dict[str, Any]) -> tuple[Any, ...]:
    return (
        m["attempts"],
        m["contacts_attempted"],
        m["contacts_reached"],
        m["right_party_contacts"],
        m["contacts_promised"],
        m["contacts_complained"],
        m["contacts_opted_out"],
    )


async def test_a_campaigns_measures(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    winter, spring = seeded.campaigns
    report = await _report(http, winter)
    totals = report["totals"]
    assert _counts(totals) == (6, 3, 3, 3, 2, 1, 1)
    assert (
        totals["contact_rate"],
        totals["right_party_contact_rate"],
        totals["promise_rate"],
        totals["complaint_rate"],
        totals["opt_out_rate"],
        totals["attempts_per_contact"],
        totals["average_call_seconds"],
    ) == (1.0, 1.0, 0.6667, 0.3333, 0.3333, 2.0, 59.5)
    assert totals["promised_amount"] == {"CNY": "4300.00"}
    assert report["days"] is None

    spring_totals = (await _report(http, spring))["totals"]
    assert _counts(spring_totals) == (2, 2, 1, 1, 1, 1, 0)
    assert (spring_totals["contact_rate"], spring_totals["average_call_seconds"]) == (0.5, 50.0)
    assert spring_totals["promised_amount"] == {"CNY": "100.00"}


async def test_a_report_by_day_and_over_a_range(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    winter = seeded.campaigns[0]
    report = await _report(http, winter, group_by="day")
    assert _counts(report["totals"]) == (6, 3, 3, 3, 2, 1, 1)
    days = report["days"]
    assert [d["day"] for d in days] == ["2026-11-20", "2026-11-21"]
    assert _counts(days[0]) == (5, 3, 3, 2, 2, 1, 0)
    assert (days[0]["average_call_seconds"], days[0]["promised_amount"]) == (
        39.33,
        {"CNY": "4300.00"},
    )
    assert _counts(days[1]) == (1, 1, 1, 1, 0, 0, 1)
    assert days[1]["promised_amount"] == {}
    ranged = await _report(http, winter, since="2026-11-21T00:00:00Z")
    assert _counts(ranged["totals"]) == (1, 1, 1, 1, 0, 0, 1)
    empty = await _report(http, winter, until="2026-11-01T00:00:00Z", group_by="day")
    assert _counts(empty["totals"]) == (0, 0, 0, 0, 0, 0, 0)
    assert (empty["totals"]["contact_rate"], empty["days"]) == (None, [])


async def test_an_unknown_campaign_or_grouping_is_refused(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    missing = await http.http.get("/v1/reports/campaigns/999999", headers=http.auth())
    assert missing.status_code == 404
    bad = await http.http.get(
        f"/v1/reports/campaigns/{seeded.campaigns[0]}?group_by=week", headers=http.auth()
    )
    assert bad.status_code == 422
    assert "group_by" in bad.json()["detail"][0]["loc"]
