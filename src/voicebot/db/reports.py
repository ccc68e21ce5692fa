"""Campaign reports, aggregated in the database by one statement per report: a consistent
snapshot in one round trip.

A borrower counts once per measure however many calls it took: "reached" means a person
answered (answered or hung up), "right party" that the borrower confirmed who they are (the call
was a conversation), "promised"/"complained"/"opted out" that a call established that outcome
(an opted-out disposition counts too).

The campaign's calls are folded per borrower (and day), and so are the outcomes of those calls;
the two then meet per borrower, which is far cheaper than meeting per call (a report reads
thousands of calls). An outcome carries its call's campaign and borrower (the call session copies
them, voicebot.calls.records.store_outcome): over the whole campaign, the outcomes are therefore
read on their own, from an index; only a time range or days need their calls' placing times.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Date,
    Float,
    Integer,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from voicebot.db.locks import is_postgres
from voicebot.db.models import Call, Campaign, Outcome
from voicebot.domain.types import Disposition, OutcomeType

_REACHED = (Disposition.ANSWERED.value, Disposition.HUNG_UP.value)
# The outcomes a borrower's measures count (the others are not read).
_COUNTED = (OutcomeType.PROMISE.value, OutcomeType.COMPLAINT.value, OutcomeType.OPT_OUT.value)
# What a row of the report statement holds (its "part" column).
_MEASURES = 0
_AMOUNTS = 1


@dataclass(frozen=True, slots=True)
class ReportRow:
    attempts: int
    contacts_attempted: int
    contacts_reached: int
    right_party_contacts: int
    contacts_promised: int
    contacts_complained: int
    contacts_opted_out: int
    average_call_seconds: float | None
    promised_amount: dict[str, Decimal] = field(default_factory=dict)
    day: date | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """The measures over the whole range (zeros when no call was placed in it), and with
    ``by_day`` one row per UTC day a call was placed on, oldest first."""

    totals: ReportRow
    days: list[ReportRow] | None = None


async def campaign_report(
    session: AsyncSession,
    campaign_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by_day: bool = False,
) -> Report | None:
    """The campaign's measures over calls placed in [since, until); None when there is no such
    campaign."""
    statement = _report_statement(
        since=since is not None,
        until=until is not None,
        by_day=by_day,
        postgres=is_postgres(session),
    )
    params = {"campaign_id": campaign_id, "since": since, "until": until}
    totals: Any = None  # the totals' row is there whenever the campaign is
    days: dict[date, Any] = {}
    amounts: dict[date | None, dict[str, Decimal]] = {}
    for row in (await session.execute(statement, params)).all():
        day = None if row.day is None else _as_date(row.day)
        if row.part == _AMOUNTS:
            amounts.setdefault(day, {})[row.currency or ""] = Decimal(int(row.cents)) / 100
        elif day is None:
            totals = row
        else:
            days[day] = row
    if totals is None:
        return None
    return Report(
        totals=_report_row(totals, None, amounts),
        days=[_report_row(days[day], day, amounts) for day in sorted(days)] if by_day else None,
    )


@functools.lru_cache(maxsize=16)
def _report_statement(
    *, since: bool, until: bool, by_day: bool, postgres: bool
) -> CompoundSelect[Any]:
    """The report for one combination of options, with bound parameters campaign_id, since and
    until: built once, then reused by every request of that shape. Its rows: the totals'
    measures (only if the campaign exists), the totals' promised amounts per currency, and with
    ``by_day`` the same two per day (``day`` is NULL on the totals' rows)."""
    calls = Call.__table__.c
    outcomes = Outcome.__table__.c
    campaigns = Campaign.__table__.c
    ranged = since or until
    day = _utc_day(calls.created_at, postgres=postgres)  # the call's, for its outcomes too
    its_call = calls.id == outcomes.call_id

    def placed(query: Select[Any]) -> Select[Any]:
        query = query.where(calls.campaign_id == bindparam("campaign_id"))
        if since:
            query = query.where(calls.created_at >= bindparam("since"))
        if until:
            query = query.where(calls.created_at < bindparam("until"))
        return query

    def of_calls_placed(query: Select[Any], *, joined: bool) -> Select[Any]:
        """The campaign's outcomes of calls placed in the range: ``joined`` to their calls when
        a range (or the calls' days) needs them; else from the outcomes alone."""
        query = query.where(
            outcomes.campaign_id == bindparam("campaign_id"), outcomes.call_id.is_not(None)
        )
        if joined:
            query = placed(query.join_from(Outcome.__table__, Call.__table__, its_call))
        return query

    def measures(daily: bool) -> Select[Any]:
        keys: list[ColumnElement[Any]] = [day.label("day")] if daily else []
        reached = calls.disposition.in_([_constant(value) for value in _REACHED])
        per_contact = placed(
            select(
                calls.contact_id,
                *keys,
                func.count().label("attempts"),
                _ever(reached, "reached"),
                _ever(calls.conversed.is_(True), "right_party"),
                _ever(calls.disposition == _constant(Disposition.OPTED_OUT), "opted_out"),
                func.sum(case((reached, calls.duration_seconds))).label("talk_seconds"),
                func.count(case((reached, calls.duration_seconds))).label("talks"),
            )
        ).group_by(calls.contact_id, *keys)
        # Without a range or days, the outcome's own columns say all (its borrower is its
        # call's), and ix_outcomes_campaign_id_type_contact_id holds them.
        joined = ranged or daily
        contact = calls.contact_id if joined else outcomes.contact_id
        per_outcome_contact = of_calls_placed(
            select(
                contact.label("contact_id"),
                *keys,
                _ever(outcomes.type == _constant(OutcomeType.PROMISE), "promised"),
                _ever(outcomes.type == _constant(OutcomeType.COMPLAINT), "complained"),
                _ever(outcomes.type == _constant(OutcomeType.OPT_OUT), "opted_out"),
            ).where(outcomes.type.in_([_constant(value) for value in _COUNTED])),
            joined=joined,
        ).group_by(contact, *keys)
        return _measures_of(per_contact.subquery(), per_outcome_contact.subquery(), daily=daily)

    def promised(daily: bool) -> Select[Any]:
        # Summed in cents as integers: exact, and the same on both databases.
        amount = cast(outcomes.data["amount"].as_string(), Float)
        cents = cast(func.round(amount * _constant(100)), BigInteger if postgres else Integer)
        currency = outcomes.data["currency"].as_string()
        keys: list[ColumnElement[Any]] = [day] if daily else []
        query = of_calls_placed(
            select(
                _constant(_AMOUNTS).label("part"),
                day.label("day") if daily else null().label("day"),
                currency.label("currency"),
                func.sum(cents).label("cents"),
                *_NO_MEASURES,
            ).where(outcomes.type == _constant(OutcomeType.PROMISE)),
            joined=ranged or daily,
        )
        return query.group_by(*keys, currency)

    def measured(daily: bool) -> Select[Any]:
        sums = measures(daily).subquery()
        return select(
            _constant(_MEASURES).label("part"),
            # Typed: PostgreSQL settles a NULL's type before meeting the days' dates.
            sums.c.day if daily else cast(null(), Date).label("day"),
            null().label("currency"),
            null().label("cents"),
            *(sums.c[name] for name in _MEASURE_COLUMNS),
        )

    # The totals' row, only if the campaign exists (its absence makes the report None).
    totals = measured(daily=False).where(
        select(campaigns.id).where(campaigns.id == bindparam("campaign_id")).exists()
    )
    parts = [totals, promised(daily=False)]
    if by_day:
        parts += [measured(daily=True), promised(daily=True)]
    return union_all(*parts)


def _constant(value: str | int) -> ColumnElement[Any]:
    """A constant written into the statement rather than bound: the planner sees its value (a
    partial index only serves a query whose condition it can prove, and a generic plan cannot
    see bound values)."""
    if isinstance(value, int):
        return literal_column(str(value), Integer)
    return literal_column("'" + value.replace("'", "''") + "'", String)


_ONE = _constant(1)
_ZERO = _constant(0)


def _ever(condition: ColumnElement[bool], name: str) -> ColumnElement[int]:
    """1 if the condition held for any row of the group, else 0."""
    return func.max(case((condition, _ONE), else_=_ZERO)).label(name)


def _or_zero(total: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(total, _ZERO)


# The measure columns of the report statement, in order; NULL on a promised amount's row.
_MEASURE_COLUMNS = (
    "attempts",
    "contacts_attempted",
    "contacts_reached",
    "right_party_contacts",
    "contacts_promised",
    "contacts_complained",
    "contacts_opted_out",
    "talk_seconds",
    "talks",
)
_NO_MEASURES = tuple(null().label(name) for name in _MEASURE_COLUMNS)


def _measures_of(per_contact: Subquery, outcome_flags: Subquery, *, daily: bool) -> Select[Any]:
    """Sums over borrowers (per day with ``daily``): each borrower's calls meet the outcomes
    of those calls."""
    k, o = per_contact.c, outcome_flags.c
    meets = k.contact_id == o.contact_id
    if daily:
        meets = and_(meets, k.day == o.day)
    opted_out = case((k.opted_out == _ONE, _ONE), (o.opted_out == _ONE, _ONE), else_=_ZERO)
    query = select(
        *([k.day] if daily else []),
        _or_zero(func.sum(k.attempts)).label("attempts"),
        func.count().label("contacts_attempted"),
        _or_zero(func.sum(k.reached)).label("contacts_reached"),
        _or_zero(func.sum(k.right_party)).label("right_party_contacts"),
        _or_zero(func.sum(o.promised)).label("contacts_promised"),
        _or_zero(func.sum(o.complained)).label("contacts_complained"),
        _or_zero(func.sum(opted_out)).label("contacts_opted_out"),
        func.sum(k.talk_seconds).label("talk_seconds"),
        _or_zero(func.sum(k.talks)).label("talks"),
    ).select_from(per_contact.outerjoin(outcome_flags, meets))
    return query.group_by(k.day) if daily else query


def _report_row(
    row: Any, day: date | None, amounts: dict[date | None, dict[str, Decimal]]
) -> ReportRow:
    talks = int(row.talks)
    average = None if not talks else int(row.talk_seconds or 0) / talks
    return ReportRow(
        attempts=int(row.attempts),
        contacts_attempted=int(row.contacts_attempted),
        contacts_reached=int(row.contacts_reached),
        right_party_contacts=int(row.right_party_contacts),
        contacts_promised=int(row.contacts_promised),
        contacts_complained=int(row.contacts_complained),
        contacts_opted_out=int(row.contacts_opted_out),
        average_call_seconds=average,
        promised_amount={k: v.quantize(Decimal("0.01")) for k, v in amounts.get(day, {}).items()},
        day=day,
    )


def _utc_day(column: Any, *, postgres: bool) -> ColumnElement[Any]:
    if postgres:
        return func.date(func.timezone(_constant("UTC"), column))
    return func.date(column)  # SQLite stores UTC already: 'YYYY-MM-DD'


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
