"""What the dialer does when the carrier refuses a call, by what the refusal means.

- an invalid number (Twilio 21211, 21217, …): the call ends ``invalid_number``; that number is
  never dialed again and the call-back moves to the contact's next number at once;
- a number unsubscribed at the carrier (21610): the call ends ``opted_out`` and the number goes on
  the do-not-call list, in every campaign;
- too many requests or calls (HTTP 429, 20429, 10004), or the carrier out of reach (no
  connection): the call was never placed: its row goes and the call-back is due again after a
  back-off, with the same attempt, so nothing is lost and nothing counts against the borrower's
  caps;
- no answer to the request (a timeout, a connection dropped mid-request): the carrier may be
  dialing, so the call is left as it is (``initiating``, its slot taken) for the carrier's
  callbacks, which carry the call's id, to move on; if none comes within the dialer's lease,
  the reaper ends it as failed and the retry rules apply. Failing it at once would have dialed
  the borrower again while the first call rang;
- this service refused (bad credentials, a caller number Twilio will not use): the same undo,
  and dialing stops: every running campaign is paused and a carrier alarm is raised, which the
  API and ``voicebot twilio status`` show until an operator clears it;
- anything else: the call ends ``failed`` with the carrier's code and message verbatim, and the
  retry rules apply.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db import audit
from voicebot.db.models import Campaign, CarrierAlarm
from voicebot.db.session import rowcount
from voicebot.dialer.lifecycle import end_unplaced_call, requeue_unplaced_call
from voicebot.dialer.optout import opt_out
from voicebot.domain.types import CampaignStatus, Disposition
from voicebot.telephony.carrier import CarrierError, RefusalKind

log = logging.getLogger(__name__)

ALARM_ACTOR = "carrier-alarm"
_STOPS_DIALING = frozenset({RefusalKind.AUTHENTICATION, RefusalKind.MISCONFIGURED})
_BACKS_OFF = frozenset({RefusalKind.THROTTLED, RefusalKind.UNREACHABLE})


async def handle_refusal(
    session: AsyncSession,
    call_id: int,
    error: CarrierError,
    *,
    now: datetime,
    backoff: timedelta,
    carrier: str,
) -> RefusalKind:
    """Apply the next step for ``error`` to the call the carrier refused; commits."""
    kind = error.kind
    message = str(error)
    if kind is RefusalKind.UNCONFIRMED:
        log.warning(
            "call %s: %s; waiting for the carrier's callbacks (none within the lease: failed)",
            call_id,
            message,
        )
        return kind
    if kind in _BACKS_OFF or kind in _STOPS_DIALING:
        reason = f"carrier_{kind.value}" + (f":{error.code}" if error.code else "")
        due = now + backoff if kind in _BACKS_OFF else now
        requeued = await requeue_unplaced_call(session, call_id, due_at=due, reason=reason, now=now)
        if requeued is None:
            log.warning("call %s: %s refusal for a call no longer unplaced", call_id, kind.value)
        if kind in _STOPS_DIALING:
            await raise_alarm(session, carrier=carrier, code=error.code, message=message, now=now)
        await session.commit()
        return kind
    disposition = {
        RefusalKind.INVALID_NUMBER: Disposition.INVALID_NUMBER,
        RefusalKind.OPTED_OUT: Disposition.OPTED_OUT,
    }.get(kind)
    call = await end_unplaced_call(
        session,
        call_id,
        error_code=error.code,
        error_message=message,
        now=now,
        disposition=disposition,
    )
    if call is not None and kind is RefusalKind.OPTED_OUT:
        await opt_out(
            session,
            call.to_number,
            reason="carrier_unsubscribed",
            source=f"{carrier}:{error.code or 'opt-out'}",
            now=now,
        )
    await session.commit()
    return kind


async def raise_alarm(
    session: AsyncSession, *, carrier: str, code: str | None, message: str, now: datetime
) -> None:
    """Stop dialing: pause every running campaign and open an alarm (one at a time: a refusal
    while one is open adds nothing). The caller commits."""
    if await open_alarm(session) is None:
        session.add(CarrierAlarm(carrier=carrier, code=code, message=message, raised_at=now))
        log.critical(
            "the carrier refused this service (%s, code %s): dialing stopped, every running "
            "campaign paused; fix the credentials or caller numbers, then clear the alarm "
            "(voicebot twilio clear-alarm) and resume the campaigns",
            carrier,
            code,
        )
    paused = (
        await session.scalars(
            update(Campaign)
            .where(Campaign.status == CampaignStatus.RUNNING.value)
            .values(status=CampaignStatus.PAUSED.value, updated_at=now)
            .returning(Campaign.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for campaign_id in paused:
        audit.record(
            session,
            actor=ALARM_ACTOR,
            action="campaign.pause",
            target_type="campaign",
            target_id=str(campaign_id),
            details={"from": "running", "to": "paused", "carrier_error": code},
            now=now,
        )


async def open_alarm(session: AsyncSession) -> CarrierAlarm | None:
    alarm: CarrierAlarm | None = await session.scalar(
        select(CarrierAlarm)
        .where(CarrierAlarm.cleared_at.is_(None))
        .order_by(CarrierAlarm.raised_at.desc())
        .limit(1)
    )
    return alarm


async def clear_alarm(session: AsyncSession, *, by: str, now: datetime) -> int:
    """Close every open alarm; campaigns stay paused until resumed. The caller commits."""
    result = await session.execute(
        update(CarrierAlarm)
        .where(CarrierAlarm.cleared_at.is_(None))
        .values(cleared_at=now, cleared_by=by[:128])
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
