"""The compliance gate for a claimed batch: what each call-back's borrower allows right now.

Everything the rules need is loaded for the whole batch in a few set-based queries (contacts and
their numbers, the do-not-call list, recent attempts per loan, recent conversations per borrower);
the decision itself is :func:`voicebot.domain.compliance.check`. On PostgreSQL,
:func:`lock_and_screen` locks the batch and reads its contacts and numbers in one statement and
the history in a second, both sent straight to asyncpg: this is the dialer's hot path, where
SQLAlchemy's per-row result handling cost more than the queries.

A loan may be in several campaigns, each with a call-back due at once, so the attempt cap must
count more than the calls already made: a call allowed earlier in the same batch, and a call-back
another dialer has allowed but not dialed yet (``claimed``, waiting for pacing tokens), count as
attempts now. On PostgreSQL two dialers holding call-backs of one loan would otherwise both read
its history before either records its call: each takes a transaction-scoped advisory lock per
loan of its batch before reading the history, and keeps it until the transaction that records
the calls (or claims them for pacing) commits. SQLite has a single writer, and the claim is a
write: its rounds are serialised already.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallBack, Campaign, Contact, ContactPhone, DoNotCall
from voicebot.dialer.call_options import call_options_for
from voicebot.dialer.queue import ClaimedCallBack, driver_connection, in_list, is_postgres
from voicebot.dialer.rules import rules_for
from voicebot.domain.compliance import (
    Allow,
    ComplianceRules,
    Decision,
    Defer,
    DialHistory,
    Refuse,
    check,
)
from voicebot.domain.phones import PhoneNumber, time_zone_for
from voicebot.domain.retry import PhoneState, RetryRules, choose_phone
from voicebot.domain.types import CallBackStatus, CampaignStatus, PhoneStatus
from voicebot.telephony.carrier import CallOptions

log = logging.getLogger(__name__)

# The daily conversation cap looks at the borrower's local day, which began at most ~26 h ago.
_CONVERSATION_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class CampaignView:
    """What one round of dialing needs of a campaign, read once per batch."""

    id: int
    running: bool
    compliance: ComplianceRules
    retry: RetryRules
    concurrency_limit: int
    live_calls: int
    caller_numbers: tuple[str, ...]
    call_options: CallOptions = field(default_factory=CallOptions)
    caller_id_mode: str = "rotate"


class Dialable(NamedTuple):
    callback: ClaimedCallBack
    phone_id: int
    to: str
    loan_key: str
    persona: str


@dataclass(slots=True)
class Screening:
    dial: list[Dialable] = field(default_factory=list)
    defer: list[tuple[int, datetime, str]] = field(default_factory=list)  # (id, until, reason)
    refuse: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    not_running: list[int] = field(default_factory=list)


class _Phone(NamedTuple):
    id: int
    e164: str
    state: PhoneState


@dataclass(slots=True)
class _Contact:
    time_zone: str
    loan_key: str
    persona: str
    phones: list[_Phone] = field(default_factory=list)


class _Since(NamedTuple):
    attempts: datetime
    conversations: datetime
    # The round's time. A call another dialer recorded after it (this round waited for that
    # dialer's loan lock) counts as made now: the rules look at nothing later than now.
    now: datetime


@dataclass(slots=True)
class _History:
    """Recent attempts per loan (any campaign) and recent conversations per contact."""

    since: _Since
    attempts: dict[str, list[datetime]] = field(default_factory=dict)
    conversations: dict[int, list[datetime]] = field(default_factory=dict)


def _lookback(campaigns: Iterable[CampaignView], now: datetime) -> _Since:
    """How far back the history must be read for these campaigns' rules."""
    rules = [c.compliance for c in campaigns]
    return _Since(
        attempts=now - max((r.attempt_period for r in rules), default=_CONVERSATION_LOOKBACK),
        conversations=now - max([_CONVERSATION_LOOKBACK, *(r.quiet_period for r in rules)]),
        now=now,
    )


async def load_campaigns(session: AsyncSession, ids: Iterable[int]) -> dict[int, CampaignView]:
    rows = await session.scalars(
        select(Campaign).where(
            in_list(Campaign.id, sorted(set(ids)), postgres=is_postgres(session))
        )
    )
    return _views(rows)


def _views(campaigns: Iterable[Campaign]) -> dict[int, CampaignView]:
    views: dict[int, CampaignView] = {}
    for campaign in campaigns:
        running = campaign.status == CampaignStatus.RUNNING.value
        try:
            compliance, retry = rules_for(campaign)
        except ValueError:
            log.exception("campaign %s has settings the gate refuses; not dialing it", campaign.id)
            compliance, retry, running = ComplianceRules(), RetryRules(), False
        views[campaign.id] = CampaignView(
            id=campaign.id,
            running=running,
            compliance=compliance,
            retry=retry,
            concurrency_limit=campaign.concurrency_limit,
            live_calls=campaign.live_calls,
            caller_numbers=tuple(campaign.caller_numbers or ()),
            call_options=call_options_for(campaign),
            caller_id_mode=campaign.caller_id_mode,
        )
    return views


async def screen(
    session: AsyncSession,
    batch: Sequence[ClaimedCallBack],
    campaigns: Mapping[int, CampaignView],
    *,
    now: datetime,
) -> Screening:
    """Sort a claimed batch into dial / defer / refuse / not running. Reads only; on
    PostgreSQL it holds the batch's loans (``_LOCK_LOANS``) until the transaction ends."""
    result = Screening()
    live = _split_running(batch, campaigns, result)
    if not live:
        return result
    postgres = is_postgres(session)
    contacts = await _contacts(session, {cb.contact_id for cb in live}, postgres=postgres)
    since = _lookback([campaigns[cb.campaign_id] for cb in live], now)
    loan_keys = {c.loan_key for c in contacts.values()}
    if postgres and loan_keys:
        await (await driver_connection(session)).execute(_LOCK_LOANS, sorted(loan_keys))
    history = await _history(
        session,
        loan_keys=loan_keys,
        contact_ids=list(contacts),
        since=since,
        postgres=postgres,
    )
    await _add_claimed_elsewhere(session, history, loan_keys, batch={cb.id for cb in batch})
    _decide(result, live, campaigns, contacts, history, now=now)
    return result


async def lock_and_screen(
    session: AsyncSession, *, limit: int, now: datetime
) -> tuple[list[ClaimedCallBack], dict[int, CampaignView], Screening]:
    """PostgreSQL: lock up to ``limit`` due call-backs of running campaigns for this transaction
    (``FOR UPDATE SKIP LOCKED``, left ``pending``: a row dialed before the commit is written
    once, a row kept past it must be ``queue.hold``-ed), read their campaigns, and screen them.
    One statement locks the batch and reads each row's contact, numbers and do-not-call
    entries; once the batch's loans are locked (``_LOCK_LOANS``), a second reads their history,
    with the call-backs other dialers hold for pacing: all straight through asyncpg, in the
    session's transaction. Returns the batch, its campaigns and the screening."""
    driver = await driver_connection(session)
    batch: list[ClaimedCallBack] = []
    contacts: dict[int, _Contact] = {}
    filling: _Contact | None = None  # the contact whose numbers the rows are listing
    for row in await driver.fetch(_LOCK_AND_READ, now, limit):
        callback_id, campaign_id, contact_id, phone_id, attempt, zone, loan_id, persona = row[:8]
        if not batch or batch[-1].id != callback_id:
            batch.append(ClaimedCallBack(callback_id, campaign_id, contact_id, phone_id, attempt))
            filling = None
            if zone is not None and contact_id not in contacts:  # else deleted, or read already
                loan_key = loan_id or f"contact:{contact_id}"
                filling = contacts[contact_id] = _Contact(zone, loan_key, persona or "")
        if filling is not None and row[8] is not None:
            number_id, e164, status, failures, listed = row[8:]
            filling.phones.append(_Phone(number_id, e164, _phone_state(status, failures, listed)))
    result = Screening()
    if not batch:
        return batch, {}, result
    campaigns = await load_campaigns(session, {cb.campaign_id for cb in batch})
    live = _split_running(batch, campaigns, result)
    if live:
        live_contacts = {
            cb.contact_id: contacts[cb.contact_id] for cb in live if cb.contact_id in contacts
        }
        since = _lookback([campaigns[cb.campaign_id] for cb in live], now)
        history = _History(since)
        if live_contacts:
            loan_keys = sorted({c.loan_key for c in live_contacts.values()})
            # Before the history is read: a dialer holding another call-back of one of these
            # loans records its call first, and this statement's snapshot then sees it.
            await driver.execute(_LOCK_LOANS, loan_keys)
            _add_history(
                history,
                await driver.fetch(
                    _HISTORY,
                    loan_keys,
                    since.attempts,
                    list(live_contacts),
                    since.conversations,
                    now,
                ),
            )
        _decide(result, live, campaigns, live_contacts, history, now=now)
    return batch, campaigns, result


def _split_running(
    batch: Sequence[ClaimedCallBack], campaigns: Mapping[int, CampaignView], result: Screening
) -> list[ClaimedCallBack]:
    """The call-backs of running campaigns; the others go to ``result.not_running``."""
    live: list[ClaimedCallBack] = []
    for cb in batch:
        if campaigns.get(cb.campaign_id, _STOPPED).running:
            live.append(cb)
        else:
            result.not_running.append(cb.id)
    return live


def _decide(
    result: Screening,
    live: Sequence[ClaimedCallBack],
    campaigns: Mapping[int, CampaignView],
    contacts: Mapping[int, _Contact],
    history: _History,
    *,
    now: datetime,
) -> None:
    """The gate's decision for each call-back of a running campaign, into ``result``. A call
    allowed here counts as an attempt on its loan for the call-backs after it: one loan may have
    a call-back due in several campaigns."""
    # Most borrowers have no recent history: their decision depends only on rules and zone.
    decided: dict[tuple[int, str], Decision] = {}
    attempts, conversations = history.attempts, history.conversations
    for cb in live:
        campaign = campaigns[cb.campaign_id]
        contact = contacts.get(cb.contact_id)
        phone = None if contact is None else _phone_to_dial(contact, cb.phone_id, campaign.retry)
        if contact is None or phone is None:
            opted_out = contact is not None and any(
                p.state.status is PhoneStatus.OPTED_OUT for p in contact.phones
            )
            result.refuse["opted_out" if opted_out else "no_dialable_number"].append(cb.id)
            continue
        zone = _zone(contact, phone)
        tried = attempts.get(contact.loan_key)
        talked = conversations.get(cb.contact_id)
        if tried or talked:
            past = DialHistory(attempts=tried or (), conversations=talked or ())
            decision = check(campaign.compliance, now=now, tz=zone, history=past)
        else:
            cached = decided.get((campaign.id, zone.key))
            if cached is None:
                cached = decided[campaign.id, zone.key] = check(
                    campaign.compliance, now=now, tz=zone, history=_NO_HISTORY
                )
            decision = cached
        if isinstance(decision, Allow):
            result.dial.append(
                Dialable(cb, phone.id, phone.e164, contact.loan_key, contact.persona)
            )
            attempts.setdefault(contact.loan_key, []).append(now)
        elif isinstance(decision, Defer):
            result.defer.append((cb.id, decision.until, decision.reason))
        else:
            assert isinstance(decision, Refuse)
            result.refuse[decision.reason].append(cb.id)


_STOPPED = CampaignView(
    id=0,
    running=False,
    compliance=ComplianceRules(),
    retry=RetryRules(),
    concurrency_limit=0,
    live_calls=0,
    caller_numbers=(),
)


def _phone_to_dial(contact: _Contact, preferred: int | None, retry: RetryRules) -> _Phone | None:
    """The call-back's own number while it may be dialed, else the one the retry rules pick."""
    for phone in contact.phones:
        if phone.id == preferred and phone.state.status is _VALID:
            return phone
    index = choose_phone([p.state for p in contact.phones], retry)
    return None if index is None else contact.phones[index]


_VALID = PhoneStatus.VALID
_CLAIMED = CallBackStatus.CLAIMED.value
_NO_HISTORY = DialHistory()
_zones: dict[str, ZoneInfo] = {}


def _zone(contact: _Contact, phone: _Phone) -> ZoneInfo:
    """The contact's zone; one the machine does not know (stored before a tzdata update, or by
    hand) falls back to the zone of the number, so the call-back is neither dropped nor stuck."""
    name = contact.time_zone
    if name not in _zones:
        try:
            _zones[name] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            fallback = time_zone_for(PhoneNumber(phone.e164, None))
            log.warning("unknown time zone %r; using %s from the number", name, fallback)
            return ZoneInfo(fallback)
    return _zones[name]


async def _contacts(session: AsyncSession, ids: set[int], *, postgres: bool) -> dict[int, _Contact]:
    """Contacts with their numbers in dialing order; a number on the do-not-call list counts as
    opted out even if its row was imported before the opt-out."""
    rows = await (await session.connection()).execute(
        select(
            Contact.id,
            Contact.time_zone,
            Contact.loan_id,
            Contact.fields["persona"].as_string(),
            ContactPhone.id,
            ContactPhone.e164,
            ContactPhone.status,
            ContactPhone.consecutive_failures,
            DoNotCall.e164,
        )
        .join(ContactPhone, ContactPhone.contact_id == Contact.id)
        .outerjoin(DoNotCall, DoNotCall.e164 == ContactPhone.e164)
        .where(in_list(Contact.id, sorted(ids), postgres=postgres))
        .order_by(Contact.id, ContactPhone.position)
    )
    contacts: dict[int, _Contact] = {}
    for contact_id, zone, loan_id, persona, phone_id, e164, status, failures, listed in rows:
        contact = contacts.get(contact_id)
        if contact is None:
            loan_key = loan_id or f"contact:{contact_id}"
            contact = contacts[contact_id] = _Contact(zone, loan_key, persona or "")
        contact.phones.append(_Phone(phone_id, e164, _phone_state(status, failures, listed)))
    return contacts


def _phone_state(status: str, failures: int, listed: object) -> PhoneState:
    """A number on the do-not-call list (``listed`` truthy) counts as opted out."""
    state = _OPTED_OUT if listed else _STATUS.get(status) or PhoneStatus(status)
    return PhoneState(state, failures)


_OPTED_OUT = PhoneStatus.OPTED_OUT
_STATUS = {s.value: s for s in PhoneStatus}


async def _history(
    session: AsyncSession,
    *,
    loan_keys: set[str],
    contact_ids: list[int],
    since: _Since,
    postgres: bool,
) -> _History:
    """Recent attempts per loan (any campaign) and recent conversations per contact, in one
    query over ``calls`` (two index ranges: loan_key/created_at and contact_id/answered_at)."""
    history = _History(since)
    if not contact_ids:
        return history
    rows = await (await session.connection()).execute(
        select(
            Call.loan_key, Call.created_at, Call.contact_id, Call.conversed, Call.answered_at
        ).where(
            or_(
                and_(
                    in_list(Call.loan_key, sorted(loan_keys), postgres=postgres),
                    Call.created_at > since.attempts,
                ),
                and_(
                    in_list(Call.contact_id, contact_ids, postgres=postgres),
                    Call.conversed,
                    Call.answered_at > since.conversations,
                ),
            )
        )
    )
    _add_history(history, rows)
    return history


async def _add_claimed_elsewhere(
    session: AsyncSession,
    history: _History,
    loan_keys: set[str],
    *,
    batch: set[int],
) -> None:
    """Count as attempts now the call-backs of these loans that a dialer holds outside this
    batch (``claimed``, lease running): they passed the gate and wait for pacing tokens. They
    are read through the partial index ``ix_callbacks_lease``, which holds only those."""
    now = history.since.now
    rows = await (await session.connection()).execute(
        select(CallBack.id, Contact.id, Contact.loan_id)
        .join(Contact, Contact.id == CallBack.contact_id)
        # The status as a literal, so both databases can walk the partial index.
        .where(CallBack.status == literal_column(f"'{_CLAIMED}'"), CallBack.lease_expires_at > now)
    )
    for callback_id, contact_id, loan_id in rows:
        loan_key = loan_id or f"contact:{contact_id}"
        if callback_id not in batch and loan_key in loan_keys:
            history.attempts.setdefault(loan_key, []).append(now)


def _add_history(history: _History, rows: Iterable[Sequence[Any]]) -> None:
    """``(loan_key, created_at, contact_id, conversed, answered_at)`` rows of ``calls`` into
    ``history``: the row may match as an attempt, a conversation, or both."""
    since = history.since
    attempts, conversations = history.attempts, history.conversations
    for loan_key, created_at, contact_id, conversed, answered_at in rows:
        if created_at > since.attempts:
            attempts.setdefault(loan_key, []).append(min(created_at, since.now))
        if conversed and answered_at is not None and answered_at > since.conversations:
            conversations.setdefault(contact_id, []).append(min(answered_at, since.now))


# The batch lock (``queue.claim_statement``'s rows, locked but not written) and, one row per
# number, each call-back's contact and its numbers in dialing order, as asyncpg runs it: $1 now,
# $2 batch size. The lock's CTE is materialized, so the rows are locked once, in due order, before
# the reads; a number on the do-not-call list reads as listed even if its phone row predates the
# opt-out.
_LOCK_AND_READ = f"""
WITH due AS MATERIALIZED (
    SELECT id, campaign_id, contact_id, phone_id, attempt, due_at
    FROM callbacks
    WHERE status = '{CallBackStatus.PENDING.value}' AND due_at <= $1
      AND campaign_id IN (SELECT id FROM campaigns WHERE status = '{CampaignStatus.RUNNING.value}')
    ORDER BY due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
SELECT due.id, due.campaign_id, due.contact_id, due.phone_id, due.attempt,
       contact.time_zone, contact.loan_id, contact.fields ->> 'persona',
       phone.id, phone.e164, phone.status, phone.consecutive_failures, dnc.e164 IS NOT NULL
FROM due
LEFT JOIN contacts AS contact ON contact.id = due.contact_id
LEFT JOIN contact_phones AS phone ON phone.contact_id = contact.id
LEFT JOIN do_not_call AS dnc ON dnc.e164 = phone.e164
ORDER BY due.due_at, due.id, phone.position
"""
# :func:`_history` and :func:`_add_claimed_elsewhere` as asyncpg runs them: $1 loan keys,
# $2 attempts since, $3 contact ids, $4 conversations since, $5 now. A claimed call-back reads as
# an attempt made now (its loan key built as the dialer builds it).
_HISTORY = f"""
SELECT loan_key, created_at, contact_id, conversed, answered_at
FROM calls
WHERE (loan_key = ANY($1::varchar[]) AND created_at > $2)
   OR (contact_id = ANY($3::bigint[]) AND conversed AND answered_at > $4)
UNION ALL
SELECT coalesce(nullif(contact.loan_id, ''), 'contact:' || contact.id), $5::timestamptz,
       contact.id, false, NULL::timestamptz
FROM callbacks
JOIN contacts AS contact ON contact.id = callbacks.contact_id
WHERE callbacks.status = '{CallBackStatus.CLAIMED.value}' AND callbacks.lease_expires_at > $5
  AND coalesce(nullif(contact.loan_id, ''), 'contact:' || contact.id) = ANY($1::varchar[])
"""
# One advisory lock per loan key ($1), held until the transaction ends, taken in one order (the
# subquery's) so that two dialers never wait for each other both ways. The two-key form with
# its own first key keeps these apart from the application's other advisory locks. A dialer
# holds as many as its batch has loans: dialers x ``dialer_batch_size`` must fit PostgreSQL's
# lock table (max_locks_per_transaction x max_connections, 6,400 by default).
_LOAN_LOCK_SPACE = 0x6C6F616E  # "loan"
_LOCK_LOANS = f"""
SELECT pg_advisory_xact_lock({_LOAN_LOCK_SPACE}, loan.key)
FROM (SELECT DISTINCT hashtext(key) AS key FROM unnest($1::text[]) AS key ORDER BY 1) AS loan
"""
