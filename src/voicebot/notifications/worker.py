"""The worker that empties the notification outbox (and sweeps for broken promises).

Each round: turn new outcomes into events, judge promises whose last day has passed (every
``promise_sweep_seconds``), then lease the deliveries that are due and POST them, signed, all
at once (each contact's own events one after the other: see ``claim_due``). A 2xx marks a
delivery delivered; anything else is retried with exponential back-off until it has been
failing for ``notification_give_up_hours`` since it was queued, then marked failed (an admin
can queue it again: ``db.notifications.redeliver``). Leases make a delivery whose sender died
due again; several app processes may run workers on one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot import metrics
from voicebot.config import Settings
from voicebot.db.models import NotificationDelivery, OutboxCursor, Outcome
from voicebot.db.notifications import (
    PENDING,
    Claimed,
    claim_due,
    collect_outcomes,
    mark_delivered,
    mark_failed_attempt,
)
from voicebot.db.promises import judge_promises, overdue_promises
from voicebot.notifications.signing import signed_headers

log = logging.getLogger(__name__)

_BATCH = 200
# How long a sender holds what it claimed beyond its request's timeout: a lease that ran out
# while the POST was still waiting would have the delivery sent twice.
_LEASE_MARGIN = timedelta(seconds=60)


class NotificationWorker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
    ) -> None:
        self._settings = settings
        self._maker = sessionmaker
        self._http = http
        self._next_sweep = 0.0
        self._lease = timedelta(seconds=settings.notification_timeout_seconds) + _LEASE_MARGIN

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; a failing round is logged and the next one tried."""
        while not stop.is_set():
            busy = False
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("notifications: a round failed; retrying")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.notification_poll_seconds)

    async def run_once(self) -> bool:
        """One round; True when it sent something (so the next round should not wait)."""
        now = datetime.now(UTC)
        if await self._new_outcomes():
            async with self._maker() as session:
                await collect_outcomes(session, now=now)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._settings.promise_sweep_seconds
            async with self._maker() as session:
                # Looked for without a lock first: most sweeps find nothing to judge.
                overdue = await overdue_promises(session, today=now.date())
            if overdue:
                await self._sweep(now)
        if not await self._anything_due(now):
            return False
        async with self._maker() as session:
            claimed = await claim_due(session, now=now, lease=self._lease, limit=_BATCH)
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return bool(claimed)

    async def _sweep(self, now: datetime) -> None:
        async with self._maker() as session:
            judged = await judge_promises(session, today=now.date(), now=now)
            await session.commit()
        if judged:
            log.info("promise sweep: %d promises judged", len(judged))

    async def _new_outcomes(self) -> bool:
        """Read-only: is there an outcome past the cursor? (Idle rounds take no write lock.)"""
        async with self._maker() as session:
            last = select(OutboxCursor.last_id).where(OutboxCursor.name == "outcomes")
            cursor = await session.scalar(last)
            return bool(await session.scalar(select(exists().where(Outcome.id > (cursor or 0)))))

    async def _anything_due(self, now: datetime) -> bool:
        async with self._maker() as session:
            return bool(
                await session.scalar(
                    select(
                        exists().where(
                            NotificationDelivery.status == PENDING,
                            NotificationDelivery.next_attempt_at <= now,
                        )
                    )
                )
            )

    async def _deliver(self, claimed: Claimed) -> None:
        body = json.dumps(
            {"id": claimed.event_id, **claimed.payload}, ensure_ascii=False, sort_keys=True
        ).encode()
        headers = signed_headers(
            claimed.secret, body, event_id=claimed.event_id, event_type=claimed.event_type
        )
        started = time.perf_counter()
        error: str | None = None
        status: int | None = None
        try:
            response = await self._http.post(
                claimed.url,
                content=body,
                headers=headers,
                timeout=self._settings.notification_timeout_seconds,
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        elapsed = time.perf_counter() - started
        now = datetime.now(UTC)
        metrics.NOTIFICATION_SECONDS.labels(
            result="delivered" if error is None else "failed"
        ).observe(elapsed)
        retry_at: datetime | None = None
        async with self._maker() as session:
            if error is None:
                settled = await mark_delivered(
                    session,
                    claimed,
                    status_code=status or 0,
                    latency_ms=elapsed * 1000,
                    now=now,
                )
            else:
                retry_at = self._retry_at(claimed, now)
                settled = await mark_failed_attempt(
                    session, claimed, error=error, status_code=status, retry_at=retry_at
                )
        if not settled:
            log.warning(
                "notification %s (event %s, attempt %d) answered after its lease ran out and "
                "was sent again meanwhile; this answer is not recorded",
                claimed.delivery_id,
                claimed.event_id,
                claimed.attempt,
            )
        elif error is not None:
            if retry_at is None:
                metrics.NOTIFICATIONS_GIVEN_UP.inc()
            log.warning(
                "notification %s (event %s, attempt %d) failed: %s; %s",
                claimed.delivery_id,
                claimed.event_id,
                claimed.attempt,
                error,
                "giving up" if retry_at is None else f"retrying at {retry_at.isoformat()}",
            )

    def _retry_at(self, claimed: Claimed, now: datetime) -> datetime | None:
        """When to try again, backing off; None (give up) once the delivery has been failing for
        the give-up window since it was queued (made, or redelivered)."""
        settings = self._settings
        if now - claimed.queued_at > timedelta(hours=settings.notification_give_up_hours):
            return None
        delay = min(
            settings.notification_retry_base_seconds * 2 ** (claimed.attempt - 1),
            settings.notification_retry_max_seconds,
        )
        return now + timedelta(seconds=delay)
