"""Campaign queries: lookup, listing, cancelling a campaign's queue, and its progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.locks import begin_writing
from voicebot.db.models import Call, CallBack, Campaign
from voicebot.db.session import rowcount
from voicebot.domain.types import CallBackStatus, CallStatus, CampaignStatus, Disposition

_LIVE_CALL_STATUSES = [s.value for s in CallStatus if not s.is_final]


async def get_campaign(
    session: AsyncSession, campaign_id: int, *, lock: Literal["update", "key_share"] | None = None
) -> Campaign | None:
    """``lock`` holds the row until the transaction ends: ``update`` for a state change;
    ``key_share`` for an import, which must not see the campaign cancelled under it yet must not
    stall the dialer's counter updates on PostgreSQL. On SQLite either takes the write lock."""
    if lock is not None:
        await begin_writing(session)
    query = select(Campaign).where(Campaign.id == campaign_id)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "key_share":
        query = query.with_for_update(read=True, key_share=True)
    return await session.scalar(query)


async def name_taken(session: AsyncSession, name: str, *, other_than: int | None = None) -> bool:
    query = select(Campaign.id).where(Campaign.name == name)
    if other_than is not None:
        query = query.where(Campaign.id != other_than)
    return await session.scalar(query.limit(1)) is not None


async def list_campaigns(
    session: AsyncSession,
    *,
    limit: int,
    offset: int = 0,
    status: CampaignStatus | None = None,
) -> tuple[Sequence[Campaign], int]:
    """A page of campaigns, newest first, and how many match in all."""
    query = select(Campaign)
    count = select(func.count()).select_from(Campaign)
    if status is not None:
        query = query.where(Campaign.status == status.value)
        count = count.where(Campaign.status == status.value)
    query = query.order_by(Campaign.created_at.desc(), Campaign.id.desc())
    items = (await session.scalars(query.limit(limit).offset(offset))).all()
    total = await session.scalar(count)
    return items, total or 0


async def cancel_callbacks(session: AsyncSession, campaign_id: int, *, now: datetime) -> int:
    """Cancel the campaign's pending and claimed call-backs; dialed ones finish naturally (their
    call is live, and its end is recorded). Returns how many were cancelled."""
    result = await session.execute(
        update(CallBack)
        .where(
            CallBack.campaign_id == campaign_id,
            CallBack.status.in_([CallBackStatus.PENDING.value, CallBackStatus.CLAIMED.value]),
        )
        .values(status=CallBackStatus.CANCELLED.value, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


@dataclass(frozen=True, slots=True)
class Progress:
    contacts: int
    callbacks: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    live_calls: int = 0


async def campaign_progress(session: AsyncSession, campaign_id: int) -> Progress:
    """Contacts with a call-back in the campaign, call-backs by status, finished calls by
    disposition, and calls still live. Every known status and disposition is present, at 0."""
    contacts = await session.scalar(
        select(func.count(func.distinct(CallBack.contact_id))).where(
            CallBack.campaign_id == campaign_id
        )
    )
    callbacks = {s.value: 0 for s in CallBackStatus}
    rows = await session.execute(
        select(CallBack.status, func.count())
        .where(CallBack.campaign_id == campaign_id)
        .group_by(CallBack.status)
    )
    for status, n in rows:
        callbacks[status] = n
    calls = {d.value: 0 for d in Disposition}
    rows = await session.execute(
        select(Call.disposition, func.count())
        .where(Call.campaign_id == campaign_id, Call.disposition.is_not(None))
        .group_by(Call.disposition)
    )
    for disposition, n in rows:
        calls[disposition] = n
    live = await session.scalar(
        select(func.count())
        .select_from(Call)
        .where(Call.campaign_id == campaign_id, Call.status.in_(_LIVE_CALL_STATUSES))
    )
    return Progress(contacts=contacts or 0, callbacks=callbacks, calls=calls, live_calls=live or 0)
