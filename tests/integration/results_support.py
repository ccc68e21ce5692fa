"""Rows for the results-API tests: two campaigns' calls with events, transcripts and outcomes,
written straight to the database with the ORM."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db.models import (
    Call,
    CallBack,
    Campaign,
    CarrierEvent,
    Contact,
    ContactPhone,
    Outcome,
    TranscriptTurn,
)

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@dataclass
class Seeded:
    campaigns: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # in the order placed
    outcomes: dict[str, list[int]] = field(default_factory=dict)  # by type, in order


# (campaign index, contact index, minutes after T0, status, disposition, duration, conversed)
CALLS: list[tuple[int, int, int, str, str | None, int | None, bool]] = [
    (0, 0, 0, "no-answer", "no_answer", 0, False),
    (0, 0, 60, "completed", "answered", 75, True),
    (0, 1, 5, "busy", "busy", 0, False),
    (0, 1, 65, "completed", "answered", 40, True),
    (0, 2, 10, "completed", "hung_up", 3, False),
    (0, 2, 1450, "completed", "answered", 120, True),  # the next day
    (1, 0, 30, "completed", "answered", 50, True),
    (1, 2, 35, "in-progress", None, None, False),
]

# (call index, type, data, minutes after the call started)
OUTCOMES: list[tuple[int, str, dict[str, Any], int]] = [
    (1, "confirmation", {"fields": ["identity"]}, 1),
    (1, "promise", {"amount": "3500.00", "currency": "CNY", "date": "2026-12-05"}, 1),
    (3, "complaint", {"category": "harassment", "text": "别再打了"}, 1),
    (3, "promise", {"amount": "800.00", "currency": "CNY", "date": "2026-11-25"}, 1),
    (5, "risk_flag", {"flag": "hardship", "text": "我失业了"}, 1),
    (5, "opt_out", {}, 2),
    (6, "promise", {"amount": "100.00", "currency": "CNY", "date": "2026-12-20"}, 1),
    (6, "complaint", {"category": "wrong_amount", "text": "金额不对"}, 1),
]


async def seed_results(maker: async_sessionmaker[AsyncSession]) -> Seeded:
    seeded = Seeded()
    async with maker() as session:
        campaigns = [
            Campaign(name=name, dialog_id="car_loan_followup.zh-CN", status="running")
            for name in ("winter", "spring")
        ]
        contacts = []
        for i, (name, number) in enumerate(
            [("张三", "+8613812345678"), ("李四", "+8613900000002"), ("王小明", "+8613700000003")]
        ):
            contact = Contact(
                external_id=f"L-{i}", name=name, time_zone="Asia/Shanghai", loan_id=f"LN-{i}"
            )
            contact.phones.append(ContactPhone(position=0, e164=number))
            contacts.append(contact)
        session.add_all([*campaigns, *contacts])
        await session.flush()
        calls: list[Call] = []
        for n, (ci, ki, minutes, status, disposition, duration, conversed) in enumerate(CALLS):
            at = T0 + timedelta(minutes=minutes)
            contact = contacts[ki]
            callback = CallBack(
                campaign_id=campaigns[ci].id,
                contact_id=contact.id,
                phone_id=contact.phones[0].id,
                due_at=at,
                status="done" if disposition else "dialed",
            )
            session.add(callback)
            await session.flush()
            final = disposition is not None
            call = Call(
                callback_id=callback.id,
                campaign_id=campaigns[ci].id,
                contact_id=contact.id,
                phone_id=contact.phones[0].id,
                loan_key=contact.loan_id or "",
                attempt=1,
                to_number=contact.phones[0].e164,
                from_number="+15005550006",
                carrier_sid=f"CA{n:032d}",
                status=status,
                disposition=disposition,
                duration_seconds=duration,
                conversed=conversed,
                answered_by="human" if conversed else None,
                created_at=at,
                answered_at=at + timedelta(seconds=5) if duration else None,
                ended_at=at + timedelta(seconds=5 + (duration or 0)) if final else None,
                recording_url=f"https://api.twilio.com/rec/RE{n}" if n == 1 else None,
            )
            session.add(call)
            await session.flush()
            calls.append(call)
            for seq, event_status in enumerate(["ringing", status]):
                session.add(
                    CarrierEvent(
                        dedupe_key=f"status:{call.carrier_sid}:{event_status}:{seq}",
                        call_sid=call.carrier_sid or "",
                        kind="status",
                        call_id=call.id,
                        payload={
                            "CallSid": call.carrier_sid,
                            "CallStatus": event_status,
                            "SequenceNumber": str(seq),
                            "To": call.to_number,
                            **({"CallDuration": str(duration)} if seq and duration else {}),
                        },
                        received_at=at + timedelta(seconds=seq * 10),
                    )
                )
            if conversed:
                session.add_all(
                    [
                        TranscriptTurn(
                            call_id=call.id,
                            seq=0,
                            speaker="bot",
                            text=f"您好，请问是{contact.name}吗？",
                            state="greet",
                            started_at=at,
                            ended_at=at + timedelta(seconds=3),
                        ),
                        TranscriptTurn(
                            call_id=call.id,
                            seq=1,
                            speaker="borrower",
                            text="是我",
                            state="greet",
                            confidence=0.93,
                            started_at=at + timedelta(seconds=4),
                            ended_at=at + timedelta(seconds=5),
                        ),
                    ]
                )
        await session.flush()
        for index, kind, data, minutes in OUTCOMES:
            call = calls[index]
            outcome = Outcome(
                call_id=call.id,
                contact_id=call.contact_id,
                campaign_id=call.campaign_id,
                type=kind,
                data=data,
                created_at=call.created_at + timedelta(minutes=minutes),
            )
            session.add(outcome)
            await session.flush()
            seeded.outcomes.setdefault(kind, []).append(outcome.id)
        await session.commit()
        seeded.campaigns = [c.id for c in campaigns]
        seeded.contacts = [c.id for c in contacts]
        seeded.calls = [c.id for c in calls]
    return seeded
