"""What a conversation writes to the database, each write in its own short transaction.

Outcomes are stored as they are recorded (a risk flag is queryable while the call goes on);
opt-outs and borrower-requested call-backs go through the dialer's own functions, so the
do-not-call list and the call-back queue stay consistent with the dialer's rules; the transcript
is written when the call ends. Call status and disposition are the carrier events' business
(``voicebot.dialer.lifecycle``): nothing here touches them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import Call, Campaign, Contact, TranscriptTurn
from voicebot.db.models import Outcome as OutcomeRow
from voicebot.dialer.lifecycle import schedule_callback
from voicebot.dialer.optout import opt_out
from voicebot.dialog import Outcome, Turn, outcome_json

log = logging.getLogger(__name__)

OPT_OUT_SOURCE = "call"
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CallSetup:
    """What a conversation needs to know about its call, read once when the stream starts."""

    call_id: int
    campaign_id: int
    contact_id: int
    dialog_id: str
    to_number: str
    carrier_sid: str | None
    stream_sid: str | None
    status: str
    contact: dict[str, Any]  # the contact as JSON, the shape ``dialog.context_for`` reads
    # The campaign's answering-machine detection ("off", "Enable", "DetectMessageEnd").
    machine_detection: str = "off"


async def load_setup(session: AsyncSession, call_id: int) -> CallSetup | None:
    row = (
        await session.execute(
            select(Call, Contact, Campaign.dialog_id, Campaign.machine_detection)
            .join(Contact, Contact.id == Call.contact_id)
            .join(Campaign, Campaign.id == Call.campaign_id)
            .where(Call.id == call_id)
        )
    ).one_or_none()
    if row is None:
        return None
    call, contact, dialog_id, machine_detection = row
    return CallSetup(
        call_id=call.id,
        campaign_id=call.campaign_id,
        contact_id=call.contact_id,
        dialog_id=dialog_id,
        to_number=call.to_number,
        carrier_sid=call.carrier_sid,
        stream_sid=call.stream_sid,
        status=call.status,
        contact=contact_json(contact),
        machine_detection=machine_detection,
    )


async def answered_by(session: AsyncSession, call_id: int) -> str | None:
    """Who answered the call, as the carrier's answering-machine detection reported it."""
    value: str | None = await session.scalar(select(Call.answered_by).where(Call.id == call_id))
    return value


class ContactValues(Protocol):
    """A stored contact, or one an import is about to store (``domain.contacts.ContactRow``)."""

    @property
    def name(self) -> str: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def loan_id(self) -> str | None: ...
    @property
    def amount_due(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def due_date(self) -> date | None: ...
    @property
    def days_past_due(self) -> int | None: ...
    @property
    def fields(self) -> Mapping[str, Any] | None: ...


def contact_json(contact: ContactValues) -> dict[str, Any]:
    def plain(value: object) -> object:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {
        "name": contact.name,
        "time_zone": contact.time_zone,
        "loan_id": contact.loan_id,
        "amount_due": plain(contact.amount_due),
        "currency": contact.currency,
        "due_date": plain(contact.due_date),
        "days_past_due": contact.days_past_due,
        "fields": dict(contact.fields or {}),
    }


async def claim_stream(session: AsyncSession, call_id: int, stream_sid: str) -> bool:
    """Bind the stream to the call; False when the call already has one. Commits."""
    result = await session.execute(
        update(Call)
        .where(Call.id == call_id, Call.stream_sid.is_(None))
        .values(stream_sid=stream_sid[:64])
        .returning(Call.id)
        .execution_options(synchronize_session=False)
    )
    claimed = result.scalar_one_or_none() is not None
    await session.commit()
    return claimed


async def record_stream_error(session: AsyncSession, call_id: int, code: str, message: str) -> None:
    """Keep what went wrong on the call's stream (the first problem wins). Commits."""
    await session.execute(
        update(Call)
        .where(Call.id == call_id, Call.stream_error.is_(None))
        .values(stream_error=f"{code}: {message}"[:_MAX_ERROR_CHARS])
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def store_outcome(
    session: AsyncSession, setup: CallSetup, outcome: Outcome, *, now: datetime
) -> None:
    """Store one outcome in the shape ``outcome_json`` gives (type column + the rest). Commits."""
    document = outcome_json(outcome)
    kind = str(document.pop("type"))
    session.add(
        OutcomeRow(
            call_id=setup.call_id,
            contact_id=setup.contact_id,
            campaign_id=setup.campaign_id,
            type=kind,
            data=document,
            created_at=now,
        )
    )
    await session.commit()


async def store_opt_out(
    session: AsyncSession, setup: CallSetup, *, reason: str, now: datetime
) -> None:
    """The number called goes on the do-not-call list; its pending call-backs are cancelled."""
    await opt_out(session, setup.to_number, reason=reason, source=OPT_OUT_SOURCE, now=now)
    await session.commit()


async def store_callback_request(
    session: AsyncSession, setup: CallSetup, *, at: datetime, now: datetime
) -> int | None:
    """A call-back at the time the borrower asked for; its id, or None when none may be made."""
    callback_id = await schedule_callback(session, call_id=setup.call_id, at=at, now=now)
    await session.commit()
    return callback_id


async def mark_conversed(session: AsyncSession, call_id: int) -> None:
    """The borrower confirmed who they are: the call is a conversation (compliance caps count
    conversations). Commits."""
    await session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(conversed=True)
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def store_conversation_end(
    session: AsyncSession,
    call_id: int,
    *,
    turns: Sequence[Turn],
    end_state: str,
    conversed: bool,
) -> None:
    """The transcript, how the dialog ended, and (again) whether it was a conversation. Commits."""
    session.add_all(
        TranscriptTurn(
            call_id=call_id,
            seq=seq,
            speaker=turn.speaker,
            text=turn.text,
            state=turn.state,
            confidence=turn.confidence,
            dtmf=turn.dtmf,
            interrupted=turn.interrupted,
            started_at=turn.started_at,
            ended_at=turn.ended_at,
        )
        for seq, turn in enumerate(turns)
    )
    values: dict[str, Any] = {"end_state": end_state[:64]}
    if conversed:
        values["conversed"] = True
    await session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def transcript(session: AsyncSession, call_id: int) -> list[TranscriptTurn]:
    """A call's transcript in order."""
    rows = await session.scalars(
        select(TranscriptTurn).where(TranscriptTurn.call_id == call_id).order_by(TranscriptTurn.seq)
    )
    return list(rows)
