"""Payments through the real app, on both databases: promises judged kept, partly kept or
broken; a broken one followed up with a call-back when the campaign says so, and notified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.integration.api_support import Api, count, running_api
from tests.integration.results_support import Seeded, seed_results
from voicebot.config import Settings
from voicebot.db.models import CallBack, NotificationEvent, Outcome, Payment, PromiseCheck
from voicebot.db.promises import judge_promises
from voicebot.domain.types import Role

TODAY = datetime.now(UTC).date()


def _day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Api, Seeded]]:
    """The seeded promises, moved to dates around today: winter's 3500 (contact 0) due in a
    week, winter's 800 (contact 1) due three days ago, spring's 100 (contact 0) due in 20 days;
    plus winter's 500 (contact 2) due yesterday. All given six days ago."""
    async with running_api(settings) as running:
        seeded = await seed_results(running.sessionmaker)
        given = datetime.now(UTC) - timedelta(days=6)
        async with running.sessionmaker() as session:
            promises = seeded.outcomes["promise"]
            for outcome_id, due in zip(promises, (7, -3, 20), strict=True):
                outcome = await session.get(Outcome, outcome_id)
                assert outcome is not None
                outcome.data = {**outcome.data, "date": _day(due)}
                outcome.created_at = given
            late = Outcome(
                call_id=seeded.calls[5],
                contact_id=seeded.contacts[2],
                campaign_id=seeded.campaigns[0],
                type="promise",
                data={"amount": "500.00", "currency": "CNY", "date": _day(-1)},
                created_at=given,
            )
            session.add(late)
            await session.flush()
            seeded.outcomes["promise"].append(late.id)
            await session.commit()
        yield running, seeded


async def _post(api: Api, payments: list[dict[str, Any]]) -> dict[str, Any]:
    response = await api.http.post(
        "/v1/payments", json={"payments": payments}, headers=api.auth(Role.OPERATOR)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_payments_judge_promises_and_a_broken_one_is_followed_up(
    api: tuple[Api, Seeded],
) -> None:
    http, seeded = api
    winter, _spring = seeded.campaigns
    big, small, spring_promise, late = seeded.outcomes["promise"]
    policy = await http.http.put(
        f"/v1/campaigns/{winter}/promise-policy",
        json={"grace_days": 0, "follow_up_broken": True, "follow_up_delay_hours": 2},
        headers=http.auth(Role.OPERATOR),
    )
    assert policy.status_code == 200, policy.text
    body = await _post(
        http,
        [
            {"loan_id": "LN-0", "amount": "2000", "paid_on": _day(-1), "reference": "TX-1"},
            {"loan_id": "LN-0", "amount": "1500.00", "paid_on": _day(0), "currency": "CNY"},
            {"loan_id": "LN-1", "amount": "300.00", "paid_on": _day(-4), "reference": "TX-3"},
            {"loan_id": "LN-2", "amount": "50.00", "paid_on": _day(0)},  # after its last day
        ],
    )
    assert (body["received"], body["stored"], body["duplicates"]) == (4, 4, 0)
    verdicts = {p["outcome_id"]: (p["status"], p["paid"]) for p in body["promises"]}
    assert verdicts == {
        big: ("kept", "3500.00"),
        spring_promise: ("kept", "3500.00"),
        small: ("partly_kept", "300.00"),
        late: ("broken", "0.00"),
    }
    (follow_up,) = [p["follow_up_callback_id"] for p in body["promises"] if p["status"] == "broken"]
    async with http.sessionmaker() as session:
        callback = await session.get(CallBack, follow_up)
        assert callback is not None
        assert (callback.reason, callback.status, callback.attempt, callback.campaign_id) == (
            "broken_promise",
            "pending",
            1,
            winter,
        )
        assert timedelta(hours=1.9) < callback.due_at - datetime.now(UTC) <= timedelta(hours=2)
        events = (await session.scalars(select(NotificationEvent))).all()
    assert [(e.type, e.contact_id, e.payload["outcome_id"]) for e in events] == [
        ("broken_promise", seeded.contacts[2], late)
    ]

    listed = await http.http.get("/v1/outcomes?type=promise", headers=http.auth(Role.ANALYST))
    assert {o["id"]: o["promise_status"] for o in listed.json()["items"]} == {
        big: "kept",
        small: "partly_kept",
        spring_promise: "kept",
        late: "broken",
    }
    # A judged promise stays judged; a payment sent again (its reference and all) is stored once.
    again = await _post(
        http, [{"loan_id": "LN-1", "amount": "300", "paid_on": _day(-4), "reference": "TX-3"}]
    )
    assert (again["stored"], again["duplicates"], again["promises"]) == (0, 1, [])
    assert await count(http.sessionmaker, Payment) == 4


async def test_the_sweep_breaks_an_overdue_promise_without_a_follow_up_policy(
    api: tuple[Api, Seeded],
) -> None:
    http, seeded = api
    _, small, _, late = seeded.outcomes["promise"]
    now = datetime.now(UTC)
    async with http.sessionmaker() as session:
        judged = await judge_promises(session, today=TODAY, now=now)
        await session.commit()
    assert {(j.outcome_id, j.status, j.follow_up_callback_id) for j in judged} == {
        (small, "broken", None),
        (late, "broken", None),
    }
    async with http.sessionmaker() as session:
        rows = (await session.scalars(select(PromiseCheck.outcome_id))).all()
        open_followups = await session.scalar(
            select(CallBack.id).where(CallBack.reason == "broken_promise")
        )
        # Judged once: a second sweep finds nothing left to judge.
        assert await judge_promises(session, today=TODAY, now=now) == []
    assert sorted(rows) == sorted([small, late])
    assert open_followups is None


async def test_a_csv_import_and_its_errors(api: tuple[Api, Seeded]) -> None:
    http, _seeded = api
    headers = {**http.auth(Role.OPERATOR), "Content-Type": "text/csv"}
    bad = (
        "loan_id,amount,paid_on,currency\n"
        f"LN-0,100.00,{_day(0)},CNY\n"
        f"LN-1,-5,{_day(0)},CNY\n"
        "LN-2,10.00,yesterday,\n"
    ).encode()
    response = await http.http.post("/v1/payments", content=bad, headers=headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_rows"
    assert [(e["line"], e["field"]) for e in detail["errors"]] == [(3, "amount"), (4, "paid_on")]
    assert await count(http.sessionmaker, Payment) == 0

    good = (f"\ufeffloan_id,amount,paid_on,reference\nLN-0,3500.00,{_day(0)},R-9\n").encode()
    response = await http.http.post("/v1/payments", content=good, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    async with http.sessionmaker() as session:
        payment = (await session.scalars(select(Payment))).one()
    assert (payment.loan_id, payment.amount, payment.paid_on, payment.source) == (
        "LN-0",
        3500,
        date.fromisoformat(_day(0)),
        "csv",
    )
    for content, content_type, code in (
        (b"loan_id,amount\nLN-0,1\n", "text/csv", "missing_columns"),
        (f"loan_id,amount,paid_on\nLN-0,1,{_day(0)},9\n".encode(), "text/csv", "invalid_rows"),
        (
            b'{"payments": [{"loan_id": "L\\u0000", "amount": "1", "paid_on": "2026-01-01"}]}',
            "application/json",
            "invalid_payments",
        ),
        (b'{"payments": []}', "application/json", "invalid_payments"),
        (b"x", "application/xml", "unsupported_media_type"),
    ):
        response = await http.http.post(
            "/v1/payments",
            content=content,
            headers={**http.auth(Role.OPERATOR), "Content-Type": content_type},
        )
        assert response.json()["detail"]["error"] == code, content
    analyst = await http.http.post(
        "/v1/payments", json={"payments": []}, headers=http.auth(Role.ANALYST)
    )
    assert analyst.status_code == 403


async def test_policy_reads_back(api: tuple[Api, Seeded]) -> None:
    http, seeded = api
    spring = seeded.campaigns[1]
    url = f"/v1/campaigns/{spring}/promise-policy"
    default = (await http.http.get(url, headers=http.auth(Role.ANALYST))).json()
    assert (default["follow_up_broken"], default["grace_days"]) == (False, 0)
    await http.http.put(url, json={"grace_days": 3}, headers=http.auth(Role.OPERATOR))
    stored = (await http.http.get(url, headers=http.auth(Role.ANALYST))).json()
    assert (stored["grace_days"], stored["follow_up_broken"], stored["follow_up_delay_hours"]) == (
        3,
        True,
        24,
    )
    bad = await http.http.put(url, json={"grace_days": -1}, headers=http.auth(Role.OPERATOR))
    assert bad.status_code == 422
    missing = await http.http.get("/v1/campaigns/99999/promise-policy", headers=http.auth())
    assert missing.status_code == 404


async def test_a_promise_without_a_campaign_is_judged_without_a_follow_up(
    api: tuple[Api, Seeded],
) -> None:
    http, _seeded = api
    async with http.sessionmaker() as session:
        await session.execute(
            update(Outcome).where(Outcome.type == "promise").values(campaign_id=None)
        )
        await session.commit()
        judged = await judge_promises(session, today=TODAY, now=datetime.now(UTC))
        await session.commit()
    # Without a campaign there is no policy, hence no follow-up, but the verdict stands.
    assert {j.status for j in judged} == {"broken"}
    assert all(j.follow_up_callback_id is None for j in judged)


async def _post_csv(api: Api, data: bytes, content_type: str = "text/csv") -> Any:
    return await api.http.post(
        "/v1/payments",
        content=data,
        headers={**api.auth(Role.OPERATOR), "Content-Type": content_type},
    )


async def test_a_csv_is_read_as_strictly_as_a_contacts_file(api: tuple[Api, Seeded]) -> None:
    http, _seeded = api
    good = f"LN-X1,5.00,{_day(-1)}\n"
    for data, code, where, needle in (
        # Past the csv module's cell limit: was a 500.
        (
            f"loan_id,amount,paid_on,note\n{good[:-1]},ok\nLN-X2,1,{_day(-1)},{'x' * 140_000}\n",
            "malformed_csv",
            {"line": 3},
            "field larger than field limit",
        ),
        # Was "paid_on: Field required".
        (
            f'loan_id,amount,paid_on\n{good}LN-X2,"5.00,{_day(-1)}\n',
            "malformed_csv",
            {"line": 3},
            "unexpected end of data",
        ),
        # Was stored with the last amount.
        (
            f"loan_id,amount,paid_on,amount\nLN-X1,5.00,{_day(-1)},7.00\n",
            "invalid_columns",
            {"line": 1, "column": 4},
            "'amount' appears twice",
        ),
    ):
        response = await _post_csv(http, data.encode())
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail["error"] == code
        assert where.items() <= detail.items()
        assert needle in detail["message"]
    # A control character in a reference: was stored by SQLite, refused by PostgreSQL unnamed.
    response = await _post_csv(
        http, f"loan_id,amount,paid_on,reference\n{good[:-1]},R\0\n".encode()
    )
    assert response.status_code == 422, response.text
    assert [(e["line"], e["field"]) for e in response.json()["detail"]["errors"]] == [
        (2, "reference")
    ]
    # Neither UTF-8 nor GB18030: the line is named (was only a byte offset).
    response = await _post_csv(http, f"loan_id,amount,paid_on\n{good}".encode() + b"\xff\n")
    assert response.status_code == 422
    assert response.json()["detail"]["line"] == 3
    assert await count(http.sessionmaker, Payment) == 0

    # A GBK file, as Chinese spreadsheets save, is read like a contacts file; a declared charset
    # is honoured.
    gbk = f"loan_id,amount,paid_on,reference\nLN-X1,5.00,{_day(-1)},工行-1\n".encode("gbk")
    assert (await _post_csv(http, gbk)).status_code == 200
    latin = f"loan_id,amount,paid_on,reference\nLN-X1,5.00,{_day(-1)},Réf-1\n".encode("latin-1")
    response = await _post_csv(http, latin, "text/csv; charset=latin-1")
    assert response.status_code == 200, response.text
    async with http.sessionmaker() as session:
        references = set((await session.scalars(select(Payment.reference))).all())
    assert references == {"工行-1", "Réf-1"}


async def test_a_reference_names_one_payment(api: tuple[Api, Seeded]) -> None:
    http, _seeded = api
    day = _day(-2)
    # Two loans' payments under one reference in one upload: LN-X2's was counted a duplicate
    # and lost.
    response = await _post_csv(
        http,
        f"loan_id,amount,paid_on,reference\nLN-X1,5.00,{day},R-1\nLN-X2,5.00,{day},R-1\n".encode(),
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["error"] == "reference_conflict"
    ((error),) = detail["errors"]
    assert (error["line"], error["field"], error["conflicts_with"]) == (3, "reference", {"line": 2})
    assert "line 2" in error["reason"]
    response = await http.http.post(
        "/v1/payments",
        json={
            "payments": [
                {"loan_id": "LN-X1", "amount": "5", "paid_on": day, "reference": "R-1"},
                {"loan_id": "LN-X1", "amount": "6", "paid_on": day, "reference": "R-1"},
            ]
        },
        headers=http.auth(Role.OPERATOR),
    )
    assert response.status_code == 422, response.text
    ((error),) = response.json()["detail"]["errors"]
    assert error["loc"] == ["payments", 1, "reference"]
    assert error["conflicts_with"] == {"loc": ["payments", 0]}
    assert await count(http.sessionmaker, Payment) == 0

    # The same payment twice is a repeat, in one upload or across two.
    same = f"loan_id,amount,paid_on,reference\nLN-X1,5.00,{day},R-1\nLN-X1,5,{day},R-1\n"
    body = (await _post_csv(http, same.encode())).json()
    assert (body["stored"], body["duplicates"]) == (1, 1)
    body = (await _post_csv(http, same.encode())).json()
    assert (body["stored"], body["duplicates"]) == (0, 2)
    # A stored reference sent for another payment: refused, and the upload's other payment too.
    response = await _post_csv(
        http,
        f"loan_id,amount,paid_on,reference\nLN-X3,1.00,{day},R-2\nLN-X2,5.00,{day},R-1\n".encode(),
    )
    assert response.status_code == 422, response.text
    ((error),) = response.json()["detail"]["errors"]
    assert (error["line"], error["field"]) == (3, "reference")
    assert "already stored for a different payment (loan LN-X1" in error["reason"]
    async with http.sessionmaker() as session:
        stored = (await session.execute(select(Payment.loan_id, Payment.reference))).all()
    assert [tuple(row) for row in stored] == [("LN-X1", "R-1")]


async def test_a_payment_dated_in_the_future_is_refused(api: tuple[Api, Seeded]) -> None:
    http, _seeded = api
    response = await _post_csv(
        http, f"loan_id,amount,paid_on\nLN-X1,5.00,{_day(0)}\nLN-X1,5.00,9999-12-31\n".encode()
    )
    assert response.status_code == 422, response.text
    ((error),) = response.json()["detail"]["errors"]
    assert (error["line"], error["field"]) == (3, "paid_on")
    assert "in the future" in error["reason"]
    response = await http.http.post(
        "/v1/payments",
        json={"payments": [{"loan_id": "LN-X1", "amount": "5", "paid_on": _day(2)}]},
        headers=http.auth(Role.OPERATOR),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["errors"][0]["loc"] == ["payments", 0, "paid_on"]
    assert await count(http.sessionmaker, Payment) == 0
    # A day ahead of UTC is today somewhere (the lender's date in Asia).
    body = await _post(http, [{"loan_id": "LN-X1", "amount": "5", "paid_on": _day(1)}])
    assert body["stored"] == 1
