"""Helpers for the operations-API tests: the real app behind ASGI with one key per role, and
rows seeded straight into the database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Base, CallBack, Campaign, Contact, ContactPhone
from voicebot.domain.types import Role


class NoCarrier:
    """The API never dials; a carrier that refuses to proves it."""

    async def place_call(self, request: Any) -> str:
        raise AssertionError("the API must not dial")

    async def hang_up(self, carrier_sid: str) -> None:
        raise AssertionError("the API must not hang up")

    async def aclose(self) -> None:
        return None


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[Role, str]
    sessionmaker: async_sessionmaker[AsyncSession]
    app: FastAPI

    def auth(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def create_campaign(self, name: str = "spring", **settings: Any) -> dict[str, Any]:
        body = {"name": name, "dialog_id": "car_loan_followup.zh-CN", **settings}
        response = await self.http.post("/v1/campaigns", json=body, headers=self.auth())
        assert response.status_code == 201, response.text
        campaign: dict[str, Any] = response.json()
        return campaign

    async def import_json(
        self, campaign_id: int, contacts: list[dict[str, Any]], **params: str
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/campaigns/{campaign_id}/contacts",
            params={"default_region": "CN", **params},
            json={"contacts": contacts},
            headers=self.auth(Role.OPERATOR),
        )

    async def import_csv(
        self,
        campaign_id: int,
        data: bytes,
        *,
        content_type: str = "text/csv",
        **params: str,
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/campaigns/{campaign_id}/contacts",
            params={"default_region": "CN", **params},
            content=data,
            headers={**self.auth(Role.OPERATOR), "Content-Type": content_type},
        )


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """The real app (no dialer), its lifespan entered, with an admin, operator and analyst key."""
    app = create_app(settings, carrier=NoCarrier(), run_dialer=False)
    async with app.router.lifespan_context(app):
        maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
        async with maker() as session:
            keys = {role: create_api_key(session, role=role, name=f"{role}-key") for role in Role}
            await session.commit()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        ) as http:
            yield Api(http=http, keys=keys, sessionmaker=maker, app=app)


async def count(maker: async_sessionmaker[AsyncSession], model: type[Base]) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def snapshot(maker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Every contact, number and call-back as plain tuples: to prove nothing changed."""
    async with maker() as session:
        contacts = (await session.execute(select(Contact).order_by(Contact.id))).scalars().all()
        phones = (await session.execute(select(ContactPhone).order_by(ContactPhone.id))).scalars()
        callbacks = (await session.execute(select(CallBack).order_by(CallBack.id))).scalars()
        return {
            "contacts": [
                (c.id, c.external_id, c.name, c.time_zone, c.amount_due, c.fields, c.updated_at)
                for c in contacts
            ],
            "phones": [(p.id, p.contact_id, p.position, p.e164, p.status) for p in phones],
            "callbacks": [(c.id, c.contact_id, c.phone_id, c.status) for c in callbacks],
        }


async def seed_campaign_with_callbacks(
    maker: async_sessionmaker[AsyncSession], statuses: list[str], *, name: str = "seeded"
) -> tuple[int, list[int]]:
    """A running campaign with one contact and a call-back in each of ``statuses``."""
    now = datetime.now(UTC)
    async with maker() as session:
        campaign = Campaign(name=name, dialog_id="d", status="running", created_at=now)
        contact = Contact(external_id=f"{name}-c", name="王五", time_zone="Asia/Shanghai")
        contact.phones.append(ContactPhone(position=0, e164="+8613700000001"))
        session.add_all([campaign, contact])
        await session.flush()
        callbacks = [
            CallBack(
                campaign_id=campaign.id,
                contact_id=contact.id,
                phone_id=contact.phones[0].id,
                due_at=now,
                status=status,
                claimed_by="dialer-1" if status == "claimed" else None,
                lease_expires_at=now if status == "claimed" else None,
            )
            for status in statuses
        ]
        session.add_all(callbacks)
        await session.commit()
        return campaign.id, [c.id for c in callbacks]
