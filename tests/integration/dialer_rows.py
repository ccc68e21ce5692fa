"""Rows and a recording carrier for the dialer's integration tests (created with the ORM)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, CallBack, Campaign, Contact, ContactPhone
from voicebot.telephony.carrier import CarrierError, DialRequest

_names = itertools.count(1)
ALL_DAY = time(0, 0)


async def make_campaign(session: AsyncSession, **overrides: Any) -> Campaign:
    """A running campaign whose window is open all day unless the test says otherwise."""
    values: dict[str, Any] = {
        "name": f"campaign-{next(_names)}",
        "dialog_id": "car_loan_followup.zh-CN",
        "status": "running",
        "window_start": ALL_DAY,
        "window_end": ALL_DAY,
        "window_weekdays": list(range(7)),
        "concurrency_limit": 1000,
        "caller_numbers": ["+15005550006"],
        "retry_delays": {},
    }
    values.update(overrides)
    campaign = Campaign(**values)
    session.add(campaign)
    await session.flush()
    return campaign


async def make_contact(
    session: AsyncSession,
    phones: Sequence[str] = ("+8613800000001",),
    *,
    time_zone: str = "Asia/Shanghai",
    loan_id: str | None = None,
    persona: str | None = None,
) -> Contact:
    n = next(_names)
    contact = Contact(
        external_id=f"ext-{n}",
        name=f"Borrower {n}",
        time_zone=time_zone,
        loan_id=loan_id,
        fields={} if persona is None else {"persona": persona},
    )
    contact.phones = [
        ContactPhone(position=i, e164=e164, status="valid", consecutive_failures=0)
        for i, e164 in enumerate(phones)
    ]
    session.add(contact)
    await session.flush()
    return contact


async def make_callback(
    session: AsyncSession,
    campaign: Campaign,
    contact: Contact,
    *,
    due_at: datetime,
    attempt: int = 1,
    phone_index: int = 0,
    status: str = "pending",
) -> CallBack:
    callback = CallBack(
        campaign_id=campaign.id,
        contact_id=contact.id,
        phone_id=contact.phones[phone_index].id,
        due_at=due_at,
        attempt=attempt,
        status=status,
        reason="initial",
    )
    session.add(callback)
    await session.flush()
    return callback


async def make_call(
    session: AsyncSession,
    callback: CallBack,
    contact: Contact,
    *,
    created_at: datetime,
    status: str = "queued",
    carrier_sid: str | None = None,
    phone_index: int = 0,
) -> Call:
    """A call as the dialer leaves it once the carrier accepted it (live: counts in live_calls)."""
    call = Call(
        callback_id=callback.id,
        campaign_id=callback.campaign_id,
        contact_id=contact.id,
        phone_id=contact.phones[phone_index].id,
        loan_key=contact.loan_id or f"contact:{contact.id}",
        attempt=callback.attempt,
        to_number=contact.phones[phone_index].e164,
        from_number="+15005550006",
        carrier_sid=carrier_sid,
        status=status,
        created_at=created_at,
    )
    session.add(call)
    callback.status = "dialed"
    campaign = await session.get(Campaign, callback.campaign_id)
    assert campaign is not None
    campaign.live_calls += 1
    await session.flush()
    return call


@dataclass
class RecordingCarrier:
    """Accepts every dial and remembers it; numbers in ``refuse`` raise CarrierError."""

    refuse: dict[str, str] = field(default_factory=dict)  # e164 -> Twilio error code
    dials: list[DialRequest] = field(default_factory=list)
    delay: float = 0.0
    closed: bool = False
    dialed: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first dial

    async def place_call(self, request: DialRequest) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.dials.append(request)
        self.dialed.set()
        if request.to in self.refuse:
            raise CarrierError("the number is not valid", code=self.refuse[request.to])
        return f"CA{request.call_id:032d}"

    async def hang_up(self, carrier_sid: str) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True

    def dialed_numbers(self) -> list[str]:
        return [d.to for d in self.dials]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
