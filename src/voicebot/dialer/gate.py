"""The compliance gate for a claimed batch: what each call-back's borrower allows right now.

Everything the rules need is loaded for the whole batch in a few set-based queries (contacts and
their numbers, the do-not-call list, recent attempts per loan, recent conversations per borrower);
the decision itself is :func:`voicebot.domain.compliance.check`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, Campaign, Contact, ContactPhone, DoNotCall
from voicebot.dialer.call_options import call_options_for
from voicebot.dialer.queue import ClaimedCallBack, in_list, is_postgres
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
from voicebot.domain.types import CampaignStatus, PhoneStatus
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


async def load_campaigns(session: AsyncSession, ids: Iterable[int]) -> dict[int, CampaignView]:
    rows = await session.scalars(
        select(Campaign).where(
            in_list(Campaign.id, sorted(set(ids)), postgres=is_postgres(session))
        )
    )
    views: dict[int, CampaignView] = {}
    for campaign in rows:
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
    live = [cb for cb in batch if campaigns.get(cb.campaign_id, _STOPPED).running]
    result.not_running = [
        cb.id for cb in batch if not campaigns.get(cb.campaign_id, _STOPPED).running
    ]
    if not live:
        return result
    postgres = is_postgres(session)
    contacts = await _contacts(session, {cb.contact_id for cb in live}, postgres=postgres)
    views = [campaigns[cb.campaign_id].compliance for cb in live]
    attempts, conversations = await _history(
        session,
        loan_keys={c.loan_key for c in contacts.values()},
        contact_ids=list(contacts),
        attempts_since=now - max(rules.attempt_period for rules in views),
        conversations_since=now - max([_CONVERSATION_LOOKBACK, *(r.quiet_period for r in views)]),
        postgres=postgres,
    )

    # Most borrowers have no recent history: their decision depends only on rules and zone.
    decided: dict[tuple[int, str], Decision] = {}
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
            history = DialHistory(attempts=tried or (), conversations=talked or ())
            decision = check(campaign.compliance, now=now, tz=zone, history=history)
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
    return result


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
        state = _OPTED_OUT if listed is not None else _STATUS.get(status) or PhoneStatus(status)
        contact.phones.append(_Phone(phone_id, e164, PhoneState(state, failures)))
    return contacts


_OPTED_OUT = PhoneStatus.OPTED_OUT
_STATUS = {s.value: s for s in PhoneStatus}


async def _history(
    session: AsyncSession,
    *,
    loan_keys: set[str],
    contact_ids: list[int],
    attempts_since: datetime,
    conversations_since: datetime,
    postgres: bool,
) -> tuple[dict[str, list[datetime]], dict[int, list[datetime]]]:
    """Recent attempts per loan (any campaign) and recent conversations per contact, in one
    query over ``calls`` (two index ranges: loan_key/created_at and contact_id/answered_at)."""
    attempts: dict[str, list[datetime]] = defaultdict(list)
    conversations: dict[int, list[datetime]] = defaultdict(list)
    if not contact_ids:
        return attempts, conversations
    rows = await (await session.connection()).execute(
        select(
            Call.loan_key, Call.created_at, Call.contact_id, Call.conversed, Call.answered_at
        ).where(
            or_(
                and_(
                    in_list(Call.loan_key, sorted(loan_keys), postgres=postgres),
                    Call.created_at > attempts_since,
                ),
                and_(
                    in_list(Call.contact_id, contact_ids, postgres=postgres),
                    Call.conversed,
                    Call.answered_at > conversations_since,
                ),
            )
        )
    )
    for loan_key, created_at, contact_id, conversed, answered_at in rows:
        if loan_key in loan_keys and created_at > attempts_since:
            attempts[loan_key].append(created_at)
        if conversed and answered_at is not None and answered_at > conversations_since:
            conversations[contact_id].append(answered_at)
    return attempts, conversations
