"""``/v1/reports/campaigns/{id}`` through the real app, on both databases: every measure checked
against the seeded calls by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import T0, Seeded, seed_results
from voicebot.config import Settings
from voicebot.db.models import Call, CallBack, Campaign, ContactPhone, Outcome
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


# Borrowers A, B, C: (contact index, minutes after T0, disposition, duration, conversed, outcomes
# as (type, data)). What each measure must make of it is worked out beside the assertions.
_AUTUMN: list[tuple[int, int, str, int, bool, list[tuple[str, dict[str, Any]]]]] = [
    (
        0,
        0,
        "answered",
        30,
        True,
        [
            ("promise", {"amount": "100.10", "currency": "CNY", "date": "2026-12-01"}),
            ("promise", {"amount": "20.00", "currency": "USD", "date": "2026-12-01"}),
            ("complaint", {"category": "other", "text": "…"}),
        ],
    ),
    (0, 1440, "answered", 50, True, [("promise", {"amount": "0.05", "currency": "CNY"})]),
    (1, 10, "opted_out", 12, False, []),
    (1, 1445, "hung_up", 4, False, []),
    (2, 20, "no_answer", 0, False, []),
]


async def _seed_autumn(api: Api, seeded: Seeded) -> tuple[int, int]:
    """A campaign of the calls above (and an outcome whose call is gone, which no measure may
    count), and a campaign with no calls at all."""
    async with api.sessionmaker() as session:
        autumn = Campaign(name="autumn", dialog_id="car_loan_followup.zh-CN", status="running")
        idle = Campaign(name="idle", dialog_id="car_loan_followup.zh-CN", status="running")
        session.add_all([autumn, idle])
        await session.flush()
        phones = {
            phone.contact_id: phone.id
            for phone in await session.scalars(
                select(ContactPhone).where(ContactPhone.contact_id.in_(seeded.contacts))
            )
        }
        for n, (ki, minutes, disposition, duration, conversed, outcomes) in enumerate(_AUTUMN):
            contact_id = seeded.contacts[ki]
            at = T0 + timedelta(minutes=minutes)
            callback = CallBack(
                campaign_id=autumn.id,
                contact_id=contact_id,
                phone_id=phones[contact_id],
                due_at=at,
                status="done",
            )
            session.add(callback)
            await session.flush()
            call = Call(
                callback_id=callback.id,
                campaign_id=autumn.id,
                contact_id=contact_id,
                phone_id=phones[contact_id],
                loan_key=f"autumn-{ki}",
                attempt=1,
                to_number="+8613800000000",
                carrier_sid=f"CAautumn{n}",
                status="completed",
                disposition=disposition,
                duration_seconds=duration,
                conversed=conversed,
                created_at=at,
            )
            session.add(call)
            await session.flush()
            for kind, data in outcomes:
                session.add(
                    Outcome(
                        call_id=call.id,
                        contact_id=contact_id,
                        campaign_id=autumn.id,
                        type=kind,
                        data=data,
                        created_at=at + timedelta(minutes=1),
                    )
                )
        session.add(
            Outcome(
                call_id=None,
                contact_id=seeded.contacts[2],
                campaign_id=autumn.id,
                type="promise",
                data={"amount": "999.00", "currency": "CNY", "date": "2026-12-01"},
                created_at=T0,
            )
        )
        await session.commit()
        return autumn.id, idle.id


async def test_each_borrower_counts_once_per_measure(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    autumn, idle = await _seed_autumn(http, seeded)
    report = await _report(http, autumn, group_by="day")
    totals = report["totals"]
    # A reached and promised twice, complained once; B opted out by disposition (not reached
    # then), reached the next day; C never answered; the promise without a call is not counted.
    assert _counts(totals) == (5, 3, 2, 1, 1, 1, 1)
    assert totals["promised_amount"] == {"CNY": "100.15", "USD": "20.00"}
    assert (totals["average_call_seconds"], totals["opt_out_rate"]) == (28.0, 0.5)
    first, second = report["days"]
    assert (first["day"], second["day"]) == ("2026-11-20", "2026-11-21")
    assert _counts(first) == (3, 3, 1, 1, 1, 1, 1)
    assert first["promised_amount"] == {"CNY": "100.10", "USD": "20.00"}
    assert first["average_call_seconds"] == 30.0
    assert _counts(second) == (2, 2, 2, 1, 1, 0, 0)
    assert (second["promised_amount"], second["average_call_seconds"]) == ({"CNY": "0.05"}, 27.0)

    later = (await _report(http, autumn, since="2026-11-21T00:00:00Z"))["totals"]
    assert (_counts(later), later["promised_amount"]) == (_counts(second), {"CNY": "0.05"})
    earlier = (await _report(http, autumn, until="2026-11-21T00:00:00Z"))["totals"]
    assert _counts(earlier) == _counts(first)
    assert earlier["promised_amount"] == first["promised_amount"]

    nothing = await _report(http, idle, group_by="day")
    assert _counts(nothing["totals"]) == (0, 0, 0, 0, 0, 0, 0)
    assert nothing["totals"]["promised_amount"] == {}
    assert nothing["days"] == []
