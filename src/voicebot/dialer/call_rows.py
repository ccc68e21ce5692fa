"""A dialed call's row as the status path reads and writes it, and the statements that do it.

A status callback is the busiest write in the service, so its statements are built once, here,
and read plain rows (:class:`LiveCall`) rather than ORM objects. On PostgreSQL the events a batch
records together (``dialer/recorder.py``) are stored, and their calls moved on, by one plain-SQL
statement whose ``unnest`` takes each column as an array, and the calls they ended are written by
one more: two round trips for the batch, not two or more per event. SQLite, the embedded
single-writer database, runs the same steps event by event through SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    RowMapping,
    String,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from voicebot.db.models import Call, CarrierEvent, ContactPhone
from voicebot.dialer.queue import is_postgres
from voicebot.domain.retry import PhoneState
from voicebot.domain.types import CallBackStatus, CallStatus, PhoneStatus

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
    # The dialed number's state, read with the row (not one of its columns): whether ending the
    # call changes it (lifecycle's ``_phone_changes``; the change itself is written relative to
    # the number's row). None when the call has no number.
    phone: PhoneState | None = field(default=None, repr=False)
    read: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, row: RowMapping | Mapping[str, Any]) -> LiveCall:
        """From a row of the columns of :data:`LIVE_CALL_COLUMNS` and :data:`PHONE_STATE`."""
        values = dict(row)
        status, failures = (values.pop(name) for name in _PHONE_COLUMNS)
        phone = None if status is None else PhoneState(PhoneStatus(status), failures)
        return cls(**values, phone=phone, read=values)

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


# The columns ending a call may change, written for a batch's ended calls at once.
WRITTEN = (
    "status",
    "carrier_sid",
    "answered_by",
    "duration_seconds",
    "answered_at",
    "disposition",
    "ended_at",
    "conversed",
    "error_code",
    "error_message",
)
_LIVE_COLUMNS = tuple(
    name for name in LiveCall.__dataclass_fields__ if name not in ("phone", "read")
)
LIVE_CALL_COLUMNS = tuple(getattr(Call, name) for name in _LIVE_COLUMNS)
# Read in the statement that reads the call, rather than in one more round trip when it ends.
_PHONE_OF_CALL = ContactPhone.id == Call.phone_id
PHONE_STATE = (
    select(ContactPhone.status).where(_PHONE_OF_CALL).scalar_subquery().label("phone_status"),
    select(ContactPhone.consecutive_failures)
    .where(_PHONE_OF_CALL)
    .scalar_subquery()
    .label("phone_failures"),
)
_PHONE_COLUMNS = tuple(column.name for column in PHONE_STATE)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """A status event as stored (its ``carrier_events`` row, and the call its callback URL
    names) and the move it asks of its call."""

    dedupe_key: str
    sid: str
    call_id: int | None
    payload: dict[str, str]
    now: datetime
    status: CallStatus | None  # None: not a status this code knows; it moves nothing
    answered_by: str | None
    duration_seconds: int | None

    @property
    def answered_at(self) -> datetime | None:
        return self.now if self.status is CallStatus.IN_PROGRESS else None


@dataclass(slots=True)
class Stored:
    """A status event stored (not a repeat): the call it was matched to (None: no call known),
    and whether it was the first of the batch's events for that call, which moved the call if
    it could (``moved``: the call's row after the move)."""

    call_id: int | None
    first: bool = False
    moved: LiveCall | None = None


async def store_and_move(session: AsyncSession, rows: Sequence[StatusRow]) -> list[Stored | None]:
    """Store the events, each with its call: the call the callback URL names when the CallSid is
    its own (or it has none yet), else the sid's call. Then each call's first event moves it on
    to a later status, locking its row; a call already at or past it (a late or repeated event,
    an ended call) is left as it is. In order, what each stored: None for a repeat (of an event
    stored before, or earlier in ``rows``). The caller moves each call by its other events."""
    keys: set[str] = set()
    new: list[StatusRow] = []
    for row in rows:
        if row.dedupe_key not in keys:
            keys.add(row.dedupe_key)
            new.append(row)
    if is_postgres(session):
        stored = await _store_and_move_batch(session, new)
    else:
        connection = await session.connection()
        stored = {row.dedupe_key: await _store_one(connection, row) for row in new}
        firsts: set[int] = set()
        for row in new:
            found = stored[row.dedupe_key]
            if found is None or found.call_id is None or found.call_id in firsts:
                continue
            firsts.add(found.call_id)
            found.first = True
            found.moved = await move_one(connection, found.call_id, row)
    # A key twice in one batch is stored once: the first of them is the one stored.
    return [stored.pop(row.dedupe_key, None) for row in rows]


class PhoneUpdate(NamedTuple):
    """What the calls to a number that ended do to its row, relative to the row as it is when
    written (``retry.PhoneChange``): concurrent transactions ending calls to one number each
    add their failures."""

    phone_id: int
    reset: bool
    failures: int
    invalid: bool


async def write_endings(
    session: AsyncSession,
    ended: Sequence[tuple[LiveCall, datetime]],
    phones: Sequence[PhoneUpdate],
) -> None:
    """Write what ending these calls (each with when it ended) changed, in one statement
    (PostgreSQL): their call-backs done, their rows, their numbers' states, and their
    campaigns' live-call counters."""
    calls = [call for call, _ in ended]
    connection = await session.connection()
    await connection.exec_driver_sql(
        _WRITE_ENDINGS,
        (
            [call.id for call in calls],
            [call.callback_id for call in calls],
            [call.campaign_id for call in calls],
            [now for _, now in ended],
            *([getattr(call, name) for call in calls] for name in WRITTEN),
            [p.phone_id for p in phones],
            [p.reset for p in phones],
            [p.failures for p in phones],
            [p.invalid for p in phones],
        ),
    )
    for call in calls:
        call.read.update(call.changes())


async def move_one(connection: AsyncConnection, call_id: int, row: StatusRow) -> LiveCall | None:
    """Move one call as :func:`store_and_move` moves each call by its first event."""
    if row.status is None:
        return None
    return await touch_row(
        connection,
        _MOVES[row.status],
        call_id=call_id,
        sid=row.sid,
        now=row.now,
        status=row.status.value,
        answered_by=row.answered_by,
        duration=row.duration_seconds,
        answered_at=row.answered_at,
    )


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
        .returning(*LIVE_CALL_COLUMNS, *PHONE_STATE)
    )


def _touch_statement(match: ColumnElement[bool]) -> Any:
    return (
        update(Call)
        .where(match)
        .values(updated_at=bindparam("now"))
        .returning(*LIVE_CALL_COLUMNS, *PHONE_STATE)
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


# --- a batch at once (PostgreSQL) -------------------------------------------------------------
# Plain SQL: SQLAlchemy's statement compiling and result processing cost more than these do.

# A call's status as its rank; a final status has the highest, so a call never moves on from one.
_RANK = (
    "CASE calls.status "
    + " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in CallStatus)
    + f" ELSE {max(s.rank for s in CallStatus)} END"
)

# $1 dedupe keys, $2 CallSids, $3 call ids the URLs name, $4 payloads (JSON), $5 when each came,
# $6 statuses, $7 their ranks (0: unknown, moves nothing), $8 AnsweredBy, $9 CallDuration,
# $10 answer times.
_STORE_AND_MOVE = f"""
WITH event AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[],
                         $6::text[], $7::int[], $8::text[], $9::int[], $10::timestamptz[])
        WITH ORDINALITY AS e (dedupe_key, sid, named_id, payload, now, status, rank,
                              answered_by, duration, answered_at, n)
), stored AS (
    INSERT INTO carrier_events (dedupe_key, call_sid, kind, call_id, payload, received_at)
    SELECT dedupe_key, sid, '{STATUS_KIND}',
           coalesce((SELECT id FROM calls WHERE id = event.named_id
                     AND (carrier_sid IS NULL OR carrier_sid = event.sid)),
                    (SELECT id FROM calls WHERE carrier_sid = event.sid LIMIT 1)),
           payload::jsonb, now
    FROM event
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING dedupe_key, call_id
), firsts AS (
    SELECT DISTINCT ON (stored.call_id) stored.call_id, event.*
    FROM stored JOIN event USING (dedupe_key)
    WHERE stored.call_id IS NOT NULL
    ORDER BY stored.call_id, event.n
), moved AS (
    UPDATE calls
    SET updated_at = firsts.now,
        status = firsts.status,
        carrier_sid = coalesce(calls.carrier_sid, firsts.sid),
        answered_by = coalesce(firsts.answered_by, calls.answered_by),
        duration_seconds = coalesce(firsts.duration, calls.duration_seconds),
        answered_at = coalesce(calls.answered_at, firsts.answered_at)
    FROM firsts
    WHERE calls.id = firsts.call_id
      AND (calls.carrier_sid IS NULL OR calls.carrier_sid = firsts.sid)
      AND {_RANK} < firsts.rank
    RETURNING firsts.dedupe_key, {", ".join(f"calls.{name}" for name in _LIVE_COLUMNS)}
)
SELECT stored.dedupe_key AS stored_key, stored.call_id AS stored_call_id,
       firsts.dedupe_key IS NOT NULL AS is_first, moved.*,
       phone.status AS {_PHONE_COLUMNS[0]}, phone.consecutive_failures AS {_PHONE_COLUMNS[1]}
FROM stored
LEFT JOIN firsts USING (dedupe_key)
LEFT JOIN moved USING (dedupe_key)
LEFT JOIN contact_phones AS phone ON phone.id = moved.phone_id
"""


async def _store_and_move_batch(
    session: AsyncSession, rows: Sequence[StatusRow]
) -> dict[str, Stored | None]:
    connection = await session.connection()
    result = await connection.exec_driver_sql(
        _STORE_AND_MOVE,
        (
            [row.dedupe_key for row in rows],
            [row.sid for row in rows],
            [row.call_id for row in rows],
            [json.dumps(row.payload) for row in rows],
            [row.now for row in rows],
            [None if row.status is None else row.status.value for row in rows],
            [0 if row.status is None else row.status.rank for row in rows],
            [row.answered_by for row in rows],
            [row.duration_seconds for row in rows],
            [row.answered_at for row in rows],
        ),
    )
    stored: dict[str, Stored | None] = {}
    for record in result.mappings():
        moved = None
        if record["id"] is not None:
            moved = LiveCall.from_row(
                {name: record[name] for name in (*_LIVE_COLUMNS, *_PHONE_COLUMNS)}
            )
        stored[record["stored_key"]] = Stored(record["stored_call_id"], record["is_first"], moved)
    return stored


_WRITTEN_TYPES = {
    "status": "text",
    "carrier_sid": "text",
    "answered_by": "text",
    "duration_seconds": "int",
    "answered_at": "timestamptz",
    "disposition": "text",
    "ended_at": "timestamptz",
    "conversed": "bool",
    "error_code": "text",
    "error_message": "text",
}
# $1 call ids, $2 their call-backs, $3 their campaigns, $4 when each ended, then one array per
# WRITTEN column, then the numbers changed (``PhoneUpdate``): ids, resets, failures added,
# found invalid. Each number's row is changed as it is when written (after waiting for its lock,
# PostgreSQL reads the row again), never set to a state read before.
_WRITTEN_ARGS = ", ".join(f"${5 + i}::{_WRITTEN_TYPES[n]}[]" for i, n in enumerate(WRITTEN))
_FIRST_PHONE_ARG = 5 + len(WRITTEN)
_OPTED_OUT = PhoneStatus.OPTED_OUT.value
_INVALID = PhoneStatus.INVALID.value
_WRITE_ENDINGS = f"""
WITH ended AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[],
                         {_WRITTEN_ARGS})
        AS e (id, callback_id, campaign_id, now, {", ".join(WRITTEN)})
), callbacks_done AS (
    UPDATE callbacks
    SET status = '{CallBackStatus.DONE.value}', lease_expires_at = NULL, updated_at = ended.now
    FROM ended
    WHERE callbacks.id = ended.callback_id
      AND callbacks.status IN ('{CallBackStatus.DIALED.value}', '{CallBackStatus.CLAIMED.value}')
), calls_written AS (
    UPDATE calls SET {", ".join(f"{n} = ended.{n}" for n in WRITTEN)}
    FROM ended
    WHERE calls.id = ended.id
), phones_set AS (
    UPDATE contact_phones
    SET status = CASE WHEN phone.invalid AND contact_phones.status <> '{_OPTED_OUT}'
                      THEN '{_INVALID}' ELSE contact_phones.status END,
        consecutive_failures = phone.failures
            + CASE WHEN phone.reset THEN 0 ELSE contact_phones.consecutive_failures END
    FROM unnest(${_FIRST_PHONE_ARG}::bigint[], ${_FIRST_PHONE_ARG + 1}::bool[],
                ${_FIRST_PHONE_ARG + 2}::int[], ${_FIRST_PHONE_ARG + 3}::bool[])
         AS phone (id, reset, failures, invalid)
    WHERE contact_phones.id = phone.id
)
UPDATE campaigns SET live_calls = greatest(campaigns.live_calls - ended_in.calls, 0)
FROM (SELECT campaign_id, count(*) AS calls FROM ended GROUP BY campaign_id) AS ended_in
WHERE campaigns.id = ended_in.campaign_id
"""
