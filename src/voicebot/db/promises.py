"""Promises to pay judged against payments: kept, partly kept or broken, and what follows.

A promise (an outcome of type ``promise``: amount, currency, date) is matched with the payments
of its contact's loan made from the day it was given until its date plus the campaign's grace
days. It is *kept* as soon as they cover the amount; once that last day has passed it is *partly
kept* if something was paid, else *broken*. A judgement is final and stored in
``promise_checks``; an unjudged promise is *pending*. A broken promise raises a
``broken_promise`` notification and, when the campaign's policy says so, a follow-up call-back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from voicebot.db.locks import begin_writing, is_postgres
from voicebot.db.models import (
    CallBack,
    Campaign,
    Contact,
    ContactPhone,
    DoNotCall,
    Outcome,
    Payment,
    PromiseCheck,
    PromisePolicy,
)
from voicebot.db.notifications import enqueue
from voicebot.domain.campaigns import FINISHED
from voicebot.domain.types import (
    CallBackReason,
    CallBackStatus,
    CampaignStatus,
    OutcomeType,
    PhoneStatus,
)

log = logging.getLogger(__name__)

PENDING, KEPT, PARTLY_KEPT, BROKEN = "pending", "kept", "partly_kept", "broken"
_OPEN = (CallBackStatus.PENDING.value, CallBackStatus.CLAIMED.value, CallBackStatus.DIALED.value)
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PaymentIn:
    loan_id: str
    amount: Decimal
    paid_on: date
    currency: str | None = None
    reference: str | None = None

    def same_payment(self, loan_id: str, amount: Decimal, paid_on: date) -> bool:
        """Whether a payment with this one's reference is this one sent again: a bank's
        reference names one payment, so anything else under it is a conflict, not a repeat."""
        return (self.loan_id, self.amount, self.paid_on) == (loan_id, amount, paid_on)


@dataclass(frozen=True, slots=True)
class ReferenceTaken:
    """A payment whose reference is already stored for a different payment."""

    position: int  # in the payments given to ``store_payments``
    loan_id: str
    amount: Decimal
    paid_on: date


@dataclass(frozen=True, slots=True)
class StoredPayments:
    stored: int
    taken: list[ReferenceTaken]


@dataclass(frozen=True, slots=True)
class Judged:
    outcome_id: int
    contact_id: int
    loan_id: str
    status: str
    promised: Decimal
    paid: Decimal
    follow_up_callback_id: int | None


async def promise_statuses(session: AsyncSession, outcome_ids: Sequence[int]) -> dict[int, str]:
    """The judged status of each of these outcomes that has one (absent: not judged yet)."""
    if not outcome_ids:
        return {}
    rows = await session.execute(
        select(PromiseCheck.outcome_id, PromiseCheck.status).where(
            PromiseCheck.outcome_id.in_(list(outcome_ids))
        )
    )
    return {outcome_id: status for outcome_id, status in rows}


async def store_payments(
    session: AsyncSession, payments: Sequence[PaymentIn], *, source: str, now: datetime
) -> StoredPayments:
    """Insert the payments; one whose ``reference`` is already stored for the same payment is
    skipped as a repeat. A reference stored for a different payment is reported in ``taken``
    rather than dropped silently: the caller rolls back, as that payment would be lost.
    Caller commits."""
    await begin_writing(session)
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    stored = 0
    taken: list[ReferenceTaken] = []
    for position, payment in enumerate(payments):
        row_id = await session.scalar(
            insert(Payment)
            .values(
                loan_id=payment.loan_id,
                amount=payment.amount,
                currency=payment.currency,
                paid_on=payment.paid_on,
                reference=payment.reference,
                source=source,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Payment.reference])
            .returning(Payment.id)
        )
        if row_id is not None:
            stored += 1
            continue
        earlier = (
            await session.execute(
                select(Payment.loan_id, Payment.amount, Payment.paid_on).where(
                    Payment.reference == payment.reference
                )
            )
        ).one()
        if not payment.same_payment(*earlier):
            taken.append(ReferenceTaken(position, *earlier))
    return StoredPayments(stored=stored, taken=taken)


def _unjudged_promises() -> Select[Outcome, str | None, PromisePolicy]:
    judged = aliased(PromiseCheck)
    return (
        select(Outcome, Contact.loan_id, PromisePolicy)
        .join(Contact, Contact.id == Outcome.contact_id)
        .outerjoin(PromisePolicy, PromisePolicy.campaign_id == Outcome.campaign_id)
        .where(
            Outcome.type == OutcomeType.PROMISE.value,
            Contact.loan_id.is_not(None),
            ~exists().where(judged.outcome_id == Outcome.id),
        )
    )


def _dated_before(today: date) -> ColumnElement[bool]:
    before: ColumnElement[bool] = Outcome.data["date"].as_string() < today.isoformat()
    return before


async def overdue_promises(session: AsyncSession, *, today: date) -> bool:
    """Whether some unjudged promise is dated before ``today`` (a read, without locks)."""
    query = _unjudged_promises().where(_dated_before(today)).limit(1)
    return (await session.execute(query)).first() is not None


async def judge_promises(
    session: AsyncSession,
    *,
    today: date,
    now: datetime,
    loan_ids: Iterable[str] | None = None,
    limit: int = 1_000,
) -> list[Judged]:
    """Judge the unjudged promises of these loans (or, without ``loan_ids``, those whose last
    day has passed), store the verdicts that are final, and follow broken ones up. Returns the
    promises looked at, pending ones included. Caller commits."""
    await begin_writing(session)
    query = _unjudged_promises().order_by(Outcome.id).limit(limit)
    if loan_ids is not None:
        query = query.where(Contact.loan_id.in_(sorted(set(loan_ids))))
    else:
        # Every grace period is under a year: promises dated within it are left to the check
        # below, which knows each campaign's grace.
        query = query.where(_dated_before(today))
    if is_postgres(session):
        query = query.with_for_update(of=Outcome, skip_locked=True)
    results: list[Judged] = []
    for outcome, loan_id, policy in (await session.execute(query)).all():
        assert loan_id is not None  # filtered above
        results.append(await _judge(session, outcome, loan_id, policy, today=today, now=now))
    return results


async def _judge(
    session: AsyncSession,
    outcome: Outcome,
    loan_id: str,
    policy: PromisePolicy | None,
    *,
    today: date,
    now: datetime,
) -> Judged:
    data = outcome.data or {}
    promised = Decimal(str(data["amount"]))
    currency = data.get("currency")
    grace = policy.grace_days if policy is not None else 0
    last_day = date.fromisoformat(str(data["date"])) + timedelta(days=grace)
    given_on = outcome.created_at.astimezone(UTC).date()
    paid_query = select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.loan_id == loan_id, Payment.paid_on >= given_on, Payment.paid_on <= last_day
    )
    if currency:
        paid_query = paid_query.where((Payment.currency.is_(None)) | (Payment.currency == currency))
    paid = Decimal(str(await session.scalar(paid_query) or 0)).quantize(_CENT)
    if paid >= promised:
        status = KEPT
    elif today > last_day:
        status = PARTLY_KEPT if paid > 0 else BROKEN
    else:
        status = PENDING
    follow_up: int | None = None
    if status == BROKEN:
        follow_up = await _follow_up(session, outcome, policy, now=now)
        await enqueue(
            session,
            source_key=f"promise:{outcome.id}:broken",
            event_type="broken_promise",
            contact_id=outcome.contact_id,
            payload={
                "outcome_id": outcome.id,
                "call_id": outcome.call_id,
                "campaign_id": outcome.campaign_id,
                "contact_id": outcome.contact_id,
                "loan_id": loan_id,
                "data": dict(data),
                "paid": str(paid),
                "follow_up_callback_id": follow_up,
                "at": now.isoformat(),
            },
            now=now,
        )
    if status != PENDING:
        session.add(
            PromiseCheck(
                outcome_id=outcome.id,
                status=status,
                paid_amount=paid,
                checked_at=now,
                follow_up_callback_id=follow_up,
            )
        )
        await session.flush()
        log.info("promise %s of contact %s: %s", outcome.id, outcome.contact_id, status)
    return Judged(
        outcome_id=outcome.id,
        contact_id=outcome.contact_id,
        loan_id=loan_id,
        status=status,
        promised=promised,
        paid=paid,
        follow_up_callback_id=follow_up,
    )


async def _follow_up(
    session: AsyncSession, outcome: Outcome, policy: PromisePolicy | None, *, now: datetime
) -> int | None:
    """A broken_promise call-back when the campaign's policy asks for one, it still runs, the
    contact has no open call-back there already and has a number that may be dialed."""
    if policy is None or not policy.follow_up_broken or outcome.campaign_id is None:
        return None
    campaign = await session.get(Campaign, outcome.campaign_id)
    if campaign is None or CampaignStatus(campaign.status) in FINISHED:
        return None
    already = await session.scalar(
        select(CallBack.id).where(
            CallBack.campaign_id == campaign.id,
            CallBack.contact_id == outcome.contact_id,
            CallBack.status.in_(_OPEN),
        )
    )
    if already is not None:
        return None
    phone_id = await session.scalar(
        select(ContactPhone.id)
        .where(
            ContactPhone.contact_id == outcome.contact_id,
            ContactPhone.status == PhoneStatus.VALID.value,
            ~exists().where(and_(DoNotCall.e164 == ContactPhone.e164)),
        )
        .order_by(ContactPhone.position)
        .limit(1)
    )
    if phone_id is None:
        return None
    callback = CallBack(
        campaign_id=campaign.id,
        contact_id=outcome.contact_id,
        phone_id=phone_id,
        due_at=now + timedelta(hours=policy.follow_up_delay_hours),
        attempt=1,
        status=CallBackStatus.PENDING.value,
        reason=CallBackReason.BROKEN_PROMISE.value,
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    await session.flush()
    return callback.id
