"""What happened: calls, their events, transcripts and outcomes, read for analysts.

Lists are newest first by id (ids grow in the order rows are written) and paged by keyset: a page
ends at the last id it holds and the next page starts below it, so pages never skip or repeat a
row however many are written meanwhile, and a deep page costs what the first one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Result, Row, Select, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallBack, CarrierEvent, Contact, Outcome, TranscriptTurn


@dataclass(frozen=True, slots=True)
class CallFilter:
    campaign_id: int | None = None
    contact_id: int | None = None
    dispositions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    outcome_type: str | None = None  # calls that established at least one outcome of this type
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until


@dataclass(frozen=True, slots=True)
class OutcomeFilter:
    types: tuple[str, ...] = ()
    campaign_id: int | None = None
    contact_id: int | None = None
    call_id: int | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    due_from: date | None = None  # promises whose date >= due_from
    due_to: date | None = None  # promises whose date <= due_to
    category: str | None = None  # complaints of this category
    flag: str | None = None  # risk flags of this kind


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: Call
    contact_name: str | None
    events: Sequence[CarrierEvent]
    turns: Sequence[TranscriptTurn]
    outcomes: Sequence[Outcome]


@dataclass(frozen=True, slots=True)
class ContactHistory:
    contact: Contact
    callbacks: Sequence[CallBack]
    calls: Sequence[Call]
    outcomes: Sequence[Outcome]


# The columns of a row find_calls returns, in the order a CSV export of calls writes them (then
# the call-back, which only the JSON list shows): what a list or an export of calls shows, not
# the carrier's and media stream's ids, errors and bookkeeping, which only a call's own page
# does. A page reads 50 to 1,000 rows: each column left out is one fewer value per row decoded.
CALL_ROW_COLUMNS = (
    "id",
    "campaign_id",
    "contact_id",
    "contact_name",
    "to_number",
    "from_number",
    "attempt",
    "status",
    "disposition",
    "answered_by",
    "duration_seconds",
    "conversed",
    "end_state",
    "created_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "callback_id",
)


async def find_calls(
    session: AsyncSession, where: CallFilter, *, limit: int, before_id: int | None = None
) -> Sequence[Row[Any]]:
    """One page of calls with ids below ``before_id``, newest first: rows of
    :data:`CALL_ROW_COLUMNS` (the columns a list of calls shows, the contact's name among them).

    The page's ids are found first, from the index alone where it holds every column filtered
    on (ix_calls_campaign_id_id on PostgreSQL); only those rows are then read whole, as plain
    rows (a page is read, never changed: ORM objects would only cost time).
    """
    params: dict[str, Any] = {
        "campaign_id": where.campaign_id,
        "contact_id": where.contact_id,
        "dispositions": list(where.dispositions),
        "statuses": list(where.statuses),
        "outcome_type": where.outcome_type,
        "since": where.since,
        "until": where.until,
        "before_id": before_id,
        "limit": limit,
    }
    shape = tuple(params[name] not in (None, []) for name in _FILTERS)
    # Through the session's connection: the statement reads table columns, and the ORM's
    # execution path around it (entity loading, identity map) would only cost time.
    connection = await session.connection()
    rows: Result[Any] = await connection.execute(_calls_page(shape), params)
    return rows.all()


# The optional filters of a page of calls, in the order _calls_page's shape lists them.
_FILTERS = (
    "campaign_id",
    "contact_id",
    "dispositions",
    "statuses",
    "outcome_type",
    "since",
    "until",
    "before_id",
)


_PAGES: dict[tuple[bool, ...], Select[Any]] = {}


def _calls_page(shape: tuple[bool, ...]) -> Select[Any]:
    page = _PAGES.get(shape)
    if page is None:
        page = _PAGES[shape] = _build_calls_page(shape)
    return page


def _build_calls_page(shape: tuple[bool, ...]) -> Select[Any]:
    """The page query for one combination of filters (``shape``: whether each of _FILTERS is
    given), with bound parameters named as the filters: built once, then reused by every
    request of that shape, instead of building the same statement per request."""
    given = dict(zip(_FILTERS, shape, strict=True))
    conditions: list[ColumnElement[bool]] = []
    if given["campaign_id"]:
        conditions.append(Call.campaign_id == bindparam("campaign_id"))
    if given["contact_id"]:
        conditions.append(Call.contact_id == bindparam("contact_id"))
    if given["dispositions"]:
        conditions.append(Call.disposition.in_(bindparam("dispositions", expanding=True)))
    if given["statuses"]:
        conditions.append(Call.status.in_(bindparam("statuses", expanding=True)))
    if given["since"]:
        conditions.append(Call.created_at >= bindparam("since"))
    if given["until"]:
        conditions.append(Call.created_at < bindparam("until"))
    if given["outcome_type"]:
        conditions.append(
            exists().where(Outcome.call_id == Call.id, Outcome.type == bindparam("outcome_type"))
        )
    if given["before_id"]:
        conditions.append(Call.id < bindparam("before_id"))
    page = (
        select(Call.id)
        .where(*conditions)
        .order_by(Call.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    calls = Call.__table__
    return (
        select(
            *(
                Contact.name.label(name) if name == "contact_name" else calls.c[name]
                for name in CALL_ROW_COLUMNS
            )
        )
        .outerjoin(Contact, Contact.id == calls.c.contact_id)
        .where(calls.c.id.in_(page.scalar_subquery()))
        .order_by(calls.c.id.desc())
    )


def outcomes_query(where: OutcomeFilter) -> Select[Any]:
    """Outcomes matching ``where`` with their contact's name, newest first."""
    query = select(Outcome.__table__, Contact.name.label("_contact_name")).join(
        Contact, Contact.id == Outcome.contact_id
    )
    if where.types:
        query = query.where(Outcome.type.in_(where.types))
    if where.campaign_id is not None:
        query = query.where(Outcome.campaign_id == where.campaign_id)
    if where.contact_id is not None:
        query = query.where(Outcome.contact_id == where.contact_id)
    if where.call_id is not None:
        query = query.where(Outcome.call_id == where.call_id)
    if where.since is not None:
        query = query.where(Outcome.created_at >= where.since)
    if where.until is not None:
        query = query.where(Outcome.created_at < where.until)
    # ISO dates compare as strings in the same order as the dates they write.
    if where.due_from is not None:
        query = query.where(Outcome.data["date"].as_string() >= where.due_from.isoformat())
    if where.due_to is not None:
        query = query.where(Outcome.data["date"].as_string() <= where.due_to.isoformat())
    if where.category is not None:
        query = query.where(Outcome.data["category"].as_string() == where.category)
    if where.flag is not None:
        query = query.where(Outcome.data["flag"].as_string() == where.flag)
    return query.order_by(Outcome.id.desc())


async def find_outcomes(
    session: AsyncSession, where: OutcomeFilter, *, limit: int, before_id: int | None = None
) -> list[tuple[Row[Any], str]]:
    """One page of outcomes (rows of the outcomes table's columns) and their contact's name."""
    query = outcomes_query(where)
    if before_id is not None:
        query = query.where(Outcome.id < before_id)
    rows = await session.execute(query.limit(limit))
    return [(row, row._contact_name) for row in rows]


async def call_detail(session: AsyncSession, call_id: int) -> CallDetail | None:
    """A call with its carrier events (in arrival order), transcript and outcomes."""
    row = (
        await session.execute(
            select(Call, Contact.name)
            .outerjoin(Contact, Contact.id == Call.contact_id)
            .where(Call.id == call_id)
        )
    ).one_or_none()
    if row is None:
        return None
    call, name = row
    events = await session.scalars(
        select(CarrierEvent)
        .where(CarrierEvent.call_id == call_id)
        .order_by(CarrierEvent.received_at, CarrierEvent.id)
    )
    turns = await session.scalars(
        select(TranscriptTurn).where(TranscriptTurn.call_id == call_id).order_by(TranscriptTurn.seq)
    )
    outcomes = await session.scalars(
        select(Outcome).where(Outcome.call_id == call_id).order_by(Outcome.id)
    )
    return CallDetail(
        call=call,
        contact_name=name,
        events=events.all(),
        turns=turns.all(),
        outcomes=outcomes.all(),
    )


async def contact_history(session: AsyncSession, contact_id: int) -> ContactHistory | None:
    """Every call-back, call and outcome of one contact, oldest first."""
    contact = await session.get(Contact, contact_id)
    if contact is None:
        return None
    callbacks = await session.scalars(
        select(CallBack).where(CallBack.contact_id == contact_id).order_by(CallBack.id)
    )
    calls = await session.scalars(
        select(Call).where(Call.contact_id == contact_id).order_by(Call.id)
    )
    outcomes = await session.scalars(
        select(Outcome).where(Outcome.contact_id == contact_id).order_by(Outcome.id)
    )
    return ContactHistory(
        contact=contact, callbacks=callbacks.all(), calls=calls.all(), outcomes=outcomes.all()
    )
