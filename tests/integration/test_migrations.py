"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import Connection

from tests.conftest import POSTGRES_URL, _with_database
from voicebot.db.migrate import alembic_config, upgrade
from voicebot.db.models import Base, NotificationDelivery
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.db.types import UTCDateTime


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"voicebot_mig_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield _with_database(POSTGRES_URL, name).replace("postgresql://", "postgresql+asyncpg://")
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def _diff(url: str) -> list[Any]:
    engine = make_engine(url)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_matches_models(empty_db_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_db_url)
    assert await _diff(empty_db_url) == []
    assert set(Base.metadata.tables) <= await _tables(empty_db_url)


async def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_db_url)
    await asyncio.to_thread(command.downgrade, alembic_config(empty_db_url), "base")
    assert await _tables(empty_db_url) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, empty_db_url)
    assert await _diff(empty_db_url) == []


async def test_deliveries_made_before_0005_are_queued_when_they_were_made(
    empty_db_url: str,
) -> None:
    """0005 fills the new ``queued_at`` from each existing delivery's creation."""
    await asyncio.to_thread(upgrade, empty_db_url, "0004")
    made = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    engine = make_engine(empty_db_url)
    rows = {
        "notification_endpoints": "INSERT INTO notification_endpoints "
        "(id, url, secret, event_types, active, created_at) "
        "VALUES (1, 'https://x.example/h', 'sixteen-char-secret', '[]', true, :at)",
        "notification_events": "INSERT INTO notification_events "
        "(id, source_key, type, contact_id, payload, created_at) "
        "VALUES (1, 'k', 'complaint', NULL, '{}', :at)",
        "notification_deliveries": "INSERT INTO notification_deliveries "
        "(id, event_id, endpoint_id, contact_key, status, attempts, next_attempt_at, "
        "created_at) VALUES (1, 1, 1, 0, 'failed', 9, :at, :at)",
    }
    try:
        async with engine.begin() as conn:
            for statement in rows.values():
                at = bindparam("at", type_=UTCDateTime())
                await conn.execute(text(statement).bindparams(at), {"at": made})
        await asyncio.to_thread(upgrade, empty_db_url)
        async with make_sessionmaker(engine)() as session:
            delivery = await session.get(NotificationDelivery, 1)
            assert delivery is not None
            assert delivery.queued_at == delivery.created_at == made
    finally:
        await engine.dispose()
