"""Campaign reports, aggregated in the database: one pass over the campaign's calls (joined to
their outcomes, folded per call first), and one over its promises for the amounts.

A borrower counts once per measure however many calls it took: "reached" means a person
answered (answered or hung up), "right party" that the borrower confirmed who they are (the call
was a conversation), "promised"/"complained"/"opted out" that a call established that outcome
(an opted-out disposition counts too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from voicebot.db.locks import is_postgres
from voicebot.db.models import Call, Outcome
from voicebot.domain.types import Disposition, OutcomeType

_REACHED = (Disposition.ANSWERED.value, Disposition.HUNG_UP.value)


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


async def campaign_report(
    session: AsyncSession,
    campaign_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by_day: bool = False,
) -> list[ReportRow]:
    """The campaign's measures over calls placed in [since, until): one row, or one per UTC day
    (oldest first) with ``by_day``."""
    postgres = is_postgres(session)
    day = _utc_day(Call.created_at, postgres=postgres)

    def placed(query: Any) -> Any:
        query = query.where(Call.campaign_id == campaign_id)
        if since is not None:
            query = query.where(Call.created_at >= since)
        if until is not None:
            query = query.where(Call.created_at < until)
        return query

    def has(kind: OutcomeType) -> ColumnElement[Any]:
        return func.max(case((Outcome.type == kind.value, 1), else_=0)).label(kind.value)

    per_call = (
        select(
            Outcome.call_id,
            has(OutcomeType.PROMISE),
            has(OutcomeType.COMPLAINT),
            has(OutcomeType.OPT_OUT),
        )
        .where(Outcome.campaign_id == campaign_id, Outcome.call_id.is_not(None))
        .group_by(Outcome.call_id)
        .subquery()
    )

    # Two levels, so each borrower is counted once with one grouping (not a DISTINCT per
    # measure): per borrower (and day), whether each thing ever happened; then sums of those.
    def ever(condition: ColumnElement[bool], name: str) -> ColumnElement[int]:
        return func.max(case((condition, 1), else_=0)).label(name)

    reached = Call.disposition.in_(_REACHED)
    per_contact = placed(
        select(
            *([day.label("day")] if by_day else []),
            func.count().label("attempts"),
            ever(reached, "reached"),
            ever(Call.conversed.is_(True), "right_party"),
            ever(per_call.c.promise == 1, "promised"),
            ever(per_call.c.complaint == 1, "complained"),
            ever(
                or_(per_call.c.opt_out == 1, Call.disposition == Disposition.OPTED_OUT.value),
                "opted_out",
            ),
            func.sum(case((reached, Call.duration_seconds))).label("talk_seconds"),
            func.count(case((reached, Call.duration_seconds))).label("talks"),
        )
        .select_from(Call)
        .outerjoin(per_call, per_call.c.call_id == Call.id)
    ).group_by(Call.contact_id, *([day] if by_day else []))
    inner = per_contact.subquery()
    query = select(
        *([inner.c.day] if by_day else []),
        func.coalesce(func.sum(inner.c.attempts), 0).label("attempts"),
        func.count().label("contacts_attempted"),
        func.coalesce(func.sum(inner.c.reached), 0).label("contacts_reached"),
        func.coalesce(func.sum(inner.c.right_party), 0).label("right_party_contacts"),
        func.coalesce(func.sum(inner.c.promised), 0).label("contacts_promised"),
        func.coalesce(func.sum(inner.c.complained), 0).label("contacts_complained"),
        func.coalesce(func.sum(inner.c.opted_out), 0).label("contacts_opted_out"),
        func.sum(inner.c.talk_seconds).label("talk_seconds"),
        func.coalesce(func.sum(inner.c.talks), 0).label("talks"),
    )
    if by_day:
        query = query.group_by(inner.c.day).order_by(inner.c.day)
    rows = (await session.execute(query)).mappings().all()

    # Amounts are summed in cents as integers: exact, and the same on both databases.
    amount = Outcome.data["amount"].as_string()
    cents = cast(func.round(cast(amount, Float) * 100), BigInteger if postgres else Integer)
    currency = Outcome.data["currency"].as_string()
    amounts_query = placed(
        select(*([day.label("day")] if by_day else []), currency.label("currency"))
        .add_columns(func.sum(cents).label("cents"))
        .select_from(Outcome)
        .join(Call, Call.id == Outcome.call_id)
        # The outcome's own campaign (its call's) lets ix_outcomes_campaign_id find them.
        .where(Outcome.campaign_id == campaign_id, Outcome.type == OutcomeType.PROMISE.value)
    ).group_by(*([day] if by_day else []), currency)
    amounts: dict[Any, dict[str, Decimal]] = {}
    for row in (await session.execute(amounts_query)).mappings():
        key = _as_date(row["day"]) if by_day else None
        amounts.setdefault(key, {})[row["currency"] or ""] = Decimal(int(row["cents"])) / 100

    return [_report_row(row, amounts, by_day=by_day) for row in rows if row["attempts"]]


def _report_row(row: Any, amounts: dict[Any, dict[str, Decimal]], *, by_day: bool) -> ReportRow:
    day = _as_date(row["day"]) if by_day else None
    talks = int(row["talks"])
    average = None if not talks else int(row["talk_seconds"] or 0) / talks
    return ReportRow(
        attempts=int(row["attempts"]),
        contacts_attempted=int(row["contacts_attempted"]),
        contacts_reached=int(row["contacts_reached"]),
        right_party_contacts=int(row["right_party_contacts"]),
        contacts_promised=int(row["contacts_promised"]),
        contacts_complained=int(row["contacts_complained"]),
        contacts_opted_out=int(row["contacts_opted_out"]),
        average_call_seconds=average,
        promised_amount={k: v.quantize(Decimal("0.01")) for k, v in amounts.get(day, {}).items()},
        day=day,
    )


def _utc_day(column: Any, *, postgres: bool) -> ColumnElement[Any]:
    if postgres:
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores UTC already: 'YYYY-MM-DD'


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
