"""What a conversation stores: every outcome kind in the exact shape ``chat --json`` prints, the
transcript with speaker, text, confidence and timing, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import seed_call
from voicebot.calls import records
from voicebot.db.models import Outcome as OutcomeRow
from voicebot.dialog import Turn, outcome_json
from voicebot.dialog.outcomes import (
    CallBackRequest,
    Complaint,
    Confirmation,
    Dispute,
    OptOutRequest,
    PromiseToPay,
    RiskFlag,
    WrongParty,
    outcome_from,
)

NOW = datetime(2030, 1, 10, 2, 30, tzinfo=UTC)
EVERY_KIND = (
    Confirmation(fields=("identity", "phone")),
    PromiseToPay(amount=Decimal("300000.00"), currency="KRW", date=date(2030, 1, 12)),
    Complaint(category="harassment", text="매일 전화해서 너무 자주 와요"),
    CallBackRequest(at=datetime(2030, 1, 12, 6, 0, tzinfo=UTC)),
    OptOutRequest(),
    WrongParty(),
    Dispute(text="어제 냈어요"),
    RiskFlag(flag="vehicle_sold", text="차는 팔았어요"),
)


async def test_every_outcome_is_stored_in_the_shape_chat_prints(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    call_id = await seed_call(sessionmaker, e164="+821055550001")
    async with sessionmaker() as session:
        setup = await records.load_setup(session, call_id)
    assert setup is not None
    for outcome in EVERY_KIND:
        async with sessionmaker() as session:
            await records.store_outcome(session, setup, outcome, now=NOW)
    async with sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(OutcomeRow).where(OutcomeRow.call_id == call_id).order_by(OutcomeRow.id)
            )
        )
    assert [{"type": row.type, **row.data} for row in rows] == [
        outcome_json(outcome) for outcome in EVERY_KIND
    ]
    assert [outcome_from(row.type, row.data) for row in rows] == list(EVERY_KIND)
    assert {row.type for row in rows} == {
        *("confirmation", "promise", "complaint", "callback_request"),
        *("opt_out", "wrong_party", "dispute", "risk_flag"),
    }
    assert all(
        (row.contact_id, row.campaign_id) == (setup.contact_id, setup.campaign_id) for row in rows
    )


async def test_the_transcript_keeps_speaker_text_confidence_and_timing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    call_id = await seed_call(sessionmaker, e164="+821055550002")
    second = timedelta(seconds=1)
    turns = [
        Turn(speaker="bot", text="김민수 님 본인이 맞으신가요?", state="opening",
             started_at=NOW, ended_at=NOW + 3 * second, prompt_id=1),
        Turn(speaker="borrower", text="네 맞아 요", state="opening", started_at=NOW + 4 * second,
             ended_at=NOW + 5 * second, confidence=0.93),
        Turn(speaker="borrower", text="#1", state="confirm_phone", started_at=NOW + 9 * second,
             ended_at=NOW + 9 * second, dtmf=True),
    ]  # fmt: skip
    async with sessionmaker() as session:
        await records.store_conversation_end(
            session, call_id, turns=turns, end_state="completed", conversed=True
        )
    async with sessionmaker() as session:
        stored = await records.transcript(session, call_id)
    assert [
        (t.seq, t.speaker, t.text, t.state, t.confidence, t.dtmf, t.started_at, t.ended_at)
        for t in stored
    ] == [
        (0, "bot", turns[0].text, "opening", None, False, NOW, NOW + 3 * second),
        (1, "borrower", "네 맞아 요", "opening", 0.93, False, NOW + 4 * second, NOW + 5 * second),
        (2, "borrower", "#1", "confirm_phone", None, True, NOW + 9 * second, NOW + 9 * second),
    ]
