"""A call's life after the dial: carrier status events, its disposition, and what follows it.

Every change to a dialed call goes through here (carrier webhooks, a carrier refusing the dial, a
call a dead dialer left behind), always under a lock on the call's row, so a call ends exactly once
however often and in whatever order its events arrive. Ending a call decides the next step with
the retry policy: a new call-back (attempt + 1, on the number ``choose_phone`` picks), or nothing.

Borrower-requested times come from the conversation through :func:`schedule_callback`; a call
whose contact already has an open call-back in the campaign (for example the one the borrower
asked for) gets no retry on top of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    bindparam,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot import metrics
from voicebot.db.models import Call, CallBack, Campaign, CarrierEvent, ContactPhone, DoNotCall
from voicebot.dialer.call_rows import (
    STATUS_KIND,
    TOUCH_BY_ID,
    TOUCH_BY_SID,
    WRITTEN,
    LiveCall,
    PhoneUpdate,
    StatusRow,
    move_one,
    store_and_move,
    touch_row,
    write_endings,
)
from voicebot.dialer.optout import opt_out
from voicebot.dialer.queue import is_postgres
from voicebot.dialer.rules import rules_for
from voicebot.domain.campaigns import FINISHED, MachineAction
from voicebot.domain.compliance import ComplianceRules
from voicebot.domain.retry import (
    NO_PHONE_CHANGE,
    PhoneChange,
    PhoneState,
    Retry,
    RetryRules,
    after_call,
    choose_phone,
    disposition_for,
)
from voicebot.domain.types import (
    CallBackStatus,
    CallStatus,
    CampaignStatus,
    Disposition,
    PhoneStatus,
)
from voicebot.telephony.carrier import Carrier, CarrierError, RefusalKind, refusal_kind

log = logging.getLogger(__name__)

LIVE_CALL_STATUSES = tuple(s.value for s in CallStatus if not s.is_final)
OPEN_CALLBACK_STATUSES = (
    CallBackStatus.PENDING.value,
    CallBackStatus.CLAIMED.value,
    CallBackStatus.DIALED.value,
)
# Dispositions where someone or something picked up, so the call has an answer time.
_PICKED_UP = frozenset({Disposition.ANSWERED, Disposition.HUNG_UP, Disposition.VOICEMAIL})


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One status callback from the carrier, parsed; ``payload`` is the raw form, kept verbatim."""

    call_sid: str
    call_status: str
    call_id: int | None = None
    answered_by: str | None = None
    duration_seconds: int | None = None
    sequence_number: int | None = None
    payload: Mapping[str, str] = field(default_factory=dict)

    kind: ClassVar[str] = STATUS_KIND

    @property
    def dedupe_key(self) -> str:
        """Twilio repeats a callback with the same CallSid, CallStatus and SequenceNumber."""
        sequence = "" if self.sequence_number is None else str(self.sequence_number)
        return f"status:{self.call_sid}:{self.call_status}:{sequence}"


@dataclass(frozen=True, slots=True)
class MachineEvent:
    """The asynchronous answering-machine result (one per call): who or what answered."""

    call_sid: str
    answered_by: str
    call_id: int | None = None
    detection_ms: int | None = None
    payload: Mapping[str, str] = field(default_factory=dict)

    kind: ClassVar[str] = "amd"

    @property
    def dedupe_key(self) -> str:
        return f"amd:{self.call_sid}"

    @property
    def is_machine(self) -> bool:
        return is_machine(self.answered_by)


@dataclass(frozen=True, slots=True)
class RecordingEvent:
    """A recording-status callback: the recording is ``completed`` (ready), ``absent``, …"""

    call_sid: str
    recording_sid: str
    recording_status: str
    call_id: int | None = None
    recording_url: str | None = None
    duration_seconds: int | None = None
    payload: Mapping[str, str] = field(default_factory=dict)

    kind: ClassVar[str] = "recording"

    @property
    def dedupe_key(self) -> str:
        return f"recording:{self.recording_sid}:{self.recording_status}"


def is_machine(answered_by: str | None) -> bool:
    """Twilio's AnsweredBy for an answering machine or a fax (machine_start, machine_end_*)."""
    if not answered_by:
        return False
    return answered_by.startswith("machine") or answered_by == "fax"


@dataclass(frozen=True, slots=True)
class MachineAnswered:
    """A live call an answering machine picked up, and what its campaign does about it."""

    call_id: int
    carrier_sid: str
    action: MachineAction
    dialog_id: str


# The statements that end calls, built once: SQLAlchemy spends more Python building a statement
# and its cache key than sending it. On PostgreSQL a batch's ended calls are written by one
# statement of ``call_rows`` instead of one per table.
_CALLBACK_DONE = (
    update(CallBack)
    .where(
        CallBack.id == bindparam("callback_id"),
        # Not IN (…): an expanding parameter cannot be sent as an executemany.
        or_(
            CallBack.status == CallBackStatus.DIALED.value,
            CallBack.status == CallBackStatus.CLAIMED.value,
        ),
    )
    .values(status=CallBackStatus.DONE.value, lease_expires_at=None, updated_at=bindparam("now"))
)
# As ``call_rows.write_endings`` changes a number: relative to its row as it is when written.
_SET_PHONE_STATE = (
    update(ContactPhone)
    .where(ContactPhone.id == bindparam("phone_id"))
    .values(
        status=case(
            (
                bindparam("invalid", type_=Boolean)
                & (ContactPhone.status != PhoneStatus.OPTED_OUT.value),
                PhoneStatus.INVALID.value,
            ),
            else_=ContactPhone.status,
        ),
        consecutive_failures=bindparam("failures", type_=Integer)
        + case((bindparam("reset", type_=Boolean), 0), else_=ContactPhone.consecutive_failures),
    )
)
_CALLS_ENDED = (
    update(Campaign)
    .where(Campaign.id == bindparam("campaign_id"))
    .values(
        live_calls=case(
            (Campaign.live_calls > bindparam("ended"), Campaign.live_calls - bindparam("ended")),
            else_=0,
        )
    )
)
_CAMPAIGN = select(Campaign).where(Campaign.id == bindparam("campaign_id"))
_WRITE_CALL = (
    update(Call)
    .where(Call.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}", type_=getattr(Call, name).type) for name in WRITTEN})
)


def _event_insert(dialect: Any) -> Any:
    return (
        dialect.insert(CarrierEvent)
        .values(
            dedupe_key=bindparam("dedupe_key"),
            call_sid=bindparam("call_sid"),
            kind=bindparam("kind"),
            call_id=bindparam("call_id", type_=BigInteger),
            payload=bindparam("payload", type_=CarrierEvent.payload.type),
            received_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=[CarrierEvent.dedupe_key])
        .returning(CarrierEvent.id)
    )


_STORE_EVENT = {"postgresql": _event_insert(postgresql), "sqlite": _event_insert(sqlite)}


@dataclass(frozen=True, slots=True)
class _Ending:
    """A call :func:`_finish` ended, and what writing its end needs."""

    call: LiveCall
    retry: RetryRules
    disposition: Disposition
    now: datetime


@dataclass(slots=True)
class StatusBatch:
    """The calls ended in one transaction, whose ends are written together when it closes.

    Ending a call writes its call-back, its number's state, maybe a retry, its own row and its
    campaign's live-call counter. Status events recorded together (see ``dialer/recorder.py``)
    write each of those once for all their calls; the campaign's row, which every call of the
    campaign ends on, is locked last and once. A call ended alone is a batch of one.

    ``started_rules`` holds the retry rules of campaigns that have started, and may be shared
    by batch after batch (the recorder shares one): only a draft's rules may change, so a
    started campaign's hold for good, and a batch that schedules no retry does not read its
    campaign at all. Whether the campaign still runs is read in the batch that needs it."""

    started_rules: dict[int, RetryRules] = field(default_factory=dict)
    campaigns: dict[int, Campaign] = field(default_factory=dict)
    endings: list[_Ending] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    async def retry_rules(self, session: AsyncSession, campaign_id: int) -> RetryRules:
        """The campaign's retry rules: kept once it has started, else read."""
        rules = self.started_rules.get(campaign_id)
        if rules is None:
            campaign = await self.campaign(session, campaign_id)
            _, rules = _rules(campaign)
            if CampaignStatus(campaign.status) is not CampaignStatus.DRAFT:
                self.started_rules[campaign_id] = rules
        return rules

    async def campaign(self, session: AsyncSession, campaign_id: int) -> Campaign:
        """The campaign, read from the database once per batch."""
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            campaign = (
                await session.scalars(
                    _CAMPAIGN,
                    {"campaign_id": campaign_id},
                    execution_options={"populate_existing": True},
                )
            ).one()  # calls cascade with their campaign
            self.campaigns[campaign_id] = campaign
        return campaign

    async def close(self, session: AsyncSession) -> None:
        """Write the ended calls' ends; the caller commits, then calls :meth:`count`."""
        if not self.endings:
            return
        phones = _phone_changes(self.endings)
        if is_postgres(session):
            await write_endings(session, [(e.call, e.now) for e in self.endings], phones)
        else:
            await _write_endings_one_by_one(session, self.endings, phones)
        for e in self.endings:
            await _schedule_retry(session, e.call, e.retry, e.disposition, now=e.now, batch=self)

    def count(self) -> None:
        """Count the events stored and the calls ended, once they are."""
        for status, n in self.statuses.items():
            metrics.CALL_STATUS_EVENTS.labels(status=status).inc(n)
        for e in self.endings:
            metrics.CALLS_ENDED.labels(status=e.disposition.value).inc()


async def record_machine_event(
    session: AsyncSession, event: MachineEvent, *, now: datetime
) -> MachineAnswered | None:
    """Store the AMD result on the call; commits. When a machine answered a call still live,
    returns what the campaign wants done (hang up, or leave the voicemail message); None for a
    person, a repeat, an unknown call, or a call that has already ended.

    A result arriving after the call's end (reordering) still corrects its disposition: a
    'conversation' with a machine becomes ``voicemail``, and the retry rules apply to it.
    """
    call = await _lock_call(session, call_id=event.call_id, call_sid=event.call_sid, now=now)
    stored = await _store_event(session, event, call_id=None if call is None else call.id, now=now)
    if not stored:
        await session.rollback()
        return None
    if call is None:
        log.warning("AMD result for an unknown call (sid %s)", event.call_sid)
        await session.commit()
        return None
    if call.carrier_sid is None:
        call.carrier_sid = event.call_sid
    call.answered_by = event.answered_by[:32]
    answered: MachineAnswered | None = None
    if CallStatus(call.status).is_final:
        await _correct_disposition(session, call, now=now)
    elif event.is_machine:
        campaign = await session.get(Campaign, call.campaign_id)
        if campaign is not None:
            answered = MachineAnswered(
                call_id=call.id,
                carrier_sid=event.call_sid,
                action=MachineAction(campaign.machine_action),
                dialog_id=campaign.dialog_id,
            )
    await session.commit()
    return answered


async def _correct_disposition(session: AsyncSession, call: Call, *, now: datetime) -> None:
    """A machine turned out to be what answered a call already ended as a conversation."""
    if not is_machine(call.answered_by):
        return
    if call.disposition not in (Disposition.ANSWERED.value, Disposition.HUNG_UP.value):
        return
    campaign = await session.get(Campaign, call.campaign_id, populate_existing=True)
    assert campaign is not None
    _, retry = _rules(campaign)
    call.disposition = Disposition.VOICEMAIL.value
    call.conversed = False
    log.info("call %s: the AMD result came after its end; disposition now voicemail", call.id)
    batch = StatusBatch(campaigns={campaign.id: campaign})
    await _schedule_retry(session, call, retry, Disposition.VOICEMAIL, now=now, batch=batch)


async def record_recording_event(
    session: AsyncSession, event: RecordingEvent, *, now: datetime
) -> bool:
    """Store a recording-status callback; a ``completed`` recording's sid, URL and duration go
    on the call. Commits; False for a repeat."""
    call = await _lock_call(session, call_id=event.call_id, call_sid=event.call_sid, now=now)
    stored = await _store_event(session, event, call_id=None if call is None else call.id, now=now)
    if not stored:
        await session.rollback()
        return False
    if call is None:
        log.warning("recording for an unknown call (sid %s)", event.call_sid)
    elif event.recording_status == "completed":
        call.recording_sid = event.recording_sid[:64]
        call.recording_url = event.recording_url
        call.recording_duration_seconds = event.duration_seconds
    await session.commit()
    return True


async def record_status_event(session: AsyncSession, event: StatusEvent, *, now: datetime) -> bool:
    """Store the event and move the call forward; commits. False when it is a duplicate.

    An event for a call this database does not know is stored and otherwise ignored.
    """
    batch = StatusBatch()
    [stored] = await apply_status_events(session, [(event, now)], batch=batch)
    await batch.close(session)
    await session.commit()
    batch.count()
    return stored


async def apply_status_events(
    session: AsyncSession,
    events: Sequence[tuple[StatusEvent, datetime]],
    *,
    batch: StatusBatch,
) -> list[bool]:
    """:func:`record_status_event` for many events (each with when it came) inside the caller's
    transaction, one of the ``batch``'s; for each, False when it was a repeat.

    The events are stored first, all at once: a repeat stops there, having changed nothing. Each
    call moves on by its first event in the same statement, its row locked until commit by the
    write that moves it (or, for a late event, touches it); a call's other events follow in
    order."""
    rows = [_status_row(event, now) for event, now in events]
    stored = await store_and_move(session, rows)
    later: list[tuple[StatusEvent, StatusRow, int]] = []
    for (event, now), row, found in zip(events, rows, stored, strict=True):
        if found is None:
            continue
        batch.statuses[event.call_status] += 1
        if found.call_id is None:
            log.warning("%s event for an unknown call (sid %s)", event.call_status, event.call_sid)
            continue
        if event.call_id is not None and found.call_id != event.call_id:
            _log_other_sid(event.call_id)
        if found.first:
            await _after_move(session, found.moved, event, found.call_id, now=now, batch=batch)
        else:
            later.append((event, row, found.call_id))
    # A call's later events in the batch (rare: Twilio's come seconds apart), one by one.
    for event, row, call_id in later:
        moved = await move_one(await session.connection(), call_id, row)
        await _after_move(session, moved, event, call_id, now=row.now, batch=batch)
    return [found is not None for found in stored]


def _status_row(event: StatusEvent, now: datetime) -> StatusRow:
    try:
        status: CallStatus | None = CallStatus(event.call_status)
    except ValueError:
        status = None  # the general path logs it
    return StatusRow(
        dedupe_key=event.dedupe_key[:200],
        sid=event.call_sid[:64],
        call_id=event.call_id,
        payload=dict(event.payload),
        now=now,
        status=status,
        answered_by=event.answered_by[:32] if event.answered_by else None,
        duration_seconds=event.duration_seconds,
    )


async def _after_move(
    session: AsyncSession,
    moved: LiveCall | None,
    event: StatusEvent,
    call_id: int,
    *,
    now: datetime,
    batch: StatusBatch,
) -> None:
    """Whatever the event changes beyond its move: a call's end, or (a late or repeated status, a
    call already ended) the general path on the call's locked row."""
    if moved is not None:
        if CallStatus(moved.status).is_final:
            await _end(session, moved, event, now=now, batch=batch)
        return
    call = await _touch_row(session, TOUCH_BY_ID, call_id=call_id, now=now)
    if call is not None:  # else deleted since (its campaign was): the event stays as history
        await _apply(session, call, event, now=now, batch=batch)
        await call.write(session)


async def fail_call(
    session: AsyncSession,
    call_id: int,
    *,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
    disposition: Disposition | None = None,
) -> bool:
    """End a call as failed without a carrier event (the carrier refused it, or its dialer died
    before dialing); commits. False when the call had already ended."""
    ended = await end_unplaced_call(
        session,
        call_id,
        error_code=error_code,
        error_message=error_message,
        now=now,
        disposition=disposition,
    )
    if ended is None:
        await session.rollback()
        return False
    await session.commit()
    return True


async def end_unplaced_call(
    session: AsyncSession,
    call_id: int,
    *,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
    disposition: Disposition | None = None,
) -> LiveCall | None:
    """:func:`fail_call` without the commit: the ended call, or None when it had already ended.
    ``disposition`` overrides the one the error code implies (e.g. an opt-out at the carrier)."""
    call = await _lock_row(session, call_id=call_id, call_sid=None, now=now)
    if call is None or CallStatus(call.status).is_final:
        return None
    call.status = CallStatus.FAILED.value
    call.error_code = None if error_code is None else error_code[:16]
    call.error_message = error_message
    await _finish(session, call, error_code=error_code, now=now, disposition=disposition)
    return call


async def requeue_unplaced_call(
    session: AsyncSession, call_id: int, *, due_at: datetime, reason: str, now: datetime
) -> int | None:
    """Undo a dial the carrier never placed (it was throttled, or refused this service): the
    call's row goes, its call-back is pending again, due at ``due_at``, with the same attempt, so
    nothing counts against the borrower's caps. Returns the call-back's id, None when the call
    is not an unplaced one. The caller commits."""
    call = await _lock_call(session, call_id=call_id, call_sid=None, now=now)
    if call is None or call.status != CallStatus.INITIATING.value or call.carrier_sid:
        return None
    callback_id = call.callback_id
    await session.execute(
        update(CallBack)
        .where(CallBack.id == callback_id)
        .values(
            status=CallBackStatus.PENDING.value,
            due_at=due_at,
            lease_expires_at=None,
            claimed_by=None,
            deferred_reason=reason[:64],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await (await session.connection()).execute(
        _CALLS_ENDED, {"campaign_id": call.campaign_id, "ended": 1}
    )
    await session.delete(call)
    await session.flush()
    return callback_id


async def schedule_callback(
    session: AsyncSession, *, call_id: int, at: datetime, now: datetime
) -> int | None:
    """Honour a time the borrower asked to be called back at, during or after ``call_id``.

    The contact's open call-back in the campaign is moved to that time, or a new one is made
    (reason borrower_request, attempt 1: a fresh chain with the campaign's full retries). The
    compliance gate still applies when it comes due. Returns the call-back's id, or None when
    the campaign has finished or no number may be dialed; LookupError for an unknown call. The
    caller commits.
    """
    call = await _lock_call(session, call_id=call_id, call_sid=None, now=now)
    if call is None:
        raise LookupError(f"no call {call_id}")
    campaign = await session.get(Campaign, call.campaign_id)
    if campaign is None or CampaignStatus(campaign.status) in FINISHED:
        return None
    _, retry = _rules(campaign)
    step = after_call(
        Disposition.ANSWERED, attempts_made=call.attempt, rules=retry, now=now, requested_at=at
    )
    assert isinstance(step, Retry)
    phone_id = await _choose_phone(session, call.contact_id, retry, prefer=call.phone_id)
    if phone_id is None:
        return None
    open_callback = await _open_callback(session, call, pending_only=True)
    if open_callback is not None:
        open_callback.due_at = step.at
        open_callback.reason = step.reason.value
        open_callback.attempt = 1
        open_callback.phone_id = phone_id
        open_callback.deferred_reason = None
        open_callback.updated_at = now
        await session.flush()
        return open_callback.id
    callback = CallBack(
        campaign_id=call.campaign_id,
        contact_id=call.contact_id,
        phone_id=phone_id,
        due_at=step.at,
        attempt=1,
        status=CallBackStatus.PENDING.value,
        reason=step.reason.value,
        created_at=now,
        updated_at=now,
    )
    session.add(callback)
    await session.flush()
    return callback.id


UNANSWERED_STATUSES = (
    CallStatus.QUEUED.value,
    CallStatus.INITIATED.value,
    CallStatus.RINGING.value,
)


async def unanswered_call_sids(session: AsyncSession, campaign_id: int) -> list[str]:
    """Carrier sids of the campaign's calls still queued or ringing."""
    return list(
        await session.scalars(
            select(Call.carrier_sid).where(
                Call.campaign_id == campaign_id,
                Call.status.in_(UNANSWERED_STATUSES),
                Call.carrier_sid.is_not(None),
            )
        )
    )


async def cancel_at_carrier(carrier: Carrier, sids: Sequence[str]) -> int:
    """Cancel queued or ringing calls at the carrier, a few requests at a time; returns how many
    the carrier accepted. Their final status arrives through the status webhook as usual."""
    limit = asyncio.Semaphore(8)

    async def cancel(sid: str) -> bool:
        async with limit:
            try:
                await carrier.cancel(sid)
            except CarrierError as exc:
                log.warning("cancelling %s at the carrier failed (code %s)", sid, exc.code)
                return False
            return True

    return sum(await asyncio.gather(*(cancel(sid) for sid in sids)))


async def _lock_call(
    session: AsyncSession, *, call_id: int | None, call_sid: str | None, now: datetime
) -> Call | None:
    """:func:`_lock_row`, then the locked call as an ORM object, for the paths (machine and
    recording events, borrower requests) that change more than the status path does."""
    row = await _lock_row(session, call_id=call_id, call_sid=call_sid, now=now)
    if row is None:
        return None
    return await session.get(Call, row.id, populate_existing=True)


async def _lock_row(
    session: AsyncSession, *, call_id: int | None, call_sid: str | None, now: datetime
) -> LiveCall | None:
    """Fetch the call with its row locked until commit, read as a :class:`LiveCall`.

    A write, not SELECT … FOR UPDATE: it locks the row on PostgreSQL and takes SQLite's write lock
    before anything is read, so what follows reads the latest committed state on both.
    """
    call: LiveCall | None = None
    if call_id is not None:
        call = await _touch_row(session, TOUCH_BY_ID, call_id=call_id, now=now)
        if call is not None and call_sid and call.carrier_sid not in (None, call_sid):
            _log_other_sid(call_id)
            call = None
    if call is None and call_sid:
        call = await _touch_row(session, TOUCH_BY_SID, sid=call_sid, now=now)
    return call


def _log_other_sid(call_id: int) -> None:
    log.warning("call %s: the event's CallSid is another call's; matching by sid", call_id)


async def _touch_row(session: AsyncSession, statement: Any, **params: Any) -> LiveCall | None:
    return await touch_row(await session.connection(), statement, **params)


async def _store_event(
    session: AsyncSession,
    event: StatusEvent | MachineEvent | RecordingEvent,
    *,
    call_id: int | None,
    now: datetime,
) -> bool:
    connection = await session.connection()
    result = await connection.execute(
        _STORE_EVENT[_dialect(session)],
        {
            "dedupe_key": event.dedupe_key[:200],
            "call_sid": event.call_sid[:64],
            "kind": event.kind,
            "call_id": call_id,
            "payload": dict(event.payload),
            "now": now,
        },
    )
    return result.scalar_one_or_none() is not None


async def _apply(
    session: AsyncSession, call: LiveCall, event: StatusEvent, *, now: datetime, batch: StatusBatch
) -> None:
    if call.carrier_sid is None:
        call.carrier_sid = event.call_sid
    current = CallStatus(call.status)
    if current.is_final:
        return  # the end was applied once; later events are kept as history only
    try:
        status = CallStatus(event.call_status)
    except ValueError:
        log.warning("call %s: unknown CallStatus %r ignored", call.id, event.call_status)
        return
    if event.answered_by:
        call.answered_by = event.answered_by[:32]
    if event.duration_seconds is not None:
        call.duration_seconds = event.duration_seconds
    if status.rank <= current.rank:
        return  # late or repeated: a call never moves back
    call.status = status.value
    if status is CallStatus.IN_PROGRESS and call.answered_at is None:
        call.answered_at = now
    if status.is_final:
        await _end(session, call, event, now=now, batch=batch)


async def _end(
    session: AsyncSession, call: LiveCall, event: StatusEvent, *, now: datetime, batch: StatusBatch
) -> None:
    """The event ended the call: its error, its disposition and what follows."""
    error_code = event.payload.get("ErrorCode") or None
    if error_code:
        call.error_code = error_code[:16]
        call.error_message = event.payload.get("ErrorMessage")
    # A number unsubscribed at the carrier (21610) may also surface as a failed call.
    opted_out = error_code is not None and refusal_kind(error_code) is RefusalKind.OPTED_OUT
    await _finish(
        session,
        call,
        error_code=error_code,
        now=now,
        disposition=Disposition.OPTED_OUT if opted_out else None,
        batch=batch,
    )
    if opted_out:
        await opt_out(
            session,
            call.to_number,
            reason="carrier_unsubscribed",
            source=f"carrier:{error_code}",
            now=now,
        )


async def _finish(
    session: AsyncSession,
    call: LiveCall,
    *,
    error_code: str | None,
    now: datetime,
    disposition: Disposition | None = None,
    batch: StatusBatch | None = None,
) -> None:
    """The call has just reached its final status: its disposition, and (when ``batch`` closes,
    or now without one) its call-back, number, retry, row and campaign counter written."""
    alone = batch is None
    batch = batch or StatusBatch()
    retry = await batch.retry_rules(session, call.campaign_id)
    disposition = disposition or disposition_for(
        call.status,
        call.answered_by,
        call.duration_seconds,
        min_conversation_seconds=retry.min_conversation_seconds,
        error_code=error_code,
    )
    call.disposition = disposition.value
    call.ended_at = now
    call.conversed = disposition is Disposition.ANSWERED
    if disposition in _PICKED_UP and call.answered_at is None:
        call.answered_at = now - timedelta(seconds=call.duration_seconds or 0)
    log.info("call %s ended: %s", call.id, disposition.value)
    batch.endings.append(_Ending(call, retry, disposition, now))
    if alone:
        await batch.close(session)
        batch.count()


def _phone_changes(endings: Sequence[_Ending]) -> list[PhoneUpdate]:
    """What the calls that ended do to their numbers, in order, as changes to each number's row
    as it is when written: another transaction may be ending calls to the same number. A number
    whose state, as read with the first of its calls, the change leaves as it was is not
    written."""
    before: dict[int, PhoneState] = {}
    changes: dict[int, PhoneChange] = {}
    for e in endings:
        phone_id = e.call.phone_id
        if phone_id is not None and e.call.phone is not None:
            before.setdefault(phone_id, e.call.phone)
            changes[phone_id] = changes.get(phone_id, NO_PHONE_CHANGE).after(e.disposition)
    return [
        PhoneUpdate(phone_id, change.reset, change.failures, change.invalid)
        for phone_id, change in changes.items()
        if change.applied_to(before[phone_id]) != before[phone_id]
    ]


async def _write_endings_one_by_one(
    session: AsyncSession, endings: Sequence[_Ending], phones: Sequence[PhoneUpdate]
) -> None:
    """:func:`call_rows.write_endings` on SQLite: a statement (an executemany) per table."""
    connection = await session.connection()
    await connection.execute(
        _CALLBACK_DONE, [{"callback_id": e.call.callback_id, "now": e.now} for e in endings]
    )
    if phones:
        await connection.execute(
            _SET_PHONE_STATE,
            [p._asdict() for p in phones],
        )
    calls = [e.call for e in endings if e.call.changes()]
    if calls:
        await connection.execute(
            _WRITE_CALL,
            [
                {"b_id": call.id, **{f"b_{name}": getattr(call, name) for name in WRITTEN}}
                for call in calls
            ],
        )
        for call in calls:
            call.read.update(call.changes())
    ended = Counter(e.call.campaign_id for e in endings)
    for campaign_id in sorted(ended):
        await connection.execute(
            _CALLS_ENDED, {"campaign_id": campaign_id, "ended": ended[campaign_id]}
        )


async def _schedule_retry(
    session: AsyncSession,
    call: Call | LiveCall,
    retry: RetryRules,
    disposition: Disposition,
    *,
    now: datetime,
    batch: StatusBatch,
) -> None:
    """A new call-back when the retry policy says so, the campaign has not finished, and
    nothing else is already open."""
    step = after_call(disposition, attempts_made=call.attempt, rules=retry, now=now)
    if not isinstance(step, Retry):
        return
    campaign = await batch.campaign(session, call.campaign_id)
    if CampaignStatus(campaign.status) in FINISHED:
        return
    if await _open_callback(session, call, pending_only=False) is not None:
        return  # e.g. the borrower asked for a time during this call
    phone_id = await _choose_phone(session, call.contact_id, retry, prefer=None)
    if phone_id is None:
        log.info("call %s: no dialable number left for contact %s", call.id, call.contact_id)
        return
    session.add(
        CallBack(
            campaign_id=call.campaign_id,
            contact_id=call.contact_id,
            phone_id=phone_id,
            due_at=step.at,
            attempt=call.attempt + 1,
            status=CallBackStatus.PENDING.value,
            reason=step.reason.value,
            created_at=now,
            updated_at=now,
        )
    )


async def _open_callback(
    session: AsyncSession, call: Call | LiveCall, *, pending_only: bool
) -> CallBack | None:
    """The contact's unfinished call-back in the call's campaign, other than the call's own."""
    statuses = [CallBackStatus.PENDING.value] if pending_only else list(OPEN_CALLBACK_STATUSES)
    result = await session.scalars(
        select(CallBack)
        .where(
            CallBack.contact_id == call.contact_id,
            CallBack.campaign_id == call.campaign_id,
            CallBack.id != call.callback_id,
            CallBack.status.in_(statuses),
        )
        .order_by(CallBack.due_at)
        .limit(1)
    )
    return result.first()


async def _choose_phone(
    session: AsyncSession, contact_id: int, retry: RetryRules, *, prefer: int | None
) -> int | None:
    """The number to dial next (``prefer`` when it is still dialable); numbers on the
    do-not-call list count as opted out even before their row says so."""
    rows = (
        await session.execute(
            select(ContactPhone, DoNotCall.e164)
            .outerjoin(DoNotCall, DoNotCall.e164 == ContactPhone.e164)
            .where(ContactPhone.contact_id == contact_id)
            .order_by(ContactPhone.position)
        )
    ).all()
    phones = [phone for phone, _ in rows]
    states = [
        PhoneState(
            PhoneStatus.OPTED_OUT if listed is not None else PhoneStatus(phone.status),
            phone.consecutive_failures,
        )
        for phone, listed in rows
    ]
    for phone, state in zip(phones, states, strict=True):
        if phone.id == prefer and state.status is PhoneStatus.VALID:
            return phone.id
    index = choose_phone(states, retry)
    return None if index is None else phones[index].id


def _rules(campaign: Campaign) -> tuple[ComplianceRules, RetryRules]:
    try:
        return rules_for(campaign)
    except ValueError:
        # Stored settings the API would refuse must not strand a call: fall back to defaults.
        log.exception("campaign %s has invalid rules; using the defaults", campaign.id)
        return ComplianceRules(), RetryRules()


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
