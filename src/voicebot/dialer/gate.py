"""The compliance gate for a claimed batch: what each call-back's borrower allows right now.

Everything the rules need is loaded for the whole batch in a few set-based queries (contacts and
their numbers, the do-not-call list, recent attempts per loan, recent conversations per borrower);
the decision itself is :func:`voicebot.domain.compliance.check`. On PostgreSQL,
:func:`lock_and_screen` locks the batch and reads its contacts and numbers in one statement and
the history in a second, both sent straight to asyncpg: this is the dialer's hot path, where
SQLAlchemy's per-row result handling cost more than the queries.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, Campaign, Contact, ContactPhone, DoNotCall
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
    """Sort a claimed batch into dial / defer / refuse / not running. Reads only."""
    result = Screening()
    live = _split_running(batch, campaigns, result)
    if not live:
        return result
    postgres = is_postgres(session)
    contacts = await _contacts(session, {cb.contact_id for cb in live}, postgres=postgres)
    since = _lookback([campaigns[cb.campaign_id] for cb in live], now)
    history = await _history(
        session,
        loan_keys={c.loan_key for c in contacts.values()},
        contact_ids=list(contacts),
        since=since,
        postgres=postgres,
    )
    _decide(result, live, campaigns, contacts, history, now=now)
    return result


async def lock_and_screen(
    session: AsyncSession, *, limit: int, now: datetime
) -> tuple[list[ClaimedCallBack], dict[int, CampaignView], Screening]:
    """PostgreSQL: lock up to ``limit`` due call-backs of running campaigns for this transaction
    (``FOR UPDATE SKIP LOCKED``, left ``pending``: a row dialed before the commit is written
    once, a row kept past it must be ``queue.hold``-ed), read their campaigns, and screen them.
    One statement locks the batch and reads each row's contact, numbers and do-not-call
    entries, a second reads the history: both straight through asyncpg, in the session's
    transaction. Returns the batch, its campaigns and the screening."""
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
            _add_history(
                history,
                await driver.fetch(
                    _HISTORY,
                    list({c.loan_key for c in live_contacts.values()}),
                    since.attempts,
                    list(live_contacts),
                    since.conversations,
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
    """The gate's decision for each call-back of a running campaign, into ``result``."""
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


def _add_history(history: _History, rows: Iterable[Sequence[Any]]) -> None:
    """``(loan_key, created_at, contact_id, conversed, answered_at)`` rows of ``calls`` into
    ``history``: the row may match as an attempt, a conversation, or both."""
    since = history.since
    attempts, conversations = history.attempts, history.conversations
    for loan_key, created_at, contact_id, conversed, answered_at in rows:
        if created_at > since.attempts:
            attempts.setdefault(loan_key, []).append(created_at)
        if conversed and answered_at is not None and answered_at > since.conversations:
            conversations.setdefault(contact_id, []).append(answered_at)


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
# :func:`_history` as asyncpg runs it: $1 loan keys, $2 attempts since, $3 contact ids,
# $4 conversations since.
_HISTORY = """
SELECT loan_key, created_at, contact_id, conversed, answered_at
FROM calls
WHERE (loan_key = ANY($1::varchar[]) AND created_at > $2)
   OR (contact_id = ANY($3::bigint[]) AND conversed AND answered_at > $4)
"""
