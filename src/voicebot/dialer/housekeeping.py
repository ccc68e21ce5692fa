"""What the dialer tidies between rounds: campaigns with nothing left to do, and calls whose end
the carrier never reported.

Both are set-based statements any dialer process may run at any time: a campaign completes once,
whichever dialer sees it first, and a stale call is ended through the lifecycle (which never ends
a call twice), so several dialers doing this at once is harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db import audit
from voicebot.db.models import Call, CallBack, Campaign
from voicebot.dialer.lifecycle import fail_call
from voicebot.domain.campaigns import CampaignAction, transition
from voicebot.domain.types import CallBackStatus, CallStatus, CampaignStatus

log = logging.getLogger(__name__)

# A call-back in one of these may still lead to a call.
_OPEN = (CallBackStatus.PENDING.value, CallBackStatus.CLAIMED.value, CallBackStatus.DIALED.value)
_NOT_FINAL = tuple(s.value for s in CallStatus if not s.is_final)


async def complete_finished_campaigns(
    session: AsyncSession, *, now: datetime, actor: str
) -> list[int]:
    """Running campaigns with no call-back left open and no call still live become
    ``completed``, with an audit entry; returns their ids and commits.

    A campaign that never had a call-back stays running (its contacts may still be on their
    way); one whose last call-back is only due next week stays running too.
    """
    completed = transition(CampaignStatus.RUNNING, CampaignAction.COMPLETE)
    callbacks = CallBack.__table__
    open_work = exists().where(
        callbacks.c.campaign_id == Campaign.id, callbacks.c.status.in_(_OPEN)
    )
    any_work = exists().where(callbacks.c.campaign_id == Campaign.id)
    result = await session.execute(
        update(Campaign)
        .where(
            Campaign.status == CampaignStatus.RUNNING.value,
            Campaign.live_calls == 0,
            any_work,
            ~open_work,
        )
        .values(status=completed.value, finished_at=now, updated_at=now)
        .returning(Campaign.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(result.scalars())
    for campaign_id in ids:
        audit.record(
            session,
            actor=actor,
            action=f"campaign.{CampaignAction.COMPLETE.value}",
            target_type="campaign",
            target_id=str(campaign_id),
            details={"reason": "every call-back is done", "to": completed.value},
            now=now,
        )
        log.info("campaign %s completed: every call-back is done", campaign_id)
    await session.commit()
    return ids


async def end_stale_calls(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    older_than: timedelta,
    limit: int = 500,
) -> int:
    """End as failed the calls placed more than ``older_than`` ago that the carrier still has not
    reported ended (a lost final webhook): their campaign's live-call slot is freed and the
    retry rules decide what comes next. Returns how many were ended."""
    async with sessionmaker() as session:
        stale = list(
            await session.scalars(
                select(Call.id)
                .where(
                    Call.status.in_(_NOT_FINAL),
                    Call.status != CallStatus.INITIATING.value,
                    Call.created_at < now - older_than,
                )
                .order_by(Call.id)
                .limit(limit)
            )
        )
    ended = 0
    for call_id in stale:
        async with sessionmaker() as session:
            ended += await fail_call(
                session,
                call_id,
                error_code=None,
                error_message=(
                    "no final status from the carrier within "
                    f"{int(older_than.total_seconds())} s of the dial"
                ),
                now=now,
            )
    if ended:
        log.warning("%d calls with no final status from the carrier ended as failed", ended)
    return ended
