"""Opting a number out: it is never dialed again, in any campaign."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from voicebot.db.models import CallBack, ContactPhone, DoNotCall
from voicebot.domain.phones import mask_phone
from voicebot.domain.types import CallBackStatus, PhoneStatus

log = logging.getLogger(__name__)


async def opt_out(
    session: AsyncSession, e164: str, *, reason: str, source: str, now: datetime
) -> None:
    """Put ``e164`` on the do-not-call list, mark it opted out on every contact that has it, and
    cancel pending call-backs of those contacts that have no other dialable number. Call-backs
    with another number stay; the dialer switches number when it gets to them. Caller commits.

    Repeating an opt-out keeps the first reason and source.
    """
    # The insert comes first: on SQLite it takes the write lock before anything is read.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(
        insert(DoNotCall)
        .values(e164=e164, reason=reason[:64], source=source[:64], created_at=now)
        .on_conflict_do_nothing(index_elements=[DoNotCall.e164])
    )
    await session.execute(
        update(ContactPhone)
        .where(ContactPhone.e164 == e164)
        .values(status=PhoneStatus.OPTED_OUT.value)
        .execution_options(synchronize_session=False)
    )
    other = aliased(ContactPhone)
    dialable_elsewhere = exists().where(
        and_(
            other.contact_id == CallBack.contact_id,
            other.status == PhoneStatus.VALID.value,
            ~exists().where(DoNotCall.e164 == other.e164),
        )
    )
    result = await session.execute(
        update(CallBack)
        .where(
            CallBack.status == CallBackStatus.PENDING.value,
            CallBack.contact_id.in_(
                select(ContactPhone.contact_id).where(ContactPhone.e164 == e164)
            ),
            ~dialable_elsewhere,
        )
        .values(status=CallBackStatus.CANCELLED.value, deferred_reason="opted_out", updated_at=now)
        .returning(CallBack.id)
        .execution_options(synchronize_session=False)
    )
    cancelled = len(result.all())
    log.info("opted out %s (%s): %d call-backs cancelled", mask_phone(e164), source, cancelled)
