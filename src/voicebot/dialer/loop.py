"""The dialer: claim due call-backs, pass them through the compliance gate, pace, and dial.

One round (:meth:`Dialer.run_once`):

1. reap: expired leases go back to the queue; calls a dead dialer recorded but never placed end
   as failed through the lifecycle, so the retry rules apply; every half minute, housekeeping
   (``dialer.housekeeping``) ends calls whose final webhook never came and completes campaigns
   with nothing left to do;
2. claim a batch (``queue.claim``), then read its campaigns: a campaign no longer running gets
   its call-backs back unchanged;
3. gate (``gate.screen``): deferred call-backs go back due at the first allowed instant, refused
   ones (opted out, no number left) are cancelled: nothing is dropped;
4. campaign concurrency: call-backs beyond a campaign's free slots go back for a short while;
5. pacing: tokens from the shared bucket, waiting outside any transaction and renewing the
   lease while waiting;
6. dial: one transaction records the calls (``initiating``), marks the call-backs dialed and
   raises the campaigns' live-call counts (only within their limits); after it commits, the
   carrier is asked to place the calls, concurrently; a refusal ends the call as failed through
   the lifecycle with the carrier's error verbatim.

On PostgreSQL steps 2-6 run in one transaction that keeps the batch locked (``FOR UPDATE SKIP
LOCKED``, no claim written) while the gate, concurrency and pacing decide, so a call-back dialed
at once is written once; one statement locks the batch and reads what the gate needs of it
(``gate.lock_and_screen``). What waits for pacing tokens is claimed with a lease in that
transaction and goes through step 5 as above. Between the commit and the carrier accepting, the
call-back is ``dialed`` and its call ``initiating``: a dialer dying there leaves a call the
reaper (step 1) ends as failed, which retries the call-back once; it is never dialed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot import metrics
from voicebot.config import Settings
from voicebot.db.models import Base, Call, Campaign
from voicebot.dialer import queue
from voicebot.dialer.call_options import pick_caller
from voicebot.dialer.dialing import NewCall, record_calls, store_carrier_sids
from voicebot.dialer.gate import (
    CampaignView,
    Dialable,
    load_campaigns,
    lock_and_screen,
    screen,
)
from voicebot.dialer.housekeeping import complete_finished_campaigns, end_stale_calls
from voicebot.dialer.lifecycle import fail_call
from voicebot.dialer.pacing import CallPacer
from voicebot.dialer.refusals import handle_refusal
from voicebot.domain.types import CallStatus, CampaignStatus
from voicebot.telephony.carrier import CallOptions, Carrier, CarrierError, DialRequest

log = logging.getLogger(__name__)

# A call-back over its campaign's concurrency limit is retried after this long.
CONCURRENCY_BACKOFF = timedelta(seconds=2)
# Carrier requests in flight at once, per dialer.
MAX_CONCURRENT_DIALS = 64
# Completed campaigns and calls that lost their final webhook are looked for this often.
HOUSEKEEPING_INTERVAL = timedelta(seconds=30)
# Longest single sleep while waiting for pacing tokens (the stop event is checked in between).
_MAX_PACING_SLEEP = 1.0
_calls = Base.metadata.tables[Call.__tablename__]
_DEFAULT_OPTIONS = CallOptions()


@dataclass(slots=True)
class RoundCounts:
    claimed: int = 0
    dialed: int = 0
    carrier_refused: int = 0
    deferred: int = 0
    cancelled: int = 0
    returned: int = 0  # back to the queue: campaign not running, over concurrency, stopping

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, dialed {self.dialed}, "
            f"refused by the carrier {self.carrier_refused}, deferred {self.deferred}, "
            f"cancelled {self.cancelled}, returned {self.returned}"
        )


class Dialer:
    """One dialer process's worker. Any number may share a PostgreSQL database."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        carrier: Carrier,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._carrier = carrier
        self._clock = clock
        self._id = settings.dialer_id
        self._lease = timedelta(seconds=settings.dialer_lease_seconds)
        self._batch_size = settings.dialer_batch_size
        self._pacer = CallPacer(sessionmaker, settings.carrier_calls_per_second, clock=clock)
        self._stop = asyncio.Event()
        # run_once(now) may run at another time than the clock's (tests): the round's time then
        # flows from ``now`` at the clock's pace.
        self._offset = timedelta(0)
        self._next_reap: datetime | None = None
        self._next_housekeeping: datetime | None = None
        self._stale_after = timedelta(seconds=settings.call_stale_after_seconds)
        self._caller_turn: Counter[int] = Counter()
        self._call_options: dict[int, CallOptions] = {}
        bind = sessionmaker.kw.get("bind")
        self._postgres = bind is not None and bind.dialect.name == "postgresql"

    async def run(self, stop: asyncio.Event) -> None:
        """Dial until ``stop`` is set: at once again after a full batch, else every
        ``dialer_poll_seconds``. Database errors (SQLAlchemy's, and asyncpg's own from the
        statements sent to it directly) are logged and retried with back-off."""
        self._stop = stop
        poll = self._settings.dialer_poll_seconds
        failures = 0
        while not stop.is_set():
            try:
                counts = await self._round(self._clock())
            except (SQLAlchemyError, OSError, TimeoutError, queue.DriverError) as exc:
                failures += 1
                delay = min(30.0, poll * 2**failures)
                log.warning("dialer round failed (%s); retrying in %.1f s", _describe(exc), delay)
                await _sleep_until(stop, delay)
                continue
            failures = 0
            if counts.claimed:
                log.info("dialer %s: %s", self._id, counts)
            if counts.claimed < self._batch_size:
                await _sleep_until(stop, poll)
            else:
                await asyncio.sleep(0)  # a full batch: more is likely due, but let others run

    async def run_once(self, now: datetime | None = None) -> int:
        """One claim → gate → pace → dial round; returns the number of calls placed."""
        counts = await self._round(now or self._clock())
        return counts.dialed

    def _now(self) -> datetime:
        return self._clock() + self._offset

    async def _round(self, now: datetime) -> RoundCounts:
        self._offset = now - self._clock()
        counts = RoundCounts()
        await self._reap(now)
        if self._postgres:
            locked = await self._locked_round(now, counts)
            if locked is not None:
                return locked
            counts = RoundCounts()
        async with self._sessionmaker() as session:
            batch = await queue.claim(
                session, limit=self._batch_size, now=now, dialer_id=self._id, lease=self._lease
            )
            counts.claimed = len(batch)
            if not batch:
                await session.commit()
                return counts
            # Read in the claim's own transaction: fewer round trips.
            campaigns = await load_campaigns(session, {cb.campaign_id for cb in batch})
            screening = await screen(session, batch, campaigns, now=now)
            await session.commit()
        dial, over = _within_concurrency(screening.dial, campaigns)
        async with self._sessionmaker() as session:
            counts.returned += await queue.release(
                session, screening.not_running, dialer_id=self._id, now=now
            )
            await queue.defer(session, screening.defer, dialer_id=self._id, now=now)
            for reason, ids in screening.refuse.items():
                await queue.cancel(session, ids, dialer_id=self._id, now=now, reason=reason)
            counts.returned += await queue.release(
                session,
                [d.callback.id for d in over],
                dialer_id=self._id,
                now=now,
                due_at=now + CONCURRENCY_BACKOFF,
                reason="concurrency",
            )
            await session.commit()
        counts.deferred = len(screening.defer)
        counts.cancelled = sum(len(ids) for ids in screening.refuse.values())
        await self._pace_and_dial(dial, campaigns, counts)
        return counts

    async def _locked_round(self, now: datetime, counts: RoundCounts) -> RoundCounts | None:
        """The round on PostgreSQL in one transaction that keeps the batch locked
        (``gate.lock_and_screen``) while the gate, concurrency and pacing decide, so a call-back
        dialed at once is written once: ``pending`` to ``dialed`` with its call. What cannot
        be dialed yet is claimed with a lease (short of pacing tokens) or put back (deferred,
        refused, over concurrency) before the commit. None, with nothing changed, when a
        campaign's live calls moved under us: the caller runs the claiming round instead."""
        granted = 0
        async with self._sessionmaker() as session:
            batch, campaigns, screening = await lock_and_screen(
                session, limit=self._batch_size, now=now
            )
            counts.claimed = len(batch)
            if not batch:
                await session.commit()
                return counts
            dial, over = _within_concurrency(screening.dial, campaigns)
            if dial:
                granted = (await self._pacer.take(len(dial))).tokens
            now_dial, later = dial[:granted], dial[granted:]
            # A campaign that stopped after the lock: its rows are left as they were.
            counts.returned += len(screening.not_running)
            kept = [d.callback.id for d in later]
            kept += [i for i, _, _ in screening.defer]
            kept += [i for ids in screening.refuse.values() for i in ids]
            kept += [d.callback.id for d in over]
            await queue.hold(session, kept, dialer_id=self._id, now=now, lease=self._lease)
            await queue.defer(session, screening.defer, dialer_id=self._id, now=now)
            for reason, ids in screening.refuse.items():
                await queue.cancel(session, ids, dialer_id=self._id, now=now, reason=reason)
            counts.returned += await queue.release(
                session,
                [d.callback.id for d in over],
                dialer_id=self._id,
                now=now,
                due_at=now + CONCURRENCY_BACKOFF,
                reason="concurrency",
            )
            recorded = await self._record_in(session, now_dial, campaigns, now, locked=True)
            if recorded is None:
                await session.rollback()
                await self._pacer.give_back(granted)
                return None
            await session.commit()
        counts.deferred = len(screening.defer)
        counts.cancelled = sum(len(ids) for ids in screening.refuse.values())
        placed, refused = await self._place_recorded(recorded)
        counts.dialed += placed
        counts.carrier_refused += refused
        await self._pace_and_dial(later, campaigns, counts)
        return counts

    async def _reap(self, now: datetime) -> None:
        """At most every quarter lease: leases that ran out, and calls stuck before the dial."""
        if self._next_reap is not None and now < self._next_reap:
            return
        self._next_reap = now + min(self._lease / 4, timedelta(seconds=5))
        async with self._sessionmaker() as session:
            reaped = await queue.reap_expired(session, now=now)
        if reaped:
            log.warning("%d call-backs whose lease expired are back in the queue", reaped)
        async with self._sessionmaker() as session:
            stuck = list(
                await session.scalars(
                    select(Call.id).where(
                        Call.campaign_id.in_(select(Campaign.id)),
                        Call.status == CallStatus.INITIATING.value,
                        Call.created_at < now - self._lease,
                    )
                )
            )
        for call_id in stuck:
            async with self._sessionmaker() as session:
                await fail_call(
                    session,
                    call_id,
                    error_code=None,
                    error_message="no word from the carrier within the lease of the dial (the "
                    "dialer stopped before the carrier accepted it, or its answer was lost)",
                    now=now,
                )
        if stuck:
            log.warning("%d calls left behind by a stopped dialer ended as failed", len(stuck))
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            await end_stale_calls(self._sessionmaker, now=now, older_than=self._stale_after)
            async with self._sessionmaker() as session:
                await complete_finished_campaigns(session, now=now, actor=f"dialer:{self._id}")

    async def _pace_and_dial(
        self,
        dial: list[Dialable],
        campaigns: dict[int, CampaignView],
        counts: RoundCounts,
    ) -> None:
        waiting = dial
        lease_renewed = self._now()
        while waiting:
            if self._stop.is_set():
                async with self._sessionmaker() as session:
                    ids = [d.callback.id for d in waiting]
                    counts.returned += await queue.release(
                        session, ids, dialer_id=self._id, now=self._now()
                    )
                    await session.commit()
                return
            grant = await self._pacer.take(len(waiting))
            if grant.tokens:
                chunk, waiting = waiting[: grant.tokens], waiting[grant.tokens :]
                placed, refused, unused = await self._dial(chunk, campaigns)
                counts.dialed += placed
                counts.carrier_refused += refused
                counts.returned += unused
                await self._pacer.give_back(unused)
                continue
            if self._now() - lease_renewed > self._lease / 3:
                # Waiting for tokens must not cost the lease, or another dialer would dial these.
                async with self._sessionmaker() as session:
                    held = await queue.extend(
                        session,
                        [d.callback.id for d in waiting],
                        dialer_id=self._id,
                        now=self._now(),
                        lease=self._lease,
                    )
                waiting = [d for d in waiting if d.callback.id in held]
                lease_renewed = self._now()
            await _sleep_until(self._stop, min(grant.retry_after, _MAX_PACING_SLEEP))

    async def _dial(
        self, chunk: Sequence[Dialable], campaigns: dict[int, CampaignView]
    ) -> tuple[int, int, int]:
        """Record and place one paced chunk; returns (placed, refused by carrier, not dialed)."""
        now = self._now()
        recorded = await self._record_calls(chunk, campaigns, now)
        if recorded is None:
            # A campaign changed under us (another dialer took its free slots, or it was
            # paused): look again, give back what may not be dialed, and try the rest once more.
            fresh = await self._reload_campaigns(chunk)
            allowed, over = _within_concurrency(chunk, fresh)
            running = {c.id for c in fresh.values() if c.running}
            await self._give_back(
                [d for d in over if d.callback.campaign_id not in running], now, back_off=False
            )
            await self._give_back(
                [d for d in over if d.callback.campaign_id in running], now, back_off=True
            )
            recorded = await self._record_calls(allowed, fresh, now) if allowed else []
            if recorded is None:
                await self._give_back(allowed, now, back_off=True)
                recorded = []
        placed, refused = await self._place_recorded(recorded)
        return placed, refused, len(chunk) - len(recorded)

    async def _place_recorded(
        self, recorded: Sequence[tuple[int, str | None, Dialable]]
    ) -> tuple[int, int]:
        """Ask the carrier for recorded calls; returns (placed, refused by the carrier)."""
        if not recorded:
            return 0, 0
        requests = [self._request(call_id, caller, d) for call_id, caller, d in recorded]
        outcomes = await self._place_all(requests)
        accepted = [
            (request.call_id, outcome)
            for request, outcome in zip(requests, outcomes, strict=True)
            if isinstance(outcome, str)
        ]
        if accepted:
            await self._store_sids(accepted)
            metrics.CALLS_DIALED.inc(len(accepted))
        refused = 0
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, CarrierError):
                refused += 1
                async with self._sessionmaker() as session:
                    await handle_refusal(
                        session,
                        request.call_id,
                        outcome,
                        now=self._now(),
                        backoff=timedelta(seconds=self._settings.carrier_throttle_backoff_seconds),
                        carrier=self._settings.carrier,
                    )
        return len(accepted), refused

    async def _give_back(
        self, dialables: Sequence[Dialable], now: datetime, *, back_off: bool
    ) -> None:
        """Back to the queue: unchanged, or due after the concurrency back-off."""
        if not dialables:
            return
        async with self._sessionmaker() as session:
            await queue.release(
                session,
                [d.callback.id for d in dialables],
                dialer_id=self._id,
                now=now,
                due_at=now + CONCURRENCY_BACKOFF if back_off else None,
                reason="concurrency" if back_off else None,
            )
            await session.commit()

    async def _record_calls(
        self, chunk: Sequence[Dialable], campaigns: dict[int, CampaignView], now: datetime
    ) -> list[tuple[int, str | None, Dialable]] | None:
        """The dial transaction: (call id, caller number, dialable) for each call recorded.
        None, with nothing changed, when a campaign stopped running or would go over its
        concurrency limit."""
        async with self._sessionmaker() as session:
            recorded = await self._record_in(session, chunk, campaigns, now, locked=False)
            if recorded is None:
                await session.rollback()
                return None
            await session.commit()
        return recorded

    async def _record_in(
        self,
        session: AsyncSession,
        chunk: Sequence[Dialable],
        campaigns: dict[int, CampaignView],
        now: datetime,
        *,
        locked: bool,
    ) -> list[tuple[int, str | None, Dialable]] | None:
        """Record the calls and raise the campaigns' live calls in ``session``'s transaction;
        None when a campaign stopped running or would go over its limit (the caller rolls
        back)."""
        if not chunk:
            return []
        callers = {
            d.callback.id: self._caller(campaigns[d.callback.campaign_id], d.to) for d in chunk
        }
        for campaign_id in {d.callback.campaign_id for d in chunk}:
            self._call_options[campaign_id] = campaigns[campaign_id].call_options
        new_calls = [
            NewCall(
                callback_id=d.callback.id,
                campaign_id=d.callback.campaign_id,
                contact_id=d.callback.contact_id,
                phone_id=d.phone_id,
                attempt=d.callback.attempt,
                loan_key=d.loan_key,
                to_number=d.to,
                from_number=callers[d.callback.id],
            )
            for d in chunk
        ]
        recorded = await record_calls(
            session, new_calls, dialer_id=self._id, now=now, locked=locked
        )
        kept = [d for d in chunk if d.callback.id in recorded]
        per_campaign = Counter(d.callback.campaign_id for d in kept)
        for campaign_id, added in sorted(per_campaign.items()):
            raised = await session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.status == CampaignStatus.RUNNING.value,
                    Campaign.live_calls + added <= Campaign.concurrency_limit,
                )
                .values(live_calls=Campaign.live_calls + added)
                .returning(Campaign.id)
                .execution_options(synchronize_session=False)
            )
            if raised.first() is None:
                return None
        return [(recorded[d.callback.id], callers[d.callback.id], d) for d in kept]

    def _caller(self, campaign: CampaignView, to: str) -> str | None:
        """The campaign's caller numbers in turn (per dialer process), or the one matching the
        borrower's region (``caller_id_mode``)."""
        if not campaign.caller_numbers:
            return None
        turn = self._caller_turn[campaign.id]
        self._caller_turn[campaign.id] = turn + 1
        return pick_caller(campaign.caller_numbers, to, turn, campaign.caller_id_mode)

    async def _reload_campaigns(self, chunk: Sequence[Dialable]) -> dict[int, CampaignView]:
        async with self._sessionmaker() as session:
            return await load_campaigns(session, {d.callback.campaign_id for d in chunk})

    def _request(self, call_id: int, caller: str | None, dialable: Dialable) -> DialRequest:
        base = self._settings.public_base_url
        return DialRequest(
            call_id=call_id,
            to=dialable.to,
            from_=caller,
            answer_url=f"{base}/webhooks/twilio/answer?call_id={call_id}",
            status_callback_url=f"{base}/webhooks/twilio/status?call_id={call_id}",
            metadata={"persona": dialable.persona, "callback_id": str(dialable.callback.id)},
            options=self._call_options.get(dialable.callback.campaign_id, _DEFAULT_OPTIONS),
            amd_callback_url=f"{base}/webhooks/twilio/amd?call_id={call_id}",
            recording_callback_url=f"{base}/webhooks/twilio/recording?call_id={call_id}",
        )

    async def _place_all(self, requests: Sequence[DialRequest]) -> list[str | CarrierError]:
        """Place the calls with at most MAX_CONCURRENT_DIALS requests in flight: the carrier's
        sid for each, or its refusal."""
        outcomes: list[str | CarrierError] = [CarrierError("not placed")] * len(requests)
        pending = iter(enumerate(requests))

        async def place_next() -> None:
            for index, request in pending:
                outcomes[index] = await self._place(request)

        await asyncio.gather(
            *(place_next() for _ in range(min(MAX_CONCURRENT_DIALS, len(requests))))
        )
        return outcomes

    async def _place(self, request: DialRequest) -> str | CarrierError:
        try:
            return await self._carrier.place_call(request)
        except CarrierError as exc:
            return exc
        except Exception as exc:  # a carrier bug must not strand the call in 'initiating'
            log.exception("carrier failed on call %s", request.call_id)
            return CarrierError(f"{type(exc).__name__}: {exc}")

    async def _store_sids(self, accepted: Sequence[tuple[int, str]]) -> None:
        async with self._sessionmaker() as session:
            await store_carrier_sids(session, accepted)
            await session.commit()


def freeze_startup_heap() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``), once
    per process: for a process that runs a dialer alone (``voicebot dialer``); the app freezes
    its own heap when it has started.

    A round allocates thousands of container objects (rows, call-backs, requests); the
    collections they trigger would otherwise walk the whole start-up heap (SQLAlchemy's
    metadata, the app's modules) again and again: about a fifth of a dialer process's CPU in
    the benchmark. What is alive when the dialer starts lives as long as the process, and
    objects freed by reference counting are freed as before."""
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


_heap_frozen = False


def _within_concurrency(
    dial: Sequence[Dialable], campaigns: dict[int, CampaignView]
) -> tuple[list[Dialable], list[Dialable]]:
    free = {
        c.id: max(0, c.concurrency_limit - c.live_calls) if c.running else 0
        for c in campaigns.values()
    }
    taken: defaultdict[int, int] = defaultdict(int)
    allowed: list[Dialable] = []
    over: list[Dialable] = []
    for d in dial:
        campaign_id = d.callback.campaign_id
        if taken[campaign_id] < free.get(campaign_id, 0):
            taken[campaign_id] += 1
            allowed.append(d)
        else:
            over.append(d)
    return allowed, over


async def _sleep_until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [""])[0]
    return f"{type(original).__name__}: {first_line}"[:200]
