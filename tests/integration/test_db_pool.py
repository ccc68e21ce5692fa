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


# A batch's shape: rows passed as an array, of a different length each time.
_BATCH_STATEMENT = (
    "SELECT count(*) FROM unnest($1::bigint[]) AS batch (id) "
    "JOIN pg_class ON pg_class.oid = batch.id"
)


async def _plans_for_ten_batches(engine: AsyncEngine) -> tuple[int, int]:
    """(generic plans, custom plans) PostgreSQL made for the statement run ten times."""
    async with engine.connect() as conn:
        for size in range(1, 11):
            await conn.exec_driver_sql(_BATCH_STATEMENT, (list(range(size)),))
        row = (
            await conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement = $1",
                (_BATCH_STATEMENT,),
            )
        ).one()
        return int(row.generic_plans), int(row.custom_plans)


async def test_a_plan_once_engine_plans_each_statement_once(pg_url: str) -> None:
    once = make_engine(pg_url, pool_size=1, plan_once=True)
    default = make_engine(pg_url, pool_size=1)
    try:
        assert await _plans_for_ten_batches(once) == (10, 0)
        # By default PostgreSQL plans the first five runs anew, and then every run for as long
        # as the generic plan looks dearer, as it always does for the status recorder's batches.
        generic, custom = await _plans_for_ten_batches(default)
        assert custom >= 5 and generic + custom == 10
    finally:
        await once.dispose()
        await default.dispose()
