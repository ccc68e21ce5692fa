"""A large CSV import through the real app, on both databases: bulk statements, not a round
trip per row. VOICEBOT_TEST_IMPORT_ROWS=100000 measures the full-size import (run with -s)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.integration.api_support import Api, count, running_api
from voicebot.config import Settings
from voicebot.db.models import CallBack, Contact, ContactPhone

ROWS = int(os.environ.get("VOICEBOT_TEST_IMPORT_ROWS", "2000"))


def _csv(rows: int, *, name: str) -> bytes:
    lines = ["external_id,name,phone,alternate_phones,loan_id,amount_due,currency,due_date,persona"]
    lines.extend(
        f"L-{i},{name}{i},138{i:08d},+86139{i:08d},LN-{i},{i % 5000}.50,CNY,2026-07-01,answers"
        for i in range(rows)
    )
    return ("\n".join(lines) + "\n").encode("gbk")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


async def test_a_large_gbk_import_and_reimport_use_bulk_statements(api: Api) -> None:
    campaign = await api.create_campaign()
    engine = api.sessionmaker.kw["bind"]
    statements: list[str] = []

    def counted(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    try:
        timings = []
        for name in ("张三", "李四"):
            started = time.perf_counter()
            response = await api.import_csv(campaign["id"], _csv(ROWS, name=name))
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:500]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counted)
    print(
        f"\n{engine.dialect.name}: {ROWS} rows imported in {timings[0]:.1f} s, "
        f"re-imported in {timings[1]:.1f} s"
    )
    result = response.json()
    assert (result["created"], result["updated"], result["callbacks_created"]) == (0, ROWS, 0)
    assert await count(api.sessionmaker, Contact) == ROWS
    assert await count(api.sessionmaker, ContactPhone) == 2 * ROWS
    assert await count(api.sessionmaker, CallBack) == ROWS
    async with api.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Contact.name.like("李四%"))) == ROWS
    # Lookups go thousands of keys at a time; rows are written by COPY/executemany batches.
    assert len(statements) < 60, len(statements)
