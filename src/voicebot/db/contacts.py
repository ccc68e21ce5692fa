"""Contact queries, and the bulk import of validated contacts into a campaign.

The import works on sets, never a round trip per row: contacts are upserted, and numbers and
call-backs inserted, in bulk (COPY on PostgreSQL); lookups go by thousands of keys at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.types import TypeEngine

from voicebot.db.bulk import write_rows
from voicebot.db.locks import hold, is_postgres
from voicebot.db.models import CallBack, Contact, ContactPhone, DoNotCall
from voicebot.domain.contacts import ContactRow
from voicebot.domain.types import CallBackReason, CallBackStatus, PhoneStatus

T = TypeVar("T")

_IMPORT_LOCK = int.from_bytes(b"vbimport", "big")
# Keys per lookup statement: bounds the size of one statement and its result.
_IN_CHUNK = 20_000
_UNFINISHED = frozenset({CallBackStatus.PENDING, CallBackStatus.CLAIMED, CallBackStatus.DIALED})
_CONTACT_COLUMNS = (
    "external_id",
    "name",
    "time_zone",
    "loan_id",
    "amount_due",
    "currency",
    "due_date",
    "days_past_due",
    "fields",
    "created_at",
    "updated_at",
)
_UPDATED_ON_REIMPORT = (
    "name",
    "time_zone",
    "loan_id",
    "amount_due",
    "currency",
    "due_date",
    "days_past_due",
    "fields",
    "updated_at",
)

_contacts = cast(Table, Contact.__table__)
_phones = cast(Table, ContactPhone.__table__)
_callbacks = cast(Table, CallBack.__table__)
_do_not_call = cast(Table, DoNotCall.__table__)


@dataclass(frozen=True, slots=True)
class NotDialable:
    external_id: str
    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    callbacks_created: int
    opted_out_phones: int
    not_dialable: list[NotDialable] = field(default_factory=list)


@dataclass(slots=True)
class _Phone:
    id: int
    position: int
    status: str


async def import_contacts(
    session: AsyncSession, *, campaign_id: int, contacts: Sequence[ContactRow], now: datetime
) -> ImportResult:
    """Create or update ``contacts`` (matched on external_id) with their numbers, and give each
    one a pending initial call-back in the campaign unless it already has an unfinished one there.

    A re-imported contact's fields are replaced by the upload; numbers it no longer lists are
    removed, numbers it keeps keep their status and failure count. Numbers on the do-not-call
    list are stored opted out. Pending call-backs (any campaign) left without a dialable number
    move to the contact's first dialable one, or are cancelled when it has none. Imports wait
    for each other on PostgreSQL. The caller commits.
    """
    if not contacts:
        return ImportResult(created=0, updated=0, callbacks_created=0, opted_out_phones=0)
    # Two imports touching one contact would race on its numbers and on whether it already has
    # a call-back: they wait for each other, and read only once they have waited.
    await hold(session, _IMPORT_LOCK)
    external_ids = [c.external_id for c in contacts]
    existing = await _contact_ids(session, external_ids)
    await write_rows(
        session,
        _contacts,
        _CONTACT_COLUMNS,
        [
            (
                c.external_id,
                c.name,
                c.time_zone,
                c.loan_id,
                c.amount_due,
                c.currency,
                c.due_date,
                c.days_past_due,
                dict(c.fields),
                now,
                now,
            )
            for c in contacts
        ],
        conflict_key="external_id",
        update_on_conflict=_UPDATED_ON_REIMPORT,
    )
    ids = existing | await _contact_ids(session, [e for e in external_ids if e not in existing])
    blocked = await _on_do_not_call(session, {e164 for c in contacts for e164 in c.phones})
    phones = await _store_phones(session, contacts, ids, set(existing.values()), blocked)
    callbacks = await _callbacks_of(session, list(existing.values()))
    await _repair_pending_callbacks(session, callbacks, phones, now)
    busy = {
        c.contact_id for c in callbacks if c.campaign_id == campaign_id and c.status in _UNFINISHED
    }

    new_callbacks: list[tuple[Any, ...]] = []
    not_dialable: list[NotDialable] = []
    for contact in contacts:
        contact_id = ids[contact.external_id]
        first = _first_dialable(phones[contact_id])
        if first is None:
            reason = (
                "every number is on the do-not-call list"
                if all(p.status == PhoneStatus.OPTED_OUT for p in phones[contact_id])
                else "no dialable number (the carrier reported the others invalid)"
            )
            not_dialable.append(NotDialable(contact.external_id, contact.row, reason))
            continue
        if contact_id not in busy:
            new_callbacks.append((campaign_id, contact_id, first.id, now, now, now))
    await write_rows(
        session,
        _callbacks,
        (
            "campaign_id",
            "contact_id",
            "phone_id",
            "due_at",
            "created_at",
            "updated_at",
            "priority",
            "attempt",
            "status",
            "reason",
        ),
        [
            (*row, 0, 1, CallBackStatus.PENDING.value, CallBackReason.INITIAL.value)
            for row in new_callbacks
        ],
    )
    return ImportResult(
        created=len(contacts) - len(existing),
        updated=len(existing),
        callbacks_created=len(new_callbacks),
        opted_out_phones=sum(1 for c in contacts for e164 in c.phones if e164 in blocked),
        not_dialable=not_dialable,
    )


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _one_of(
    session: AsyncSession, column: ColumnElement[Any], values: Sequence[Any], item: TypeEngine[Any]
) -> ColumnElement[bool]:
    """``column IN values`` with the values as one parameter: an array on PostgreSQL, a JSON
    list on SQLite. Thousands of separate parameters cost SQLAlchemy a compile per statement, and
    PostgreSQL's generic plan for them scans the table once per value."""
    if is_postgres(session):
        return column.in_(select(func.unnest(literal(list(values), ARRAY(item)))))
    listed = func.json_each(literal(json.dumps(list(values)))).table_valued("value")
    return column.in_(select(listed.c.value))


async def _contact_ids(session: AsyncSession, external_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(external_ids):
        rows = await session.execute(
            select(_contacts.c.external_id, _contacts.c.id).where(
                _one_of(session, _contacts.c.external_id, chunk, String())
            )
        )
        found.update({external_id: contact_id for external_id, contact_id in rows})
    return found


async def _on_do_not_call(session: AsyncSession, numbers: set[str]) -> set[str]:
    blocked: set[str] = set()
    for chunk in _chunks(sorted(numbers)):
        blocked.update(
            await session.scalars(
                select(_do_not_call.c.e164).where(
                    _one_of(session, _do_not_call.c.e164, chunk, String())
                )
            )
        )
    return blocked


async def _phones_of(
    session: AsyncSession, contact_ids: Sequence[int]
) -> dict[int, dict[str, _Phone]]:
    """contact id → e164 → stored number, for each of ``contact_ids`` (empty when it has none)."""
    stored: dict[int, dict[str, _Phone]] = {contact_id: {} for contact_id in contact_ids}
    for chunk in _chunks(contact_ids):
        rows = await session.execute(
            select(
                _phones.c.contact_id,
                _phones.c.e164,
                _phones.c.id,
                _phones.c.position,
                _phones.c.status,
            ).where(_one_of(session, _phones.c.contact_id, chunk, BigInteger()))
        )
        for contact_id, e164, phone_id, position, status in rows:
            stored[contact_id][e164] = _Phone(phone_id, position, status)
    return stored


async def _store_phones(
    session: AsyncSession,
    contacts: Sequence[ContactRow],
    ids: dict[str, int],
    reimported: set[int],
    blocked: set[str],
) -> dict[int, list[_Phone]]:
    """Make each contact's stored numbers exactly its uploaded ones, in upload order; returns
    contact id → numbers in dialing order."""
    stored = await _phones_of(session, sorted(reimported))
    removed: list[int] = []
    changed: list[dict[str, Any]] = []
    added: list[tuple[int, int, str, str, int]] = []
    for contact in contacts:
        contact_id = ids[contact.external_id]
        current = stored.setdefault(contact_id, {})
        for e164 in set(current) - set(contact.phones):
            removed.append(current.pop(e164).id)
        for position, e164 in enumerate(contact.phones):
            phone = current.get(e164)
            opted_out = e164 in blocked
            if phone is None:
                status = PhoneStatus.OPTED_OUT if opted_out else PhoneStatus.VALID
                added.append((contact_id, position, e164, status.value, 0))
                continue
            newly_opted_out = opted_out and phone.status != PhoneStatus.OPTED_OUT
            if phone.position != position or newly_opted_out:
                phone.position = position
                if newly_opted_out:
                    phone.status = PhoneStatus.OPTED_OUT.value
                changed.append({"phone": phone.id, "position": position, "status": phone.status})

    for chunk in _chunks(removed):
        await session.execute(
            delete(_phones).where(_one_of(session, _phones.c.id, chunk, BigInteger()))
        )
    if changed:
        await session.execute(
            update(_phones)
            .where(_phones.c.id == bindparam("phone"))
            .values(position=bindparam("position"), status=bindparam("status")),
            changed,
        )
    await write_rows(
        session,
        _phones,
        ("contact_id", "position", "e164", "status", "consecutive_failures"),
        added,
    )
    stored.update(await _phones_of(session, sorted({row[0] for row in added})))
    return {
        contact_id: sorted(numbers.values(), key=lambda p: p.position)
        for contact_id, numbers in stored.items()
    }


def _first_dialable(phones: Sequence[_Phone]) -> _Phone | None:
    return next((p for p in phones if p.status == PhoneStatus.VALID), None)


@dataclass(frozen=True, slots=True)
class _CallBackRef:
    id: int
    contact_id: int
    campaign_id: int
    phone_id: int | None
    status: str


async def _callbacks_of(session: AsyncSession, contact_ids: list[int]) -> list[_CallBackRef]:
    """Every call-back of these contacts. Filtering on contact_id alone (the rest in Python)
    leaves the planner one sensible index, even on freshly loaded tables without statistics."""
    found: list[_CallBackRef] = []
    for chunk in _chunks(contact_ids):
        rows = await session.execute(
            select(
                _callbacks.c.id,
                _callbacks.c.contact_id,
                _callbacks.c.campaign_id,
                _callbacks.c.phone_id,
                _callbacks.c.status,
            ).where(_one_of(session, _callbacks.c.contact_id, chunk, BigInteger()))
        )
        found.extend(_CallBackRef(*row) for row in rows)
    return found


async def _repair_pending_callbacks(
    session: AsyncSession,
    callbacks: list[_CallBackRef],
    phones: dict[int, list[_Phone]],
    now: datetime,
) -> None:
    """Pending call-backs whose number was removed (its phone_id is now NULL) or is no longer
    dialable get the contact's first dialable number, or are cancelled when it has none."""
    repointed: list[dict[str, Any]] = []
    cancelled: list[int] = []
    for callback in callbacks:
        if callback.status != CallBackStatus.PENDING:
            continue
        numbers = phones[callback.contact_id]
        if any(p.id == callback.phone_id and p.status == PhoneStatus.VALID for p in numbers):
            continue
        first = _first_dialable(numbers)
        if first is None:
            cancelled.append(callback.id)
        else:
            repointed.append({"callback": callback.id, "phone_id": first.id, "updated_at": now})
    if repointed:
        await session.execute(
            update(_callbacks)
            .where(
                _callbacks.c.id == bindparam("callback"),
                # A dialer may have claimed it meanwhile: then it is the dialer's.
                _callbacks.c.status == CallBackStatus.PENDING.value,
            )
            .values(phone_id=bindparam("phone_id"), updated_at=bindparam("updated_at")),
            repointed,
        )
    for chunk in _chunks(cancelled):
        await session.execute(
            update(_callbacks)
            .where(
                _one_of(session, _callbacks.c.id, chunk, BigInteger()),
                _callbacks.c.status == CallBackStatus.PENDING.value,
            )
            .values(status=CallBackStatus.CANCELLED.value, updated_at=now)
        )


async def get_contact(session: AsyncSession, contact_id: int) -> Contact | None:
    return await session.scalar(
        select(Contact).where(Contact.id == contact_id).options(selectinload(Contact.phones))
    )


async def find_contacts(
    session: AsyncSession,
    *,
    limit: int,
    offset: int = 0,
    external_id: str | None = None,
    campaign_id: int | None = None,
) -> Sequence[Contact]:
    """Contacts in id order; ``campaign_id`` keeps those with a call-back in that campaign."""
    query = select(Contact).options(selectinload(Contact.phones))
    if external_id is not None:
        query = query.where(Contact.external_id == external_id)
    if campaign_id is not None:
        query = query.where(
            Contact.id.in_(select(CallBack.contact_id).where(CallBack.campaign_id == campaign_id))
        )
    query = query.order_by(Contact.id).limit(limit).offset(offset)
    return (await session.scalars(query)).all()


async def contact_callbacks(session: AsyncSession, contact_id: int) -> Sequence[CallBack]:
    """The contact's call-backs in every campaign, newest first."""
    return (
        await session.scalars(
            select(CallBack)
            .where(CallBack.contact_id == contact_id)
            .order_by(CallBack.created_at.desc(), CallBack.id.desc())
        )
    ).all()


async def list_do_not_call(
    session: AsyncSession, *, limit: int, offset: int = 0
) -> tuple[Sequence[DoNotCall], int]:
    """A page of the do-not-call list, newest first, and its total length."""
    items = (
        await session.scalars(
            select(DoNotCall)
            .order_by(DoNotCall.created_at.desc(), DoNotCall.e164)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(DoNotCall))
    return items, total or 0


async def get_do_not_call(session: AsyncSession, e164: str) -> DoNotCall | None:
    return await session.get(DoNotCall, e164)
