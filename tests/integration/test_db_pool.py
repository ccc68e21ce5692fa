"""The pool hands out live connections without a round trip per checkout: a connection is
pinged only after sitting idle, and one the server closed meanwhile is replaced unseen."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.db.session import make_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def test_a_connection_closed_while_idle_is_replaced(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, ping_after_idle_seconds=0)
    killer = make_engine(pg_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        await _terminate(killer, first)
        second = await _backend_pid(engine)  # would raise if the dead connection were lent
        assert second != first
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, ping_after_idle_seconds=3600)
    pings: list[object] = []
    dialect = engine.sync_engine.dialect
    original = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return bool(original(dbapi_connection))

    dialect.do_ping = counting_ping  # type: ignore[method-assign]
    try:
        pids = {await _backend_pid(engine) for _ in range(5)}
        assert len(pids) == 1
        assert pings == []
    finally:
        await engine.dispose()
