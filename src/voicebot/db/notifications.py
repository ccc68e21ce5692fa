"""The notification outbox: events written in the transaction that causes them, one delivery
per subscribed endpoint, handed out oldest first and in order per contact.

Events come from two places: :func:`enqueue` (a broken promise, in the transaction that judges
it), and :func:`collect_outcomes`, which turns newly stored outcomes (risk flags, complaints,
opt-outs) into events behind a cursor kept in ``outbox_cursors``. The cursor moves in the same
transaction that writes the events, so a restart neither loses nor repeats one; each event's
``source_key`` is unique besides.

A delivery given up on (the endpoint kept failing for the give-up window) or already made can be
queued again by an admin (:func:`redeliver`, :func:`redeliver_failed`), say once a receiver that
was down for days is back: it gets a fresh window of retries, and goes out before the contact's
later pending events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from voicebot.db.locks import begin_writing, is_postgres
from voicebot.db.models import (
    Contact,
    NotificationDelivery,
    NotificationEndpoint,
    NotificationEvent,
    OutboxCursor,
    Outcome,
)
from voicebot.db.session import rowcount

log = logging.getLogger(__name__)

EVENT_TYPES = ("risk_flag", "complaint", "opt_out", "broken_promise")
_FROM_OUTCOMES = ("risk_flag", "complaint", "opt_out")
_OUTCOME_CURSOR = "outcomes"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery handed to a sender: where to, what, and which attempt this is."""

    delivery_id: int
    event_id: int
    event_type: str
    url: str
    secret: str = field(repr=False)
    payload: dict[str, Any]
    attempt: int
    queued_at: datetime  # made or last redelivered: the give-up window runs from here


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if is_postgres(session) else sqlite.insert


async def enqueue(
    session: AsyncSession,
    *,
    source_key: str,
    event_type: str,
    contact_id: int | None,
    payload: dict[str, Any],
    now: datetime,
) -> int | None:
    """Add an event and its deliveries; None when this source already made one. Caller commits."""
    event_id: int | None = await session.scalar(
        _insert(session)(NotificationEvent)
        .values(
            source_key=source_key,
            type=event_type,
            contact_id=contact_id,
            payload={"type": event_type, **payload},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[NotificationEvent.source_key])
        .returning(NotificationEvent.id)
    )
    if event_id is None:
        return None
    endpoints = await session.execute(
        select(NotificationEndpoint.id, NotificationEndpoint.event_types).where(
            NotificationEndpoint.active.is_(True)
        )
    )
    subscribed = [eid for eid, types in endpoints if not types or event_type in types]
    if subscribed:
        await session.execute(
            _insert(session)(NotificationDelivery),
            [
                {
                    "event_id": event_id,
                    "endpoint_id": endpoint_id,
                    "contact_key": contact_id or 0,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "queued_at": now,
                }
                for endpoint_id in subscribed
            ],
        )
    return event_id


async def collect_outcomes(session: AsyncSession, *, now: datetime, limit: int = 1_000) -> int:
    """Turn outcomes stored since the last call into events; how many. Commits."""
    await begin_writing(session)
    await session.execute(
        _insert(session)(OutboxCursor)
        .values(name=_OUTCOME_CURSOR, last_id=0)
        .on_conflict_do_nothing(index_elements=[OutboxCursor.name])
    )
    cursor = await session.scalar(
        select(OutboxCursor.last_id).where(OutboxCursor.name == _OUTCOME_CURSOR).with_for_update()
    )
    rows = (
        await session.execute(
            select(Outcome, Contact.external_id, Contact.loan_id)
            .join(Contact, Contact.id == Outcome.contact_id)
            .where(Outcome.id > (cursor or 0))
            .order_by(Outcome.id)
            .limit(limit)
        )
    ).all()
    made = 0
    for outcome, external_id, loan_id in rows:
        if outcome.type in _FROM_OUTCOMES:
            made += (
                await enqueue(
                    session,
                    source_key=f"outcome:{outcome.id}",
                    event_type=outcome.type,
                    contact_id=outcome.contact_id,
                    payload={
                        "outcome_id": outcome.id,
                        "call_id": outcome.call_id,
                        "campaign_id": outcome.campaign_id,
                        "contact_id": outcome.contact_id,
                        "external_id": external_id,
                        "loan_id": loan_id,
                        "data": dict(outcome.data or {}),
                        "at": outcome.created_at.isoformat(),
                    },
                    now=now,
                )
                is not None
            )
    if rows:
        await session.execute(
            update(OutboxCursor)
            .where(OutboxCursor.name == _OUTCOME_CURSOR)
            .values(last_id=rows[-1][0].id)
        )
    await session.commit()
    return made


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease deliveries that are due, each the oldest pending one of its contact at its
    endpoint (so a contact's events go out one after the other, in order). Commits."""
    await begin_writing(session)
    earlier = aliased(NotificationDelivery)
    blocked = exists().where(
        and_(
            earlier.endpoint_id == NotificationDelivery.endpoint_id,
            earlier.contact_key == NotificationDelivery.contact_key,
            earlier.status == PENDING,
            earlier.id < NotificationDelivery.id,
        )
    )
    query = (
        select(NotificationDelivery.id)
        .where(
            NotificationDelivery.status == PENDING,
            NotificationDelivery.next_attempt_at <= now,
            (NotificationDelivery.lease_expires_at.is_(None))
            | (NotificationDelivery.lease_expires_at <= now),
            ~blocked,
        )
        .order_by(NotificationDelivery.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    ids = list(await session.scalars(query))
    if not ids:
        await session.commit()
        return []
    await session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id.in_(ids))
        .values(
            lease_expires_at=now + lease,
            attempts=NotificationDelivery.attempts + 1,
        )
    )
    rows = await session.execute(
        select(
            NotificationDelivery.id,
            NotificationDelivery.attempts,
            NotificationDelivery.queued_at,
            NotificationEvent.id,
            NotificationEvent.type,
            NotificationEvent.payload,
            NotificationEndpoint.url,
            NotificationEndpoint.secret,
        )
        .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
        .join(NotificationEndpoint, NotificationEndpoint.id == NotificationDelivery.endpoint_id)
        .where(NotificationDelivery.id.in_(ids))
        .order_by(NotificationDelivery.id)
    )
    claimed = [
        Claimed(
            delivery_id=d_id,
            event_id=e_id,
            event_type=e_type,
            url=url,
            secret=secret,
            payload=dict(payload),
            attempt=attempts,
            queued_at=queued_at,
        )
        for d_id, attempts, queued_at, e_id, e_type, payload, url, secret in rows
    ]
    await session.commit()
    return claimed


def _still_leased(claimed: Claimed) -> Any:
    """The delivery as it was claimed: not since settled by another sender whose lease on it
    came after this one's had expired (a late answer must not undo a later attempt)."""
    return and_(
        NotificationDelivery.id == claimed.delivery_id,
        NotificationDelivery.status == PENDING,
        NotificationDelivery.attempts == claimed.attempt,
    )


async def mark_delivered(
    session: AsyncSession, claimed: Claimed, *, status_code: int, latency_ms: float, now: datetime
) -> bool:
    """False when a later attempt has already settled the delivery. Commits."""
    result = await session.execute(
        update(NotificationDelivery)
        .where(_still_leased(claimed))
        .values(
            status=DELIVERED,
            delivered_at=now,
            response_status=status_code,
            latency_ms=latency_ms,
            lease_expires_at=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return bool(rowcount(result))


async def mark_failed_attempt(
    session: AsyncSession,
    claimed: Claimed,
    *,
    error: str,
    status_code: int | None,
    retry_at: datetime | None,
) -> bool:
    """The attempt failed: try again at ``retry_at``, or give up (``None``). False when a later
    attempt has already settled the delivery. Commits."""
    values: dict[str, Any] = {
        "last_error": error[:2000],
        "response_status": status_code,
        "lease_expires_at": None,
    }
    if retry_at is None:
        values["status"] = FAILED
    else:
        values["next_attempt_at"] = retry_at
    result = await session.execute(
        update(NotificationDelivery)
        .where(_still_leased(claimed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return bool(rowcount(result))


class NotRedeliverable(Exception):
    """Nothing can be queued again; ``code`` says why (``pending``, ``endpoint_inactive``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _inactive(endpoint_id: int) -> NotRedeliverable:
    return NotRedeliverable(
        "endpoint_inactive",
        f"notification endpoint {endpoint_id} is deactivated; nothing is sent to it",
    )


def _requeue(now: datetime) -> dict[str, Any]:
    return {
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "queued_at": now,
        "lease_expires_at": None,
        "delivered_at": None,
    }


async def redeliver(
    session: AsyncSession, delivery_id: int, *, now: datetime
) -> NotificationDelivery | None:
    """Queue a failed or delivered delivery again, due now; None when there is no such delivery.
    Raises :class:`NotRedeliverable` when it is still pending or its endpoint is deactivated.
    The caller commits (with its audit entry)."""
    await begin_writing(session)
    query = select(NotificationDelivery, NotificationEndpoint.active).join(
        NotificationEndpoint, NotificationEndpoint.id == NotificationDelivery.endpoint_id
    )
    query = query.where(NotificationDelivery.id == delivery_id)
    if is_postgres(session):
        # Two admins asking at once queue it once: the second then finds it pending.
        query = query.with_for_update(of=NotificationDelivery)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    delivery, active = row
    if delivery.status == PENDING:
        raise NotRedeliverable(
            "pending", f"notification delivery {delivery_id} is still pending: it will be sent"
        )
    if not active:
        raise _inactive(delivery.endpoint_id)
    for name, value in _requeue(now).items():
        setattr(delivery, name, value)
    await session.flush()
    return delivery


async def redeliver_failed(
    session: AsyncSession, endpoint_id: int, *, since: datetime | None, now: datetime
) -> int | None:
    """Queue again every delivery to the endpoint that was given up on (made at ``since`` or
    later, when given); how many, or None when there is no such endpoint. Raises
    :class:`NotRedeliverable` when the endpoint is deactivated. The caller commits (with its
    audit entry)."""
    active = await session.scalar(
        select(NotificationEndpoint.active).where(NotificationEndpoint.id == endpoint_id)
    )
    if active is None:
        return None
    if not active:
        raise _inactive(endpoint_id)
    query = update(NotificationDelivery).where(
        NotificationDelivery.endpoint_id == endpoint_id, NotificationDelivery.status == FAILED
    )
    if since is not None:
        query = query.where(NotificationDelivery.created_at >= since)
    query = query.values(**_requeue(now)).execution_options(synchronize_session=False)
    return rowcount(await session.execute(query))


async def list_deliveries(
    session: AsyncSession,
    *,
    limit: int,
    before_id: int | None = None,
    status: str | None = None,
    event_type: str | None = None,
    contact_id: int | None = None,
    endpoint_id: int | None = None,
) -> Sequence[tuple[NotificationDelivery, NotificationEvent]]:
    """Newest first."""
    query = select(NotificationDelivery, NotificationEvent).join(
        NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id
    )
    if before_id is not None:
        query = query.where(NotificationDelivery.id < before_id)
    if status is not None:
        query = query.where(NotificationDelivery.status == status)
    if event_type is not None:
        query = query.where(NotificationEvent.type == event_type)
    if contact_id is not None:
        query = query.where(NotificationEvent.contact_id == contact_id)
    if endpoint_id is not None:
        query = query.where(NotificationDelivery.endpoint_id == endpoint_id)
    rows = await session.execute(query.order_by(NotificationDelivery.id.desc()).limit(limit))
    return [(d, e) for d, e in rows]
