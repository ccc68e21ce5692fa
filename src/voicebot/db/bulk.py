"""Bulk writes for large imports: ``COPY`` on PostgreSQL, one ``executemany`` on SQLite.

SQLAlchemy's executemany is fine for thousands of rows; for a 100,000-row import its per-row
parameter handling costs three to four times the database's own work. Values still go through
each column type's bind processor, so rows are stored exactly as SQLAlchemy would store them
(UTC timestamps, JSON documents, SQLite's timestamp strings that comparisons rely on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

# Rows per COPY / executemany call: the event loop gets a turn between batches.
BATCH_ROWS = 10_000


async def write_rows(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict_key: str | None = None,
    update_on_conflict: Sequence[str] = (),
) -> None:
    """Insert ``rows`` (values in ``columns`` order) in the session's transaction; with
    ``conflict_key``, a row whose key exists updates ``update_on_conflict`` instead."""
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    processors = _bind_processors(table, columns, dialect)
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None, "a checked-out connection has its driver connection"
    if dialect.name == "postgresql":
        await _copy(
            raw, dialect, table, columns, rows, processors, conflict_key, update_on_conflict
        )
        return
    statement = _insert_sql(dialect, table, columns, conflict_key, update_on_conflict)
    for start in range(0, len(rows), BATCH_ROWS):
        batch = _processed(rows[start : start + BATCH_ROWS], processors)
        cursor = await raw.executemany(statement, batch)
        await cursor.close()


Processor = Callable[[Any], Any] | None


def _bind_processors(table: Table, columns: Sequence[str], dialect: Dialect) -> list[Processor]:
    processors: list[Processor] = []
    for name in columns:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        processors.append(None if process is None else _repeat_last(process))
    return processors


_UNSET = object()


def _repeat_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An import's timestamps are one shared ``now`` object: process it once, not per row."""
    last_in: Any = _UNSET
    last_out: Any = None

    def run(value: Any) -> Any:
        nonlocal last_in, last_out
        if value is not last_in:
            last_in, last_out = value, process(value)
        return last_out

    return run


def _processed(rows: Sequence[Sequence[Any]], processors: list[Processor]) -> list[tuple[Any, ...]]:
    return [
        tuple(
            value if process is None else process(value)
            for process, value in zip(processors, row, strict=True)
        )
        for row in rows
    ]


def _insert_sql(
    dialect: Dialect,
    table: Table,
    columns: Sequence[str],
    conflict_key: str | None,
    update_on_conflict: Sequence[str],
    *,
    source: str | None = None,
) -> str:
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if source is None:  # SQLite's qmark parameters
        values = "VALUES (" + ", ".join("?" for _ in columns) + ")"
    else:  # PostgreSQL, from a staging table; SQLite would need "WHERE true" before ON CONFLICT
        values = f"SELECT {names} FROM {source}"
    sql = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) {values}"
    if conflict_key is not None:
        assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update_on_conflict)
        action = f"DO UPDATE SET {assignments}" if assignments else "DO NOTHING"
        sql += f" ON CONFLICT ({quote(conflict_key)}) {action}"
    return sql


async def _copy(
    raw: Any,
    dialect: Dialect,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    processors: list[Processor],
    conflict_key: str | None,
    update_on_conflict: Sequence[str],
) -> None:
    """COPY straight into the table, or, for an upsert, into a temporary staging table (dropped
    at commit) followed by one INSERT … SELECT … ON CONFLICT."""
    quote = dialect.identifier_preparer.quote
    target = table.name
    if conflict_key is not None:
        target = f"_staging_{table.name}"
        await raw.execute(
            f"CREATE TEMPORARY TABLE {quote(target)} ON COMMIT DROP AS "
            f"SELECT {', '.join(quote(c) for c in columns)} "
            f"FROM {dialect.identifier_preparer.format_table(table)} WITH NO DATA"
        )
    for start in range(0, len(rows), BATCH_ROWS):
        batch = _processed(rows[start : start + BATCH_ROWS], processors)
        await raw.copy_records_to_table(target, records=batch, columns=list(columns))
    if conflict_key is not None:
        await raw.execute(
            _insert_sql(
                dialect, table, columns, conflict_key, update_on_conflict, source=quote(target)
            )
        )
        await raw.execute(f"DROP TABLE {quote(target)}")
