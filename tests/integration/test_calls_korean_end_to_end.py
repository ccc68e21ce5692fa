"""Real speech end to end, in Korean: the simulated carrier answers, fetches the answer URL and
talks over the media websocket through uvicorn; eSpeak NG borrowers speak, Vosk recognises, the
dialog decides, pyttsx3 speaks back; outcomes, transcripts and opt-outs land in PostgreSQL.

Six scripted borrowers call at once (a promise, a complaint, an opt-out, a barge-in, DTMF, a
call-back request). The
simulated phone runs its clock 3x faster than real time so the test takes seconds, not minutes;
everything else is as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    AMOUNT_DUE,
    DUE_DATE,
    KO_DIALOG,
    call_settings,
    seed_call,
    serve,
    shared_speech,
)
from voicebot.app import create_app
from voicebot.db.models import (
    Call,
    CallBack,
    ContactPhone,
    DoNotCall,
    Outcome,
    TranscriptTurn,
)
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated import SimulatedCarrier
from voicebot.telephony.simulated_voice import ConversationReport, SimulatedVoice

PERSONAS = ("promise", "complaint", "opt_out", "barge_in", "dtmf", "callback")
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
async def maker(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_korean_borrowers_talk_to_the_bot_end_to_end(
    pg_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    numbers = {name: f"+8210888800{n:02d}" for n, name in enumerate(PERSONAS, start=1)}
    call_ids = {
        name: await seed_call(
            maker, e164=numbers[name], persona=f"answers:{name}", extra_pending=name == "opt_out"
        )
        for name in PERSONAS
    }
    reports: dict[int, ConversationReport] = {}
    carriers: list[SimulatedCarrier] = []
    apps: list[FastAPI] = []

    def make(base: str) -> FastAPI:
        settings = call_settings(pg_url, public_base_url=base)
        models, synthesizer = shared_speech()
        voice = SimulatedVoice(
            settings,
            synthesizer=synthesizer,
            time_scale=3.0,
            on_report=lambda report: reports.__setitem__(report.call_id, report),
        )
        carrier = SimulatedCarrier(settings, voice=voice)
        carriers.append(carrier)
        apps.append(create_app(settings, carrier=carrier, speech=(models, synthesizer)))
        return apps[0]

    async with serve(make) as base:
        carrier = carriers[0]
        # As a service does before its campaign starts: prompts rendered, the model loaded.
        await apps[0].state.calls.warm_up([KO_DIALOG])
        try:
            for name, call_id in call_ids.items():
                await carrier.place_call(
                    DialRequest(
                        call_id=call_id,
                        to=numbers[name],
                        from_=None,
                        answer_url=f"{base}/webhooks/twilio/answer?call_id={call_id}",
                        status_callback_url=f"{base}/webhooks/twilio/status?call_id={call_id}",
                        metadata={"persona": f"answers:{name}"},
                    )
                )
            calls = await _all_finished(maker, list(call_ids.values()))
        finally:
            await carrier.aclose()

    by_name = {name: calls[call_id] for name, call_id in call_ids.items()}
    async with maker() as session:
        outcomes = {
            name: [
                (o.type, o.data)
                for o in await session.scalars(
                    select(Outcome).where(Outcome.call_id == call_id).order_by(Outcome.id)
                )
            ]
            for name, call_id in call_ids.items()
        }
        turns = {
            name: list(
                await session.scalars(
                    select(TranscriptTurn)
                    .where(TranscriptTurn.call_id == call_id)
                    .order_by(TranscriptTurn.seq)
                )
            )
            for name, call_id in call_ids.items()
        }
        blocked = await session.get(DoNotCall, numbers["opt_out"])
        opted_phone = await session.scalar(
            select(ContactPhone).where(ContactPhone.e164 == numbers["opt_out"])
        )
        opt_out_contact = by_name["opt_out"].contact_id
        open_callbacks = list(
            await session.scalars(
                select(CallBack).where(
                    CallBack.contact_id == opt_out_contact, CallBack.status == "pending"
                )
            )
        )
        asked_for = list(
            await session.scalars(
                select(CallBack).where(
                    CallBack.contact_id == by_name["callback"].contact_id,
                    CallBack.status == "pending",
                )
            )
        )

    for name, call in by_name.items():
        assert (call.status, call.disposition) == ("completed", "answered"), name
        assert call.stream_error is None, (name, call.stream_error)
        assert call.conversed is True, name
        assert reports[call.id].error is None, name
        assert turns[name][0].speaker == "bot" and turns[name][0].state == "opening", name

    # A promise, spoken all the way: hard times, the day after tomorrow (Seoul time), the full
    # amount due.
    promise = outcomes["promise"]
    heard = [(t.state, t.text) for t in turns["promise"] if t.speaker == "borrower"]
    assert [kind for kind, _ in promise] == [
        "confirmation", "confirmation", "risk_flag", "promise"
    ], heard  # fmt: skip
    assert promise[2][1]["flag"] == "hardship", heard
    day_after_tomorrow = _seoul_day(by_name["promise"]) + timedelta(days=2)
    assert promise[-1][1] == {
        "amount": str(AMOUNT_DUE),
        "currency": "KRW",
        "date": day_after_tomorrow.isoformat(),
    }, heard
    assert by_name["promise"].end_state == "completed"
    spoken = [t for t in turns["promise"] if t.speaker == "borrower" and not t.dtmf]
    assert spoken and all(t.confidence is not None and t.text for t in spoken)

    # A complaint, heard in the middle of the call, and the borrower hung up afterwards.
    complaint = [data for kind, data in outcomes["complaint"] if kind == "complaint"]
    assert len(complaint) == 1 and complaint[0]["text"], outcomes["complaint"]
    assert by_name["complaint"].end_state == "hung_up"

    # An opt-out: the number is on the do-not-call list and nothing more is due for it.
    assert [kind for kind, _ in outcomes["opt_out"]][-1] == "opt_out"
    assert by_name["opt_out"].end_state == "opted_out"
    assert blocked is not None and blocked.source == "call"
    assert opted_phone is not None and opted_phone.status == "opted_out"
    assert open_callbacks == []

    # Barge-in: the borrower said yes over the instalment reminder; the carrier was told to
    # clear its buffer, and the reminder and the question queued after it are marked cut short.
    assert reports[by_name["barge_in"].id].clears >= 1
    interrupted = [t for t in turns["barge_in"] if t.interrupted]
    assert [t.state for t in interrupted] == ["reminder", "ask_repayment"]
    assert outcomes["barge_in"][-1][0] == "promise"

    # A call-back request: a call-back at the time the borrower asked for, in the same campaign.
    requested = [data for kind, data in outcomes["callback"] if kind == "callback_request"]
    assert len(requested) == 1, outcomes["callback"]
    assert by_name["callback"].end_state == "callback_requested"
    assert [(c.due_at, c.reason) for c in asked_for] == [
        (datetime.fromisoformat(requested[0]["at"]), "borrower_request")
    ]

    # DTMF only: every answer a key, the promise is the amount due on the due date.
    keyed = [t for t in turns["dtmf"] if t.speaker == "borrower"]
    assert [t.text for t in keyed] == ["#1", "#1", "#1", "#1"]
    assert all(t.dtmf for t in keyed)
    assert outcomes["dtmf"][-1] == (
        "promise",
        {"amount": str(AMOUNT_DUE), "currency": "KRW", "date": DUE_DATE.isoformat()},
    )


def _seoul_day(call: Call) -> date:
    assert call.answered_at is not None
    return call.answered_at.astimezone(SEOUL).date()


async def _all_finished(
    maker: async_sessionmaker[AsyncSession], call_ids: list[int]
) -> dict[int, Call]:
    """Wait until every call has its final status and its conversation records."""
    calls: list[Call] = []
    for _ in range(1200):
        async with maker() as session:
            calls = list(await session.scalars(select(Call).where(Call.id.in_(call_ids))))
        if all(c.disposition is not None and c.end_state is not None for c in calls):
            return {call.id: call for call in calls}
        await asyncio.sleep(0.1)
    raise AssertionError(f"calls still going: {[(c.id, c.status, c.end_state) for c in calls]}")
