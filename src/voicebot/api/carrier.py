"""``/v1/carrier``: the carrier in use and its alarm, raised when the carrier refused this
service itself (bad credentials, a caller number it will not use). While an alarm is open the
dialer's campaigns stay paused and cannot be started or resumed."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from voicebot.api.auth import Admin, Analyst
from voicebot.api.deps import SessionDep
from voicebot.api.errors import documented
from voicebot.db import audit
from voicebot.dialer.refusals import clear_alarm, open_alarm

router = APIRouter(prefix="/v1/carrier", tags=["carrier"], responses=documented(401, 403))


class CarrierAlarmOut(BaseModel):
    carrier: str
    code: str | None
    message: str
    raised_at: datetime


class CarrierStatus(BaseModel):
    carrier: str
    dialing_allowed: bool
    alarm: CarrierAlarmOut | None


@router.get("", response_model=CarrierStatus)
async def carrier_status(_: Analyst, session: SessionDep, request: Request) -> CarrierStatus:
    alarm = await open_alarm(session)
    return CarrierStatus(
        carrier=request.app.state.settings.carrier,
        dialing_allowed=alarm is None,
        alarm=None
        if alarm is None
        else CarrierAlarmOut(
            carrier=alarm.carrier, code=alarm.code, message=alarm.message, raised_at=alarm.raised_at
        ),
    )


@router.post("/alarm/clear", response_model=CarrierStatus)
async def clear(principal: Admin, session: SessionDep, request: Request) -> CarrierStatus:
    """Close the alarm once its cause is fixed; paused campaigns stay paused until resumed."""
    now = datetime.now(UTC)
    cleared = await clear_alarm(session, by=principal.actor, now=now)
    if cleared:
        audit.record(
            session,
            actor=principal.actor,
            action="carrier.alarm_clear",
            target_type="carrier",
            target_id=None,
            details={"cleared": cleared},
            now=now,
        )
    await session.commit()
    return await carrier_status(principal, session, request)
