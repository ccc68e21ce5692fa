"""What analysts see of borrowers, across every route that shows them: names and numbers masked
in the fields that hold them and in free text too (a transcript greets the borrower by name; a
borrower may say a new number, which a risk flag keeps verbatim). Admins see everything whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from tests.integration.api_support import Api, running_api
from tests.integration.results_support import seed_results
from voicebot.config import Settings
from voicebot.db.models import Contact, Outcome
from voicebot.db.notifications import enqueue
from voicebot.domain.types import Role

NUMBER = "13812345678"  # said on a call; also the stored number of 张三, +8613812345678
SPOKEN = "一三八 一二三四 五六七八"
NAME = "张三"


async def _seed_free_text(api: Api) -> dict[str, Any]:
    seeded = await seed_results(api.sessionmaker)
    contact_id, call_id = seeded.contacts[0], seeded.calls[1]  # 张三's answered call
    async with api.sessionmaker() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.name == NAME
        contact.fields = {"spouse_phone": "13900001111", "note": f"{NAME}的车已卖", "car": "BYD"}
        outcome = Outcome(
            call_id=call_id,
            contact_id=contact_id,
            campaign_id=seeded.campaigns[0],
            type="risk_flag",
            data={"flag": "other", "text": f"新号码{NUMBER}，或者{SPOKEN}"},
            created_at=datetime.now(UTC),
        )
        session.add(outcome)
        await session.flush()
        await enqueue(
            session,
            source_key=f"outcome:{outcome.id}",
            event_type="risk_flag",
            contact_id=contact_id,
            payload={"outcome_id": outcome.id, "data": dict(outcome.data)},
            now=outcome.created_at,
        )
        await session.commit()
    return {"contact_id": contact_id, "call_id": call_id, "campaign_id": seeded.campaigns[0]}


async def _bodies(api: Api, role: Role, ids: dict[str, Any]) -> dict[str, str]:
    paths = {
        "contacts": "/v1/contacts",
        "contact": f"/v1/contacts/{ids['contact_id']}",
        "history": f"/v1/contacts/{ids['contact_id']}/history",
        "call": f"/v1/calls/{ids['call_id']}",
        "outcomes": "/v1/outcomes?type=risk_flag",
        "outcomes.csv": "/v1/exports/outcomes.csv",
        "deliveries": "/v1/notifications/deliveries",
    }
    bodies = {}
    for label, path in paths.items():
        response = await api.http.get(path, headers=api.auth(role))
        assert response.status_code == 200, (label, response.text)
        bodies[label] = response.content.decode("utf-8-sig")
    return bodies


async def test_analysts_never_see_a_name_or_number_whole_admins_do(settings: Settings) -> None:
    quiet = settings.model_copy(update={"notifications_enabled": False})
    async with running_api(quiet) as api:
        created = await api.http.post(
            "/v1/notifications/endpoints",
            json={"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef-secret"},
            headers=api.auth(Role.ADMIN),
        )
        assert created.status_code == 201
        ids = await _seed_free_text(api)
        analyst = await _bodies(api, Role.ANALYST, ids)
        admin = await _bodies(api, Role.ADMIN, ids)
        call = (
            await api.http.get(f"/v1/calls/{ids['call_id']}", headers=api.auth(Role.ANALYST))
        ).json()
        contact = (
            await api.http.get(f"/v1/contacts/{ids['contact_id']}", headers=api.auth(Role.ANALYST))
        ).json()
        async with api.sessionmaker() as session:
            names = list(await session.scalars(select(Contact.name)))
    for label, body in analyst.items():
        for whole in (NUMBER, "13900001111", SPOKEN, *names):
            assert whole not in body, (label, whole)
    assert NAME in admin["contacts"] and NUMBER in admin["call"] and SPOKEN in admin["outcomes"]
    assert NUMBER in admin["deliveries"] and "13900001111" in admin["contact"]
    # Masked, not dropped: enough is left to read.
    assert call["transcript"][0]["text"] == "您好，请问是张*吗？"
    [flag] = [o for o in call["outcomes"] if o["type"] == "risk_flag"]
    assert flag["text"] == "新号码138****5678，或者****"
    assert (contact["name"], contact["fields"]) == (
        "张*",
        {"spouse_phone": "139****1111", "note": "张*的车已卖", "car": "BYD"},
    )
