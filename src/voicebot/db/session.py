"""The async engine and session factory, configured for PostgreSQL or the embedded SQLite file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def rowcount(result: object) -> int:
    """How many rows an UPDATE or DELETE touched (``Result`` types it only on some subclasses)."""
    return int(getattr(result, "rowcount", 0) or 0)


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS,
    plan_once: bool = False,
) -> AsyncEngine:
    """``plan_once``: PostgreSQL plans each prepared statement once per connection (its generic
    plan) instead of choosing per execution. For connections that run the same few statements
    thousands of times with array parameters: PostgreSQL cannot estimate an array parameter's
    length in a generic plan, so it keeps planning such a statement afresh on every execution,
    which can cost as much as running it."""
    # A failed statement's error never carries its parameters (numbers, names, what was said)
    # into a log or traceback.
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if plan_once:
        connect_args["server_settings"] = {"plan_cache_mode": "force_generic_plan"}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        hide_parameters=True,
    )
    _ping_when_idle(engine, ping_after_idle_seconds)
    return engine


def _ping_when_idle(engine: AsyncEngine, after_seconds: float) -> None:
    """Check a connection that sat idle in the pool before lending it out.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip added to every request
    and every dialer round. A connection in steady use has just proved itself alive, so only one
    idle for ``after_seconds`` (when a server restart or an idle timeout may have cut it) is
    pinged; a dead one is discarded and the pool connects afresh. A connection that dies while
    busy fails its statement as it would anyway, and SQLAlchemy then invalidates the whole pool.
    """
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < after_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            raise exc.DisconnectionError("a pooled connection was closed while idle") from error


def require_sqlite_directory(url: str) -> None:
    """Refuse a SQLite file whose folder does not exist before any connection is tried: the
    driver would fail later, from its own thread, with a traceback instead of a reason."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).expanduser().resolve().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder {folder} for the SQLite database does not exist")


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL so the API reads while the dialer writes; foreign keys on; writers wait, not fail."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reading only. On PostgreSQL they run in autocommit mode, with no BEGIN and
    ROLLBACK around each request's statements; a write through one would commit at once, so
    they are for queries alone. SQLite's transactions cost no round trip: it keeps the default.
    """
    if engine.dialect.name != "postgresql":
        return make_sessionmaker(engine)
    return make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
