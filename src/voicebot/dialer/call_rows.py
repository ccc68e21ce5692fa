"""A dialed call's row as the status path reads and writes it, and the statements that do it.

A status callback is the busiest write in the service, so its statements are built once, here
(SQLAlchemy spends more Python building a statement and its cache key than sending it), and read
plain rows (:class:`LiveCall`) rather than ORM objects. The events a batch records together
(``dialer/recorder.py``) are stored in one statement and move their calls in one more on
PostgreSQL, whose ``unnest`` takes each column as an array: two round trips for the batch, not two
per event. SQLite, the embedded single-writer database, runs the same statements event by event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    RowMapping,
    String,
    Text,
    bindparam,
    case,
    cast,
    column,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from voicebot.db.models import Call, CarrierEvent
from voicebot.domain.types import CallStatus

STATUS_KIND = "status"


@dataclass(slots=True)
class LiveCall:
    """A call's row as the paths that end calls read it: changed in memory, written back once.

    Plain columns rather than the ORM object: a status callback is the busiest write in the
    service, and the ORM's identity map and unit of work cost more than its statements."""

    id: int
    callback_id: int
    campaign_id: int
    contact_id: int
    phone_id: int | None
    attempt: int
    to_number: str
    carrier_sid: str | None
    status: str
    answered_by: str | None
    duration_seconds: int | None
    answered_at: datetime | None
    disposition: str | None
    ended_at: datetime | None
    conversed: bool
    error_code: str | None
    error_message: str | None
    read: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, row: RowMapping) -> LiveCall:
        values = dict(row)
        return cls(**values, read=values)

    def changes(self) -> dict[str, Any]:
        """The columns changed since the row was read (or last written)."""
        return {
            name: getattr(self, name)
            for name, value in self.read.items()
            if getattr(self, name) != value
        }

    async def write(self, session: AsyncSession) -> None:
        """One UPDATE of the columns changed since the row was read; none when nothing did."""
        changed = self.changes()
        if changed:
            connection = await session.connection()
            await connection.execute(update(Call).where(Call.id == self.id).values(**changed))
            self.read.update(changed)


LIVE_CALL_COLUMNS = tuple(
    getattr(Call, name) for name in LiveCall.__dataclass_fields__ if name != "read"
)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """A status event as stored: its ``carrier_events`` row, and the call its callback URL names."""

    dedupe_key: str
    sid: str
    call_id: int | None
    payload: dict[str, str]
    now: datetime


@dataclass(frozen=True, slots=True)
class Stored:
    """An event stored (not a repeat), and the call it was matched to (None: no call known)."""

    call_id: int | None


@dataclass(frozen=True, slots=True)
class Move:
    """A call to move on to a later status (what the status event says), unless it is past it."""

    call_id: int
    sid: str
    status: CallStatus
    answered_by: str | None
    duration_seconds: int | None
    now: datetime


async def store_statuses(
    connection: AsyncConnection, rows: Sequence[StatusRow]
) -> list[Stored | None]:
    """Store the events, each with the call it is for: the call the callback URL names when the
    CallSid is its own (or it has none yet), else the sid's call. In order, what each stored:
    nothing for a repeat (of an event stored before, or earlier in ``rows``)."""
    if connection.dialect.name != "postgresql":
        return [await _store_one(connection, row) for row in rows]
    result = await connection.execute(
        _STORE_STATUSES,
        {
            "dedupe_keys": [row.dedupe_key for row in rows],
            "sids": [row.sid for row in rows],
            "call_ids": [row.call_id for row in rows],
            "payloads": [json.dumps(row.payload) for row in rows],
            "nows": [row.now for row in rows],
        },
    )
    inserted = {key: Stored(call_id) for key, call_id in result}
    # A key twice in one batch is inserted once: the first of them is the one stored.
    return [inserted.pop(row.dedupe_key, None) for row in rows]


async def move_calls(connection: AsyncConnection, moves: Sequence[Move]) -> dict[int, LiveCall]:
    """Move each call on to its later status, locking its row; the calls moved, by id. A call
    already at or past the status (a late or repeated event, an ended call) is left as it is.
    Each call appears in ``moves`` at most once."""
    if connection.dialect.name != "postgresql":
        moved = [await _move_one(connection, move) for move in moves]
        return {call.id: call for call in moved if call is not None}
    result = await connection.execute(
        _MOVE_CALLS,
        {
            "call_ids": [m.call_id for m in moves],
            "sids": [m.sid for m in moves],
            "statuses": [m.status.value for m in moves],
            "ranks": [m.status.rank for m in moves],
            "answered_bys": [m.answered_by for m in moves],
            "durations": [m.duration_seconds for m in moves],
            "answered_ats": [_answered_at(m) for m in moves],
            "nows": [m.now for m in moves],
        },
    )
    return {row["id"]: LiveCall.from_row(row) for row in result.mappings()}


async def touch_row(connection: AsyncConnection, statement: Any, **params: Any) -> LiveCall | None:
    """Run one of the TOUCH statements: the call, its row locked until commit, or None."""
    row = (await connection.execute(statement, params)).mappings().one_or_none()
    return None if row is None else LiveCall.from_row(row)


# --- one event at a time (and SQLite) ---------------------------------------------------------

_by_id = (Call.id == bindparam("call_id")) & (
    Call.carrier_sid.is_(None) | (Call.carrier_sid == bindparam("sid"))
)
_by_sid = Call.carrier_sid == bindparam("sid")


def _move_statement(match: ColumnElement[bool], status: CallStatus) -> Any:
    """Move a call to ``status`` from any earlier one it may move on from."""
    earlier = [s.value for s in CallStatus if s.rank < status.rank and not s.is_final]
    return (
        update(Call)
        .where(match, Call.status.in_(earlier))
        .values(
            updated_at=bindparam("now"),
            status=bindparam("status"),
            carrier_sid=func.coalesce(Call.carrier_sid, bindparam("sid")),
            answered_by=func.coalesce(bindparam("answered_by", type_=String), Call.answered_by),
            duration_seconds=func.coalesce(
                bindparam("duration", type_=Integer), Call.duration_seconds
            ),
            answered_at=func.coalesce(
                Call.answered_at, bindparam("answered_at", type_=DateTime(timezone=True))
            ),
        )
        .returning(*LIVE_CALL_COLUMNS)
    )


def _touch_statement(match: ColumnElement[bool]) -> Any:
    return (
        update(Call).where(match).values(updated_at=bindparam("now")).returning(*LIVE_CALL_COLUMNS)
    )


# By the status it moves the call to (the call is known by then: its event was stored with it).
_MOVES = {status: _move_statement(_by_id, status) for status in CallStatus}
# Lock a call's row by writing to it (see lifecycle's ``_lock_row``): by id, or by its sid.
TOUCH_BY_ID = _touch_statement(Call.id == bindparam("call_id"))
TOUCH_BY_SID = _touch_statement(_by_sid)


def _status_insert(dialect: Any) -> Any:
    named = select(Call.id).where(_by_id).scalar_subquery()
    by_sid = select(Call.id).where(_by_sid).limit(1).scalar_subquery()
    return (
        dialect.insert(CarrierEvent)
        .values(
            dedupe_key=bindparam("dedupe_key"),
            call_sid=bindparam("sid"),
            kind=STATUS_KIND,
            call_id=func.coalesce(named, by_sid),
            payload=bindparam("payload", type_=CarrierEvent.payload.type),
            received_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=[CarrierEvent.dedupe_key])
        .returning(CarrierEvent.call_id)
    )


_STORE_STATUS = {"postgresql": _status_insert(postgresql), "sqlite": _status_insert(sqlite)}


async def _store_one(connection: AsyncConnection, row: StatusRow) -> Stored | None:
    result = await connection.execute(
        _STORE_STATUS[connection.dialect.name],
        {
            "dedupe_key": row.dedupe_key,
            "sid": row.sid,
            "call_id": row.call_id,
            "payload": row.payload,
            "now": row.now,
        },
    )
    stored = result.one_or_none()
    return None if stored is None else Stored(stored.call_id)


async def _move_one(connection: AsyncConnection, move: Move) -> LiveCall | None:
    return await touch_row(
        connection,
        _MOVES[move.status],
        call_id=move.call_id,
        sid=move.sid,
        now=move.now,
        status=move.status.value,
        answered_by=move.answered_by,
        duration=move.duration_seconds,
        answered_at=_answered_at(move),
    )


def _answered_at(move: Move) -> datetime | None:
    return move.now if move.status is CallStatus.IN_PROGRESS else None


# --- a batch at once (PostgreSQL) -------------------------------------------------------------


def _array(name: str, item: Any) -> Any:
    return bindparam(name, type_=ARRAY(item))


_TIMESTAMP = DateTime(timezone=True)
_events = (
    func.unnest(
        _array("dedupe_keys", String),
        _array("sids", String),
        _array("call_ids", BigInteger),
        _array("payloads", Text),
        _array("nows", _TIMESTAMP),
    )
    .table_valued(
        column("dedupe_key", String),
        column("sid", String),
        column("call_id", BigInteger),
        column("payload", Text),
        column("now", _TIMESTAMP),
    )
    .render_derived(name="event")
)
_named = (
    select(Call.id)
    .where(
        Call.id == _events.c.call_id,
        Call.carrier_sid.is_(None) | (Call.carrier_sid == _events.c.sid),
    )
    .scalar_subquery()
)
_sids_call = select(Call.id).where(Call.carrier_sid == _events.c.sid).limit(1).scalar_subquery()
_STORE_STATUSES = (
    postgresql.insert(CarrierEvent)
    .from_select(
        ["dedupe_key", "call_sid", "kind", "call_id", "payload", "received_at"],
        select(
            _events.c.dedupe_key,
            _events.c.sid,
            literal_column(f"'{STATUS_KIND}'"),
            func.coalesce(_named, _sids_call),
            cast(_events.c.payload, JSONB),
            _events.c.now,
        ),
    )
    .on_conflict_do_nothing(index_elements=[CarrierEvent.dedupe_key])
    .returning(CarrierEvent.dedupe_key, CarrierEvent.call_id)
)

_moves = (
    func.unnest(
        _array("call_ids", BigInteger),
        _array("sids", String),
        _array("statuses", String),
        _array("ranks", Integer),
        _array("answered_bys", String),
        _array("durations", Integer),
        _array("answered_ats", _TIMESTAMP),
        _array("nows", _TIMESTAMP),
    )
    .table_valued(
        column("call_id", BigInteger),
        column("sid", String),
        column("status", String),
        column("rank", Integer),
        column("answered_by", String),
        column("duration", Integer),
        column("answered_at", _TIMESTAMP),
        column("now", _TIMESTAMP),
    )
    .render_derived(name="move")
)
# A call's status as its rank, written into the statement (the statuses are this code's own).
_rank = case(
    {literal_column(f"'{s.value}'"): literal_column(str(s.rank)) for s in CallStatus},
    value=Call.status,
    else_=literal_column(str(max(s.rank for s in CallStatus))),
)
_MOVE_CALLS = (
    update(Call)
    .where(
        Call.id == _moves.c.call_id,
        Call.carrier_sid.is_(None) | (Call.carrier_sid == _moves.c.sid),
        # Only on from an earlier status; a final status has the highest rank, so never from one.
        _rank < _moves.c.rank,
    )
    .values(
        updated_at=_moves.c.now,
        status=_moves.c.status,
        carrier_sid=func.coalesce(Call.carrier_sid, _moves.c.sid),
        answered_by=func.coalesce(_moves.c.answered_by, Call.answered_by),
        duration_seconds=func.coalesce(_moves.c.duration, Call.duration_seconds),
        answered_at=func.coalesce(Call.answered_at, _moves.c.answered_at),
    )
    .returning(*LIVE_CALL_COLUMNS)
)
